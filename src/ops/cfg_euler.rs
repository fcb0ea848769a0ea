//! A rectified-flow Euler step with classifier-free guidance: from the model's prediction on
//! the batch `[cond, uncond]`, `x + dt · (u + cfg · (c − u))`, written to both halves so it is
//! the next step's input as it stands.
//!
//! `pred` is `(2B, C_out, ...)` (only its first `C` channels are read: PT-DiT's learned-sigma
//! half is unused), `x` is `(2B, C, ...)` (its first half is read), `step` is `[dt, cfg]`.
//! Latents are bound whole: they are a thousand times smaller than the hidden state.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct CfgEulerParams {
        half: u32,
        c: u32,
        c_out: u32,
        spatial: u32,
        off_pred: u32,
        off_x: u32,
        off_step: u32,
        off_out: u32,
    }
}

#[derive(Clone, Debug)]
pub struct CfgEuler;

struct Dims {
    half: usize,
    c: usize,
    c_out: usize,
    spatial: usize,
}

fn dims(pred: &TensorDesc, x: &TensorDesc) -> Dims {
    let (p, x) = (pred.shape.dims(), x.shape.dims());
    Dims {
        half: x[0] / 2,
        c: x[1],
        c_out: p[1],
        spatial: x[2..].iter().product(),
    }
}

impl Op for CfgEuler {
    fn name(&self) -> &'static str {
        "cfg_euler"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("cfg_euler", inputs, 3)?;
        let (p, x, s) = (&inputs[0].shape, &inputs[1].shape, &inputs[2].shape);
        let ok = p.rank() >= 2
            && p.rank() == x.rank()
            && p.dims()[0] == x.dims()[0]
            && x.dims()[0] % 2 == 0
            && p.dims()[1] >= x.dims()[1]
            && p.dims()[2..] == x.dims()[2..]
            && s.dims() == [2];
        if !ok {
            return Err(Error::shape("cfg_euler", format!(
                "prediction {p}, latents {x} and step {s}: expected (2B, C_out, ...), (2B, C, ...) with C <= C_out, and (2,)")));
        }
        Ok(inputs[1].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let d = dims(&inputs[0].desc(), &inputs[1].desc());
        let (pred, x, step) = (inputs[0].as_f32(), inputs[1].as_f32(), inputs[2].as_f32());
        let (dt, cfg) = (step[0], step[1]);
        let per = d.c * d.spatial;
        let mut o = vec![0f32; out.shape.numel()];
        for b in 0..d.half {
            for r in 0..per {
                let pc = b * d.c_out * d.spatial + r;
                let pu = pc + d.half * d.c_out * d.spatial;
                let v = pred[pu] + cfg * (pred[pc] - pred[pu]);
                let xn = x[b * per + r] + v * dt;
                o[b * per + r] = xn;
                o[(b + d.half) * per + r] = xn;
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = dims(&inputs[0].desc, &inputs[1].desc);
        let op = cx.bind_all(&inputs[0])?;
        let ox = cx.bind_all(&inputs[1])?;
        let os = cx.bind_all(&inputs[2])?;
        let oo = cx.bind_all(out)?;
        let params = CfgEulerParams {
            half: d.half as u32,
            c: d.c as u32,
            c_out: d.c_out as u32,
            spatial: d.spatial as u32,
            off_pred: op,
            off_x: ox,
            off_step: os,
            off_out: oo,
        };
        let groups = cx.grid((d.half * d.c * d.spatial).div_ceil(256));
        let kernel = Kernel::new("cfg_euler").read("pred").read("x").read("step");
        cx.dispatch(kernel, &params, groups)
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        2 * out.shape.numel() as u64
    }
}

impl Graph {
    /// `x + dt · (u + cfg · (c − u))` for the batch `[cond, uncond]`, into both halves.
    pub fn cfg_euler(&mut self, pred: TensorId, x: TensorId, step: TensorId) -> Result<TensorId> {
        self.push(CfgEuler, &[pred, x, step])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn cfg_euler(
        f: DType,
        half: usize,
        c: usize,
        c_out: usize,
        spatial: &[usize],
    ) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let ps = dims(&[2 * half, c_out], spatial);
        let xs = dims(&[2 * half, c], spatial);
        let p = g.input("p", g.float_desc(ps.clone()))?;
        let x = g.input("x", g.float_desc(xs.clone()))?;
        let s = g.input("s", g.float_desc([2]))?;
        let y = g.cfg_euler(p, x, s)?;
        g.output(y, "y")?;
        done(
            g,
            vec![
                ("p", rand(&ps, 26, 1.0)),
                ("x", rand(&xs, 27, 1.0)),
                ("s", HostTensor::f32([2], vec![0.03, 4.0])),
            ],
        )
    }
}
