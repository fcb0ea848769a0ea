//! From text to pixels: the sampler and the denoising loop on the GPU.

pub mod denoiser;
pub mod sampler;

pub use denoiser::Denoiser;
pub use sampler::{RectifiedFlow, Step};
