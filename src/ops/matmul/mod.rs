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

pub(crate) mod variants;

use super::adaln::{check_mods, AdaParams, AdaVectors, Chunk};
use super::unary::{gelu_in_place, gelu_tanh};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, MatmulKernel, Op, TensorArg};
use crate::tensor::{DType, HostTensor, Shape, TensorDesc, TensorId};

crate::param_block! {
    /// The parameters every matmul kernel takes (`shaders/matmul/io.wgsl`).
    pub struct MatmulParams uses AdaParams {
        m: u32,
        n: u32,
        k: u32,
        ldc: u32,
        off_a: u32,
        off_w: u32,
        off_bias: u32,
        off_c: u32,
        a_batch: u32,
        w_batch: u32,
        c_batch: u32,
        off_res: u32,
        /// C's first column in this dispatch (the gate's column is `col0` + the local one).
        col0: u32,
        /// q8/q4 weights: where the bound weight rows' first scale is, in f16 units.
        off_ws: u32,
        pad1: u32,
        pad2: u32,
        /// GATE only.
        ada: AdaParams,
    }
}

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
        let n_inputs =
            2 + self.bias as usize + 2 * self.gate.is_some() as usize + self.residual as usize;
        // A packed weight (bf16, q8, q4) is unpacked by the kernel; every other input is of the
        // output's float type.
        let storage = inputs.get(1).map(|w| w.dtype).filter(|d| d.is_packed());
        let mut floats = inputs.to_vec();
        if storage.is_some() {
            floats.remove(1);
        }
        let dtype = expect_inputs("matmul", &floats, n_inputs - storage.is_some() as usize)?;
        let (a, w) = (&inputs[0].shape, &inputs[1].shape);
        let bad = |why: &str| Error::shape("matmul", format!("a {a} and weight {w}: {why}"));
        if let Some(s) = storage {
            if w.rank() != 2 {
                return Err(bad(&format!("a {} weight must be (N, K)", s.name())));
            }
            if !crate::quant::fits_rows(s, w.last()) {
                return Err(bad(&format!(
                    "a {} weight needs K a multiple of {} (one scale per block of K)",
                    s.name(),
                    crate::quant::BLOCK
                )));
            }
        }
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
        let chosen = MatmulKernel::for_graph(&cx.tuning, cx.float, cx.coop)
            .for_product(&cx.tuning, d.batch, d.m, d.n);
        let (shader, tile) = chosen.shader();
        let f16_math = cx.tuning.f16_math && cx.float == DType::F16 && chosen.has_f16_math();
        let fused = self.gelu && cx.tuning.fuse_gelu;
        let storage = w.desc.dtype;
        let scaled = matches!(storage, DType::Q8 | DType::Q4);
        let kernel = Kernel::new(shader)
            .read("a")
            .read("w")
            .read_if(scaled, "ws")
            .read_if(self.bias, "bias")
            .read_if(self.gate.is_some(), "mods")
            .read_if(self.gate.is_some(), "table")
            .read_if(self.residual, "res")
            .flag("BIAS", self.bias)
            .flag("GATE", self.gate.is_some())
            .flag("RESIDUAL", self.residual)
            .flag("GELU", fused)
            .flag("VEC4", vec4)
            .flag("F16MATH", f16_math)
            .flag("W_PACKED", storage.is_packed())
            .flag("W_SCALED", scaled)
            .flag("W_BF16", storage == DType::BF16)
            .flag("W_Q8", storage == DType::Q8)
            .flag("W_Q4", storage == DType::Q4);
        let kernel = match (chosen, cx.coop) {
            (MatmulKernel::Coop, Some(shape)) => kernel
                .define("CM", shape.edge)
                .define("FR", 32 / shape.edge)
                .define("SG", shape.subgroup),
            _ => kernel,
        };
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

impl Matmul {
    fn residual_arg<'a>(&self, inputs: &'a [TensorArg]) -> Option<&'a TensorArg> {
        self.residual.then(|| &inputs[inputs.len() - 1])
    }

    /// Binds the scales of a q8/q4 weight's elements `[start, start + len)` (the slot after
    /// the weight's); 0 and nothing bound for other weights.
    fn bind_scales(
        &self,
        cx: &mut EncodeCx,
        w: &TensorArg,
        start: usize,
        len: usize,
    ) -> Result<u32> {
        match w.desc.dtype {
            DType::Q8 | DType::Q4 => cx.bind_scales(w, start, len),
            _ => Ok(0),
        }
    }

    /// Where `mods` is among the inputs (`table` follows it).
    fn gate_index(&self) -> usize {
        2 + self.bias as usize
    }

    /// Binds `mods` and `table` whole (a few rows of the model's width), in their binding
    /// slots' order: after the bias, before the residual; the gate's parameters for a dispatch
    /// whose first row (among all rows, over batches) is `row0`. Zeros without a gate.
    fn bind_gate(&self, cx: &mut EncodeCx, inputs: &[TensorArg], row0: usize) -> Result<AdaParams> {
        let Some(gate) = self.gate else {
            return Ok(AdaParams::default());
        };
        let g = self.gate_index();
        let bound = [cx.bind_all(&inputs[g])?, cx.bind_all(&inputs[g + 1])?];
        let rows = inputs[0].desc.shape.rows();
        Ok(AdaParams::new(&inputs[g], rows, row0, bound).gating(gate))
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
            let off_a = cx.bind_all(a)?;
            let off_w = cx.bind_all(w)?;
            let off_ws = self.bind_scales(cx, w, 0, w.desc.shape.numel())?;
            let off_bias = match self.bias {
                true => cx.bind_all(&inputs[2])?,
                false => 0,
            };
            let ada = self.bind_gate(cx, inputs, 0)?;
            let off_res = match self.residual_arg(inputs) {
                Some(r) => cx.bind_all(r)?,
                None => 0,
            };
            let params = MatmulParams {
                m: d.m as u32,
                n: d.n as u32,
                k: d.k as u32,
                ldc: d.n as u32,
                off_a,
                off_w,
                off_bias,
                off_c: cx.bind_all(out)?,
                a_batch: (d.m * d.k) as u32,
                w_batch: if d.w_batched { (d.n * d.k) as u32 } else { 0 },
                c_batch: (d.m * d.n) as u32,
                off_res,
                off_ws,
                ada,
                ..Default::default()
            };
            let groups = [
                d.n.div_ceil(tile_n) as u32,
                d.m.div_ceil(tile_m) as u32,
                d.batch as u32,
            ];
            return cx.dispatch(kernel, &params, groups);
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
                    let off_a = cx.bind(a, (b * d.m + m0) * d.k, (m1 - m0) * d.k)?;
                    let off_w = cx.bind(w, (wbase + n0) * d.k, (n1 - n0) * d.k)?;
                    let off_ws = self.bind_scales(cx, w, (wbase + n0) * d.k, (n1 - n0) * d.k)?;
                    let off_bias = match self.bias {
                        true => cx.bind(&inputs[2], n0, n1 - n0)?,
                        false => 0,
                    };
                    let ada = self.bind_gate(cx, inputs, b * d.m + m0)?;
                    let rows = ((b * d.m + m0) * d.n, (m1 - m0) * d.n);
                    let off_res = match self.residual_arg(inputs) {
                        Some(r) => cx.bind(r, rows.0, rows.1)? + n0 as u32,
                        None => 0,
                    };
                    let params = MatmulParams {
                        m: (m1 - m0) as u32,
                        n: (n1 - n0) as u32,
                        k: d.k as u32,
                        ldc: d.n as u32,
                        off_a,
                        off_w,
                        off_bias,
                        off_c: cx.bind(out, rows.0, rows.1)? + n0 as u32,
                        off_res,
                        col0: n0 as u32,
                        off_ws,
                        ada,
                        ..Default::default()
                    };
                    let groups = [
                        (n1 - n0).div_ceil(tile_n) as u32,
                        (m1 - m0).div_ceil(tile_m) as u32,
                        1,
                    ];
                    let vec4_ok = vec4 && off_a % 4 == 0 && off_w % 4 == 0;
                    let k = kernel.clone().flag("VEC4", vec4_ok);
                    cx.dispatch(k, &params, groups)?;
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

    /// `gate · (x · wᵀ + bias)` in one kernel, `gate = mods[b, gate.0] + table[gate.1]` for the
    /// batch item `b` of each row (PT-DiT's shifted-window gate before `linear_2`).
    pub fn matmul_gated(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        mods: TensorId,
        table: TensorId,
        gate: Chunk,
    ) -> Result<TensorId> {
        self.gated_linear(x, w, bias, mods, table, gate, None)
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
        self.gated_linear(x, w, bias, mods, table, gate, Some(residual))
    }

    /// The gated matmul, with or without a residual (inputs in the op's order).
    #[allow(clippy::too_many_arguments)]
    fn gated_linear(
        &mut self,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        mods: TensorId,
        table: TensorId,
        gate: Chunk,
        residual: Option<TensorId>,
    ) -> Result<TensorId> {
        let mut ins = vec![x, w];
        ins.extend(bias);
        ins.extend([mods, table]);
        ins.extend(residual);
        let op = Matmul {
            bias: bias.is_some(),
            gelu: false,
            residual: residual.is_some(),
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

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// What a Linear case's matmul does after the product.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Epilogue {
        Plain,
        /// GELU(tanh); weights and bias wide enough to reach both tails.
        Gelu,
        /// `r + a · wᵀ (+ b)`.
        Residual,
        /// `r + gate · (a · wᵀ + b)`, the gate a chunk of per-item modulations plus a table row
        /// (chunks 4 and 1, so that neither index is 0); `lead` is `[items]`.
        GatedResidual,
        /// `gate · (a · wᵀ + b)`, the same gate, no residual.
        Gated,
    }

    /// `a · wᵀ (+ b)` for `a` of shape `lead + [m, k]` and `w` `[n, k]`, then `epi`.
    pub(crate) fn linear(
        f: DType,
        epi: Epilogue,
        lead: &[usize],
        mkn: [usize; 3],
        bias: bool,
    ) -> Result<Case> {
        stored_linear(f, None, epi, lead, mkn, bias)
    }

    /// [`linear`] with the weight stored as `storage` (bf16, q8, q4) instead of the float type:
    /// the CPU reference reads the values the packed weight holds (`HostTensor::rounded_to`).
    pub(crate) fn stored_linear(
        f: DType,
        storage: Option<DType>,
        epi: Epilogue,
        lead: &[usize],
        [m, k, n]: [usize; 3],
        bias: bool,
    ) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let (xs, rs) = (dims(lead, &[m, k]), dims(lead, &[m, n]));
        let a = g.input("a", g.float_desc(xs.clone()))?;
        let w = match storage {
            Some(s) => g.param_as("w", [n, k], s)?,
            None => g.param("w", [n, k])?,
        };
        let b = if bias { Some(g.param("b", [n])?) } else { None };
        let w_std = if epi == Epilogue::Gelu { 1.0 } else { 0.5 };
        let mut v = vec![("a", rand(&xs, 1, 1.0)), ("w", rand(&[n, k], 2, w_std))];
        if bias {
            v.push(("b", rand(&[n], 3, 2.0 * w_std)));
        }
        let y = match epi {
            Epilogue::Plain => g.matmul(a, w, b)?,
            Epilogue::Gelu => g.matmul_gelu(a, w, b)?,
            Epilogue::Gated => {
                let ms = dims(lead, &[6, n]);
                let mods = g.input("m", g.float_desc(ms.clone()))?;
                let t = g.param("t", [3, n])?;
                v.push(("m", rand(&ms, 5, 1.0)));
                v.push(("t", rand(&[3, n], 6, 1.0)));
                g.matmul_gated(a, w, b, mods, t, (4, 1))?
            }
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

    pub(crate) fn matmul_batched_weight(
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
}
