//! What an op is to the engine: shape inference, a CPU reference, and how it encodes its
//! dispatches.

use super::encode::{EncodeCx, TensorArg};
use crate::error::{Error, Result};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// An op: shape inference, CPU reference, GPU encoding.
pub trait Op: std::fmt::Debug + Send + Sync {
    fn name(&self) -> &'static str;
    /// The output's description, or an error naming the op and the offending shapes.
    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc>;
    /// The reference result, computed plainly on the CPU.
    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor;
    /// Emits the op's dispatches, split so that every binding respects the device's limit.
    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()>;
    /// Floating-point operations (a multiply-add counts 2).
    fn flops(&self, _inputs: &[&TensorDesc], _out: &TensorDesc) -> u64 {
        0
    }
    /// What a profile groups this node's time under: the op's name, or a finer label where ops
    /// of one name differ in kind (attention) or shape (matmul).
    fn label(&self, _inputs: &[&TensorDesc], _out: &TensorDesc) -> String {
        self.name().to_string()
    }
}

/// Checks the input count and that every input is a float of one type; returns that type.
pub(crate) fn expect_inputs(op: &'static str, inputs: &[&TensorDesc], n: usize) -> Result<DType> {
    if inputs.len() != n {
        return Err(Error::shape(
            op,
            format!("takes {n} inputs, got {}", inputs.len()),
        ));
    }
    let first = inputs.first().map_or(DType::F32, |t| t.dtype);
    for (i, t) in inputs.iter().enumerate() {
        if !t.dtype.is_float() || t.dtype != first {
            return Err(Error::shape(
                op,
                format!(
                    "input {i} is {:?}; all inputs must be floats of one type ({first:?})",
                    t.dtype
                ),
            ));
        }
    }
    Ok(first)
}

/// Splits `n` rows into chunks of at most `per` rows.
pub(crate) fn chunks(n: usize, per: usize) -> impl Iterator<Item = (usize, usize)> {
    let per = per.max(1);
    (0..n.div_ceil(per)).map(move |c| (c * per, ((c + 1) * per).min(n)))
}
