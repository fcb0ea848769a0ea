//! `a + b`, `a - b` and `a * b`, where `b` is repeated over `a` (its element count must divide `a`'s
//! and its shape must be a suffix of `a`'s, or it is a single value): same-shape, bias rows,
//! positional tables, scalars.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct BinaryParams {
        n: u32,
        nb: u32,
        start: u32,
        off_a: u32,
        off_b: u32,
        off_out: u32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
}

#[derive(Clone, Debug)]
pub struct Binary {
    pub kind: BinaryKind,
}

impl Binary {
    fn apply(&self, x: f32, y: f32) -> f32 {
        match self.kind {
            BinaryKind::Add => x + y,
            BinaryKind::Sub => x - y,
            BinaryKind::Mul => x * y,
        }
    }
}

impl Op for Binary {
    fn name(&self) -> &'static str {
        match self.kind {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
        }
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs(self.name(), inputs, 2)?;
        let (a, b) = (&inputs[0].shape, &inputs[1].shape);
        let suffix = b.rank() <= a.rank() && a.dims()[a.rank() - b.rank()..] == *b.dims();
        if !suffix && b.numel() != 1 {
            return Err(Error::shape(
                self.name(),
                format!("{b} cannot be broadcast over {a}: it must match a's trailing dimensions"),
            ));
        }
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let (a, b) = (inputs[0].as_f32(), inputs[1].as_f32());
        let v = a
            .iter()
            .enumerate()
            .map(|(i, x)| self.apply(*x, b[i % b.len()]))
            .collect();
        HostTensor::f32(out.shape.clone(), v)
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let n = out.desc.shape.numel();
        let nb = inputs[1].desc.shape.numel();
        let op = match self.kind {
            BinaryKind::Add => "+",
            BinaryKind::Sub => "-",
            BinaryKind::Mul => "*",
        };
        let per = cx.rows_per_chunk("the operands", 1)?;
        let kernel = Kernel::new("binary").read("a").read("b").define("OP", op);
        // Each chunk: (start in a, length, start in b, length of b's bound range).
        let mut work = Vec::new();
        if cx.fits(&inputs[1]) {
            work.extend(chunks(n, per).map(|(s, e)| (s, e - s, None)));
        } else {
            // b is too large to bind whole: keep every chunk inside one repetition of b so the
            // part of b it reads is one contiguous range.
            for r in 0..n / nb {
                work.extend(chunks(nb, per).map(|(s, e)| (r * nb + s, e - s, Some(s))));
            }
        }
        for (s, len, b_start) in work {
            let oa = cx.bind(&inputs[0], s, len)?;
            let (ob, nb_eff, start) = match b_start {
                None => (cx.bind_all(&inputs[1])?, nb, s),
                Some(bs) => (cx.bind(&inputs[1], bs, len)?, len, 0),
            };
            let oo = cx.bind(out, s, len)?;
            let params = BinaryParams {
                n: len as u32,
                nb: nb_eff as u32,
                start: start as u32,
                off_a: oa,
                off_b: ob,
                off_out: oo,
            };
            let groups = cx.grid(len.div_ceil(256));
            cx.dispatch(kernel.clone(), &params, groups)?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        out.shape.numel() as u64
    }
}

impl Graph {
    /// `a + b`, with `b` repeated over `a`'s leading dimensions.
    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(
            Binary {
                kind: BinaryKind::Add,
            },
            &[a, b],
        )
    }
    /// `a - b`, with `b` repeated over `a`'s leading dimensions.
    pub fn sub(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(
            Binary {
                kind: BinaryKind::Sub,
            },
            &[a, b],
        )
    }
    /// `a * b`, with `b` repeated over `a`'s leading dimensions.
    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.push(
            Binary {
                kind: BinaryKind::Mul,
            },
            &[a, b],
        )
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use super::{Binary, BinaryKind};
    use crate::ops::cases::prelude::*;

    pub(crate) fn binary(f: DType, kind: BinaryKind, a: &[usize], b: &[usize]) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc(a.to_vec()))?;
        let y = g.input("y", g.float_desc(b.to_vec()))?;
        let z = g.push(Binary { kind }, &[x, y])?;
        g.output(z, "z")?;
        done(g, vec![("x", rand(a, 6, 1.0)), ("y", rand(b, 7, 1.0))])
    }
}
