//! ptdit: a WebGPU runtime for the Proxy Token Diffusion Transformer (PT-DiT, Qihoo-T2X).
//!
//! Layers, bottom up (see ARCHITECTURE.md):
//! - [`tensor`], [`quant`]: shapes and dtypes, host tensors, the packed weight formats.
//! - [`formats`]: safetensors (whole and streamed), PyTorch checkpoints, SentencePiece.
//! - [`kernel`]: what an op is (shapes, CPU reference, dispatches), WGSL sources and their
//!   preprocessor, parameter blocks declared once, the device's kernel choices.
//! - [`gpu`]: the device (own or a host's), pipelines.
//! - [`graph`]: the tensor graph IR, the memory planner, the GPU executor and the CPU reference
//!   interpreter.
//! - [`ops`]: one module per op: shapes, CPU reference, kernel dispatch.
//! - [`nn`]: Linear, attention with its projections, adaLN: the blocks models are made of.
//! - [`model`]: PT-DiT built from ops, its config and weights.
//! - [`pipeline`]: text → image: tokenizer, T5, the sampler loop, VAE, the default model.
//! - [`embed`]: generation in a host's render loop, sliced per frame, into the host's texture.

pub mod autotune;
pub mod embed;
pub mod error;
pub mod formats;
pub mod gpu;
pub mod graph;
pub mod kernel;
pub mod model;
pub mod nn;
pub mod ops;
pub mod pipeline;
pub mod quant;
pub mod rng;
pub mod tensor;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, LoadError, Result};
pub use gpu::GpuContext;
pub use graph::{Executable, Graph, TensorId};
pub use tensor::{DType, HostTensor, Shape, TensorDesc};
/// The wgpu this engine is built on; a host that shares its device must use the same version.
pub use wgpu;
