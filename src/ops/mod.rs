//! The ops of the engine. Each module holds one op: its parameter block, shape rules and
//! graph-builder method, its plain-Rust CPU reference, and how it dispatches its WGSL kernel
//! (`shaders/<op>.wgsl`, or one file per variant in `shaders/<op>/`, whose choice rules are in
//! the op's `variants.rs`).
//!
//! | op | kernel | used for |
//! |---|---|---|
//! | [`matmul`] | `matmul/{registers,rows,tiled,wide,split}.wgsl` | every Linear (weight stored `(out, in)`), batched |
//! | [`binary`] | `binary.wgsl` | add / sub / mul with a repeated (broadcast) right side |
//! | [`unary`] | `unary.wgsl` | SiLU, GELU (tanh) |
//! | [`modulate`] | `modulate.wgsl` | adaLN `x * (1 + scale) + shift`, per batch |
//! | [`gate`] | `gate.wgsl` | `x + gate * y` (or `gate * y`), per batch |
//! | [`layer_norm`] | `layer_norm.wgsl` | LayerNorm without affine |
//! | [`softmax`] | `softmax.wgsl` | row softmax |
//! | [`attention`] | `attention/{tiled,loops,rows}.wgsl` | multi-head attention, online softmax, bias, row maps |
//! | [`window_mean`] | `window_mean.wgsl` | mean over groups of rows; PT-DiT proxy tokens |
//! | [`reindex`] | `reindex.wgsl` | permute / roll / window partition / patchify |
//! | [`conv3d`] | `conv3d.wgsl` | CausalVAE's causal 3-D convolution |
//! | [`group_norm`] | `group_norm.wgsl` | GroupNorm (+ SiLU) |
//! | [`upsample`] | `upsample.wgsl` | nearest / causal trilinear ×2 |
//! | [`cfg_euler`] | `cfg_euler.wgsl` | the sampler step: CFG + Euler, on the GPU |
//! | [`change`] | `change.wgsl` | partial sums of `|x − ref|` and `|ref|`: the step cache's measure |
//! | [`skip_decision`] | `skip_decision.wgsl` | the step cache's rule: skip the cached blocks or not |
//! | [`select`] | `select.wgsl` | `flag ? a : b` on a flag the GPU wrote |
//! | [`extrapolate`] | `extrapolate.wgsl` | `x + a + c·(a − b)`, `c` written by the GPU: a skipped step's residual |
//!
//! `adaln` holds what modulate, the modulating LayerNorm, gate and the matmul's gate epilogue
//! share: the adaLN vector's shape check, CPU view and parameters (`common/adaln.wgsl`).
//!
//! [`cases`] is the op-test table: every op's cases, which `tests/ops.rs` checks against the
//! CPU reference over every kernel variant and `ptdit bench ops` times.

pub(crate) mod adaln;
pub mod attention;
pub mod binary;
pub mod cases;
pub mod cfg_euler;
pub mod change;
pub mod conv3d;
pub mod extrapolate;
pub mod gate;
pub mod group_norm;
pub mod layer_norm;
pub mod matmul;
pub mod modulate;
pub mod reindex;
pub mod select;
pub mod skip_decision;
pub mod softmax;
pub mod unary;
pub mod upsample;
pub mod window_mean;
