//! The built-in models, compiled into the library so that a newcomer needs no download: small
//! pixel-space PT-DiTs with T5 encoders, trained by the project (`tools/train/`), f16 weights,
//! 32×32 px in 8×8 tokens:
//! - `assets/emoji/`: text to image, emoji; 2×2 windows;
//! - `assets/emoji-video/`: text to video, an emoji moving (6 frames); windows of 2 frames;
//! - `assets/emoji-views/`: text to multi-view, 4 views of simple objects; windows span views.
//!
//! The video and multi-view models are native only: the browser demo downloads them when their
//! task is chosen (`web/engine.js`), so its first load carries the image model only.

use super::model_dir::Files;
use super::sampler::Task;

/// The files of a model directory under `assets/`, embedded.
macro_rules! assets {
    ($dir:literal) => {
        &[
            assets!(@ $dir, "transformer/config.json"),
            assets!(@ $dir, "transformer/model.safetensors"),
            assets!(@ $dir, "text_encoder/config.json"),
            assets!(@ $dir, "text_encoder/model.safetensors"),
            assets!(@ $dir, "tokenizer/tokenizer.json"),
            assets!(@ $dir, "tokenizer/tokenizer_config.json"),
            assets!(@ $dir, "scheduler/scheduler_config.json"),
        ]
    };
    (@ $dir:literal, $path:literal) => {
        ($path, include_bytes!(concat!("../../assets/", $dir, "/", $path)) as &[u8])
    };
}

const IMAGE: &[(&str, &[u8])] = assets!("emoji");
#[cfg(not(target_arch = "wasm32"))]
const VIDEO: &[(&str, &[u8])] = assets!("emoji-video");
#[cfg(not(target_arch = "wasm32"))]
const VIEWS: &[(&str, &[u8])] = assets!("emoji-views");

/// How the shipped image weights were made (`training.json`: seed, data version, steps,
/// minutes); the other models' are next to them in `assets/`.
pub const TRAINING: &str = include_str!("../../assets/emoji/training.json");

fn to_files(files: &[(&str, &[u8])]) -> Files {
    files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

/// The files of the default model directory: the image model.
pub fn files() -> Files {
    to_files(IMAGE)
}

/// The built-in model of a task, if this build has one (the browser build has the image
/// model only).
pub fn built_in(task: Task) -> Option<Files> {
    match task {
        Task::Image => Some(files()),
        #[cfg(not(target_arch = "wasm32"))]
        Task::Video => Some(to_files(VIDEO)),
        #[cfg(not(target_arch = "wasm32"))]
        Task::MultiView => Some(to_files(VIEWS)),
        #[cfg(target_arch = "wasm32")]
        Task::Video | Task::MultiView => None,
    }
}

/// How a generation's settings name the built-in model of a task.
pub fn built_in_name(task: Task) -> &'static str {
    match task {
        Task::Image => super::settings::BUILT_IN_MODEL,
        Task::Video => "built-in video model",
        Task::MultiView => "built-in multi-view model",
    }
}
