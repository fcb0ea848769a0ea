//! Normalisation over the last dimension: LayerNorm without affine parameters (every LayerNorm
//! of PT-DiT), optionally followed by adaLN modulation in the same pass, and T5's RMS norm with
//! a weight.

use super::adaln::{check_mods, AdaParams, Chunk};
use super::modulate::Modulate;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct LayerNormParams uses AdaParams {
        rows: u32,
        d: u32,
        eps: f32,
        off_x: u32,
        off_out: u32,
        off_w: u32,
        pad0: u32,
        pad1: u32,
        /// MODULATE only.
        ada: AdaParams,
    }
}

/// Threads per row: enough to share a 1152-wide row, few enough that the tree reduction's
/// barriers stay cheap on software GPUs.
const WG: usize = 64;

#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub eps: f32,
    /// Root-mean-square norm (no mean subtracted), as T5 uses.
    pub rms: bool,
    /// A per-channel weight `(D,)` is the second input.
    pub weight: bool,
    /// adaLN modulation of the result (inputs `mods`, `table` after `x`), as [`Modulate`].
    pub modulate: Option<Modulate>,
}

impl Op for LayerNorm {
    fn name(&self) -> &'static str {
        match (self.rms, &self.modulate) {
            (true, _) => "rms_norm",
            (false, Some(_)) => "layer_norm_modulate",
            (false, None) => "layer_norm",
        }
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let extra = match &self.modulate {
            Some(_) if self.weight => {
                return Err(Error::shape(
                    self.name(),
                    "a weighted norm cannot also be modulated".to_string(),
                ))
            }
            Some(_) => 2,
            None => self.weight as usize,
        };
        expect_inputs(self.name(), inputs, 1 + extra)?;
        if let Some(m) = &self.modulate {
            check_mods(
                self.name(),
                inputs[0],
                inputs[1],
                inputs[2],
                &[m.shift, m.scale],
            )?;
        }
        let d = inputs[0].shape.last();
        if self.weight && inputs[1].shape.dims() != [d] {
            return Err(Error::shape(
                self.name(),
                format!(
                    "weight {} must be ({d},) for x {}",
                    inputs[1].shape, inputs[0].shape
                ),
            ));
        }
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
        let w = self.weight.then(|| inputs[1].as_f32());
        for (xr, or) in x.chunks_exact(d).zip(o.chunks_exact_mut(d)) {
            let mean = if self.rms {
                0.0
            } else {
                xr.iter().map(|v| *v as f64).sum::<f64>() / d as f64
            };
            let var = xr.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let rstd = 1.0 / (var + self.eps as f64).sqrt();
            for (c, (o, v)) in or.iter_mut().zip(xr).enumerate() {
                *o = ((*v as f64 - mean) * rstd * w.map_or(1.0, |w| w[c] as f64)) as f32;
            }
        }
        let normed = HostTensor::f32(out.shape.clone(), o);
        match &self.modulate {
            Some(m) => m.cpu(&[&normed, inputs[1], inputs[2]], out),
            None => normed,
        }
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = out.desc.shape.last();
        let rows = out.desc.shape.rows();
        let modulating = self.modulate.is_some();
        let kernel = Kernel::new("layer_norm")
            .read("x")
            .read_if(self.weight, "weight")
            .read_if(modulating, "mods")
            .read_if(modulating, "table")
            .define("WG", WG)
            .flag("RMS", self.rms)
            .flag("WEIGHT", self.weight)
            .flag("MODULATE", modulating);
        for (r0, r1) in chunks(rows, cx.rows_per_chunk("x", d)?) {
            let off_x = cx.bind(&inputs[0], r0 * d, (r1 - r0) * d)?;
            let off_w = match self.weight {
                true => cx.bind_all(&inputs[1])?,
                false => 0,
            };
            let ada = match &self.modulate {
                Some(m) => {
                    let bound = [cx.bind_all(&inputs[1])?, cx.bind_all(&inputs[2])?];
                    AdaParams::new(&inputs[1], rows, r0, bound).modulating(m.shift, m.scale)
                }
                None => AdaParams::default(),
            };
            let params = LayerNormParams {
                rows: (r1 - r0) as u32,
                d: d as u32,
                eps: self.eps,
                off_x,
                off_out: cx.bind(out, r0 * d, (r1 - r0) * d)?,
                off_w,
                ada,
                ..Default::default()
            };
            cx.dispatch(kernel.clone(), &params, cx.grid(r1 - r0))?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        (5 + 6 * self.modulate.is_some() as u64) * out.shape.numel() as u64
    }
}

impl Graph {
    /// LayerNorm over the last dimension, no weight or bias.
    pub fn layer_norm(&mut self, x: TensorId, eps: f32) -> Result<TensorId> {
        self.push(
            LayerNorm {
                eps,
                rms: false,
                weight: false,
                modulate: None,
            },
            &[x],
        )
    }
    /// LayerNorm (no weight or bias) then adaLN modulation in one pass: the same as
    /// `modulate(layer_norm(x, eps), mods, table, shift, scale)`.
    pub fn layer_norm_modulate(
        &mut self,
        x: TensorId,
        eps: f32,
        mods: TensorId,
        table: TensorId,
        shift: Chunk,
        scale: Chunk,
    ) -> Result<TensorId> {
        self.push(
            LayerNorm {
                eps,
                rms: false,
                weight: false,
                modulate: Some(Modulate { shift, scale }),
            },
            &[x, mods, table],
        )
    }
    /// T5's norm: `w · x / sqrt(mean(x²) + eps)`.
    pub fn rms_norm(&mut self, x: TensorId, w: TensorId, eps: f32) -> Result<TensorId> {
        self.push(
            LayerNorm {
                eps,
                rms: true,
                weight: true,
                modulate: None,
            },
            &[x, w],
        )
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn layer_norm(f: DType, rows: usize, d: usize, offset: f32) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc([rows, d]))?;
        let y = g.layer_norm(x, 1e-6)?;
        g.output(y, "y")?;
        let mut v = rand(&[rows, d], 16, 2.0);
        if let HostData::F32(data) = &mut v.data {
            data.iter_mut().for_each(|x| *x += offset);
        }
        done(g, vec![("x", v)])
    }

    pub(crate) fn rms_norm(f: DType, rows: usize, d: usize) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc([rows, d]))?;
        let w = g.param("w", [d])?;
        let y = g.rms_norm(x, w, 1e-6)?;
        g.output(y, "y")?;
        done(
            g,
            vec![("x", rand(&[rows, d], 32, 3.0)), ("w", rand(&[d], 33, 1.0))],
        )
    }
}
