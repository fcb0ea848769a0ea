//! The adaLN vector, in one place: PT-DiT's modulation vectors are `mods[b, m] + table[t]`
//! (the timestep projection's chunk `m` for batch item `b`, plus row `t` of a block's learned
//! `scale_shift_table`). Modulate, the modulating LayerNorm, gate and the matmul's gate
//! epilogue read them: the shape check, the CPU references' view ([`AdaVectors`]) and the
//! kernels' parameters ([`AdaParams`], with `shaders/common/adaln.wgsl`) are here, once.

use crate::error::{Error, Result};
use crate::kernel::TensorArg;
use crate::tensor::{HostTensor, TensorDesc};

/// Which chunk of `mods` and which row of `table` a modulation vector is the sum of.
pub type Chunk = (usize, usize);

crate::param_block! {
    /// Where a dispatch finds its adaLN vectors (`p.ada` in the kernels that include
    /// `common/adaln`): the first row of the dispatch among all rows, rows per batch item,
    /// chunks and width of `mods`, the bound offsets, and which chunks and table rows make the
    /// shift, the scale and the gate (those a kernel does not read stay 0).
    pub struct AdaParams {
        row0: u32,
        rows_per_item: u32,
        chunks: u32,
        width: u32,
        off_mod: u32,
        off_table: u32,
        shift_m: u32,
        shift_t: u32,
        scale_m: u32,
        scale_t: u32,
        gate_m: u32,
        gate_t: u32,
    }
}

impl AdaParams {
    /// For a dispatch whose first row is `row0` of a tensor with `rows` rows, `mods` and
    /// `table` (checked by [`check_mods`]) bound at `off_mod` and `off_table`.
    pub(crate) fn new(
        mods: &TensorArg,
        rows: usize,
        row0: usize,
        [off_mod, off_table]: [u32; 2],
    ) -> Self {
        let dims = mods.desc.shape.dims();
        AdaParams {
            row0: row0 as u32,
            rows_per_item: (rows / dims[0]) as u32,
            chunks: dims[1] as u32,
            width: dims[2] as u32,
            off_mod,
            off_table,
            ..Default::default()
        }
    }

    /// The shift and scale of a modulation.
    pub(crate) fn modulating(self, shift: Chunk, scale: Chunk) -> Self {
        AdaParams {
            shift_m: shift.0 as u32,
            shift_t: shift.1 as u32,
            scale_m: scale.0 as u32,
            scale_t: scale.1 as u32,
            ..self
        }
    }

    /// The gate of a gated residual.
    pub(crate) fn gating(self, gate: Chunk) -> Self {
        AdaParams {
            gate_m: gate.0 as u32,
            gate_t: gate.1 as u32,
            ..self
        }
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
