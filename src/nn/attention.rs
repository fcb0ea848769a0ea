//! Multi-head attention with its projections: q from one sequence, k and v from another (or
//! the same), the attention op, then the output projection (whose epilogue can add the
//! residual). Projections that read the same input can share one matmul (a fused projection,
//! its weight the checkpoint's tensors stacked): fewer, larger products, and the attention
//! reads q, k and v in place from the wide output.

use super::linear::{Epilogue, Linear};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::ops::attention::{AttentionExtras, QkvSource};

/// The q, k and v projections.
#[derive(Clone, Copy, Debug)]
pub enum Projections {
    /// Three Linears, three matmuls.
    Separate { q: Linear, k: Linear, v: Linear },
    /// Self-attention: one Linear `D → 3·D`, q, k and v stacked.
    Qkv(Linear),
    /// Cross-attention: q alone, k and v stacked `D → 2·D` (they read the same sequence).
    QKv { q: Linear, kv: Linear },
}

/// Which projections [`Attention::new`] fuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fuse {
    /// None: each its own matmul.
    None,
    /// q, k and v (self-attention: one input).
    Qkv,
    /// k and v (cross-attention).
    Kv,
}

/// The projections, the output projection and the head count.
#[derive(Clone, Copy, Debug)]
pub struct Attention {
    pub proj: Projections,
    pub out: Linear,
    pub heads: usize,
}

/// The key names of the four projections under a module's prefix.
#[derive(Clone, Copy, Debug)]
pub struct ProjectionKeys {
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub out: &'static str,
}

impl ProjectionKeys {
    /// diffusers' `Attention`: `to_q`, `to_k`, `to_v`, `to_out.0`.
    pub const DIFFUSERS: ProjectionKeys = ProjectionKeys {
        q: "to_q",
        k: "to_k",
        v: "to_v",
        out: "to_out.0",
    };
    /// T5's `SelfAttention`: `q`, `k`, `v`, `o`.
    pub const T5: ProjectionKeys = ProjectionKeys {
        q: "q",
        k: "k",
        v: "v",
        out: "o",
    };
}

impl Attention {
    /// Square projections of `dim` under `{prefix}.{keys.*}` (query and key/value inputs both
    /// `dim` wide, `dim` = heads · head_dim), `fuse`d unless the graph keeps projections apart
    /// or the stacked weights would not fill whole words (the same result either way).
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        keys: ProjectionKeys,
        dim: usize,
        heads: usize,
        bias: bool,
        fuse: Fuse,
    ) -> Result<Self> {
        let lin =
            |g: &mut Graph, name: &str| Linear::new(g, &format!("{prefix}.{name}"), dim, dim, bias);
        let stacked =
            |g: &mut Graph, names: &[&str]| Linear::stacked(g, prefix, names, dim, dim, bias);
        let fuse = if g.projections_apart() {
            Fuse::None
        } else {
            fuse
        };
        let proj = match fuse {
            Fuse::Qkv => stacked(g, &[keys.q, keys.k, keys.v])?.map(Projections::Qkv),
            Fuse::Kv => match stacked(g, &[keys.k, keys.v])? {
                Some(kv) => Some(Projections::QKv {
                    q: lin(g, keys.q)?,
                    kv,
                }),
                None => None,
            },
            Fuse::None => None,
        };
        let proj = match proj {
            Some(p) => p,
            None => Projections::Separate {
                q: lin(g, keys.q)?,
                k: lin(g, keys.k)?,
                v: lin(g, keys.v)?,
            },
        };
        Ok(Attention {
            proj,
            out: lin(g, keys.out)?,
            heads,
        })
    }

    /// Attention of `xq` over `xkv`, both `(Z, L, dim)`, then the output projection with
    /// `epilogue`.
    pub fn forward(
        &self,
        g: &mut Graph,
        xq: TensorId,
        xkv: TensorId,
        extras: AttentionExtras,
        epilogue: Epilogue,
    ) -> Result<TensorId> {
        let o = self.attend(g, xq, xkv, extras)?;
        self.out.forward_into(g, o, epilogue)
    }

    /// The attention before the output projection.
    pub fn attend(
        &self,
        g: &mut Graph,
        xq: TensorId,
        xkv: TensorId,
        extras: AttentionExtras,
    ) -> Result<TensorId> {
        let src = match self.proj {
            Projections::Separate { q, k, v } => {
                let (q, k, v) = (q.forward(g, xq)?, k.forward(g, xkv)?, v.forward(g, xkv)?);
                let width = g.shape(q).last();
                QkvSource {
                    q: (q, 0),
                    k: (k, 0),
                    v: (v, 0),
                    width,
                }
            }
            Projections::Qkv(qkv) => {
                if g.root(xq) != g.root(xkv) {
                    return Err(Error::Graph(
                        "a fused q/k/v projection reads one sequence: self-attention only".into(),
                    ));
                }
                let width = qkv.out_features / 3;
                let qkv = qkv.forward(g, xq)?;
                QkvSource {
                    q: (qkv, 0),
                    k: (qkv, width),
                    v: (qkv, 2 * width),
                    width,
                }
            }
            Projections::QKv { q, kv } => {
                let width = q.out_features;
                let (q, kv) = (q.forward(g, xq)?, kv.forward(g, xkv)?);
                QkvSource {
                    q: (q, 0),
                    k: (kv, 0),
                    v: (kv, width),
                    width,
                }
            }
        };
        g.attention_from(src, self.heads, extras)
    }
}
