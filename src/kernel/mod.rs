//! The kernel layer: what an op is to the engine, below the graph and above nothing but
//! tensors and errors. An op ([`Op`]) infers its output, computes its CPU reference and encodes
//! its dispatches through an [`EncodeCx`], which binds ranges within the device's limits; each
//! dispatch names a [`Kernel`] (a WGSL file of `shaders/` and its specialisation) and a
//! parameter block declared once in Rust ([`ParamBlock`], whose WGSL struct the kernel gets
//! from the same declaration). [`Tuning`] says which variant of a tunable op this device runs;
//! the rules that pick among variants live with their op (`ops/matmul`, `ops/attention`).
//!
//! `tools/check_layers.sh` (run by CI) holds this module to importing nothing above it.

mod encode;
mod op;
pub(crate) mod params;
pub mod tuning;
pub(crate) mod wgsl;

pub(crate) use encode::Dispatch;
pub use encode::{EncodeCx, TensorArg};
pub use op::Op;
pub(crate) use op::{chunks, expect_inputs};
pub use params::ParamBlock;
pub use tuning::{AttentionKernel, CoopShape, MatmulKernel, Tuning};
pub use wgsl::Kernel;
