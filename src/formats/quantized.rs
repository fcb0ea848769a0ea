//! How a model directory stores packed Linear weights (`docs/quantization.md`).
//!
//! A component whose Linear weights are packed says so in its `config.json`:
//!
//! ```json
//! "quantization": { "format_version": 1, "linear": "q8", "block_size": 32 }
//! ```
//!
//! and its safetensors files hold each packed weight `{key}` as its packed values (`BF16`
//! `(N, K)`; q8: `I8` `(N, K)`; q4: `U8` `(N, K/2)`, element `2j` in byte `j`'s low nibble)
//! and, for q8 and q4, `{key}_scale`: `F16` `(N, K/32)`, one scale per block of 32 along K
//! (`crate::quant` has the arithmetic). Every other tensor keeps its float type. The files'
//! metadata repeats the format (`ptdit.format_version`, `ptdit.linear`) for tools that read
//! them alone.

use serde::{Deserialize, Serialize};

use super::safetensors::{Dtype, OutEntry};
use crate::error::{config_error, Result};
use crate::quant::BLOCK;
use crate::tensor::{DType, Shape};

/// The only layout written and read so far.
pub const FORMAT_VERSION: u32 = 1;
/// The key of a q8/q4 weight's scales is the weight's key with this after it.
pub const SCALE_SUFFIX: &str = "_scale";

/// The `quantization` block of a component's `config.json`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    pub format_version: u32,
    /// `bf16`, `q8` or `q4`.
    pub linear: String,
    #[serde(default = "default_block")]
    pub block_size: usize,
}

fn default_block() -> usize {
    BLOCK
}

impl Quantization {
    /// The block for `storage` (a packed format).
    pub fn new(storage: DType) -> Self {
        Quantization {
            format_version: FORMAT_VERSION,
            linear: storage.name().to_string(),
            block_size: BLOCK,
        }
    }

    /// The packed format of the component's Linear weights, or why this block cannot be read.
    pub fn storage(&self) -> Result<DType> {
        if self.format_version != FORMAT_VERSION {
            return Err(config_error(format!(
                "quantization: format_version {} is not one this engine reads (it reads {})",
                self.format_version, FORMAT_VERSION
            )));
        }
        let storage = DType::from_name(&self.linear)
            .filter(|d| d.is_packed())
            .ok_or_else(|| {
                config_error(format!(
                    "quantization: linear `{}` is not a packed weight format (bf16, q8, q4)",
                    self.linear
                ))
            })?;
        if self.block_size != BLOCK {
            return Err(config_error(format!(
                "quantization: block_size {} is not supported (blocks are {BLOCK} along K)",
                self.block_size
            )));
        }
        Ok(storage)
    }
}

/// The packed Linear storage a component's optional `quantization` block gives.
pub fn linear_storage(q: &Option<Quantization>) -> Result<Option<DType>> {
    q.as_ref().map(Quantization::storage).transpose()
}

/// The on-disk shape of a packed weight of logical shape `dims` (`(N, K)`).
pub fn values_shape(dtype: DType, dims: &[usize]) -> Shape {
    let mut d = dims.to_vec();
    if let (DType::Q4, Some(last)) = (dtype, d.last_mut()) {
        *last /= 2;
    }
    Shape(d)
}

/// The file tensors of weight `key` of logical shape `dims` stored as `dtype` (a packed
/// format): its values, then for q8 and q4 `{key}_scale`, in the order `quant::file_bytes`
/// writes their data.
pub fn file_entries(key: &str, dtype: DType, dims: &[usize]) -> Vec<OutEntry> {
    let values = match dtype {
        DType::BF16 => Dtype::BF16,
        DType::Q8 => Dtype::I8,
        _ => Dtype::U8,
    };
    let mut out = vec![OutEntry {
        key: key.to_string(),
        dtype: values,
        shape: values_shape(dtype, dims).0,
    }];
    if matches!(dtype, DType::Q8 | DType::Q4) {
        out.push(OutEntry {
            key: format!("{key}{SCALE_SUFFIX}"),
            dtype: Dtype::F16,
            shape: scale_shape(dims).0,
        });
    }
    out
}

/// The shape of the scales of a q8/q4 weight of logical shape `dims`.
pub fn scale_shape(dims: &[usize]) -> Shape {
    let mut d = dims.to_vec();
    if let Some(last) = d.last_mut() {
        *last /= BLOCK;
    }
    Shape(d)
}
