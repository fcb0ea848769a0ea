//! CausalVAE's causal 3-D convolution (stride 1, "same" size): the first frame is repeated
//! `kt − 1` times in front, height and width are zero-padded by `k / 2`. Tensors are
//! `(B, C, T, H, W)`; the weight is `(C_out, C_in, kt, kh, kw)`, the bias `(C_out,)`.
//!
//! Split for the binding limit by batch item and by groups of output channels (each a
//! contiguous block of the output and of the weight); one batch item's input is bound whole.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct Conv3dParams {
        cin: u32,
        cout: u32,
        t: u32,
        h: u32,
        w: u32,
        kt: u32,
        kh: u32,
        kw: u32,
        ph: u32,
        pw: u32,
        off_x: u32,
        off_w: u32,
        off_b: u32,
        off_out: u32,
        x_batch: u32,
        out_batch: u32,
    }
}

#[derive(Clone, Debug)]
pub struct Conv3d;

struct Dims {
    b: usize,
    cin: usize,
    cout: usize,
    t: usize,
    h: usize,
    w: usize,
    k: [usize; 3],
}

fn dims(x: &TensorDesc, w: &TensorDesc) -> Dims {
    let (xs, ws) = (x.shape.dims(), w.shape.dims());
    Dims {
        b: xs[0],
        cin: xs[1],
        cout: ws[0],
        t: xs[2],
        h: xs[3],
        w: xs[4],
        k: [ws[2], ws[3], ws[4]],
    }
}

impl Op for Conv3d {
    fn name(&self) -> &'static str {
        "conv3d"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let dtype = expect_inputs("conv3d", inputs, 3)?;
        let (x, w, b) = (&inputs[0].shape, &inputs[1].shape, &inputs[2].shape);
        let ok = x.rank() == 5
            && w.rank() == 5
            && w.dims()[1] == x.dims()[1]
            && b.dims() == [w.dims()[0]]
            && w.dims()[3] % 2 == 1
            && w.dims()[4] % 2 == 1;
        if !ok {
            return Err(Error::shape("conv3d", format!(
                "x {x}, weight {w}, bias {b}: expected (B, C_in, T, H, W), (C_out, C_in, kt, kh, kw) with odd kh, kw, and (C_out,)")));
        }
        let mut out = x.dims().to_vec();
        out[1] = w.dims()[0];
        Ok(TensorDesc::new(out, dtype))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let d = dims(&inputs[0].desc(), &inputs[1].desc());
        let (x, w, bias) = (inputs[0].as_f32(), inputs[1].as_f32(), inputs[2].as_f32());
        let [kt, kh, kw] = d.k;
        let (ph, pw) = (kh / 2, kw / 2);
        let plane = d.t * d.h * d.w;
        let mut o = vec![0f32; out.shape.numel()];
        for b in 0..d.b {
            for co in 0..d.cout {
                for t in 0..d.t {
                    for y in 0..d.h {
                        for xx in 0..d.w {
                            let mut s = bias[co] as f64;
                            for ci in 0..d.cin {
                                for dt in 0..kt {
                                    let st = (t + dt).saturating_sub(kt - 1);
                                    for dy in 0..kh {
                                        let sy = y as i64 + dy as i64 - ph as i64;
                                        if sy < 0 || sy >= d.h as i64 {
                                            continue;
                                        }
                                        for dx in 0..kw {
                                            let sx = xx as i64 + dx as i64 - pw as i64;
                                            if sx < 0 || sx >= d.w as i64 {
                                                continue;
                                            }
                                            let xi = ((b * d.cin + ci) * d.t + st) * d.h * d.w
                                                + sy as usize * d.w
                                                + sx as usize;
                                            let wi =
                                                (((co * d.cin + ci) * kt + dt) * kh + dy) * kw + dx;
                                            s += x[xi] as f64 * w[wi] as f64;
                                        }
                                    }
                                }
                            }
                            o[(b * d.cout + co) * plane + (t * d.h + y) * d.w + xx] = s as f32;
                        }
                    }
                }
            }
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let d = dims(&inputs[0].desc, &inputs[1].desc);
        let plane = d.t * d.h * d.w;
        let ksz = d.cin * d.k.iter().product::<usize>();
        let per = cx
            .rows_per_chunk("one output channel", plane)?
            .min(cx.rows_per_chunk("one filter", ksz)?);
        let per = (per / 4 * 4).max(4).min(d.cout.div_ceil(4) * 4);
        let pixel_groups = plane.div_ceil(64);
        if pixel_groups > cx.max_groups as usize {
            return Err(Error::Limit { op: "conv3d", detail: format!("{plane} pixels per channel need more than {} workgroups; decode in smaller tiles", cx.max_groups) });
        }
        for b in 0..d.b {
            for (c0, c1) in chunks(d.cout, per) {
                let ox = cx.bind(&inputs[0], b * d.cin * plane, d.cin * plane)?;
                let ow = cx.bind(&inputs[1], c0 * ksz, (c1 - c0) * ksz)?;
                let ob = cx.bind(&inputs[2], c0, c1 - c0)?;
                let oo = cx.bind(out, (b * d.cout + c0) * plane, (c1 - c0) * plane)?;
                let params = Conv3dParams {
                    cin: d.cin as u32,
                    cout: (c1 - c0) as u32,
                    t: d.t as u32,
                    h: d.h as u32,
                    w: d.w as u32,
                    kt: d.k[0] as u32,
                    kh: d.k[1] as u32,
                    kw: d.k[2] as u32,
                    ph: (d.k[1] / 2) as u32,
                    pw: (d.k[2] / 2) as u32,
                    off_x: ox,
                    off_w: ow,
                    off_b: ob,
                    off_out: oo,
                    x_batch: 0,
                    out_batch: 0,
                };
                let groups = [pixel_groups as u32, (c1 - c0).div_ceil(4) as u32, 1];
                let kernel = Kernel::new("conv3d").read("x").read("wt").read("bias");
                cx.dispatch(kernel, &params, groups)?;
            }
        }
        Ok(())
    }

    fn flops(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> u64 {
        let d = dims(inputs[0], inputs[1]);
        2 * (d.b * d.cout * d.t * d.h * d.w * d.cin * d.k.iter().product::<usize>()) as u64
    }
}

impl Graph {
    /// Causal 3-D convolution with "same" spatial padding.
    pub fn conv3d(&mut self, x: TensorId, w: TensorId, bias: TensorId) -> Result<TensorId> {
        self.push(Conv3d, &[x, w, bias])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// `[batch, c_in, c_out]` channels over `[frames, h, w]` with a `k` kernel.
    pub(crate) fn conv3d(
        f: DType,
        [b, cin, cout]: [usize; 3],
        [t, h, w]: [usize; 3],
        k: [usize; 3],
    ) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let xs = [b, cin, t, h, w];
        let ws = [cout, cin, k[0], k[1], k[2]];
        let x = g.input("x", g.float_desc(xs))?;
        let wt = g.param("w", ws)?;
        let bias = g.param("b", [cout])?;
        let y = g.conv3d(x, wt, bias)?;
        g.output(y, "y")?;
        done(
            g,
            vec![
                ("x", rand(&xs, 34, 1.0)),
                ("w", rand(&ws, 35, 0.2)),
                ("b", rand(&[cout], 36, 0.5)),
            ],
        )
    }
}
