//! LayerNorm over the last dimension without affine parameters (every LayerNorm of PT-DiT).

use super::{chunks, expect_inputs, Op};
use crate::error::{Error, Result};
use crate::gpu::shaders::Kernel;
use crate::graph::encode::TensorArg;
use crate::graph::{EncodeCx, Graph, Params, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

/// Threads per row: enough to share a 1152-wide row, few enough that the tree reduction's
/// barriers stay cheap on software GPUs.
const WG: usize = 64;

#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub eps: f32,
}

impl Op for LayerNorm {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("layer_norm", inputs, 1)?;
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(Error::shape(
                "layer_norm",
                format!("eps must be a finite non-negative number, got {}", self.eps),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let x = inputs[0].as_f32();
        let d = out.shape.last();
        let mut o = vec![0f32; x.len()];
        for (xr, or) in x.chunks_exact(d).zip(o.chunks_exact_mut(d)) {
            let mean = xr.iter().map(|v| *v as f64).sum::<f64>() / d as f64;
            let var = xr.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + self.eps as f64).sqrt();
            for (o, v) in or.iter_mut().zip(xr) {
                *o = ((*v as f64 - mean) * rstd) as f32;
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = out.desc.shape.last();
        let rows = out.desc.shape.rows();
        let per = cx.rows_per_chunk("x", d)?;
        for (r0, r1) in chunks(rows, per) {
            let ox = cx.bind(&inputs[0], r0 * d, (r1 - r0) * d)?;
            let oo = cx.bind(out, r0 * d, (r1 - r0) * d)?;
            let params = Params::new().u(r1 - r0).u(d).f(self.eps).u(ox).u(oo);
            let groups = cx.grid(r1 - r0);
            cx.dispatch(
                Kernel::new("layer_norm", 1).define("WG", WG),
                params,
                groups,
            )?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        5 * out.shape.numel() as u64
    }
}

impl Graph {
    /// LayerNorm over the last dimension, no weight or bias.
    pub fn layer_norm(&mut self, x: TensorId, eps: f32) -> Result<TensorId> {
        self.push(LayerNorm { eps }, &[x])
    }
}
