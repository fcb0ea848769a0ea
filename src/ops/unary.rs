//! Activations: SiLU and GELU with the tanh approximation.

use crate::error::Result;
use crate::graph::Graph;
use crate::kernel::{chunks, expect_inputs, EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{HostTensor, TensorDesc, TensorId};

crate::param_block! {
    pub struct UnaryParams {
        n: u32,
        off_x: u32,
        off_out: u32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryKind {
    Silu,
    GeluTanh,
}

#[derive(Clone, Debug)]
pub struct Unary {
    pub kind: UnaryKind,
}

pub fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

pub fn gelu_tanh(v: f32) -> f32 {
    let u = (2.0f64 / std::f64::consts::PI).sqrt() * (v as f64 + 0.044715 * (v as f64).powi(3));
    (0.5 * v as f64 * (1.0 + u.tanh())) as f32
}

impl Op for Unary {
    fn name(&self) -> &'static str {
        match self.kind {
            UnaryKind::Silu => "silu",
            UnaryKind::GeluTanh => "gelu_tanh",
        }
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        expect_inputs(self.name(), inputs, 1)?;
        Ok(inputs[0].clone())
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let f = match self.kind {
            UnaryKind::Silu => silu,
            UnaryKind::GeluTanh => gelu_tanh,
        };
        HostTensor::f32(
            out.shape.clone(),
            inputs[0].as_f32().iter().map(|v| f(*v)).collect(),
        )
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let n = out.desc.shape.numel();
        let kernel = Kernel::new("unary").read("x").define("FN", self.name());
        for (s, e) in chunks(n, cx.rows_per_chunk("the operand", 1)?) {
            let params = UnaryParams {
                n: (e - s) as u32,
                off_x: cx.bind(&inputs[0], s, e - s)?,
                off_out: cx.bind(out, s, e - s)?,
            };
            cx.dispatch(kernel.clone(), &params, cx.grid((e - s).div_ceil(256)))?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        8 * out.shape.numel() as u64
    }
}

/// GELU(tanh) in place over `out`, for a matmul whose product did not fuse it.
pub(crate) fn gelu_in_place(cx: &mut EncodeCx, out: &TensorArg) -> Result<()> {
    let n = out.desc.shape.numel();
    let kernel = Kernel::new("unary")
        .define("FN", "gelu_tanh")
        .flag("INPLACE", true);
    for (s, e) in chunks(n, cx.rows_per_chunk("the output", 1)?) {
        let params = UnaryParams {
            n: (e - s) as u32,
            off_x: 0,
            off_out: cx.bind(out, s, e - s)?,
        };
        cx.dispatch(kernel.clone(), &params, cx.grid((e - s).div_ceil(256)))?;
    }
    Ok(())
}

impl Graph {
    pub fn silu(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(
            Unary {
                kind: UnaryKind::Silu,
            },
            &[x],
        )
    }
    pub fn gelu_tanh(&mut self, x: TensorId) -> Result<TensorId> {
        self.push(
            Unary {
                kind: UnaryKind::GeluTanh,
            },
            &[x],
        )
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use crate::ops::cases::prelude::*;

    pub(crate) fn unary(f: DType, gelu: bool, n: usize) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let x = g.input("x", g.float_desc([n]))?;
        let y = if gelu { g.gelu_tanh(x) } else { g.silu(x) }?;
        g.output(y, "y")?;
        // A wide range: saturated tails on both sides must not overflow.
        done(g, vec![("x", rand(&[n], 8, 12.0))])
    }
}
