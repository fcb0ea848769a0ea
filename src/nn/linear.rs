//! `Linear`: `x · weightᵀ + bias`, the weight stored `(out, in)` as checkpoints store it.
//!
//! The weight's storage type is the Linear's, not the caller's: every large weight of the
//! models is declared here, so a storage format other than the graph's float type (bf16,
//! int8/int4 blocks) changes this file and the matmul op, not the models.

use super::adaln::{AdaLn, Modulation};
use super::param;
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};
use crate::tensor::{DType, Shape};

/// A linear layer's params in a graph.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// `(out, in)`.
    pub weight: TensorId,
    /// `(out)`.
    pub bias: Option<TensorId>,
    /// How the weight is stored: the graph's float type, or the packed format the graph gives
    /// its Linears ([`Graph::set_linear_storage`]) where the rows allow it.
    pub storage: DType,
    pub in_features: usize,
    pub out_features: usize,
}

/// What the matmul adds to `x · weightᵀ + bias` before it stores the result, in its epilogue.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue {
    /// The product alone.
    None,
    /// `gelu_tanh(·)`.
    Gelu,
    /// `residual + ·`.
    Residual(TensorId),
    /// `gate · (·)`, the gate one of the adaLN vectors.
    Gate { ada: AdaLn, gate: Modulation },
    /// `residual + gate · (·)`, the gate one of the adaLN vectors.
    Gated {
        residual: TensorId,
        ada: AdaLn,
        gate: Modulation,
    },
}

impl Linear {
    /// `{prefix}.weight` `(out, in)` and, with `bias`, `{prefix}.bias` `(out)`. The weight is
    /// stored as the graph's Linear storage when set and its rows hold whole blocks of the
    /// format (`quant::fits_rows`: q8 and q4 need `in` a multiple of 32); otherwise, and for
    /// biases, as the float type.
    pub fn new(
        g: &mut Graph,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        let key = format!("{prefix}.weight");
        let shape = [out_features, in_features];
        let weight = match g.find(&key) {
            Some(w) => w,
            None => g.param_as(&key, shape, weight_storage(g, in_features))?,
        };
        let bias = match bias {
            true => Some(param(g, &format!("{prefix}.bias"), &[out_features])?),
            false => None,
        };
        Self::from_params(g, weight, bias)
    }

    /// The Linears `{prefix}.{name}` of each of `names`, `in → out` each, as one Linear
    /// `in → n·out` whose weight and bias stack theirs along the output (a fused projection:
    /// one matmul instead of n). The stacked params are named `{prefix}.{a}+{b}+….weight` (and
    /// `.bias`), which no checkpoint uses; loading fills them from the parts' own keys. Stored
    /// as [`Linear::new`] would store each part; `None` when a part would not fill whole words
    /// of the buffer (`graph::stackable`), and the caller keeps them apart.
    pub fn stacked(
        g: &mut Graph,
        prefix: &str,
        names: &[&str],
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Option<Self>> {
        let storage = weight_storage(g, in_features);
        let float = g.float();
        let fits = crate::graph::stackable(storage, in_features * out_features)
            && (!bias || crate::graph::stackable(float, out_features));
        if !fits || names.is_empty() {
            return Ok(None);
        }
        let mut stack = |suffix: &str, shape: &[usize], dtype| -> Result<TensorId> {
            let name = format!("{prefix}.{}.{suffix}", names.join("+"));
            if let Some(t) = g.find(&name) {
                return Ok(t);
            }
            let parts: Vec<_> = (names.iter())
                .map(|n| (format!("{prefix}.{n}.{suffix}"), Shape(shape.to_vec())))
                .collect();
            g.param_stacked(&name, &parts, dtype)
        };
        let weight = stack("weight", &[out_features, in_features], storage)?;
        let bias = match bias {
            true => Some(stack("bias", &[out_features], float)?),
            false => None,
        };
        Self::from_params(g, weight, bias).map(Some)
    }

    /// A convolution whose kernel covers one element (`{prefix}.weight` `(out, in, 1, …, 1)`
    /// and `{prefix}.bias`): per position it is a Linear, read through a free reshape.
    pub fn pointwise_conv(
        g: &mut Graph,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        spatial_dims: usize,
    ) -> Result<Self> {
        let mut shape = vec![out_features, in_features];
        shape.extend(std::iter::repeat_n(1, spatial_dims));
        let w = param(g, &format!("{prefix}.weight"), &shape)?;
        let weight = g.reshape(w, [out_features, in_features])?;
        let bias = param(g, &format!("{prefix}.bias"), &[out_features])?;
        Self::from_params(g, weight, Some(bias))
    }

    /// A Linear over params already in the graph (e.g. a convolution's weight reshaped).
    pub fn from_params(g: &Graph, weight: TensorId, bias: Option<TensorId>) -> Result<Self> {
        let desc = g.desc(weight);
        let dims = desc.shape.dims();
        if dims.len() != 2 {
            return Err(Error::shape(
                "linear",
                format!("weight {} must be (out, in)", desc.shape),
            ));
        }
        Ok(Linear {
            weight,
            bias,
            storage: desc.dtype,
            in_features: dims[1],
            out_features: dims[0],
        })
    }

    /// `x · weightᵀ + bias`.
    pub fn forward(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        self.forward_into(g, x, Epilogue::None)
    }

    /// `x · weightᵀ + bias` with `epilogue` applied in the same kernel.
    pub fn forward_into(&self, g: &mut Graph, x: TensorId, epilogue: Epilogue) -> Result<TensorId> {
        let (w, b) = (self.weight, self.bias);
        match epilogue {
            Epilogue::None => g.matmul(x, w, b),
            Epilogue::Gelu => g.matmul_gelu(x, w, b),
            Epilogue::Residual(r) => g.matmul_residual(x, w, b, r),
            Epilogue::Gate { ada, gate } => {
                g.matmul_gated(x, w, b, ada.mods, ada.table, gate.chunk())
            }
            Epilogue::Gated {
                residual,
                ada,
                gate,
            } => g.matmul_gated_residual(x, w, b, ada.mods, ada.table, gate.chunk(), residual),
        }
    }
}

/// How a Linear weight of `in_features` columns is stored: the graph's Linear storage where its
/// rows hold whole blocks of the format (`quant::fits_rows`: q8 and q4 need a multiple of 32),
/// else the float type. The one place the choice is made.
fn weight_storage(g: &Graph, in_features: usize) -> DType {
    match g.linear_storage() {
        Some(s) if crate::quant::fits_rows(s, in_features) => s,
        _ => g.float(),
    }
}
