//! Gated residual, per batch: `x + gate * y`, or `gate * y` without a residual, where
//! `gate = mods[b, gate.0] + table[gate.1]` for the batch item `b` of each row (shapes as in
//! [`super::modulate`]).

use super::adaln::{check_mods, AdaParams, AdaVectors, Chunk};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct GateParams uses AdaParams {
        rows: u32,
        d: u32,
        off_y: u32,
        off_x: u32,
        off_out: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
        ada: AdaParams,
    }
}

#[derive(Clone, Debug)]
pub struct Gate {
    pub gate: Chunk,
    pub residual: bool,
}

impl Op for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("gate", inputs, 3 + self.residual as usize)?;
        check_mods("gate", inputs[0], inputs[1], inputs[2], &[self.gate])?;
        if self.residual && inputs[3].shape != inputs[0].shape {
            return Err(Error::shape(
                "gate",
                format!(
                    "residual {} and y {} differ",
                    inputs[3].shape, inputs[0].shape
                ),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let y = inputs[0].as_f32();
        let (d, rows) = (out.shape.last(), out.shape.rows());
        let ada = AdaVectors::new(inputs[1], inputs[2], rows);
        let mut o = vec![0f32; y.len()];
        for r in 0..rows {
            for k in 0..d {
                let mut v = ada.at(r, self.gate, k) * y[r * d + k];
                if self.residual {
                    v += inputs[3].as_f32()[r * d + k];
                }
                o[r * d + k] = v;
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = out.desc.shape.last();
        let rows = out.desc.shape.rows();
        let kernel = Kernel::new("gate")
            .read("y")
            .read("mods")
            .read("table")
            .read_if(self.residual, "x")
            .flag("RESIDUAL", self.residual);
        for (r0, r1) in chunks(rows, cx.rows_per_chunk("y", d)?) {
            let n = (r1 - r0) * d;
            let off_y = cx.bind(&inputs[0], r0 * d, n)?;
            let bound = [cx.bind_all(&inputs[1])?, cx.bind_all(&inputs[2])?];
            let off_x = match self.residual {
                true => cx.bind(&inputs[3], r0 * d, n)?,
                false => 0,
            };
            let params = GateParams {
                rows: (r1 - r0) as u32,
                d: d as u32,
                off_y,
                off_x,
                off_out: cx.bind(out, r0 * d, n)?,
                ada: AdaParams::new(&inputs[1], rows, r0, bound).gating(self.gate),
                ..Default::default()
            };
            cx.dispatch(kernel.clone(), &params, cx.grid(n.div_ceil(256)))?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        3 * out.shape.numel() as u64
    }
}

impl Graph {
    /// `x + gate * y` with `gate = mods[b, gate.0] + table[gate.1]` per batch item.
    pub fn gated_residual(
        &mut self,
        x: TensorId,
        y: TensorId,
        mods: TensorId,
        table: TensorId,
        gate: Chunk,
    ) -> Result<TensorId> {
        self.push(
            Gate {
                gate,
                residual: true,
            },
            &[y, mods, table, x],
        )
    }
    /// `gate * y` (no residual), as before PT-DiT's `linear_2`.
    pub fn gated(
        &mut self,
        y: TensorId,
        mods: TensorId,
        table: TensorId,
        gate: Chunk,
    ) -> Result<TensorId> {
        self.push(
            Gate {
                gate,
                residual: false,
            },
            &[y, mods, table],
        )
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn gate(f: DType, b: usize, rows: usize, d: usize, residual: bool) -> Result<Case> {
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
}
