//! The graphs of the op-test table's cases ([`super::TABLE`]), each in the float type asked
//! for, with seeded random values for its inputs and params.

use super::{feeds, rand, Case};
use crate::error::Result;
use crate::graph::Graph;
use crate::ops::attention::AttentionExtras;
use crate::ops::upsample::UpsampleKind;
use crate::rng::Rng;
use crate::tensor::{DType, HostData, HostTensor};

pub(super) fn done(graph: Graph, items: Vec<(&str, HostTensor)>) -> Result<Case> {
    Ok(Case {
        graph,
        feeds: feeds(items),
    })
}

pub(super) fn dims(lead: &[usize], tail: &[usize]) -> Vec<usize> {
    lead.iter().chain(tail).copied().collect()
}

/// What a Linear case's matmul does after the product.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Epilogue {
    Plain,
    /// GELU(tanh); weights and bias wide enough to reach both tails.
    Gelu,
    /// `r + a · wᵀ (+ b)`.
    Residual,
    /// `r + gate · (a · wᵀ + b)`, the gate a chunk of per-item modulations plus a table row
    /// (chunks 4 and 1, so that neither index is 0); `lead` is `[items]`.
    GatedResidual,
}

/// `a · wᵀ (+ b)` for `a` of shape `lead + [m, k]` and `w` `[n, k]`, then `epi`.
pub(super) fn linear(
    f: DType,
    epi: Epilogue,
    lead: &[usize],
    [m, k, n]: [usize; 3],
    bias: bool,
) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let (xs, rs) = (dims(lead, &[m, k]), dims(lead, &[m, n]));
    let a = g.input("a", g.float_desc(xs.clone()))?;
    let w = g.param("w", [n, k])?;
    let b = if bias { Some(g.param("b", [n])?) } else { None };
    let w_std = if epi == Epilogue::Gelu { 1.0 } else { 0.5 };
    let mut v = vec![("a", rand(&xs, 1, 1.0)), ("w", rand(&[n, k], 2, w_std))];
    if bias {
        v.push(("b", rand(&[n], 3, 2.0 * w_std)));
    }
    let y = match epi {
        Epilogue::Plain => g.matmul(a, w, b)?,
        Epilogue::Gelu => g.matmul_gelu(a, w, b)?,
        Epilogue::Residual | Epilogue::GatedResidual => {
            let r = g.input("r", g.float_desc(rs.clone()))?;
            v.push(("r", rand(&rs, 4, 3.0)));
            if epi == Epilogue::Residual {
                g.matmul_residual(a, w, b, r)?
            } else {
                let ms = dims(lead, &[6, n]);
                let mods = g.input("m", g.float_desc(ms.clone()))?;
                let t = g.param("t", [3, n])?;
                v.push(("m", rand(&ms, 5, 1.0)));
                v.push(("t", rand(&[3, n], 6, 1.0)));
                g.matmul_gated_residual(a, w, b, mods, t, (4, 1), r)?
            }
        }
    };
    g.output(y, "y")?;
    done(g, v)
}

pub(super) fn matmul_batched_weight(
    f: DType,
    b: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let a = g.input("a", g.float_desc([b, m, k]))?;
    let w = g.input("w", g.float_desc([b, n, k]))?;
    let y = g.matmul(a, w, None)?;
    g.output(y, "y")?;
    done(
        g,
        vec![
            ("a", rand(&[b, m, k], 4, 1.0)),
            ("w", rand(&[b, n, k], 5, 1.0)),
        ],
    )
}

pub(super) fn binary(f: DType, add: bool, a: &[usize], b: &[usize]) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc(a.to_vec()))?;
    let y = g.input("y", g.float_desc(b.to_vec()))?;
    let z = if add { g.add(x, y) } else { g.mul(x, y) }?;
    g.output(z, "z")?;
    done(g, vec![("x", rand(a, 6, 1.0)), ("y", rand(b, 7, 1.0))])
}

pub(super) fn unary(f: DType, gelu: bool, n: usize) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([n]))?;
    let y = if gelu { g.gelu_tanh(x) } else { g.silu(x) }?;
    g.output(y, "y")?;
    // A wide range: saturated tails on both sides must not overflow.
    done(g, vec![("x", rand(&[n], 8, 12.0))])
}

/// adaLN modulation `x * (1 + scale) + shift` per batch item (chunks 4 and 1 of the per-item
/// vectors, 5 and 2 of the table), after a LayerNorm in the same pass if `norm`.
pub(super) fn modulate(f: DType, norm: bool, b: usize, rows: usize, d: usize) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([b * rows, d]))?;
    let m = g.input("m", g.float_desc([b, 6, d]))?;
    let t = g.param("t", [3, d])?;
    let y = if norm {
        g.layer_norm_modulate(x, 1e-6, m, t, (4, 1), (5, 2))?
    } else {
        g.modulate(x, m, t, (4, 1), (5, 2))?
    };
    g.output(y, "y")?;
    done(
        g,
        vec![
            ("x", rand(&[b * rows, d], 9, if norm { 2.0 } else { 1.0 })),
            ("m", rand(&[b, 6, d], 10, 0.5)),
            ("t", rand(&[3, d], 11, 0.5)),
        ],
    )
}

pub(super) fn gate(f: DType, b: usize, rows: usize, d: usize, residual: bool) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([b, rows, d]))?;
    let y = g.input("y", g.float_desc([b, rows, d]))?;
    let m = g.input("m", g.float_desc([b, 6, d]))?;
    let t = g.param("t", [6, d])?;
    let z = if residual {
        g.gated_residual(x, y, m, t, (2, 2))
    } else {
        g.gated(y, m, t, (5, 0))
    }?;
    g.output(z, "z")?;
    done(
        g,
        vec![
            ("y", rand(&[b, rows, d], 13, 1.0)),
            ("m", rand(&[b, 6, d], 14, 0.5)),
            ("t", rand(&[6, d], 15, 0.5)),
            ("x", rand(&[b, rows, d], 12, 1.0)),
        ],
    )
}

pub(super) fn layer_norm(f: DType, rows: usize, d: usize, offset: f32) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([rows, d]))?;
    let y = g.layer_norm(x, 1e-6)?;
    g.output(y, "y")?;
    let mut v = rand(&[rows, d], 16, 2.0);
    if let HostData::F32(data) = &mut v.data {
        data.iter_mut().for_each(|x| *x += offset);
    }
    done(g, vec![("x", v)])
}

pub(super) fn rms_norm(f: DType, rows: usize, d: usize) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([rows, d]))?;
    let w = g.param("w", [d])?;
    let y = g.rms_norm(x, w, 1e-6)?;
    g.output(y, "y")?;
    done(
        g,
        vec![("x", rand(&[rows, d], 32, 3.0)), ("w", rand(&[d], 33, 1.0))],
    )
}

pub(super) fn softmax(f: DType, rows: usize, d: usize) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([rows, d]))?;
    let y = g.softmax(x)?;
    g.output(y, "y")?;
    done(g, vec![("x", rand(&[rows, d], 17, 4.0))])
}

/// Attention with `z` sequences, `heads` × `dh`, query/key lengths, and optional parts:
/// a bias `(zb, 1 or lq, lk)`, a row map permuting rows within groups of `map_group`.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention(
    f: DType,
    z: usize,
    lq: usize,
    lk: usize,
    heads: usize,
    dh: usize,
    bias: Option<(usize, bool)>,
    map_group: Option<usize>,
) -> Result<Case> {
    let hd = heads * dh;
    let mut g = Graph::with_float(f);
    let q = g.input("q", g.float_desc([z, lq, hd]))?;
    let k = g.input("k", g.float_desc([z, lk, hd]))?;
    let v = g.input("v", g.float_desc([z, lk, hd]))?;
    let mut values = vec![
        ("q", rand(&[z, lq, hd], 18, 1.0)),
        ("k", rand(&[z, lk, hd], 19, 1.0)),
        ("v", rand(&[z, lk, hd], 20, 1.0)),
    ];
    let mut extras = AttentionExtras::default();
    if let Some((zb, per_q)) = bias {
        let shape = [zb, if per_q { lq } else { 1 }, lk];
        let b = g.input("bias", g.float_desc(shape))?;
        // Mostly zero, some strongly negative (masked) entries, like the model's masks.
        let mut r = Rng::new(21);
        let n: usize = shape.iter().product();
        let vals = (0..n)
            .map(|_| {
                if r.uniform() < 0.3 {
                    -10000.0
                } else {
                    r.normal()
                }
            })
            .collect();
        values.push(("bias", HostTensor::f32(shape.to_vec(), vals)));
        extras.bias = Some(b);
    }
    if let Some(group) = map_group {
        // Reverse the rows inside each group of `group` sequences: a permutation that crosses
        // sequence boundaries within the group, as shifted windows do.
        let span = group * lq;
        let map: Vec<u32> = (0..z * lq)
            .map(|i| ((i / span) * span + span - 1 - i % span) as u32)
            .collect();
        let m = g.constant("map", HostTensor::u32([z * lq], map))?;
        extras.map = Some((m, group));
    }
    let o = g.attention(q, k, v, heads, extras)?;
    g.output(o, "o")?;
    done(g, values)
}

/// T5-style: a per-head relative-position bias, a padding mask per batch item, and no score
/// scaling.
pub(super) fn attention_head_bias(
    f: DType,
    z: usize,
    l: usize,
    heads: usize,
    dh: usize,
) -> Result<Case> {
    let hd = heads * dh;
    let mut g = Graph::with_float(f);
    let q = g.input("q", g.float_desc([z, l, hd]))?;
    let k = g.input("k", g.float_desc([z, l, hd]))?;
    let v = g.input("v", g.float_desc([z, l, hd]))?;
    let hb = g.input("hb", g.float_desc([heads, l, l]))?;
    let mb = g.input("mb", g.float_desc([z, 1, l]))?;
    // Item i masks its last 2·i keys, as padding does.
    let mask: Vec<f32> = (0..z * l)
        .map(|i| {
            if i % l < l - 2 * (i / l) {
                0.0
            } else {
                -60000.0
            }
        })
        .collect();
    let extras = AttentionExtras {
        bias: Some(mb),
        head_bias: Some(hb),
        scale: Some(1.0),
        map: None,
        kind: None,
    };
    let o = g.attention(q, k, v, heads, extras)?;
    g.output(o, "o")?;
    done(
        g,
        vec![
            ("q", rand(&[z, l, hd], 28, 0.3)),
            ("k", rand(&[z, l, hd], 29, 0.3)),
            ("v", rand(&[z, l, hd], 30, 1.0)),
            ("hb", rand(&[heads, l, l], 31, 0.5)),
            ("mb", HostTensor::f32([z, 1, l], mask)),
        ],
    )
}

pub(super) fn window_mean(
    f: DType,
    groups: usize,
    window: [usize; 3],
    strides: [usize; 3],
    d: usize,
) -> Result<Case> {
    let s: usize = window.iter().product();
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc([groups, s, d]))?;
    let y = g.window_mean(x, window, strides)?;
    g.output(y, "y")?;
    done(g, vec![("x", rand(&[groups, s, d], 22, 1.0))])
}

pub(super) fn permute(f: DType, shape: &[usize], perm: &[usize]) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc(shape.to_vec()))?;
    let y = g.permute(x, perm)?;
    g.output(y, "y")?;
    done(g, vec![("x", rand(shape, 23, 1.0))])
}

pub(super) fn roll(f: DType, shape: &[usize], shifts: &[i64]) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc(shape.to_vec()))?;
    let y = g.roll(x, shifts)?;
    g.output(y, "y")?;
    done(g, vec![("x", rand(shape, 24, 1.0))])
}

/// `[b, frames, h, w, d]` cut into `win` windows.
pub(super) fn window_partition(f: DType, shape: [usize; 5], win: [usize; 3]) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let x = g.input("x", g.float_desc(shape))?;
    let y = g.window_partition(x, win)?;
    g.output(y, "y")?;
    done(g, vec![("x", rand(&shape, 25, 1.0))])
}

/// The same permute on a u32 constant (index maps are built this way); `f` does not apply.
pub(super) fn permute_u32(f: DType, shape: &[usize], perm: &[usize]) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let n: usize = shape.iter().product();
    let x = g.constant(
        "x",
        HostTensor::u32(shape.to_vec(), (0..n as u32).collect()),
    )?;
    let y = g.permute(x, perm)?;
    g.output(y, "y")?;
    done(g, vec![])
}

pub(super) fn cfg_euler(
    f: DType,
    half: usize,
    c: usize,
    c_out: usize,
    spatial: &[usize],
) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let ps = dims(&[2 * half, c_out], spatial);
    let xs = dims(&[2 * half, c], spatial);
    let p = g.input("p", g.float_desc(ps.clone()))?;
    let x = g.input("x", g.float_desc(xs.clone()))?;
    let s = g.input("s", g.float_desc([2]))?;
    let y = g.cfg_euler(p, x, s)?;
    g.output(y, "y")?;
    done(
        g,
        vec![
            ("p", rand(&ps, 26, 1.0)),
            ("x", rand(&xs, 27, 1.0)),
            ("s", HostTensor::f32([2], vec![0.03, 4.0])),
        ],
    )
}

/// `[batch, c_in, c_out]` channels over `[frames, h, w]` with a `k` kernel.
pub(super) fn conv3d(
    f: DType,
    [b, cin, cout]: [usize; 3],
    [t, h, w]: [usize; 3],
    k: [usize; 3],
) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let xs = [b, cin, t, h, w];
    let ws = [cout, cin, k[0], k[1], k[2]];
    let x = g.input("x", g.float_desc(xs))?;
    let wt = g.param("w", ws)?;
    let bias = g.param("b", [cout])?;
    let y = g.conv3d(x, wt, bias)?;
    g.output(y, "y")?;
    done(
        g,
        vec![
            ("x", rand(&xs, 34, 1.0)),
            ("w", rand(&ws, 35, 0.2)),
            ("b", rand(&[cout], 36, 0.5)),
        ],
    )
}

pub(super) fn group_norm(
    f: DType,
    b: usize,
    c: usize,
    t: usize,
    hw: usize,
    groups: usize,
    silu: bool,
) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let xs = [b, c, t, hw, hw + 1];
    let x = g.input("x", g.float_desc(xs))?;
    let w = g.param("w", [c])?;
    let bias = g.param("b", [c])?;
    let y = g.group_norm(x, w, bias, groups, 1e-6, silu)?;
    g.output(y, "y")?;
    done(
        g,
        vec![
            ("x", rand(&xs, 37, 2.0)),
            ("w", rand(&[c], 38, 1.0)),
            ("b", rand(&[c], 39, 1.0)),
        ],
    )
}

pub(super) fn upsample(f: DType, kind: UpsampleKind, t: usize, h: usize, w: usize) -> Result<Case> {
    let mut g = Graph::with_float(f);
    let xs = [2, 3, t, h, w];
    let x = g.input("x", g.float_desc(xs))?;
    let y = g.upsample(x, kind)?;
    g.output(y, "y")?;
    done(g, vec![("x", rand(&xs, 40, 1.0))])
}
