//! Softmax over the last dimension.

use crate::error::Result;
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct SoftmaxParams {
        rows: u32,
        d: u32,
        off_x: u32,
        off_out: u32,
    }
}

const WG: usize = 64;

#[derive(Clone, Debug)]
pub struct Softmax;

impl Op for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("softmax", inputs, 1)?;
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let x = inputs[0].as_f32();
        let d = out.shape.last();
        let mut o = vec![0f32; x.len()];
        for (xr, or) in x.chunks_exact(d).zip(o.chunks_exact_mut(d)) {
            let m = xr.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
            let s: f64 = xr.iter().map(|v| ((*v - m) as f64).exp()).sum();
            for (o, v) in or.iter_mut().zip(xr) {
                *o = (((*v - m) as f64).exp() / s) as f32;
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
            let groups = cx.grid(r1 - r0);
            let params = SoftmaxParams {
                rows: (r1 - r0) as u32,
                d: d as u32,
                off_x: ox,
                off_out: oo,
            };
            let kernel = Kernel::new("softmax").read("x").define("WG", WG);
            cx.dispatch(kernel, &params, groups)?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        5 * out.shape.numel() as u64
    }
}

impl Graph {
    pub fn softmax(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(Softmax, &[x])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn softmax(f: DType, rows: usize, d: usize) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc([rows, d]))?;
        let y = g.softmax(x)?;
        g.output(y, "y")?;
        done(g, vec![("x", rand(&[rows, d], 17, 4.0))])
    }
}
