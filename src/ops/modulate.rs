//! adaLN-single modulation, per batch: `x * (1 + scale) + shift`.
//!
//! `x` is `(..., D)` with its rows grouped by batch (`B` equal groups, in order); `mods` is
//! `(B, C, D)` (the timestep projection); `table` is `(T, D)` (a block's learned
//! `scale_shift_table`). The shift is `mods[b, shift.0] + table[shift.1]`, the scale likewise.
//! Each row gets the modulation of its own batch item (the official code's row-to-batch mixing
//! is a bug this op does not copy).

use super::{chunks, expect_inputs, Op};
use crate::error::{Error, Result};
use crate::gpu::shaders::Kernel;
use crate::graph::encode::TensorArg;
use crate::graph::{EncodeCx, Graph, Params, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

/// Which chunk of `mods` and which row of `table` a modulation vector is the sum of.
pub type Chunk = (usize, usize);

#[derive(Clone, Debug)]
pub struct Modulate {
    pub shift: Chunk,
    pub scale: Chunk,
}

impl Modulate {
    /// The modulation's run of a kernel's parameters, in the order the kernels that include
    /// `adaln.wgsl` declare it: first row, rows per batch item, chunks of `mods`, then the
    /// shift's and the scale's chunk of `mods` and row of the table.
    pub(crate) fn params(
        &self,
        p: Params,
        row0: usize,
        rows_per_batch: usize,
        mod_chunks: usize,
    ) -> Params {
        p.u(row0)
            .u(rows_per_batch)
            .u(mod_chunks)
            .u(self.shift.0)
            .u(self.scale.0)
            .u(self.shift.1)
            .u(self.scale.1)
    }
}

/// The CPU references' view of `(mods, table)`: the adaLN vector of a chunk for a row of a
/// tensor whose `rows` are grouped by batch item, as every op that reads `mods` sees it.
pub(crate) struct AdaVectors<'a> {
    mods: &'a [f32],
    table: &'a [f32],
    chunks: usize,
    d: usize,
    rows_per_item: usize,
}

impl<'a> AdaVectors<'a> {
    /// `mods` `(B, C, D)` and `table` `(T, D)`, already checked, for `rows` rows.
    pub(crate) fn new(mods: &'a HostTensor, table: &'a HostTensor, rows: usize) -> Self {
        let dims = mods.shape.dims();
        AdaVectors {
            mods: mods.as_f32(),
            table: table.as_f32(),
            chunks: dims[1],
            d: dims[2],
            rows_per_item: rows / dims[0],
        }
    }

    /// Element `k` of `mods[b, chunk.0] + table[chunk.1]`, b the batch item of `row`.
    pub(crate) fn at(&self, row: usize, chunk: Chunk, k: usize) -> f32 {
        let b = row / self.rows_per_item;
        self.mods[(b * self.chunks + chunk.0) * self.d + k] + self.table[chunk.1 * self.d + k]
    }
}

/// Checks `(x, mods, table)` for the per-batch modulation ops; returns (B, C, T, D).
pub(crate) fn check_mods(
    op: &'static str,
    x: &TensorDesc,
    mods: &TensorDesc,
    table: &TensorDesc,
    chunks_used: &[Chunk],
) -> Result<(usize, usize, usize, usize)> {
    let (xs, ms, ts) = (&x.shape, &mods.shape, &table.shape);
    let d = xs.last();
    if ms.rank() != 3 || ms.dims()[2] != d {
        return Err(Error::shape(
            op,
            format!("mods {ms} must be (B, C, {d}) for x {xs}"),
        ));
    }
    if ts.rank() != 2 || ts.dims()[1] != d {
        return Err(Error::shape(
            op,
            format!("table {ts} must be (T, {d}) for x {xs}"),
        ));
    }
    let (b, c, t) = (ms.dims()[0], ms.dims()[1], ts.dims()[0]);
    if xs.rows() % b != 0 {
        return Err(Error::shape(
            op,
            format!(
                "x {xs} has {} rows, not a multiple of the batch {b} of mods {ms}",
                xs.rows()
            ),
        ));
    }
    for (m, tt) in chunks_used {
        if *m >= c || *tt >= t {
            return Err(Error::shape(
                op,
                format!("chunk ({m}, {tt}) is outside mods {ms} / table {ts}"),
            ));
        }
    }
    Ok((b, c, t, d))
}

impl Op for Modulate {
    fn name(&self) -> &'static str {
        "modulate"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("modulate", inputs, 3)?;
        check_mods(
            "modulate",
            inputs[0],
            inputs[1],
            inputs[2],
            &[self.shift, self.scale],
        )?;
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let x = inputs[0].as_f32();
        let (d, rows) = (out.shape.last(), out.shape.rows());
        let ada = AdaVectors::new(inputs[1], inputs[2], rows);
        let mut o = vec![0f32; x.len()];
        for r in 0..rows {
            for k in 0..d {
                let (shift, scale) = (ada.at(r, self.shift, k), ada.at(r, self.scale, k));
                o[r * d + k] = x[r * d + k] * (1.0 + scale) + shift;
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let (b, c, _, d) = check_mods(
            "modulate",
            &inputs[0].desc,
            &inputs[1].desc,
            &inputs[2].desc,
            &[],
        )?;
        let rows = out.desc.shape.rows();
        let per = cx.rows_per_chunk("x", d)?;
        for (r0, r1) in chunks(rows, per) {
            let n = (r1 - r0) * d;
            let ox = cx.bind(&inputs[0], r0 * d, n)?;
            let om = cx.bind_all(&inputs[1])?;
            let ot = cx.bind_all(&inputs[2])?;
            let oo = cx.bind(out, r0 * d, n)?;
            let params = self
                .params(Params::new().u(r1 - r0).u(d), r0, rows / b, c)
                .u(ox)
                .u(om)
                .u(ot)
                .u(oo);
            let groups = cx.grid(n.div_ceil(256));
            cx.dispatch(Kernel::new("modulate", 3), params, groups)?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        6 * out.shape.numel() as u64
    }
}

impl Graph {
    /// `x * (1 + scale) + shift` with `shift = mods[b, shift.0] + table[shift.1]` (and scale
    /// likewise), for the batch item `b` each row of `x` belongs to.
    pub fn modulate(
        &mut self,
        x: TensorId,
        mods: TensorId,
        table: TensorId,
        shift: Chunk,
        scale: Chunk,
    ) -> Result<TensorId> {
        self.push(Modulate { shift, scale }, &[x, mods, table])
    }
}
