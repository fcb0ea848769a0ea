//! adaLN-single (PixArt-α, used by PT-DiT): each block's six modulation vectors are chunk `i`
//! of the timestep's projection `t6` `(B, 6, D)` plus row `i` of the block's learned
//! `scale_shift_table`; the final layer's two are the timestep embedding plus its table's rows.
//! The kernels take them as `(chunk, row)` pairs; here they have names.

use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::ops::adaln::Chunk;

/// One modulation vector: `mods[b, chunk] + table[row]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulation {
    chunk: usize,
    row: usize,
}

impl Modulation {
    /// The `(chunk, row)` pair the ops take.
    pub fn chunk(self) -> Chunk {
        (self.chunk, self.row)
    }
}

/// A block's vectors, in `t6`'s order (and its tables' rows: `proxy_scale_shift_table` has
/// the first three).
pub const SHIFT_MSA: Modulation = Modulation { chunk: 0, row: 0 };
pub const SCALE_MSA: Modulation = Modulation { chunk: 1, row: 1 };
pub const GATE_MSA: Modulation = Modulation { chunk: 2, row: 2 };
pub const SHIFT_MLP: Modulation = Modulation { chunk: 3, row: 3 };
pub const SCALE_MLP: Modulation = Modulation { chunk: 4, row: 4 };
pub const GATE_MLP: Modulation = Modulation { chunk: 5, row: 5 };
/// The final layer's: the timestep embedding `(B, 1, D)` plus row 0 or 1 of its `(2, D)`
/// `scale_shift_table`.
pub const FINAL_SHIFT: Modulation = Modulation { chunk: 0, row: 0 };
pub const FINAL_SCALE: Modulation = Modulation { chunk: 0, row: 1 };

/// The per-batch-item vectors and the table they are added to.
#[derive(Clone, Copy, Debug)]
pub struct AdaLn {
    /// `(B, C, D)`.
    pub mods: TensorId,
    /// `(T, D)`.
    pub table: TensorId,
}

impl AdaLn {
    pub fn new(mods: TensorId, table: TensorId) -> Self {
        AdaLn { mods, table }
    }

    /// `LayerNorm(x) · (1 + scale) + shift`, one kernel.
    pub fn norm_modulate(
        &self,
        g: &mut Graph,
        x: TensorId,
        eps: f32,
        shift: Modulation,
        scale: Modulation,
    ) -> Result<TensorId> {
        g.layer_norm_modulate(x, eps, self.mods, self.table, shift.chunk(), scale.chunk())
    }
}
