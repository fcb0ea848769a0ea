//! Everything that talks to WebGPU directly: the device, pipelines built from the kernel
//! layer's [`crate::kernel::Kernel`]s, and readback.

mod context;
pub mod memory;
pub mod readback;

pub use context::{AdapterReport, GpuContext, Ownership, Pipeline};
