//! `x + a + c[k]·(a − b)`, with the factor read from a tensor the GPU wrote: the step cache's
//! stand-in for skipped blocks, their last residual `a` moved on along its last change `a − b`
//! (`ops::skip_decision`'s `ALPHA`; 0 reuses `a` as it is, exactly `x + a`).

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{DType, HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct ExtrapolateParams {
        n: u32,
        off_x: u32,
        off_a: u32,
        off_b: u32,
        off_coef: u32,
        off_out: u32,
        pad0: u32,
        pad1: u32,
    }
}

#[derive(Clone, Debug)]
pub struct Extrapolate {
    /// Which element of the coefficient tensor is the factor.
    pub index: usize,
}

impl Op for Extrapolate {
    fn name(&self) -> &'static str {
        "extrapolate"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let [x, a, b, c] = inputs else {
            return Err(Error::shape(
                "extrapolate",
                format!("takes 4 inputs (x, a, b, coef), got {}", inputs.len()),
            ));
        };
        if x != a || a != b || !x.dtype.is_float() {
            return Err(Error::shape(
                "extrapolate",
                format!(
                    "x {:?} {}, a {:?} {} and b {:?} {} must be floats of one shape and type",
                    x.dtype, x.shape, a.dtype, a.shape, b.dtype, b.shape
                ),
            ));
        }
        if c.dtype != DType::F32 || c.shape.numel() <= self.index {
            return Err(Error::shape(
                "extrapolate",
                format!(
                    "the factor is element {} of an f32 tensor, not of {:?} {}",
                    self.index, c.dtype, c.shape
                ),
            ));
        }
        Ok((*x).clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let (x, a, b) = (inputs[0].as_f32(), inputs[1].as_f32(), inputs[2].as_f32());
        let c = inputs[3].as_f32()[self.index];
        let v = (0..x.len())
            .map(|i| match c != 0.0 {
                true => x[i] + a[i] + c * (a[i] - b[i]),
                false => x[i] + a[i],
            })
            .collect();
        HostTensor::f32(out.shape.clone(), v)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let n = out.desc.shape.numel();
        let kernel = Kernel::new("extrapolate")
            .read("x")
            .read("a")
            .read("b")
            .read("coef");
        for (s, e) in chunks(n, cx.rows_per_chunk("x, a and b", 1)?) {
            let len = e - s;
            let params = ExtrapolateParams {
                n: len as u32,
                off_x: cx.bind(&inputs[0], s, len)?,
                off_a: cx.bind(&inputs[1], s, len)?,
                off_b: cx.bind(&inputs[2], s, len)?,
                off_coef: cx.bind(&inputs[3], self.index, 1)?,
                off_out: cx.bind(out, s, len)?,
                ..Default::default()
            };
            cx.dispatch(kernel.clone(), &params, cx.grid(len.div_ceil(256)))?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        4 * out.shape.numel() as u64
    }
}

impl Graph {
    /// `x + a + coef[index]·(a − b)`, `coef` f32, the others of one shape and float type.
    pub fn extrapolate(
        &mut self,
        x: TensorId,
        a: TensorId,
        b: TensorId,
        coef: TensorId,
        index: usize,
    ) -> Result<TensorId> {
        self.push(Extrapolate { index }, &[x, a, b, coef])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// `n` elements with the factor `c` at element 1 of a 3-element tensor.
    pub(crate) fn extrapolate(f: DType, c: f32, n: usize) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let d = g.float_desc([n]);
        let (x, a, b) = (
            g.input("x", d.clone())?,
            g.input("a", d.clone())?,
            g.input("b", d)?,
        );
        let coef = g.input("coef", TensorDesc::f32([3]))?;
        let z = g.extrapolate(x, a, b, coef, 1)?;
        g.output(z, "z")?;
        done(
            g,
            vec![
                ("x", rand(&[n], 13, 1.0)),
                ("a", rand(&[n], 14, 1.0)),
                ("b", rand(&[n], 15, 1.0)),
                ("coef", HostTensor::f32([3], vec![9.0, c, 9.0])),
            ],
        )
    }
}
