//! Mean over groups of rows: each group is a window of `WF×WH×WW` tokens, and each window
//! yields `SF·SH·SW` means over dilated sub-grids (PT-DiT's proxy tokens, spec §2.7). With
//! `window = (1, 1, S)` and `strides = (1, 1, 1)` it is the plain mean of every `S` rows.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct WindowMeanParams {
        groups: u32,
        d: u32,
        wf: u32,
        wh: u32,
        ww: u32,
        sf: u32,
        sh: u32,
        sw: u32,
        off_x: u32,
        off_out: u32,
    }
}

#[derive(Clone, Debug)]
pub struct WindowMean {
    /// Window size `(f, h, w)` in tokens.
    pub window: [usize; 3],
    /// Proxies per window along each axis; each must divide the window's size.
    pub strides: [usize; 3],
}

impl WindowMean {
    fn s(&self) -> usize {
        self.window.iter().product()
    }
    fn k(&self) -> usize {
        self.strides.iter().product()
    }
}

impl Op for WindowMean {
    fn name(&self) -> &'static str {
        "window_mean"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let dtype = expect_inputs("window_mean", inputs, 1)?;
        let x = &inputs[0].shape;
        for a in 0..3 {
            if self.strides[a] == 0
                || self.window[a] == 0
                || !self.window[a].is_multiple_of(self.strides[a])
            {
                return Err(Error::shape(
                    "window_mean",
                    format!(
                        "proxies per window {:?} must divide the window {:?}",
                        self.strides, self.window
                    ),
                ));
            }
        }
        if x.rank() < 2 || !x.rows().is_multiple_of(self.s()) {
            return Err(Error::shape(
                "window_mean",
                format!(
                    "x {x} must have a multiple of {} rows (windows of {:?})",
                    self.s(),
                    self.window
                ),
            ));
        }
        let g = x.rows() / self.s();
        Ok(TensorDesc::new([g * self.k(), x.last()], dtype))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let x = inputs[0].as_f32();
        let d = out.shape.last();
        let [wf, wh, ww] = self.window;
        let [sf, sh, sw] = self.strides;
        let groups = out.shape.rows() / self.k();
        let n = (self.s() / self.k()) as f64;
        let mut o = vec![0f32; out.shape.numel()];
        for g in 0..groups {
            for a in 0..sf {
                for b in 0..sh {
                    for c in 0..sw {
                        let kk = (a * sh + b) * sw + c;
                        for ch in 0..d {
                            let mut s = 0f64;
                            for f in (a..wf).step_by(sf) {
                                for h in (b..wh).step_by(sh) {
                                    for w in (c..ww).step_by(sw) {
                                        let t = (f * wh + h) * ww + w;
                                        s += x[(g * self.s() + t) * d + ch] as f64;
                                    }
                                }
                            }
                            o[(g * self.k() + kk) * d + ch] = (s / n) as f32;
                        }
                    }
                }
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = out.desc.shape.last();
        let groups = out.desc.shape.rows() / self.k();
        let per = cx.rows_per_chunk("one window", self.s() * d)?;
        for (g0, g1) in chunks(groups, per) {
            let ox = cx.bind(&inputs[0], g0 * self.s() * d, (g1 - g0) * self.s() * d)?;
            let oo = cx.bind(out, g0 * self.k() * d, (g1 - g0) * self.k() * d)?;
            let [wf, wh, ww] = self.window;
            let [sf, sh, sw] = self.strides;
            let u = |v: usize| v as u32;
            let params = WindowMeanParams {
                groups: u(g1 - g0),
                d: u(d),
                wf: u(wf),
                wh: u(wh),
                ww: u(ww),
                sf: u(sf),
                sh: u(sh),
                sw: u(sw),
                off_x: ox,
                off_out: oo,
            };
            let grid = cx.grid(((g1 - g0) * self.k() * d).div_ceil(256));
            cx.dispatch(Kernel::new("window_mean").read("x"), &params, grid)?;
        }
        Ok(())
    }

    fn flops(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> u64 {
        inputs[0].shape.numel() as u64
    }
}

impl Graph {
    /// Means over windows of `window` tokens, `strides` dilated means per window.
    pub fn window_mean(
        &mut self,
        x: TensorId,
        window: [usize; 3],
        strides: [usize; 3],
    ) -> Result<TensorId> {
        self.push(WindowMean { window, strides }, &[x])
    }
    /// The mean of every `group` consecutive rows.
    pub fn group_mean(&mut self, x: TensorId, group: usize) -> Result<TensorId> {
        self.window_mean(x, [1, 1, group], [1, 1, 1])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn window_mean(
        f: DType,
        groups: usize,
        window: [usize; 3],
        strides: [usize; 3],
        d: usize,
    ) -> Result<Case> {
        let s: usize = window.iter().product();
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc([groups, s, d]))?;
        let y = g.window_mean(x, window, strides)?;
        g.output(y, "y")?;
        done(g, vec![("x", rand(&[groups, s, d], 22, 1.0))])
    }
}
