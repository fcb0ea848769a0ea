//! From text to pixels: the sampler and the denoising loop on the GPU.

pub(crate) mod decode;
pub mod default_model;
pub mod denoiser;
pub mod embeddings;
pub mod generate;
pub mod limits;
pub mod model_dir;
#[cfg(not(target_arch = "wasm32"))]
pub mod model_info;
pub mod png;
#[cfg(not(target_arch = "wasm32"))]
pub mod quantize;
#[cfg(not(target_arch = "wasm32"))]
pub mod random_model;

pub mod clean;
pub(crate) mod sampler;
pub mod settings;
pub mod step_cache;
pub mod text;

pub use denoiser::Denoiser;
pub use sampler::{RectifiedFlow, SchedulerConfig, Step, Task};
pub use step_cache::StepCache;
