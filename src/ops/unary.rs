//! Activations: SiLU and GELU with the tanh approximation.

use super::{chunks, expect_inputs, Op};
use crate::error::Result;
use crate::gpu::shaders::Kernel;
use crate::graph::encode::TensorArg;
use crate::graph::{EncodeCx, Graph, Params, TensorId};
use crate::tensor::{HostTensor, TensorDesc};

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
        let per = cx.rows_per_chunk("the operand", 1)?;
        for (s, e) in chunks(n, per) {
            let ox = cx.bind(&inputs[0], s, e - s)?;
            let oo = cx.bind(out, s, e - s)?;
            let groups = cx.grid((e - s).div_ceil(256));
            let kernel = Kernel::new("unary", 1).define("FN", self.name());
            cx.dispatch(kernel, Params::new().u(e - s).u(ox).u(oo), groups)?;
        }
        Ok(())
    }

    fn flops(&self, _inputs: &[&TensorDesc], out: &TensorDesc) -> u64 {
        8 * out.shape.numel() as u64
    }
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
