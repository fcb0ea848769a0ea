//! GroupNorm (affine) over `(B, C, ...)`, optionally followed by SiLU. Statistics per batch
//! item and group cover the group's channels and everything after them (all frames together).

use super::unary::silu;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct GroupNormParams {
        blocks: u32,
        groups: u32,
        per_channel: u32,
        channels_per_group: u32,
        eps: f32,
        block0: u32,
        off_x: u32,
        off_w: u32,
        off_b: u32,
        off_out: u32,
    }
}

#[derive(Clone, Debug)]
pub struct GroupNorm {
    pub groups: usize,
    pub eps: f32,
    pub silu: bool,
}

impl Op for GroupNorm {
    fn name(&self) -> &'static str {
        "group_norm"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("group_norm", inputs, 3)?;
        let (x, w, b) = (&inputs[0].shape, &inputs[1].shape, &inputs[2].shape);
        let c = if x.rank() >= 2 { x.dims()[1] } else { 0 };
        if c == 0 || self.groups == 0 || c % self.groups != 0 || w.dims() != [c] || b.dims() != [c]
        {
            return Err(Error::shape(
                "group_norm",
                format!(
                    "x {x} with weight {w} and bias {b}: channels must be a multiple of {} groups",
                    self.groups
                ),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let (x, w, b) = (inputs[0].as_f32(), inputs[1].as_f32(), inputs[2].as_f32());
        let c = out.shape.dims()[1];
        let per_channel = out.shape.numel() / (out.shape.dims()[0] * c);
        let n = per_channel * c / self.groups;
        let mut o = vec![0f32; x.len()];
        for (blk, (xs, os)) in x.chunks_exact(n).zip(o.chunks_exact_mut(n)).enumerate() {
            let mean = xs.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
            let var = xs.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let rstd = 1.0 / (var + self.eps as f64).sqrt();
            let g = blk % self.groups;
            for (i, (ov, xv)) in os.iter_mut().zip(xs).enumerate() {
                let ch = g * (c / self.groups) + i / per_channel;
                let y = ((*xv as f64 - mean) * rstd * w[ch] as f64 + b[ch] as f64) as f32;
                *ov = if self.silu { silu(y) } else { y };
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let s = out.desc.shape.dims();
        let c = s[1];
        let per_channel = out.desc.shape.numel() / (s[0] * c);
        let cpg = c / self.groups;
        let n = per_channel * cpg;
        let blocks = s[0] * self.groups;
        let per = cx.rows_per_chunk("one group", n)?;
        let kernel = Kernel::new("group_norm")
            .read("x")
            .read("gamma")
            .read("beta")
            .flag("SILU", self.silu);
        for (b0, b1) in chunks(blocks, per) {
            let ox = cx.bind(&inputs[0], b0 * n, (b1 - b0) * n)?;
            let ow = cx.bind_all(&inputs[1])?;
            let ob = cx.bind_all(&inputs[2])?;
            let oo = cx.bind(out, b0 * n, (b1 - b0) * n)?;
            let params = GroupNormParams {
                blocks: (b1 - b0) as u32,
                groups: self.groups as u32,
                per_channel: per_channel as u32,
                channels_per_group: cpg as u32,
                eps: self.eps,
                block0: b0 as u32,
                off_x: ox,
                off_w: ow,
                off_b: ob,
                off_out: oo,
            };
            let groups = cx.grid(b1 - b0);
            cx.dispatch(kernel.clone(), &params, groups)?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        8 * out.shape.numel() as u64
    }
}

impl Graph {
    /// GroupNorm with `groups` groups and affine `weight`, `bias`; SiLU after it if `silu`.
    pub fn group_norm(
        &mut self,
        x: TensorId,
        weight: TensorId,
        bias: TensorId,
        groups: usize,
        eps: f32,
        silu: bool,
    ) -> Result<TensorId> {
        self.push(GroupNorm { groups, eps, silu }, &[x, weight, bias])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn group_norm(
        f: DType,
        b: usize,
        c: usize,
        t: usize,
        hw: usize,
        groups: usize,
        silu: bool,
    ) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let xs = [b, c, t, hw, hw + 1];
        let x = g.input("x", g.float_desc(xs))?;
        let w = g.param("w", [c])?;
        let bias = g.param("b", [c])?;
        let y = g.group_norm(x, w, bias, groups, 1e-6, silu)?;
        g.output(y, "y")?;
        done(
            g,
            vec![
                ("x", rand(&xs, 37, 2.0)),
                ("w", rand(&[c], 38, 1.0)),
                ("b", rand(&[c], 39, 1.0)),
            ],
        )
    }
}
