//! adaLN-single modulation, per batch: `x * (1 + scale) + shift`.
//!
//! `x` is `(..., D)` with its rows grouped by batch (`B` equal groups, in order); `mods` is
//! `(B, C, D)` (the timestep projection); `table` is `(T, D)` (a block's learned
//! `scale_shift_table`). The shift is `mods[b, shift.0] + table[shift.1]`, the scale likewise.
//! Each row gets the modulation of its own batch item (the official code's row-to-batch mixing
//! is a bug this op does not copy).

use super::adaln::{check_mods, AdaParams, AdaVectors, Chunk};
use crate::error::Result;
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct ModulateParams uses AdaParams {
        rows: u32,
        d: u32,
        off_x: u32,
        off_out: u32,
        ada: AdaParams,
    }
}

#[derive(Clone, Debug)]
pub struct Modulate {
    pub shift: Chunk,
    pub scale: Chunk,
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
        let d = out.desc.shape.last();
        let rows = out.desc.shape.rows();
        let kernel = Kernel::new("modulate").read("x").read("mods").read("table");
        for (r0, r1) in chunks(rows, cx.rows_per_chunk("x", d)?) {
            let n = (r1 - r0) * d;
            let off_x = cx.bind(&inputs[0], r0 * d, n)?;
            let bound = [cx.bind_all(&inputs[1])?, cx.bind_all(&inputs[2])?];
            let params = ModulateParams {
                rows: (r1 - r0) as u32,
                d: d as u32,
                off_x,
                off_out: cx.bind(out, r0 * d, n)?,
                ada: AdaParams::new(&inputs[1], rows, r0, bound).modulating(self.shift, self.scale),
            };
            cx.dispatch(kernel.clone(), &params, cx.grid(n.div_ceil(256)))?;
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

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// adaLN modulation `x * (1 + scale) + shift` per batch item (chunks 4 and 1 of the per-item
    /// vectors, 5 and 2 of the table), after a LayerNorm in the same pass if `norm`.
    pub(crate) fn modulate(f: DType, norm: bool, b: usize, rows: usize, d: usize) -> Result<Case> {
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
}
