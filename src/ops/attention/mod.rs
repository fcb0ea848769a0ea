//! Multi-head scaled-dot-product attention over `Z` independent sequences.
//!
//! `q` is `(Z, LQ, H·DH)`, `k` and `v` are `(Z, LK, H·DH)`, heads side by side in each row as a
//! Linear produces them. Each may also be a column range of wider rows, read in place: the
//! output of a fused projection, `(Z, L, 3·H·DH)` for q, k and v together. Optional:
//! - `bias` `(ZB, 1 or LQ, LK)`, added to the scores of sequence `z` from entry `z % ZB`: a
//!   text padding mask per batch item (`ZB = B`), or a Swin mask per window (`ZB` = windows).
//! - `head_bias` `(H, LQ, LK)`, added for every sequence (T5's relative position bias).
//! - `map` (u32, `Z·LQ`), self-attention only: token `i` of sequence `z` is row `map[z·LQ + i]`
//!   of the flattened `(Z·LQ, H·DH)` tensors, for q, k, v and the output alike. The map must
//!   permute rows within groups of `group` sequences (one batch item's windows), which is what
//!   lets the work be split for the binding limit. Shifted-window attention is this op with the
//!   roll folded into the map: the hidden state is never copied.
//!
//! Work is split over sequences (whole map groups), and over query rows when one sequence is
//! too large to bind. The keys and values of one sequence, and the bias, are bound whole: their
//! size is set by the model's structure (text length, window and proxy counts), not by the
//! image size, and is far below any device's binding limit; a clear error says otherwise.

pub(crate) mod variants;

use variants::CoopBlock;

use crate::error::{Error, Result};
use crate::graph::{Graph, Source};
use crate::kernel::{chunks, expect_inputs, AttentionKernel, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{DType, HostTensor, TensorDesc, TensorId};

crate::param_block! {
    /// The parameters every attention kernel takes (`shaders/attention/io.wgsl`).
    pub struct AttentionParams {
        lq: u32,
        lk: u32,
        heads: u32,
        z0: u32,
        ld_q: u32,
        ld_k: u32,
        ld_v: u32,
        ld_o: u32,
        off_q: u32,
        off_k: u32,
        off_v: u32,
        off_o: u32,
        off_bias: u32,
        bias_seqs: u32,
        bias_per_q: u32,
        off_map: u32,
        map_base: u32,
        i0: u32,
        nq: u32,
        scale: f32,
        off_head_bias: u32,
    }
}

#[derive(Clone, Debug)]
pub struct Attention {
    pub heads: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub bias: bool,
    pub head_bias: bool,
    /// Sequences per map group, when rows are gathered through a map.
    pub map_group: Option<usize>,
    /// What the model uses this attention for ("window", "text cross", ...), for profiles.
    pub kind: Option<&'static str>,
    /// The column of its input's rows where q, k and v start.
    pub cols: [usize; 3],
}

/// Optional parts of an attention call.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionExtras {
    pub bias: Option<TensorId>,
    pub head_bias: Option<TensorId>,
    /// Row map and the number of sequences it permutes within.
    pub map: Option<(TensorId, usize)>,
    /// Score scale; `1/sqrt(head_dim)` when not given (T5 uses 1).
    pub scale: Option<f32>,
    /// What the model uses this attention for, so that a profile can tell the kinds apart.
    pub kind: Option<&'static str>,
}

/// Where q, k and v come from: tensors and the column each starts at (the same tensor thrice
/// for a fused projection's output), `width` = heads · head_dim columns each.
#[derive(Clone, Copy, Debug)]
pub struct QkvSource {
    pub q: (TensorId, usize),
    pub k: (TensorId, usize),
    pub v: (TensorId, usize),
    pub width: usize,
}

struct Dims {
    z: usize,
    lq: usize,
    lk: usize,
    /// heads · head_dim: the output's row.
    hd: usize,
    /// The rows of q, k and v.
    ld: [usize; 3],
}

fn dims(q: &TensorDesc, k: &TensorDesc, v: &TensorDesc, hd: usize) -> Dims {
    let (qs, ks) = (q.shape.dims(), k.shape.dims());
    Dims {
        z: qs[0],
        lq: qs[1],
        lk: ks[1],
        hd,
        ld: [qs[2], ks[2], v.shape.dims()[2]],
    }
}

impl Attention {
    fn n_in(&self) -> usize {
        3 + self.bias as usize + self.head_bias as usize + self.map_group.is_some() as usize
    }

    fn head_bias_index(&self) -> usize {
        3 + self.bias as usize
    }

    fn dims(&self, q: &TensorDesc, k: &TensorDesc, v: &TensorDesc) -> Dims {
        dims(q, k, v, self.heads * self.head_dim)
    }

    /// Keys per tile: the K and V tiles together fill at most 16 KiB of workgroup memory,
    /// WebGPU's default limit.
    /// Keys per workgroup-memory tile of the tiled kernels: key and value tiles within 16 KiB
    /// (WebGPU's default), at most 32, a multiple of 4 (the unrolled kernel takes keys 4 at a time).
    fn key_tile(&self) -> usize {
        (2048 / self.head_dim).clamp(4, 32) / 4 * 4
    }
}

impl Op for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let n = self.n_in();
        if inputs.len() != n {
            return Err(Error::shape(
                "attention",
                format!("takes {n} inputs, got {}", inputs.len()),
            ));
        }
        expect_inputs(
            "attention",
            &inputs[..3 + self.bias as usize],
            3 + self.bias as usize,
        )?;
        let (q, k, v) = (&inputs[0].shape, &inputs[1].shape, &inputs[2].shape);
        let hd = self.heads * self.head_dim;
        if self.heads == 0 || self.head_dim == 0 {
            return Err(Error::shape(
                "attention",
                "heads and head_dim must be positive",
            ));
        }
        for ((name, t), col) in [("q", q), ("k", k), ("v", v)].into_iter().zip(self.cols) {
            if t.rank() != 3 || t.dims()[2] < col + hd {
                return Err(Error::shape(
                    "attention",
                    format!(
                        "{name} {t} must be (sequences, length, {hd} from column {col}) for {} \
                         heads of {}",
                        self.heads, self.head_dim
                    ),
                ));
            }
        }
        if k.dims()[..2] != v.dims()[..2] || k.dims()[0] != q.dims()[0] {
            return Err(Error::shape(
                "attention",
                format!("q {q}, k {k} and v {v} disagree on sequences or key length"),
            ));
        }
        let d = self.dims(inputs[0], inputs[1], inputs[2]);
        if self.bias {
            let b = &inputs[3].shape;
            let ok = b.rank() == 3
                && d.z.is_multiple_of(b.dims()[0])
                && (b.dims()[1] == 1 || b.dims()[1] == d.lq)
                && b.dims()[2] == d.lk;
            if !ok {
                return Err(Error::shape(
                    "attention",
                    format!(
                        "bias {b} must be (ZB, 1 or {}, {}) with ZB dividing {} sequences",
                        d.lq, d.lk, d.z
                    ),
                ));
            }
        }
        if self.head_bias {
            let hb = &inputs[self.head_bias_index()].shape;
            if hb.dims() != [self.heads, d.lq, d.lk] {
                return Err(Error::shape(
                    "attention",
                    format!(
                        "head bias {hb} must be ({}, {}, {})",
                        self.heads, d.lq, d.lk
                    ),
                ));
            }
        }
        if let Some(g) = self.map_group {
            let m = inputs[n - 1];
            if m.dtype != DType::U32 || m.shape.numel() != d.z * d.lq {
                return Err(Error::shape(
                    "attention",
                    format!(
                        "map must be u32 with {} entries, got {:?} {}",
                        d.z * d.lq,
                        m.dtype,
                        m.shape
                    ),
                ));
            }
            if d.lq != d.lk || g == 0 || !d.z.is_multiple_of(g) {
                return Err(Error::shape("attention", format!(
                    "a row map needs self-attention (LQ = LK, got {} and {}) and a group dividing {} sequences (got {g})", d.lq, d.lk, d.z)));
            }
        }
        Ok(TensorDesc::new([d.z, d.lq, hd], inputs[0].dtype))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let d = self.dims(&inputs[0].desc(), &inputs[1].desc(), &inputs[2].desc());
        let [cq, ck, cv] = self.cols;
        let (q, k, v) = (inputs[0].as_f32(), inputs[1].as_f32(), inputs[2].as_f32());
        let bias = self.bias.then(|| inputs[3]);
        let head_bias = self
            .head_bias
            .then(|| inputs[self.head_bias_index()].as_f32());
        let map = self.map_group.map(|_| inputs[self.n_in() - 1].as_u32());
        let row =
            |z: usize, i: usize, len: usize| map.map_or(z * len + i, |m| m[z * len + i] as usize);
        let dh = self.head_dim;
        let mut o = vec![0f32; out.shape.numel()];
        let mut s = vec![0f64; d.lk];
        for z in 0..d.z {
            for h in 0..self.heads {
                for i in 0..d.lq {
                    let qr = row(z, i, d.lq);
                    let qv = &q[qr * d.ld[0] + cq + h * dh..][..dh];
                    for (j, sj) in s.iter_mut().enumerate() {
                        let kv = &k[row(z, j, d.lk) * d.ld[1] + ck + h * dh..][..dh];
                        let mut dot = 0f64;
                        for c in 0..dh {
                            dot += qv[c] as f64 * kv[c] as f64;
                        }
                        *sj = dot * self.scale as f64;
                        if let Some(b) = bias {
                            let bd = b.shape.dims();
                            let bz = z % bd[0];
                            let bi = if bd[1] == 1 { 0 } else { i };
                            *sj += b.as_f32()[(bz * bd[1] + bi) * d.lk + j] as f64;
                        }
                        if let Some(hb) = head_bias {
                            *sj += hb[(h * d.lq + i) * d.lk + j] as f64;
                        }
                    }
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let mut denom = 0f64;
                    let mut acc = vec![0f64; dh];
                    for (j, sj) in s.iter().enumerate() {
                        let p = (sj - m).exp();
                        denom += p;
                        let vv = &v[row(z, j, d.lk) * d.ld[2] + cv + h * dh..][..dh];
                        for c in 0..dh {
                            acc[c] += p * vv[c] as f64;
                        }
                    }
                    for c in 0..dh {
                        o[qr * d.hd + h * dh + c] = (acc[c] / denom) as f32;
                    }
                }
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = self.dims(&inputs[0].desc, &inputs[1].desc, &inputs[2].desc);
        let [ldq, ldk, ldv] = d.ld;
        let variant = AttentionKernel::for_graph(&cx.tuning, cx.float, cx.coop, self.head_dim);
        let key_tile = match variant {
            AttentionKernel::Tiled => self.key_tile(),
            AttentionKernel::Rows | AttentionKernel::Coop => 0,
        };
        // `coop` loads scalars, converted to f16 as they are staged.
        let vec4 = self.head_dim.is_multiple_of(4) && variant != AttentionKernel::Coop;
        let kernel = Kernel::new(variant.shader(self.head_dim))
            .read("qb")
            .read("kb")
            .read("vb")
            .read_if(self.bias, "bias")
            .read_if(self.head_bias, "hbias")
            .read_if(self.map_group.is_some(), "rowmap")
            .define("DH", self.head_dim)
            .define("NV", self.head_dim / if vec4 { 4 } else { 1 })
            .flag("VEC4", vec4)
            .define("KT", key_tile)
            .flag("BIAS", self.bias)
            .flag("HEAD_BIAS", self.head_bias)
            .flag("MAP", self.map_group.is_some());
        // Queries per workgroup.
        let (kernel, per_group) = match (variant, cx.coop) {
            (AttentionKernel::Coop, Some(shape)) => {
                let b = CoopBlock::new(shape, self.head_dim);
                let kernel = kernel
                    .define("CM", shape.edge)
                    .define("SG", shape.subgroup)
                    .define("FQ", b.fq)
                    .define("FK", b.fk)
                    .define("FD", b.fd);
                (kernel, b.queries(shape))
            }
            _ => (kernel, 64),
        };
        let room = cx.limit.saturating_sub(cx.align - 4) as usize;
        // The largest of one sequence's q, k, v and output rows, bound together.
        let seq_bytes = 4 * (ldq.max(d.hd) * d.lq).max(ldk.max(ldv) * d.lk);
        let group = self.map_group.unwrap_or(1);
        let mut per_chunk = (room / seq_bytes) / group * group;
        per_chunk = per_chunk.min(cx.max_groups as usize / group * group);

        // (first sequence, sequences, first query, queries)
        let mut work = Vec::new();
        if per_chunk > 0 {
            let mut z0 = 0;
            while z0 < d.z {
                let zn = per_chunk.min(d.z - z0);
                work.push((z0, zn, 0, d.lq));
                z0 += zn;
            }
        } else if self.map_group.is_some() {
            return Err(Error::Limit { op: "attention", detail: format!(
                "{group} sequences of {} rows of {} floats must be bound together (their rows are \
                 permuted among each other), which exceeds the device's storage binding limit of {} bytes",
                d.lq, ldq.max(ldk).max(ldv), cx.limit) });
        } else {
            if 4 * ldk.max(ldv) * d.lk > room {
                return Err(Error::Limit {
                    op: "attention",
                    detail: format!(
                    "the keys of one sequence ({} rows of {} floats) exceed the device's storage \
                     binding limit of {} bytes", d.lk, ldk.max(ldv), cx.limit),
                });
            }
            let rows = cx.rows_per_chunk("q", ldq.max(d.hd))?;
            for z in 0..d.z {
                for (i0, i1) in chunks(d.lq, rows) {
                    work.push((z, 1, i0, i1 - i0));
                }
            }
        }

        let (bias_seqs, bias_per_q) = match self.bias {
            true => {
                let b = inputs[3].desc.shape.dims();
                (b[0], (b[1] != 1) as usize)
            }
            false => (1, 0),
        };
        let [cq, ck, cv] = self.cols.map(|c| c as u32);
        for (z0, zn, i0, nq) in work {
            // Query rows [first, first + rows) of the flattened (Z·LQ) rows.
            let (first, rows) = (z0 * d.lq + i0, if zn == 1 { nq } else { zn * d.lq });
            let oq = cx.bind(&inputs[0], first * ldq, rows * ldq)? + cq;
            let ok = cx.bind(&inputs[1], z0 * d.lk * ldk, zn * d.lk * ldk)? + ck;
            let ov = cx.bind(&inputs[2], z0 * d.lk * ldv, zn * d.lk * ldv)? + cv;
            let ob = if self.bias {
                cx.bind_all(&inputs[3])?
            } else {
                0
            };
            let ohb = if self.head_bias {
                cx.bind_all(&inputs[self.head_bias_index()])?
            } else {
                0
            };
            let om = if self.map_group.is_some() {
                cx.bind(&inputs[self.n_in() - 1], z0 * d.lq, zn * d.lq)?
            } else {
                0
            };
            let oo = cx.bind(out, first * d.hd, rows * d.hd)?;
            let u = |v: usize| v as u32;
            let params = AttentionParams {
                lq: u(d.lq),
                lk: u(d.lk),
                heads: u(self.heads),
                z0: u(z0),
                ld_q: u(ldq),
                ld_k: u(ldk),
                ld_v: u(ldv),
                ld_o: u(d.hd),
                off_q: oq,
                off_k: ok,
                off_v: ov,
                off_o: oo,
                off_bias: ob,
                bias_seqs: u(bias_seqs),
                bias_per_q: u(bias_per_q),
                off_map: om,
                map_base: u(z0 * d.lq),
                i0: u(i0),
                nq: u(nq),
                scale: self.scale,
                off_head_bias: ohb,
            };
            let groups = [nq.div_ceil(per_group) as u32, self.heads as u32, zn as u32];
            cx.dispatch(kernel.clone(), &params, groups)?;
        }
        Ok(())
    }

    fn flops(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> u64 {
        let d = self.dims(inputs[0], inputs[1], inputs[2]);
        4 * (d.z * d.lq * d.lk * d.hd) as u64
    }

    fn label(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> String {
        let d = self.dims(inputs[0], inputs[1], inputs[2]);
        let shape = format!("{} x {}q x {}k", d.z, d.lq, d.lk);
        match self.kind {
            Some(kind) => format!("attention, {kind} ({shape})"),
            None => format!("attention ({shape})"),
        }
    }
}

impl Graph {
    /// Scaled-dot-product attention with `heads` heads (scale `1/sqrt(head_dim)`).
    pub fn attention(
        &mut self,
        q: TensorId,
        k: TensorId,
        v: TensorId,
        heads: usize,
        extras: AttentionExtras,
    ) -> Result<TensorId> {
        let width = self.shape(q).last();
        let src = QkvSource {
            q: (q, 0),
            k: (k, 0),
            v: (v, 0),
            width,
        };
        self.attention_from(src, heads, extras)
    }

    /// Attention over q, k and v read in place from column ranges of wider rows (a fused
    /// projection's output): no copy of them is made.
    pub fn attention_from(
        &mut self,
        src: QkvSource,
        heads: usize,
        extras: AttentionExtras,
    ) -> Result<TensorId> {
        let (hd, q) = (src.width, src.q.0);
        if heads == 0 || !hd.is_multiple_of(heads) {
            return Err(Error::shape(
                "attention",
                format!("width {hd} does not split into {heads} heads"),
            ));
        }
        let head_dim = hd / heads;
        let mut ins = vec![q, src.k.0, src.v.0];
        ins.extend(extras.bias);
        ins.extend(extras.head_bias);
        if let Some((m, group)) = extras.map {
            self.check_map(m, group, self.shape(q).dims()[1])?;
            ins.push(m);
        }
        let op = Attention {
            heads,
            head_dim,
            scale: extras.scale.unwrap_or(1.0 / (head_dim as f32).sqrt()),
            bias: extras.bias.is_some(),
            head_bias: extras.head_bias.is_some(),
            map_group: extras.map.map(|(_, g)| g),
            kind: extras.kind,
            cols: [src.q.1, src.k.1, src.v.1],
        };
        self.push(op, &ins)
    }

    /// A constant row map must stay inside its groups, or the split work would read rows that
    /// are not bound.
    fn check_map(&self, m: TensorId, group: usize, len: usize) -> Result<()> {
        if let Source::Constant(v) = &self.info(m).source {
            let span = group * len;
            for (i, r) in v.as_u32().iter().enumerate() {
                if span == 0 || (*r as usize) / span != i / span {
                    return Err(Error::shape(
                        "attention",
                        format!("row map entry {i} = {r} leaves its group of {group} sequences"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// Attention with `z` sequences, `heads` × `dh`, query/key lengths, and optional parts:
    /// a bias `(zb, 1 or lq, lk)`, a row map permuting rows within groups of `map_group`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention(
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

    /// q, k and v read in place from a fused projection's output: self-attention over one
    /// `(z, l, 3·hd)` tensor with a row map permuting rows within groups of `map_group`
    /// (shifted windows), or, with `lk`, cross-attention of a `(z, l, hd)` q over a
    /// `(z, lk, 2·hd)` k/v tensor with a per-sequence bias (text). The unused column ranges hold
    /// values too, so a wrong column would change the result.
    pub(crate) fn attention_fused(
        f: DType,
        z: usize,
        l: usize,
        lk: Option<usize>,
        heads: usize,
        dh: usize,
        map_group: Option<usize>,
    ) -> Result<Case> {
        let hd = heads * dh;
        let mut g = Graph::with_float(f);
        let mut extras = AttentionExtras::default();
        let (src, values) = match lk {
            None => {
                let qkv = g.input("qkv", g.float_desc([z, l, 3 * hd]))?;
                let src = QkvSource {
                    q: (qkv, 0),
                    k: (qkv, hd),
                    v: (qkv, 2 * hd),
                    width: hd,
                };
                (src, vec![("qkv", rand(&[z, l, 3 * hd], 22, 1.0))])
            }
            Some(lk) => {
                let q = g.input("q", g.float_desc([z, l, hd]))?;
                let kv = g.input("kv", g.float_desc([z, lk, 2 * hd]))?;
                let b = g.input("bias", g.float_desc([z, 1, lk]))?;
                extras.bias = Some(b);
                // Sequence i masks its last i keys.
                let mask = (0..z * lk)
                    .map(|i| if i % lk + i / lk < lk { 0.0 } else { -10000.0 })
                    .collect();
                let src = QkvSource {
                    q: (q, 0),
                    k: (kv, 0),
                    v: (kv, hd),
                    width: hd,
                };
                let values = vec![
                    ("q", rand(&[z, l, hd], 23, 1.0)),
                    ("kv", rand(&[z, lk, 2 * hd], 24, 1.0)),
                    ("bias", HostTensor::f32([z, 1, lk], mask)),
                ];
                (src, values)
            }
        };
        if let Some(group) = map_group {
            // Each group's rows rotated by one: crosses sequence boundaries, as shifted windows do.
            let span = group * l;
            let map: Vec<u32> = (0..z * l)
                .map(|i| ((i / span) * span + (i % span + 1) % span) as u32)
                .collect();
            let m = g.constant("map", HostTensor::u32([z * l], map))?;
            extras.map = Some((m, group));
        }
        let o = g.attention_from(src, heads, extras)?;
        g.output(o, "o")?;
        done(g, values)
    }

    /// T5-style: a per-head relative-position bias, a padding mask per batch item, and no score
    /// scaling.
    pub(crate) fn attention_head_bias(
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
}
