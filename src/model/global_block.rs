//! The baseline PT-DiT's proxy tokens are measured against (`ptdit bench payoff`): a
//! PixArt-style block of the same width from the same kernels and fusions, with global
//! self-attention over all tokens instead of windows and proxies. Its weights are random (the
//! benchmark times it; nothing loads it), under short names of its own.

use crate::error::Result;
use crate::graph::Graph;
use crate::nn::adaln::{GATE_MLP, GATE_MSA, SCALE_MLP, SCALE_MSA, SHIFT_MLP, SHIFT_MSA};
use crate::nn::attention::ProjectionKeys;
use crate::nn::{AdaLn, Attention, Epilogue, Fuse, Linear};
use crate::ops::attention::AttentionExtras;
use crate::tensor::TensorDesc;

/// The block's projections' key names.
const KEYS: ProjectionKeys = ProjectionKeys {
    q: "q",
    k: "k",
    v: "v",
    out: "o",
};

/// Inputs `hidden` `(b, n, d)`, `t6` `(b, 6, d)`, `text` `(b, text, d)` (already projected)
/// and `text_bias` `(b, 1, text)`, as [`super::ptdit::build_block`] takes them; output
/// `hidden_out`. In order: global self-attention (adaLN-modulated, gated), text
/// cross-attention, MLP (adaLN-modulated, gated).
pub fn build(b: usize, n: usize, d: usize, heads: usize, text: usize) -> Result<Graph> {
    let mut g = Graph::new();
    let h = g.input("hidden", TensorDesc::f32([b, n, d]))?;
    let t6 = g.input("t6", TensorDesc::f32([b, 6, d]))?;
    let y = g.input("text", TensorDesc::f32([b, text, d]))?;
    let tb = g.input("text_bias", TensorDesc::f32([b, 1, text]))?;
    let table = g.param("table", [6, d])?;
    let ada = AdaLn::new(t6, table);
    let eps = 1e-6;

    let x = ada.norm_modulate(&mut g, h, eps, SHIFT_MSA, SCALE_MSA)?;
    let attn = Attention::new(&mut g, "self", KEYS, d, heads, true, Fuse::Qkv)?;
    let extras = AttentionExtras {
        kind: Some("global self"),
        ..Default::default()
    };
    let gated = Epilogue::Gated {
        residual: h,
        ada,
        gate: GATE_MSA,
    };
    let h = attn.forward(&mut g, x, x, extras, gated)?;

    let attn = Attention::new(&mut g, "cross", KEYS, d, heads, true, Fuse::Kv)?;
    let extras = AttentionExtras {
        bias: Some(tb),
        kind: Some("text cross"),
        ..Default::default()
    };
    let h = attn.forward(&mut g, h, y, extras, Epilogue::Residual(h))?;

    let x = ada.norm_modulate(&mut g, h, eps, SHIFT_MLP, SCALE_MLP)?;
    let ff1 = Linear::new(&mut g, "ff1", d, 4 * d, true)?;
    let ff2 = Linear::new(&mut g, "ff2", 4 * d, d, true)?;
    let f = ff1.forward_into(&mut g, x, Epilogue::Gelu)?;
    let gated = Epilogue::Gated {
        residual: h,
        ada,
        gate: GATE_MLP,
    };
    let out = ff2.forward_into(&mut g, f, gated)?;
    g.output(out, "hidden_out")?;
    Ok(g)
}
