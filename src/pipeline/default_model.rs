//! The embedded default model (`assets/emoji/`): a small pixel-space PT-DiT with a T5 encoder,
//! trained by the project on emoji (`tools/train/`), compiled into the library so that a
//! newcomer needs no download. 32×32 px, 8×8 tokens in 2×2 windows, f16 weights.

use super::model_dir::Files;
use super::sampler::Task;

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!("../../assets/emoji/", $path)))),*]
    };
}

const FILES: &[(&str, &[u8])] = assets![
    "transformer/config.json",
    "transformer/model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer.json",
    "tokenizer/tokenizer_config.json",
    "scheduler/scheduler_config.json",
];

/// How the shipped weights were made (`training.json`: seed, data version, steps, minutes).
pub const TRAINING: &str = include_str!("../../assets/emoji/training.json");

/// The files of the default model directory.
pub fn files() -> Files {
    FILES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

/// The built-in model of a task, if this build has one: the emoji image model; the video and
/// multi-view models are trained by `tools/train/train.py --task video|views` and ship once
/// they meet their measured goals (`docs/video-and-views.md`).
pub fn built_in(task: Task) -> Option<Files> {
    match task {
        Task::Image => Some(files()),
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
