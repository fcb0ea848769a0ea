//! `C = A · Wᵀ + bias`: a Linear layer with the weight stored `(out, in)` as PyTorch stores it.
//!
//! A is `(..., M, K)`; W is `(N, K)` (shared) or `(B, N, K)` (one per batch, then A must be
//! `(B, M, K)`); bias is `(N,)`. The output is `(..., M, N)`.
//!
//! With a gate (`matmul_gated_residual`), the result is scaled per batch item and channel by a
//! chunk of the adaLN modulation before the residual is added: `h + gate · Linear(x)`, PT-DiT's
//! gated residual, in the projection's epilogue instead of a pass of its own.
//!
//! Splitting for the binding limit: rows of A and C go in chunks of M, rows of W (and bias) in
//! chunks of N; a chunk of C covers whole rows and the kernel writes the chunk's columns.

use super::modulate::{check_mods, AdaVectors, Chunk};
use super::unary::gelu_tanh;
use super::{chunks, expect_inputs, Op};
use crate::error::{Error, Result};
use crate::gpu::shaders::Kernel;
use crate::graph::encode::TensorArg;
use crate::graph::{EncodeCx, Graph, Params, TensorId};
use crate::tensor::{DType, HostTensor, Shape, TensorDesc};

#[derive(Clone, Debug)]
pub struct Matmul {
    pub bias: bool,
    /// GELU(tanh) applied to the result before it is stored (the MLP's first Linear).
    pub gelu: bool,
    /// A last input of the output's shape added to the result (`h + Linear(x)`).
    pub residual: bool,
    /// The result is first multiplied by `mods[b, gate.0] + table[gate.1]` for the batch item
    /// `b` of its row (`mods` and `table` are inputs after the bias), as [`super::gate::Gate`]
    /// does.
    pub gate: Option<Chunk>,
}

struct Dims {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    w_batched: bool,
}

fn dims(a: &Shape, w: &Shape) -> Dims {
    let k = a.last();
    let n = w.dims()[w.rank() - 2];
    if w.rank() == 3 {
        let batch = a.dims()[0];
        Dims {
            batch,
            m: a.numel() / (batch * k),
            n,
            k,
            w_batched: true,
        }
    } else {
        Dims {
            batch: 1,
            m: a.numel() / k,
            n,
            k,
            w_batched: false,
        }
    }
}

impl Op for Matmul {
    fn name(&self) -> &'static str {
        if self.gelu {
            "matmul_gelu"
        } else if self.gate.is_some() {
            "matmul_gated"
        } else if self.residual {
            "matmul_residual"
        } else {
            "matmul"
        }
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let dtype = expect_inputs(
            "matmul",
            inputs,
            2 + self.bias as usize + 2 * self.gate.is_some() as usize + self.residual as usize,
        )?;
        let (a, w) = (&inputs[0].shape, &inputs[1].shape);
        let bad = |why: &str| Error::shape("matmul", format!("a {a} and weight {w}: {why}"));
        if a.rank() < 2 {
            return Err(bad("a must have at least 2 dimensions"));
        }
        match w.rank() {
            2 => {}
            3 if a.rank() == 3 && a.dims()[0] == w.dims()[0] => {}
            3 => return Err(bad("a batched weight (B, N, K) needs a of shape (B, M, K)")),
            _ => return Err(bad("the weight must be (N, K) or (B, N, K)")),
        }
        if a.last() != w.last() {
            return Err(bad(&format!(
                "inner dimensions differ ({} vs {})",
                a.last(),
                w.last()
            )));
        }
        let n = w.dims()[w.rank() - 2];
        if self.bias {
            let b = &inputs[2].shape;
            if b.dims() != [n] {
                return Err(Error::shape(
                    "matmul",
                    format!("bias {b} must be ({n},) for weight {w}"),
                ));
            }
        }
        let mut out = a.dims().to_vec();
        let last = out.len() - 1;
        out[last] = n;
        if self.residual {
            let r = &inputs[inputs.len() - 1].shape;
            if r.dims() != out.as_slice() {
                return Err(Error::shape(
                    "matmul",
                    format!("the residual {r} must have the output's shape {out:?}"),
                ));
            }
        }
        let out = TensorDesc::new(out, dtype);
        if let Some(gate) = self.gate {
            let g = self.gate_index();
            check_mods("matmul", &out, inputs[g], inputs[g + 1], &[gate])?;
        }
        Ok(out)
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let d = dims(&inputs[0].shape, &inputs[1].shape);
        let (a, w) = (inputs[0].as_f32(), inputs[1].as_f32());
        let bias = if self.bias {
            Some(inputs[2].as_f32())
        } else {
            None
        };
        let res = if self.residual {
            Some(inputs[inputs.len() - 1].as_f32())
        } else {
            None
        };
        // The gate of (row, column): rows are grouped by batch item of `mods`.
        let gate = self.gate.map(|chunk| {
            let g = self.gate_index();
            let ada = AdaVectors::new(inputs[g], inputs[g + 1], d.batch * d.m);
            move |row: usize, n: usize| ada.at(row, chunk, n)
        });
        let mut c = vec![0f32; out.shape.numel()];
        for b in 0..d.batch {
            let wb = if d.w_batched { b * d.n * d.k } else { 0 };
            for m in 0..d.m {
                let arow = &a[(b * d.m + m) * d.k..][..d.k];
                for n in 0..d.n {
                    let wrow = &w[wb + n * d.k..][..d.k];
                    let s = dot(arow, wrow) + bias.map_or(0.0, |bv| bv[n]);
                    let s = if self.gelu { gelu_tanh(s) } else { s };
                    let s = gate.as_ref().map_or(s, |g| s * g(b * d.m + m, n));
                    c[(b * d.m + m) * d.n + n] =
                        s + res.map_or(0.0, |r| r[(b * d.m + m) * d.n + n]);
                }
            }
        }
        HostTensor::f32(out.shape.clone(), c)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let (a, w) = (&inputs[0], &inputs[1]);
        let d = dims(&a.desc.shape, &w.desc.shape);
        let vec4 = d.k.is_multiple_of(4);
        let chosen = cx.tuning.matmul.for_product(&cx.tuning, d.batch, d.m, d.n);
        let (shader, tile) = chosen.shader();
        let f16_math = cx.tuning.f16_math && cx.float == DType::F16 && chosen.has_f16_math();
        let fused = self.gelu && cx.tuning.fuse_gelu;
        let (nb, ng, nr) = (
            self.bias as u32,
            2 * self.gate.is_some() as u32,
            self.residual as u32,
        );
        let kernel = Kernel::new(shader, 2 + nb + ng + nr)
            .flag("BIAS", self.bias)
            .flag("GATE", self.gate.is_some())
            .define("B_MODS", 3 + nb)
            .define("B_TABLE", 4 + nb)
            .flag("RESIDUAL", self.residual)
            .define("B_RES", 3 + nb + ng)
            .define("B_OUT", 3 + nb + ng + nr)
            .flag("GELU", fused)
            .flag("VEC4", vec4)
            .flag("F16MATH", f16_math);
        self.encode_product(cx, inputs, out, kernel, tile)?;
        if self.gelu && !fused {
            gelu_in_place(cx, out)?;
        }
        Ok(())
    }

    fn flops(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> u64 {
        let d = dims(&inputs[0].shape, &inputs[1].shape);
        2 * (d.batch * d.m * d.n * d.k) as u64
    }

    fn label(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> String {
        let d = dims(&inputs[0].shape, &inputs[1].shape);
        let batch = if d.batch > 1 {
            format!("{} x ", d.batch)
        } else {
            String::new()
        };
        format!("{} {batch}{}x{}x{}", self.name(), d.m, d.k, d.n)
    }
}

/// GELU(tanh) over a matmul's output where it was not fused into the product.
fn gelu_in_place(cx: &mut EncodeCx, out: &TensorArg) -> Result<()> {
    let n = out.desc.shape.numel();
    let per = cx.rows_per_chunk("the output", 1)?;
    for (s, e) in chunks(n, per) {
        let oo = cx.bind(out, s, e - s)?;
        let groups = cx.grid((e - s).div_ceil(256));
        let kernel = Kernel::new("unary", 0)
            .define("FN", "gelu_tanh")
            .flag("INPLACE", true);
        cx.dispatch(kernel, Params::new().u(e - s).u(0).u(oo), groups)?;
    }
    Ok(())
}

impl Matmul {
    fn residual_arg<'a>(&self, inputs: &'a [TensorArg]) -> Option<&'a TensorArg> {
        self.residual.then(|| &inputs[inputs.len() - 1])
    }

    /// Where `mods` is among the inputs (`table` follows it).
    fn gate_index(&self) -> usize {
        2 + self.bias as usize
    }

    /// Binds `mods` and `table` whole (a few rows of the model's width), in their binding
    /// slots' order: after the bias, before the residual. Their offsets, with a gate.
    fn bind_gate(&self, cx: &mut EncodeCx, inputs: &[TensorArg]) -> Result<Option<[u32; 2]>> {
        if self.gate.is_none() {
            return Ok(None);
        }
        let g = self.gate_index();
        Ok(Some([
            cx.bind_all(&inputs[g])?,
            cx.bind_all(&inputs[g + 1])?,
        ]))
    }

    /// The gate's parameters, the last run of the kernels' (matmul_io.wgsl's order): the
    /// output's first row and column in this dispatch, rows per batch item, chunks of `mods`,
    /// the gate's chunk and table row, and where `mods` and `table` are bound. Placeholders
    /// without a gate.
    fn gate_params(
        &self,
        inputs: &[TensorArg],
        p: Params,
        bound: Option<[u32; 2]>,
        row0: usize,
        col0: usize,
    ) -> Params {
        let (Some((gm, gt)), Some([om, ot])) = (self.gate, bound) else {
            return p.u(0).u(0).u(1).u(0).u(0).u(0).u(0).u(0);
        };
        let mods = &inputs[self.gate_index()].desc.shape;
        let rows = inputs[0].desc.shape.rows();
        let (items, chunks) = (mods.dims()[0], mods.dims()[1]);
        p.u(row0)
            .u(col0)
            .u(rows / items)
            .u(chunks)
            .u(gm)
            .u(gt)
            .u(om)
            .u(ot)
    }

    /// The product's dispatches (whole, or chunked for the binding limit) with `kernel`, whose
    /// workgroups cover blocks of C of `tile` (rows, columns).
    fn encode_product(
        &self,
        cx: &mut EncodeCx,
        inputs: &[TensorArg],
        out: &TensorArg,
        kernel: Kernel,
        tile: [usize; 2],
    ) -> Result<()> {
        let [tile_m, tile_n] = tile;
        let (a, w) = (&inputs[0], &inputs[1]);
        let d = dims(&a.desc.shape, &w.desc.shape);
        let vec4 = d.k.is_multiple_of(4);
        let all_fit = inputs.iter().chain([out]).all(|t| cx.fits(t));
        if all_fit
            && d.m.div_ceil(tile_m) <= cx.max_groups as usize
            && d.n.div_ceil(tile_n) <= cx.max_groups as usize
        {
            let oa = cx.bind_all(a)?;
            let ow = cx.bind_all(w)?;
            let ob = if self.bias {
                cx.bind_all(&inputs[2])?
            } else {
                0
            };
            let og = self.bind_gate(cx, inputs)?;
            let or = match self.residual_arg(inputs) {
                Some(r) => cx.bind_all(r)?,
                None => 0,
            };
            let oc = cx.bind_all(out)?;
            let params = Params::new()
                .u(d.m)
                .u(d.n)
                .u(d.k)
                .u(d.n)
                .u(oa)
                .u(ow)
                .u(ob)
                .u(oc)
                .u(d.m * d.k)
                .u(if d.w_batched { d.n * d.k } else { 0 })
                .u(d.m * d.n)
                .u(or);
            let params = self.gate_params(inputs, params, og, 0, 0);
            let groups = [
                d.n.div_ceil(tile_n) as u32,
                d.m.div_ceil(tile_m) as u32,
                d.batch as u32,
            ];
            return cx.dispatch(kernel, params, groups);
        }
        // Chunked: per batch, rows of A/C by chunks of M, rows of W by chunks of N.
        let m_rows = cx
            .rows_per_chunk("the input", d.k)?
            .min(cx.rows_per_chunk("the output", d.n)?)
            .min(cx.max_groups as usize * tile_m);
        let n_rows = cx
            .rows_per_chunk("the weight", d.k)?
            .min(cx.max_groups as usize * tile_n);
        for b in 0..d.batch {
            let wbase = if d.w_batched { b * d.n } else { 0 };
            for (m0, m1) in chunks(d.m, m_rows) {
                for (n0, n1) in chunks(d.n, n_rows) {
                    let oa = cx.bind(a, (b * d.m + m0) * d.k, (m1 - m0) * d.k)?;
                    let ow = cx.bind(w, (wbase + n0) * d.k, (n1 - n0) * d.k)?;
                    let ob = if self.bias {
                        cx.bind(&inputs[2], n0, n1 - n0)?
                    } else {
                        0
                    };
                    let og = self.bind_gate(cx, inputs)?;
                    let rows = ((b * d.m + m0) * d.n, (m1 - m0) * d.n);
                    let or = match self.residual_arg(inputs) {
                        Some(r) => cx.bind(r, rows.0, rows.1)? as usize + n0,
                        None => 0,
                    };
                    let oc = cx.bind(out, rows.0, rows.1)?;
                    let params = Params::new()
                        .u(m1 - m0)
                        .u(n1 - n0)
                        .u(d.k)
                        .u(d.n)
                        .u(oa)
                        .u(ow)
                        .u(ob)
                        .u(oc as usize + n0)
                        .u(0)
                        .u(0)
                        .u(0)
                        .u(or);
                    let params = self.gate_params(inputs, params, og, b * d.m + m0, n0);
                    let groups = [
                        (n1 - n0).div_ceil(tile_n) as u32,
                        (m1 - m0).div_ceil(tile_m) as u32,
                        1,
                    ];
                    let vec4_ok = vec4 && oa % 4 == 0 && ow % 4 == 0;
                    let k = kernel.clone().flag("VEC4", vec4_ok);
                    cx.dispatch(k, params, groups)?;
                }
            }
        }
        Ok(())
    }
}

/// f32 dot product with eight independent partial sums: plain Rust that the compiler can
/// vectorise, and closer to the exact sum than one running total.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

impl Graph {
    /// `x · wᵀ + bias`, the weight stored `(out, in)`.
    pub fn matmul(&mut self, x: TensorId, w: TensorId, bias: Option<TensorId>) -> Result<TensorId> {
        self.linear(x, w, bias, false)
    }

    /// `gelu_tanh(x · wᵀ + bias)` in one kernel.
    pub fn matmul_gelu(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
    ) -> Result<TensorId> {
        self.linear(x, w, bias, true)
    }

    /// `residual + x · wᵀ + bias` in one kernel; `residual` has the output's shape.
    pub fn matmul_residual(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        residual: TensorId,
    ) -> Result<TensorId> {
        let mut ins = vec![x, w];
        ins.extend(bias);
        ins.push(residual);
        let op = Matmul {
            bias: bias.is_some(),
            gelu: false,
            residual: true,
            gate: None,
        };
        self.push(op, &ins)
    }

    /// `residual + gate · (x · wᵀ + bias)` in one kernel, `gate = mods[b, gate.0] +
    /// table[gate.1]` for the batch item `b` of each row (PT-DiT's gated residual, as
    /// [`Graph::gated_residual`] computes it after a plain matmul).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_gated_residual(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        mods: TensorId,
        table: TensorId,
        gate: Chunk,
        residual: TensorId,
    ) -> Result<TensorId> {
        let mut ins = vec![x, w];
        ins.extend(bias);
        ins.extend([mods, table, residual]);
        let op = Matmul {
            bias: bias.is_some(),
            gelu: false,
            residual: true,
            gate: Some(gate),
        };
        self.push(op, &ins)
    }

    fn linear(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        gelu: bool,
    ) -> Result<TensorId> {
        let residual = false;
        match bias {
            Some(b) => self.push(
                Matmul {
                    bias: true,
                    gelu,
                    residual,
                    gate: None,
                },
                &[x, w, b],
            ),
            None => self.push(
                Matmul {
                    bias: false,
                    gelu,
                    residual,
                    gate: None,
                },
                &[x, w],
            ),
        }
    }
}
