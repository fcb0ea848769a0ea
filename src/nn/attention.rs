//! Multi-head attention with its projections: q from one sequence, k and v from another (or
//! the same), the attention op, then the output projection (whose epilogue can add the
//! residual).

use super::linear::{Epilogue, Linear};
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::ops::attention::AttentionExtras;

/// The four projections and the head count.
#[derive(Clone, Copy, Debug)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
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
    /// `dim` wide, `dim` = heads · head_dim).
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        keys: ProjectionKeys,
        dim: usize,
        heads: usize,
        bias: bool,
    ) -> Result<Self> {
        let mut lin = |name: &str| Linear::new(g, &format!("{prefix}.{name}"), dim, dim, bias);
        Ok(Attention {
            q: lin(keys.q)?,
            k: lin(keys.k)?,
            v: lin(keys.v)?,
            out: lin(keys.out)?,
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

    /// The attention before the output projection (for a caller that puts something between
    /// the two, like PT-DiT's shifted-window gate).
    pub fn attend(
        &self,
        g: &mut Graph,
        xq: TensorId,
        xkv: TensorId,
        extras: AttentionExtras,
    ) -> Result<TensorId> {
        let q = self.q.forward(g, xq)?;
        let k = self.k.forward(g, xkv)?;
        let v = self.v.forward(g, xkv)?;
        g.attention(q, k, v, self.heads, extras)
    }
}
