//! Gated residual, per batch: `x + gate * y`, or `gate * y` without a residual, where
//! `gate = mods[b, gate.0] + table[gate.1]` for the batch item `b` of each row (shapes as in
//! [`super::modulate`]).

use super::modulate::{check_mods, AdaVectors, Chunk};
use super::{chunks, expect_inputs, Op};
use crate::error::{Error, Result};
use crate::gpu::shaders::Kernel;
use crate::graph::encode::TensorArg;
use crate::graph::{EncodeCx, Graph, Params, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

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
        let (b, c, _, d) = check_mods(
            "gate",
            &inputs[0].desc,
            &inputs[1].desc,
            &inputs[2].desc,
            &[],
        )?;
        let rows = out.desc.shape.rows();
        let per = cx.rows_per_chunk("y", d)?;
        let kernel = Kernel::new("gate", 3 + self.residual as u32).flag("RESIDUAL", self.residual);
        for (r0, r1) in chunks(rows, per) {
            let n = (r1 - r0) * d;
            let oy = cx.bind(&inputs[0], r0 * d, n)?;
            let om = cx.bind_all(&inputs[1])?;
            let ot = cx.bind_all(&inputs[2])?;
            let ox = if self.residual {
                cx.bind(&inputs[3], r0 * d, n)?
            } else {
                0
            };
            let oo = cx.bind(out, r0 * d, n)?;
            let params = Params::new()
                .u(r1 - r0)
                .u(d)
                .u(r0)
                .u(rows / b)
                .u(c)
                .u(self.gate.0)
                .u(self.gate.1)
                .u(oy)
                .u(om)
                .u(ot)
                .u(ox)
                .u(oo);
            let groups = cx.grid(n.div_ceil(256));
            cx.dispatch(kernel.clone(), params, groups)?;
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
