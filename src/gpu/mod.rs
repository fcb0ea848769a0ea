//! Everything that talks to WebGPU directly: the device, shader sources and pipelines.

mod context;
pub mod readback;
pub mod shaders;
pub mod tuning;

pub use context::{AdapterReport, GpuContext, Ownership, Pipeline};
pub use tuning::{AttentionKernel, MatmulKernel, Tuning};
