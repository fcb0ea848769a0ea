//! ×2 upsampling of `(B, C, T, H, W)` as CausalVAE's decoder does it: nearest in H and W
//! (`SpatialUpsample2x`), or trilinear with half-pixel centres where frame 0 is scaled only in
//! space and frames `1..T` are scaled ×2 in time among themselves (`Spatial2xTime2x3DUpsample`,
//! `T → 2T − 1`). Split over `(b, c)` planes.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct UpsampleParams {
        planes: u32,
        t: u32,
        h: u32,
        w: u32,
        t_out: u32,
        off_x: u32,
        off_out: u32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleKind {
    Nearest2d,
    CausalTrilinear,
}

#[derive(Clone, Debug)]
pub struct Upsample {
    pub kind: UpsampleKind,
}

/// `(i0, i1, w)` of output `o` along an axis of `n` inputs scaled ×2, align_corners=False.
fn tap(o: usize, n: usize) -> (usize, usize, f32) {
    let src = ((o as f32 + 0.5) * 0.5 - 0.5).max(0.0);
    let i0 = src.floor() as usize;
    (i0, (i0 + 1).min(n - 1), src - i0 as f32)
}

impl Upsample {
    fn t_out(&self, t: usize) -> usize {
        match self.kind {
            UpsampleKind::Nearest2d => t,
            UpsampleKind::CausalTrilinear => 2 * t - 1,
        }
    }
}

impl Op for Upsample {
    fn name(&self) -> &'static str {
        "upsample"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let dtype = expect_inputs("upsample", inputs, 1)?;
        let x = &inputs[0].shape;
        if x.rank() != 5 {
            return Err(Error::shape(
                "upsample",
                format!("x {x} must be (B, C, T, H, W)"),
            ));
        }
        let d = x.dims();
        Ok(TensorDesc::new(
            [d[0], d[1], self.t_out(d[2]), 2 * d[3], 2 * d[4]],
            dtype,
        ))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let x = inputs[0].as_f32();
        let d = inputs[0].shape.dims();
        let (planes, t, h, w) = (d[0] * d[1], d[2], d[3], d[4]);
        let to_n = self.t_out(t);
        let at = |pl: usize, tt: usize, y: usize, xx: usize| x[((pl * t + tt) * h + y) * w + xx];
        let mut o = Vec::with_capacity(out.shape.numel());
        for pl in 0..planes {
            for to in 0..to_n {
                for yo in 0..2 * h {
                    for xo in 0..2 * w {
                        let v = match self.kind {
                            UpsampleKind::Nearest2d => at(pl, to, yo / 2, xo / 2),
                            UpsampleKind::CausalTrilinear => {
                                let (y0, y1, wy) = tap(yo, h);
                                let (x0, x1, wx) = tap(xo, w);
                                let (t0, t1, wt) = if to == 0 {
                                    (0, 0, 0.0)
                                } else {
                                    let (a, b, ww) = tap(to - 1, t - 1);
                                    (a + 1, b + 1, ww)
                                };
                                let plane = |tt| {
                                    let a =
                                        at(pl, tt, y0, x0) * (1.0 - wx) + at(pl, tt, y0, x1) * wx;
                                    let b =
                                        at(pl, tt, y1, x0) * (1.0 - wx) + at(pl, tt, y1, x1) * wx;
                                    a * (1.0 - wy) + b * wy
                                };
                                (1.0 - wt) * plane(t0) + wt * plane(t1)
                            }
                        };
                        o.push(v);
                    }
                }
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = inputs[0].desc.shape.dims();
        let (planes, t, h, w) = (d[0] * d[1], d[2], d[3], d[4]);
        let in_plane = t * h * w;
        let out_plane = self.t_out(t) * 4 * h * w;
        let per = cx
            .rows_per_chunk("one output plane", out_plane)?
            .min(cx.rows_per_chunk("one input plane", in_plane)?);
        let kernel = Kernel::new("upsample")
            .read("x")
            .flag("NEAREST", self.kind == UpsampleKind::Nearest2d);
        for (p0, p1) in chunks(planes, per) {
            let ox = cx.bind(&inputs[0], p0 * in_plane, (p1 - p0) * in_plane)?;
            let oo = cx.bind(out, p0 * out_plane, (p1 - p0) * out_plane)?;
            let params = UpsampleParams {
                planes: (p1 - p0) as u32,
                t: t as u32,
                h: h as u32,
                w: w as u32,
                t_out: self.t_out(t) as u32,
                off_x: ox,
                off_out: oo,
            };
            let groups = cx.grid(((p1 - p0) * out_plane).div_ceil(256));
            cx.dispatch(kernel.clone(), &params, groups)?;
        }
        Ok(())
    }
}

impl Graph {
    pub fn upsample(&mut self, x: TensorId, kind: UpsampleKind) -> Result<TensorId> {
        self.push(Upsample { kind }, &[x])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn upsample(
        f: DType,
        kind: UpsampleKind,
        t: usize,
        h: usize,
        w: usize,
    ) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let xs = [2, 3, t, h, w];
        let x = g.input("x", g.float_desc(xs))?;
        let y = g.upsample(x, kind)?;
        g.output(y, "y")?;
        done(g, vec![("x", rand(&xs, 40, 1.0))])
    }
}
