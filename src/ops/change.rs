//! How far a tensor moved from a reference, as partial sums: for each slice of
//! [`SLICE`] elements, `Σ|x − ref|` and `Σ|ref|`, an `(S, 2)` f32 tensor. Their totals give the
//! relative change `Σ|x − ref| / Σ|ref|` that the step cache decides on
//! ([`super::skip_decision`]); the sums stay on the GPU.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

/// Elements summed by one workgroup into one row of the output.
pub const SLICE: usize = 256;

crate::param_block! {
    pub struct ChangeParams {
        n: u32,
        slices: u32,
        off_x: u32,
        off_ref: u32,
        off_out: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

#[derive(Clone, Debug)]
pub struct Change;

impl Op for Change {
    fn name(&self) -> &'static str {
        "change"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs("change", inputs, 2)?;
        if inputs[0].shape != inputs[1].shape {
            return Err(Error::shape(
                "change",
                format!(
                    "x {} and its reference {} differ",
                    inputs[0].shape, inputs[1].shape
                ),
            ));
        }
        Ok(TensorDesc::f32([
            inputs[0].shape.numel().div_ceil(SLICE),
            2,
        ]))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let (x, r) = (inputs[0].as_f32(), inputs[1].as_f32());
        let mut o = Vec::with_capacity(out.shape.numel());
        for (xs, rs) in x.chunks(SLICE).zip(r.chunks(SLICE)) {
            o.push(xs.iter().zip(rs).map(|(a, b)| (a - b).abs()).sum());
            o.push(rs.iter().map(|b| b.abs()).sum());
        }
        HostTensor::f32(out.shape.clone(), o)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let n = inputs[0].desc.shape.numel();
        let slices = n.div_ceil(SLICE);
        let kernel = Kernel::new("change")
            .read("x")
            .read("ref")
            .define("T_IN", inputs[0].desc.dtype.wgsl());
        for (s0, s1) in chunks(slices, cx.rows_per_chunk("a slice of x", SLICE)?) {
            let (start, len) = (s0 * SLICE, (s1 * SLICE).min(n) - s0 * SLICE);
            let params = ChangeParams {
                n: len as u32,
                slices: (s1 - s0) as u32,
                off_x: cx.bind(&inputs[0], start, len)?,
                off_ref: cx.bind(&inputs[1], start, len)?,
                off_out: cx.bind(out, 2 * s0, 2 * (s1 - s0))?,
                ..Default::default()
            };
            cx.dispatch(kernel.clone(), &params, cx.grid(s1 - s0))?;
        }
        Ok(())
    }

    fn flops(&self, inputs: &[&TensorDesc], _out: &TensorDesc) -> u64 {
        3 * inputs[0].shape.numel() as u64
    }
}

impl Graph {
    /// Per slice of [`SLICE`] elements, `[Σ|x − reference|, Σ|reference|]`: `(S, 2)` f32.
    pub fn change_sums(&mut self, x: TensorId, reference: TensorId) -> Result<TensorId> {
        self.push(Change, &[x, reference])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// `n` elements: the last slice partial unless `n` is a multiple of 256.
    pub(crate) fn change(f: DType, n: usize) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc([n]))?;
        let r = g.input("ref", g.float_desc([n]))?;
        let z = g.change_sums(x, r)?;
        g.output(z, "z")?;
        done(
            g,
            vec![("x", rand(&[n], 10, 1.0)), ("ref", rand(&[n], 11, 1.0))],
        )
    }
}
