//! Params a checkpoint stores as several tensors: a fused projection's weight `(3·D, D)` is
//! `to_q`, `to_k` and `to_v` stacked along their first dimension. The graph reads one param;
//! loading, random weights and the CPU reference see the checkpoint's own keys, each mapped to
//! its range of the param's elements.

use std::collections::HashMap;

use super::{Graph, Source, TensorId};
use crate::error::{Error, Result};
use crate::tensor::{DType, HostTensor, Shape, TensorDesc};

/// One tensor of a checkpoint as a graph reads it: the whole of a param, or a part of a
/// stacked one.
#[derive(Clone, Debug)]
pub struct CheckpointTensor {
    /// The checkpoint's key.
    pub key: String,
    /// Its shape in the checkpoint, stored as the param is.
    pub desc: TensorDesc,
    /// The param it is (part of).
    pub param: TensorId,
    /// Where it starts in the param, in elements.
    pub offset: usize,
}

/// Whether a part of `numel` elements can start any param of `dtype` and be followed by
/// another: every part's values, and a q8/q4 part's f16 block scales, must fill whole 4-byte
/// words, because a device buffer is written by whole words.
pub fn stackable(dtype: DType, numel: usize) -> bool {
    let whole_words = (numel as u64 * dtype.bits() as u64).is_multiple_of(32);
    match dtype {
        // Two f16 scales a word.
        DType::Q8 | DType::Q4 => {
            whole_words
                && numel.is_multiple_of(crate::quant::BLOCK)
                && crate::quant::blocks(numel).is_multiple_of(2)
        }
        _ => whole_words,
    }
}

impl Graph {
    /// A param `name` (a name no checkpoint holds) that the checkpoint stores as `parts`, each
    /// `(key, shape)`, stacked along the first dimension; every part has the same trailing
    /// dimensions and is stored as `dtype`.
    pub fn param_stacked(
        &mut self,
        name: &str,
        parts: &[(String, Shape)],
        dtype: DType,
    ) -> Result<TensorId> {
        let bad = |why: String| Err(Error::Graph(format!("stacked param `{name}`: {why}")));
        let Some((_, first)) = parts.first() else {
            return bad("no parts".into());
        };
        let tail = &first.dims()[1.min(first.rank())..];
        let mut rows = 0;
        for (key, shape) in parts {
            if shape.rank() == 0 || &shape.dims()[1..] != tail {
                return bad(format!("part `{key}` {shape} does not stack on {first}"));
            }
            if !stackable(dtype, shape.numel()) {
                return bad(format!(
                    "part `{key}` {shape} does not fill whole words as {}",
                    dtype.name()
                ));
            }
            if self.find(key).is_some() || self.stacked_parts().any(|p| &p.0 == key) {
                return bad(format!("`{key}` is already a param"));
            }
            rows += shape.dims()[0];
        }
        let mut dims = vec![rows];
        dims.extend_from_slice(tail);
        let id = self.param_as(name, dims, dtype)?;
        self.stacked.insert(id, parts.to_vec());
        Ok(id)
    }

    /// The (key, shape) of every part of every stacked param.
    fn stacked_parts(&self) -> impl Iterator<Item = &(String, Shape)> {
        self.stacked.values().flatten()
    }

    /// Every checkpoint tensor the graph's params are made of, in the order of the params.
    pub fn checkpoint_tensors(&self) -> Vec<CheckpointTensor> {
        let mut out = Vec::new();
        for (id, info) in self.tensors() {
            if !matches!(info.source, Source::Param) {
                continue;
            }
            match self.stacked.get(&id) {
                None => out.push(CheckpointTensor {
                    key: info.name.clone(),
                    desc: info.desc.clone(),
                    param: id,
                    offset: 0,
                }),
                Some(parts) => {
                    let mut offset = 0;
                    for (key, shape) in parts {
                        out.push(CheckpointTensor {
                            key: key.clone(),
                            desc: TensorDesc::new(shape.clone(), info.desc.dtype),
                            param: id,
                            offset,
                        });
                        offset += shape.numel();
                    }
                }
            }
        }
        out
    }

    /// The value of stacked param `id` from its parts in `tensors` (by checkpoint key), or
    /// `None` when `id` is not stacked. A missing or misshapen part is an error naming it.
    pub fn stack_value(
        &self,
        id: TensorId,
        tensors: &HashMap<String, HostTensor>,
    ) -> Option<Result<HostTensor>> {
        let parts = self.stacked.get(&id)?;
        let info = self.info(id);
        let mut values = Vec::with_capacity(info.desc.shape.numel());
        for (key, shape) in parts {
            match tensors.get(key) {
                Some(t) if &t.shape == shape => values.extend_from_slice(t.as_f32()),
                Some(t) => {
                    return Some(Err(Error::Graph(format!(
                        "`{key}` (part of `{}`) must be {shape}, got {}",
                        info.name, t.shape
                    ))))
                }
                None => {
                    return Some(Err(Error::Graph(format!(
                        "no value given for `{key}` (part of `{}`)",
                        info.name
                    ))))
                }
            }
        }
        Some(Ok(HostTensor::f32(info.desc.shape.clone(), values)))
    }
}
