//! Every op on the GPU against its CPU reference, on random data and awkward shapes (sizes that
//! are not multiples of the tile, 1-sized dimensions), in the spirit of ggml's
//! test-backend-ops. Each case also runs under a 2 KiB storage-binding limit, which forces the
//! op to split its work into many dispatches; the result must not change.

#[macro_use]
mod common;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use std::collections::HashMap;

use common::{check, feeds, rand, F32_TOL};
use ptdit::graph::ExecOptions;
use ptdit::kernel::{AttentionKernel, MatmulKernel, Tuning};
use ptdit::ops::attention::AttentionExtras;
use ptdit::{DType, Graph, HostTensor, Shape, TensorDesc};
use std::cell::Cell;

type Case = (Graph, HashMap<String, HostTensor>);

thread_local!(static FLOAT: Cell<DType> = const { Cell::new(DType::F32) });

/// Cases build their graphs in the float type the running test asks for.
fn graph() -> Graph {
    Graph::with_float(FLOAT.with(|f| f.get()))
}

fn fdesc(shape: impl Into<Shape>) -> TensorDesc {
    TensorDesc::new(shape, FLOAT.with(|f| f.get()))
}

/// f16 storage, f32 arithmetic: GPU and CPU reference round the same f32 results to f16, but
/// values within an ulp of a rounding boundary may round apart: one f16 ulp is 2^-10 ≈ 9.8e-4
/// of the value, so 2e-3 of the output's scale.
#[cfg(not(target_arch = "wasm32"))]
const F16_TOL: f32 = 2e-3;

/// f16 storage and f16 sums within a K slice (`Tuning::f16_math`; S = 8 or 16 terms): on top
/// of [`F16_TOL`]'s rounding, each product and partial sum is rounded to f16 (2^-11 relative).
/// For independent roundings the error's rms is about 2^-11/√3 · √(1 + S/2) ≈ 8.5e-4 of a
/// typical output (S = 16); the largest of a few thousand outputs' errors is ~4 rms, and the
/// scale (the largest output) is at least 2.5 typical ones here, so ~1.4e-3 of the scale more.
/// An indexing error shows at the scale of the data, 250x this.
#[cfg(not(target_arch = "wasm32"))]
const F16_MATH_TOL: f32 = 4e-3;

/// A binding limit far below every test tensor's size.
const TINY: u64 = 2048;

/// For each case: `name` compares with the CPU at the device's limits; `name_tiny_binding`
/// does the same under [`TINY`] and checks that the work was really split.
/// A case may name a larger limit when a part the op binds whole by design (the keys of one
/// attention sequence, a bias) is larger than [`TINY`]; the split parts still split.
macro_rules! op_tests {
    ($($name:ident => $case:expr $(, limit $limit:expr)?;)*) => {
        mod at_device_limits {
            use super::*;
            $(gpu_test!(fn $name() {
                let (g, f): Case = $case;
                check(&g, &f, F32_TOL, &ExecOptions::default()).await;
            });)*
        }
        // Browsers' software adapter (SwiftShader) has no shader-f16; f16 is tested natively.
        #[cfg(not(target_arch = "wasm32"))]
        mod in_f16 {
            use super::*;
            $(gpu_test!(fn $name() {
                FLOAT.with(|f| f.set(DType::F16));
                let (g, f): Case = $case;
                check(&g, &f, F16_TOL, &ExecOptions::default()).await;
            });)*
        }
        mod under_tiny_binding_limit {
            use super::*;
            $(gpu_test!(fn $name() {
                let (g, f): Case = $case;
                #[allow(unused_variables)]
                let limit = TINY;
                $(let limit: u64 = $limit;)?
                let normal = check(&g, &f, F32_TOL, &ExecOptions::default()).await;
                let tiny = check(&g, &f, F32_TOL, &ExecOptions { max_binding_bytes: Some(limit), ..Default::default() }).await;
                let big = g.tensors().any(|(_, t)| t.desc.bytes() > limit);
                if big {
                    assert!(tiny.dispatches > normal.dispatches,
                        "a tensor exceeds {limit} bytes but the op was not split ({} dispatches)", tiny.dispatches);
                }
            });)*
        }
    };
}

fn matmul(m: usize, k: usize, n: usize, bias: bool, lead: &[usize]) -> Case {
    let mut g = graph();
    let mut a_shape = lead.to_vec();
    a_shape.extend([m, k]);
    let a = g.input("a", fdesc(a_shape.clone())).unwrap();
    let w = g.param("w", [n, k]).unwrap();
    let b = if bias {
        Some(g.param("b", [n]).unwrap())
    } else {
        None
    };
    let y = g.matmul(a, w, b).unwrap();
    g.output(y, "y").unwrap();
    let mut f = vec![("a", rand(&a_shape, 1, 1.0)), ("w", rand(&[n, k], 2, 0.5))];
    if bias {
        f.push(("b", rand(&[n], 3, 1.0)));
    }
    (g, feeds(f))
}

/// A Linear with GELU(tanh) fused into its epilogue; inputs wide enough to reach both tails.
fn matmul_gelu(m: usize, k: usize, n: usize) -> Case {
    let mut g = graph();
    let a = g.input("a", fdesc([m, k])).unwrap();
    let w = g.param("w", [n, k]).unwrap();
    let b = g.param("b", [n]).unwrap();
    let y = g.matmul_gelu(a, w, Some(b)).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("a", rand(&[m, k], 41, 1.0)),
            ("w", rand(&[n, k], 42, 1.0)),
            ("b", rand(&[n], 43, 2.0)),
        ]),
    )
}

/// `r + x · wᵀ (+ b)` with the residual added in the matmul's epilogue.
fn matmul_residual(m: usize, k: usize, n: usize, bias: bool, lead: &[usize]) -> Case {
    let mut g = graph();
    let mut xs = lead.to_vec();
    xs.extend([m, k]);
    let mut rs = lead.to_vec();
    rs.extend([m, n]);
    let a = g.input("a", fdesc(xs.clone())).unwrap();
    let r = g.input("r", fdesc(rs.clone())).unwrap();
    let w = g.param("w", [n, k]).unwrap();
    let b = bias.then(|| g.param("b", [n]).unwrap());
    let y = g.matmul_residual(a, w, b, r).unwrap();
    g.output(y, "y").unwrap();
    let mut f = vec![
        ("a", rand(&xs, 44, 1.0)),
        ("r", rand(&rs, 45, 3.0)),
        ("w", rand(&[n, k], 46, 0.5)),
    ];
    if bias {
        f.push(("b", rand(&[n], 47, 1.0)));
    }
    (g, feeds(f))
}

/// `r + gate · (a · wᵀ + b)` for `items` batch items of `rows` rows each, the gate a chunk of
/// per-item modulations plus a table row (chunks 4 and 1, so that neither index is 0).
fn matmul_gated_residual(items: usize, rows: usize, k: usize, n: usize, bias: bool) -> Case {
    let mut g = graph();
    let (xs, rs, ms) = ([items, rows, k], [items, rows, n], [items, 6, n]);
    let a = g.input("a", fdesc(xs)).unwrap();
    let r = g.input("r", fdesc(rs)).unwrap();
    let m = g.input("m", fdesc(ms)).unwrap();
    let t = g.param("t", [3, n]).unwrap();
    let w = g.param("w", [n, k]).unwrap();
    let b = bias.then(|| g.param("b", [n]).unwrap());
    let y = g.matmul_gated_residual(a, w, b, m, t, (4, 1), r).unwrap();
    g.output(y, "y").unwrap();
    let mut f = vec![
        ("a", rand(&xs, 48, 1.0)),
        ("r", rand(&rs, 49, 3.0)),
        ("m", rand(&ms, 50, 1.0)),
        ("t", rand(&[3, n], 51, 1.0)),
        ("w", rand(&[n, k], 52, 0.5)),
    ];
    if bias {
        f.push(("b", rand(&[n], 53, 1.0)));
    }
    (g, feeds(f))
}

fn matmul_batched_weight(b: usize, m: usize, k: usize, n: usize) -> Case {
    let mut g = graph();
    let a = g.input("a", fdesc([b, m, k])).unwrap();
    let w = g.input("w", fdesc([b, n, k])).unwrap();
    let y = g.matmul(a, w, None).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("a", rand(&[b, m, k], 4, 1.0)),
            ("w", rand(&[b, n, k], 5, 1.0)),
        ]),
    )
}

fn binary(add: bool, a: &[usize], b: &[usize]) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc(a.to_vec())).unwrap();
    let y = g.input("y", fdesc(b.to_vec())).unwrap();
    let z = if add { g.add(x, y) } else { g.mul(x, y) }.unwrap();
    g.output(z, "z").unwrap();
    (
        g,
        feeds(vec![("x", rand(a, 6, 1.0)), ("y", rand(b, 7, 1.0))]),
    )
}

fn unary(gelu: bool, n: usize) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([n])).unwrap();
    let y = if gelu { g.gelu_tanh(x) } else { g.silu(x) }.unwrap();
    g.output(y, "y").unwrap();
    // A wide range: saturated tails on both sides must not overflow.
    (g, feeds(vec![("x", rand(&[n], 8, 12.0))]))
}

fn modulate(b: usize, rows: usize, d: usize) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([b * rows, d])).unwrap();
    let m = g.input("m", fdesc([b, 6, d])).unwrap();
    let t = g.param("t", [3, d]).unwrap();
    let y = g.modulate(x, m, t, (4, 1), (5, 2)).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("x", rand(&[b * rows, d], 9, 1.0)),
            ("m", rand(&[b, 6, d], 10, 0.5)),
            ("t", rand(&[3, d], 11, 0.5)),
        ]),
    )
}

/// LayerNorm with adaLN modulation in the same pass, against the two ops' references.
fn layer_norm_modulate(b: usize, rows: usize, d: usize) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([b * rows, d])).unwrap();
    let m = g.input("m", fdesc([b, 6, d])).unwrap();
    let t = g.param("t", [3, d]).unwrap();
    let y = g
        .layer_norm_modulate(x, 1e-6, m, t, (4, 1), (5, 2))
        .unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("x", rand(&[b * rows, d], 12, 2.0)),
            ("m", rand(&[b, 6, d], 13, 0.5)),
            ("t", rand(&[3, d], 14, 0.5)),
        ]),
    )
}

fn gate(b: usize, rows: usize, d: usize, residual: bool) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([b, rows, d])).unwrap();
    let y = g.input("y", fdesc([b, rows, d])).unwrap();
    let m = g.input("m", fdesc([b, 6, d])).unwrap();
    let t = g.param("t", [6, d]).unwrap();
    let z = if residual {
        g.gated_residual(x, y, m, t, (2, 2))
    } else {
        g.gated(y, m, t, (5, 0))
    }
    .unwrap();
    g.output(z, "z").unwrap();
    let mut f = vec![
        ("y", rand(&[b, rows, d], 13, 1.0)),
        ("m", rand(&[b, 6, d], 14, 0.5)),
        ("t", rand(&[6, d], 15, 0.5)),
    ];
    f.push(("x", rand(&[b, rows, d], 12, 1.0)));
    (g, feeds(f))
}

fn layer_norm(rows: usize, d: usize, offset: f32) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([rows, d])).unwrap();
    let y = g.layer_norm(x, 1e-6).unwrap();
    g.output(y, "y").unwrap();
    let mut v = rand(&[rows, d], 16, 2.0);
    if let ptdit::tensor::HostData::F32(data) = &mut v.data {
        data.iter_mut().for_each(|x| *x += offset);
    }
    (g, feeds(vec![("x", v)]))
}

fn rms_norm(rows: usize, d: usize) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([rows, d])).unwrap();
    let w = g.param("w", [d]).unwrap();
    let y = g.rms_norm(x, w, 1e-6).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("x", rand(&[rows, d], 32, 3.0)),
            ("w", rand(&[d], 33, 1.0)),
        ]),
    )
}

fn softmax(rows: usize, d: usize) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([rows, d])).unwrap();
    let y = g.softmax(x).unwrap();
    g.output(y, "y").unwrap();
    (g, feeds(vec![("x", rand(&[rows, d], 17, 4.0))]))
}

/// Attention with `z` sequences, `heads` × `dh`, query/key lengths, and optional parts:
/// a bias `(zb, 1 or lq, lk)`, a row map permuting rows within groups of `map_group`.
fn attention(
    z: usize,
    lq: usize,
    lk: usize,
    heads: usize,
    dh: usize,
    bias: Option<(usize, bool)>,
    map_group: Option<usize>,
) -> Case {
    let hd = heads * dh;
    let mut g = graph();
    let q = g.input("q", fdesc([z, lq, hd])).unwrap();
    let k = g.input("k", fdesc([z, lk, hd])).unwrap();
    let v = g.input("v", fdesc([z, lk, hd])).unwrap();
    let mut f = vec![
        ("q", rand(&[z, lq, hd], 18, 1.0)),
        ("k", rand(&[z, lk, hd], 19, 1.0)),
        ("v", rand(&[z, lk, hd], 20, 1.0)),
    ];
    let mut extras = AttentionExtras::default();
    if let Some((zb, per_q)) = bias {
        let shape = [zb, if per_q { lq } else { 1 }, lk];
        let b = g.input("bias", fdesc(shape)).unwrap();
        // Mostly zero, some strongly negative (masked) entries, like the model's masks.
        let mut r = ptdit::rng::Rng::new(21);
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
        f.push(("bias", HostTensor::f32(shape.to_vec(), vals)));
        extras.bias = Some(b);
    }
    if let Some(group) = map_group {
        // Reverse the rows inside each group of `group` sequences: a permutation that crosses
        // sequence boundaries within the group, as shifted windows do.
        let span = group * lq;
        let map: Vec<u32> = (0..z * lq)
            .map(|i| ((i / span) * span + span - 1 - i % span) as u32)
            .collect();
        let m = g.constant("map", HostTensor::u32([z * lq], map)).unwrap();
        extras.map = Some((m, group));
    }
    let o = g.attention(q, k, v, heads, extras).unwrap();
    g.output(o, "o").unwrap();
    (g, feeds(f))
}

/// T5-style: a per-head relative-position bias, a padding mask per batch item, and no score
/// scaling.
fn attention_head_bias(z: usize, l: usize, heads: usize, dh: usize) -> Case {
    let hd = heads * dh;
    let mut g = graph();
    let q = g.input("q", fdesc([z, l, hd])).unwrap();
    let k = g.input("k", fdesc([z, l, hd])).unwrap();
    let v = g.input("v", fdesc([z, l, hd])).unwrap();
    let hb = g.input("hb", fdesc([heads, l, l])).unwrap();
    let mb = g.input("mb", fdesc([z, 1, l])).unwrap();
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
    let o = g.attention(q, k, v, heads, extras).unwrap();
    g.output(o, "o").unwrap();
    let f = vec![
        ("q", rand(&[z, l, hd], 28, 0.3)),
        ("k", rand(&[z, l, hd], 29, 0.3)),
        ("v", rand(&[z, l, hd], 30, 1.0)),
        ("hb", rand(&[heads, l, l], 31, 0.5)),
        ("mb", HostTensor::f32([z, 1, l], mask)),
    ];
    (g, feeds(f))
}

fn window_mean(groups: usize, window: [usize; 3], strides: [usize; 3], d: usize) -> Case {
    let s: usize = window.iter().product();
    let mut g = graph();
    let x = g.input("x", fdesc([groups, s, d])).unwrap();
    let y = g.window_mean(x, window, strides).unwrap();
    g.output(y, "y").unwrap();
    (g, feeds(vec![("x", rand(&[groups, s, d], 22, 1.0))]))
}

fn permute(shape: &[usize], perm: &[usize]) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc(shape.to_vec())).unwrap();
    let y = g.permute(x, perm).unwrap();
    g.output(y, "y").unwrap();
    (g, feeds(vec![("x", rand(shape, 23, 1.0))]))
}

fn roll(shape: &[usize], shifts: &[i64]) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc(shape.to_vec())).unwrap();
    let y = g.roll(x, shifts).unwrap();
    g.output(y, "y").unwrap();
    (g, feeds(vec![("x", rand(shape, 24, 1.0))]))
}

fn window_partition(b: usize, f: usize, h: usize, w: usize, d: usize, win: [usize; 3]) -> Case {
    let mut g = graph();
    let x = g.input("x", fdesc([b, f, h, w, d])).unwrap();
    let y = g.window_partition(x, win).unwrap();
    g.output(y, "y").unwrap();
    (g, feeds(vec![("x", rand(&[b, f, h, w, d], 25, 1.0))]))
}

fn permute_u32(shape: &[usize], perm: &[usize]) -> Case {
    let mut g = graph();
    let n: usize = shape.iter().product();
    let x = g
        .constant(
            "x",
            HostTensor::u32(shape.to_vec(), (0..n as u32).collect()),
        )
        .unwrap();
    let y = g.permute(x, perm).unwrap();
    g.output(y, "y").unwrap();
    (g, HashMap::new())
}

fn cfg_euler(half: usize, c: usize, c_out: usize, spatial: &[usize]) -> Case {
    let mut g = graph();
    let mut ps = vec![2 * half, c_out];
    ps.extend(spatial);
    let mut xs = vec![2 * half, c];
    xs.extend(spatial);
    let p = g.input("p", fdesc(ps.clone())).unwrap();
    let x = g.input("x", fdesc(xs.clone())).unwrap();
    let s = g.input("s", fdesc([2])).unwrap();
    let y = g.cfg_euler(p, x, s).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("p", rand(&ps, 26, 1.0)),
            ("x", rand(&xs, 27, 1.0)),
            ("s", HostTensor::f32([2], vec![0.03, 4.0])),
        ]),
    )
}

fn conv3d(b: usize, cin: usize, cout: usize, t: usize, h: usize, w: usize, k: [usize; 3]) -> Case {
    let mut g = graph();
    let xs = [b, cin, t, h, w];
    let ws = [cout, cin, k[0], k[1], k[2]];
    let x = g.input("x", fdesc(xs)).unwrap();
    let wt = g.param("w", ws).unwrap();
    let bias = g.param("b", [cout]).unwrap();
    let y = g.conv3d(x, wt, bias).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("x", rand(&xs, 34, 1.0)),
            ("w", rand(&ws, 35, 0.2)),
            ("b", rand(&[cout], 36, 0.5)),
        ]),
    )
}

fn group_norm(b: usize, c: usize, t: usize, hw: usize, groups: usize, silu: bool) -> Case {
    let mut g = graph();
    let xs = [b, c, t, hw, hw + 1];
    let x = g.input("x", fdesc(xs)).unwrap();
    let w = g.param("w", [c]).unwrap();
    let bias = g.param("b", [c]).unwrap();
    let y = g.group_norm(x, w, bias, groups, 1e-6, silu).unwrap();
    g.output(y, "y").unwrap();
    (
        g,
        feeds(vec![
            ("x", rand(&xs, 37, 2.0)),
            ("w", rand(&[c], 38, 1.0)),
            ("b", rand(&[c], 39, 1.0)),
        ]),
    )
}

fn upsample(kind: ptdit::ops::upsample::UpsampleKind, t: usize, h: usize, w: usize) -> Case {
    let mut g = graph();
    let xs = [2, 3, t, h, w];
    let x = g.input("x", fdesc(xs)).unwrap();
    let y = g.upsample(x, kind).unwrap();
    g.output(y, "y").unwrap();
    (g, feeds(vec![("x", rand(&xs, 40, 1.0))]))
}

use ptdit::ops::upsample::UpsampleKind::{CausalTrilinear, Nearest2d};

op_tests! {
    matmul_1x1x1 => matmul(1, 1, 1, false, &[]);
    matmul_odd_shapes_bias => matmul(37, 67, 29, true, &[]);
    matmul_k_multiple_of_4 => matmul(33, 64, 65, true, &[]);
    matmul_leading_dims => matmul(5, 12, 7, true, &[2, 3]);
    matmul_tall => matmul(130, 20, 3, false, &[]);
    matmul_weight_per_batch => matmul_batched_weight(3, 9, 10, 11);
    matmul_gelu_epilogue => matmul_gelu(37, 20, 45);
    matmul_residual_bias => matmul_residual(37, 20, 45, true, &[]);
    matmul_residual_leading_dims => matmul_residual(9, 12, 70, false, &[2]);
    matmul_gated_residual_bias => matmul_gated_residual(3, 13, 24, 20, true);
    matmul_gated_residual_one_item => matmul_gated_residual(1, 37, 12, 9, false);
    add_same_shape => binary(true, &[7, 33], &[7, 33]);
    add_row_broadcast => binary(true, &[2, 301, 5], &[5]);
    add_table_broadcast => binary(true, &[3, 6, 40], &[6, 40]);
    mul_broadcast => binary(false, &[700], &[700]);
    mul_large_right_side => binary(false, &[2, 900], &[900]);
    silu => unary(false, 1001);
    gelu_tanh => unary(true, 1001);
    modulate_per_batch => modulate(2, 37, 13);
    modulate_batch_1 => modulate(1, 50, 24);
    layer_norm_modulate_per_batch => layer_norm_modulate(2, 37, 13);
    layer_norm_modulate_wide => layer_norm_modulate(1, 9, 80);
    gate_residual => gate(2, 19, 21, true);
    gate_no_residual => gate(3, 11, 16, false);
    layer_norm_d1 => layer_norm(4, 1, 0.0);
    layer_norm_odd => layer_norm(9, 13, 0.0);
    layer_norm_wide_offset => layer_norm(5, 400, 100.0);
    rms_norm_odd => rms_norm(7, 45);
    rms_norm_d1 => rms_norm(3, 1);
    softmax_d1 => softmax(3, 1);
    softmax_odd => softmax(11, 300);
    attention_head_72_cross => attention(2, 70, 33, 2, 72, None, None), limit 24 << 10;
    attention_lq1_lk1 => attention(3, 1, 1, 4, 16, None, None);
    attention_text_bias => attention(2, 65, 12, 4, 16, Some((2, false)), None), limit 4 << 10;
    attention_bias_per_query_per_window => attention(6, 16, 16, 2, 8, Some((3, true)), None), limit 4 << 10;
    attention_row_map => attention(16, 16, 16, 2, 8, Some((4, true)), Some(4)), limit 6 << 10;
    attention_one_long_sequence => attention(1, 200, 9, 2, 8, None, None);
    attention_head_dim_odd => attention(2, 9, 7, 3, 5, None, None);
    attention_head_160_loops_kernel => attention(2, 9, 7, 1, 160, Some((2, false)), None), limit 8 << 10;
    attention_t5_head_bias_and_mask => attention_head_bias(2, 19, 4, 16), limit 8 << 10;
    window_mean_one_proxy => window_mean(6, [1, 4, 4], [1, 1, 1], 9);
    window_mean_dilated_proxies => window_mean(3, [2, 4, 4], [1, 2, 2], 7);
    group_mean => window_mean(5, [1, 1, 3], [1, 1, 1], 40);
    permute_3d => permute(&[3, 17, 11], &[2, 0, 1]);
    permute_1_sized => permute(&[1, 5, 1, 130], &[3, 1, 2, 0]);
    roll_2d => roll(&[9, 13, 4], &[-4, 3, 0]);
    window_partition_video => window_partition(2, 4, 8, 12, 3, [2, 4, 4]);
    permute_u32_index_map => permute_u32(&[4, 6, 5], &[1, 2, 0]);
    cfg_euler_step => cfg_euler(2, 4, 8, &[1, 6, 10]), limit 16 << 10;
    conv3d_causal_3x3x3_three_frames => conv3d(1, 5, 7, 3, 6, 5, [3, 3, 3]), limit 4 << 10;
    conv3d_1x1x1_batch_2 => conv3d(2, 6, 9, 1, 4, 7, [1, 1, 1]);
    conv3d_1x3x3 => conv3d(1, 4, 5, 2, 5, 5, [1, 3, 3]);
    group_norm_silu_frames => group_norm(2, 8, 3, 5, 4, true);
    group_norm_one_channel_per_group => group_norm(1, 6, 1, 4, 6, false);
    upsample_nearest => upsample(Nearest2d, 2, 3, 5);
    upsample_trilinear_three_frames => upsample(CausalTrilinear, 3, 4, 3);
    upsample_trilinear_one_frame => upsample(CausalTrilinear, 1, 3, 4);

}

/// The autotuner's other matmul kernels on shapes that cut their blocks everywhere: `tiled`
/// (workgroup memory, 64×64 blocks, K in slices of 16), `rows` (128×8 blocks, uniform W loads)
/// and `wide` (128×128 blocks in 64×64 quarters, K in slices of 8, forced onto every product):
/// M and N past a block or quarter and not multiples of it, K not a multiple of 16 (and of 4), a
/// matrix smaller than one block, batched weights; at the device's limits, split under the
/// tiny binding limit, and (natively) in f16.
macro_rules! matmul_kernel_tests {
    ($module:ident, $kernel:expr) => {
        mod $module {
            use super::*;
            // Every product runs the kernel under test, whatever its size.
            const TUNING: Tuning = Tuning {
                matmul: $kernel,
                fuse_gelu: true,
                attention: AttentionKernel::Tiled,
                per_shape: false,
                f16_math: false,
            };
            matmul_kernel_tests!(@cases
                odd_shapes_bias => matmul(130, 67, 70, true, &[]);
                k_multiple_of_4_not_16 => matmul(65, 36, 129, true, &[]);
                k_multiple_of_16 => matmul(64, 48, 64, false, &[2]);
                smaller_than_one_block => matmul(3, 301, 7, true, &[]);
                weight_per_batch => matmul_batched_weight(3, 70, 20, 66);
                gelu_epilogue => matmul_gelu(70, 24, 65);
                residual_epilogue => matmul_residual(70, 24, 65, true, &[2]);
                gated_residual_epilogue => matmul_gated_residual(3, 50, 24, 20, true);
            );
        }
    };
    (@cases $($name:ident => $case:expr;)*) => {
        $(gpu_test!(fn $name() {
            let (g, f): Case = $case;
            let opts = ExecOptions { tuning: Some(TUNING), ..Default::default() };
            let normal = check(&g, &f, F32_TOL, &opts).await;
            let tiny = ExecOptions { max_binding_bytes: Some(TINY), tuning: Some(TUNING) };
            let split = check(&g, &f, F32_TOL, &tiny).await;
            assert!(split.dispatches > normal.dispatches, "not split under the tiny limit");
            #[cfg(not(target_arch = "wasm32"))]
            {
                FLOAT.with(|f| f.set(DType::F16));
                let (g, f): Case = $case;
                let f32_math = check(&g, &f, F16_TOL, &opts).await;
                if TUNING.matmul.has_f16_math() {
                    let tuning = Tuning { f16_math: true, ..TUNING };
                    let opts = ExecOptions { tuning: Some(tuning), ..Default::default() };
                    let f16_math = check(&g, &f, F16_MATH_TOL, &opts).await;
                    // The same inputs summed in f16 round differently somewhere: the flag ran.
                    assert_ne!(f32_math.got["y"].data, f16_math.got["y"].data, "f16 math changed nothing");
                }
            }
        });)*
    };
}

matmul_kernel_tests!(tiled_matmul, MatmulKernel::Tiled);
matmul_kernel_tests!(rows_matmul, MatmulKernel::Rows);
matmul_kernel_tests!(wide_matmul, MatmulKernel::Wide);
matmul_kernel_tests!(split_matmul, MatmulKernel::Split);

/// The rows attention kernel (8 queries per invocation, 4 keys at a time, no workgroup memory)
/// on the attention cases above: query counts that leave part of its 64-query workgroups empty
/// (1, 9, 19, 65, 70, 200), key counts that are not multiples of 4 (1, 7, 9, 33), head sizes
/// odd, 72 and not a multiple of 4, every bias kind and the row map; under the cases' binding
/// limits (queries split across dispatches) and, natively, in f16.
macro_rules! attention_kernel_tests {
    ($module:ident, $kernel:expr; $($name:ident => $case:expr, limit $limit:expr;)*) => {
        mod $module {
            use super::*;
            const TUNING: Tuning = Tuning {
                matmul: MatmulKernel::Registers,
                fuse_gelu: false,
                attention: $kernel,
                per_shape: false,
                f16_math: false,
            };
            $(gpu_test!(fn $name() {
                let (g, f): Case = $case;
                let opts = ExecOptions { tuning: Some(TUNING), ..Default::default() };
                let normal = check(&g, &f, F32_TOL, &opts).await;
                let small = ExecOptions { max_binding_bytes: Some($limit), tuning: Some(TUNING) };
                let split = check(&g, &f, F32_TOL, &small).await;
                if g.tensors().any(|(_, t)| t.desc.bytes() > $limit) {
                    assert!(split.dispatches > normal.dispatches, "not split under {} bytes", $limit);
                }
                #[cfg(not(target_arch = "wasm32"))]
                {
                    FLOAT.with(|f| f.set(DType::F16));
                    let (g, f): Case = $case;
                    check(&g, &f, F16_TOL, &opts).await;
                }
            });)*
        }
    };
}

attention_kernel_tests!(rows_attention, AttentionKernel::Rows;
    head_72_cross => attention(2, 70, 33, 2, 72, None, None), limit 24 << 10;
    lq1_lk1 => attention(3, 1, 1, 4, 16, None, None), limit TINY;
    text_bias => attention(2, 65, 12, 4, 16, Some((2, false)), None), limit 4 << 10;
    bias_per_query_per_window => attention(6, 16, 16, 2, 8, Some((3, true)), None), limit 4 << 10;
    row_map => attention(16, 16, 16, 2, 8, Some((4, true)), Some(4)), limit 6 << 10;
    one_long_sequence => attention(1, 200, 9, 2, 8, None, None), limit TINY;
    head_dim_odd => attention(2, 9, 7, 3, 5, None, None), limit TINY;
    t5_head_bias_and_mask => attention_head_bias(2, 19, 4, 16), limit 8 << 10;
);
