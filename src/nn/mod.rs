//! Model building blocks over the graph: what PT-DiT, T5, the VAE and the benchmarks are made
//! of, declared once. A block owns its params (declared under the checkpoint's key names) and
//! adds its ops to a [`Graph`]; model code reads as the list of its steps.
//!
//! - [`Linear`]: a weight, an optional bias, and what its matmul's epilogue adds.
//! - [`Attention`]: q, k, v (alone or fused) and output projections around the attention op.
//! - [`AdaLn`]: the adaLN-single modulation vectors, by name (`SHIFT_MSA`, `GATE_MLP`, …).

pub mod adaln;
pub mod attention;
pub mod linear;

pub use adaln::{AdaLn, Modulation};
pub use attention::{Attention, Fuse};
pub use linear::{Epilogue, Linear};

use crate::error::Result;
use crate::graph::{Graph, TensorId};

/// The param `key` of `shape`, declared on first use and shared after (a block built twice
/// into one graph reads one copy of its weights).
pub fn param(g: &mut Graph, key: &str, shape: &[usize]) -> Result<TensorId> {
    match g.find(key) {
        Some(t) => Ok(t),
        None => g.param(key, shape.to_vec()),
    }
}
