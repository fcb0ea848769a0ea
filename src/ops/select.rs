//! `cond[index] != 0 ? a : b`: one f32 flag, written on the GPU, picks a whole tensor. The step
//! cache ([`crate::pipeline::step_cache`]) picks between the cached residual and the blocks it
//! just ran without reading the decision back.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{DType, HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct SelectParams {
        n: u32,
        off_cond: u32,
        off_a: u32,
        off_b: u32,
        off_out: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

#[derive(Clone, Debug)]
pub struct Select {
    /// Which element of `cond` is the flag.
    pub index: usize,
}

impl Op for Select {
    fn name(&self) -> &'static str {
        "select"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let [cond, a, b] = inputs else {
            return Err(Error::shape(
                "select",
                format!("takes 3 inputs (cond, a, b), got {}", inputs.len()),
            ));
        };
        if cond.dtype != DType::F32 || cond.shape.numel() <= self.index {
            return Err(Error::shape(
                "select",
                format!(
                    "the flag is element {} of an f32 tensor, but cond is {:?} {}",
                    self.index, cond.dtype, cond.shape
                ),
            ));
        }
        if a != b || !a.dtype.is_float() {
            return Err(Error::shape(
                "select",
                format!(
                    "a ({:?} {}) and b ({:?} {}) must be floats of one shape and type",
                    a.dtype, a.shape, b.dtype, b.shape
                ),
            ));
        }
        Ok((*a).clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let pick = if inputs[0].as_f32()[self.index] != 0.0 {
            inputs[1]
        } else {
            inputs[2]
        };
        HostTensor::f32(out.shape.clone(), pick.as_f32().to_vec())
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let n = out.desc.shape.numel();
        let kernel = Kernel::new("select").read("cond").read("a").read("b");
        for (s, e) in chunks(n, cx.rows_per_chunk("a and b", 1)?) {
            let len = e - s;
            let off_cond = cx.bind(&inputs[0], self.index, 1)?;
            let params = SelectParams {
                n: len as u32,
                off_cond,
                off_a: cx.bind(&inputs[1], s, len)?,
                off_b: cx.bind(&inputs[2], s, len)?,
                off_out: cx.bind(out, s, len)?,
                ..Default::default()
            };
            cx.dispatch(kernel.clone(), &params, cx.grid(len.div_ceil(256)))?;
        }
        Ok(())
    }
}

impl Graph {
    /// `cond[index] != 0 ? a : b`, `cond` f32, `a` and `b` of one shape and type.
    pub fn select(
        &mut self,
        cond: TensorId,
        index: usize,
        a: TensorId,
        b: TensorId,
    ) -> Result<TensorId> {
        self.push(Select { index }, &[cond, a, b])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    /// `select` on a flag at `index` of a 3-element cond holding `flags`.
    pub(crate) fn select(f: DType, flags: [f32; 3], index: usize, n: usize) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let cond = g.input("cond", TensorDesc::f32([3]))?;
        let a = g.input("a", g.float_desc([n]))?;
        let b = g.input("b", g.float_desc([n]))?;
        let z = g.select(cond, index, a, b)?;
        g.output(z, "z")?;
        let cond_v = HostTensor::f32([3], flags.to_vec());
        done(
            g,
            vec![
                ("cond", cond_v),
                ("a", rand(&[n], 8, 1.0)),
                ("b", rand(&[n], 9, 1.0)),
            ],
        )
    }
}
