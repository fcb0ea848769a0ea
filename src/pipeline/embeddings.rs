//! Prompts without T5: the text encoder's outputs for a prompt and its negative prompt, with
//! their padding masks, as the transformer reads them. `ptdit encode` writes them to a
//! safetensors file; `generate --embeddings`, [`Request::embeddings`](super::generate::Request)
//! and the embedding and JS APIs take them instead of a prompt and then never load the text
//! encoder (a game with fixed prompts ships their embeddings and pays no T5 memory).
//!
//! File: `prompt.embeddings` and `negative.embeddings` `(1, L, C)` f32, `prompt.mask` and
//! `negative.mask` `(1, L)` f32 (1 for a token, 0 for padding); metadata `ptdit.embeddings` =
//! the format version, and the two prompts for the record.

use std::collections::HashMap;

use crate::error::{Error, LoadError, Result};
use crate::formats::safetensors::TensorFile;
use crate::tensor::HostTensor;

/// The layout written and read.
pub const FORMAT_VERSION: &str = "1";
const KEYS: [&str; 4] = [
    "prompt.embeddings",
    "prompt.mask",
    "negative.embeddings",
    "negative.mask",
];

/// A prompt and a negative prompt, encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptEmbeddings {
    /// `(1, L, C)`.
    pub cond: HostTensor,
    /// `L` values, 1 for a token and 0 for padding.
    pub cond_mask: Vec<f32>,
    pub uncond: HostTensor,
    pub uncond_mask: Vec<f32>,
}

impl PromptEmbeddings {
    /// Checks the shapes against a transformer reading `len` tokens of `channels`.
    pub fn check(&self, len: usize, channels: usize) -> Result<()> {
        for (what, e, m) in [
            ("prompt", &self.cond, &self.cond_mask),
            ("negative prompt", &self.uncond, &self.uncond_mask),
        ] {
            if e.shape.dims() != [1, len, channels] || m.len() != len {
                return Err(Error::Input(format!(
                    "the {what}'s embeddings are {} with a mask of {}; this model reads \
                     (1, {len}, {channels}) with a mask of {len} (encode with the model's text \
                     encoder and tokenizer)",
                    e.shape,
                    m.len()
                )));
            }
            if let Some(i) = e.as_f32().iter().position(|v| !v.is_finite()) {
                return Err(Error::Input(format!(
                    "the {what}'s embeddings hold a non-finite value at element {i}"
                )));
            }
            if m.iter().any(|v| *v != 0.0 && *v != 1.0) {
                return Err(Error::Input(format!(
                    "the {what}'s mask must hold 0 (padding) and 1 (token) only"
                )));
            }
        }
        Ok(())
    }

    /// The safetensors file `ptdit encode` writes.
    pub fn to_bytes(&self, prompt: &str, negative: &str) -> Result<Vec<u8>> {
        let mask = |m: &[f32]| HostTensor::f32([1, m.len()], m.to_vec());
        let tensors = [
            self.cond.clone(),
            mask(&self.cond_mask),
            self.uncond.clone(),
            mask(&self.uncond_mask),
        ];
        let bytes: Vec<(&str, Vec<usize>, &[u8])> = KEYS
            .iter()
            .zip(&tensors)
            .map(|(k, t)| (*k, t.shape.dims().to_vec(), t.bytes()))
            .collect();
        let views = bytes
            .iter()
            .map(|(k, shape, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .map(|v| (k.to_string(), v))
                    .map_err(|e| Error::Model(format!("embeddings: `{k}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = HashMap::from([
            ("ptdit.embeddings".to_string(), FORMAT_VERSION.to_string()),
            ("prompt".to_string(), prompt.to_string()),
            ("negative_prompt".to_string(), negative.to_string()),
        ]);
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::Model(format!("embeddings: {e}")))
    }

    /// Reads a file [`to_bytes`](Self::to_bytes) wrote; errors name what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let f = TensorFile::parse(bytes)?;
        match f.metadata.get("ptdit.embeddings").map(String::as_str) {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::load(LoadError::Config(format!(
                    "prompt embeddings of format version {v}; this engine reads version \
                     {FORMAT_VERSION}"
                ))))
            }
            None => {
                return Err(Error::load(LoadError::Config(
                    "not prompt embeddings (no `ptdit.embeddings` metadata; `ptdit encode` \
                     writes them)"
                        .into(),
                )))
            }
        }
        let [c, cm, u, um] = KEYS.map(|k| f.get(k).cloned());
        let (cond, cond_mask, uncond, uncond_mask) = (c?, cm?, u?, um?);
        Ok(PromptEmbeddings {
            cond,
            cond_mask: cond_mask.as_f32().to_vec(),
            uncond,
            uncond_mask: uncond_mask.as_f32().to_vec(),
        })
    }
}
