//! The model directory: one folder per component, each a `config.json` (the official names)
//! and safetensors weights (any number of `*.safetensors` files, merged).
//!
//! ```text
//! MODEL/
//!   transformer/   config.json + *.safetensors   PT-DiT (official keys)
//!   text_encoder/  config.json + *.safetensors   T5 encoder (HF keys)
//!   tokenizer/     tokenizer.json or spiece.model   T5 tokenizer (HF or SentencePiece format)
//!   vae/           config.json + *.safetensors   CausalVAE (official keys; encoder ignored)
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::t5::T5Config;
use crate::model::vae::VaeConfig;
use crate::model::weights::TensorFile;
use crate::model::PtditConfig;
use crate::pipeline::text::Tokenizer;
use crate::tensor::HostTensor;

pub const TRANSFORMER: &str = "transformer";
pub const TEXT_ENCODER: &str = "text_encoder";
pub const TOKENIZER: &str = "tokenizer";
pub const VAE: &str = "vae";

/// Every component, loaded into host memory.
pub struct Components {
    pub transformer: PtditConfig,
    pub transformer_weights: HashMap<String, HostTensor>,
    pub text_encoder: T5Config,
    pub text_encoder_weights: HashMap<String, HostTensor>,
    pub tokenizer: Tokenizer,
    pub vae: VaeConfig,
    pub vae_weights: HashMap<String, HostTensor>,
}

fn weights_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_weights(dir: &Path) -> Result<HashMap<String, HostTensor>> {
    let mut all = HashMap::new();
    for f in weights_in(dir)? {
        all.extend(TensorFile::read(&f)?.tensors);
    }
    Ok(all)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Checks that every piece is there, listing all that are missing.
pub fn check(root: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for comp in [TRANSFORMER, TEXT_ENCODER, VAE] {
        let d = root.join(comp);
        if !d.join("config.json").is_file() {
            missing.push(format!("{comp}/config.json"));
        }
        if !d.is_dir() || weights_in(&d).map(|w| w.is_empty()).unwrap_or(true) {
            missing.push(format!("{comp}/*.safetensors"));
        }
    }
    let tok = root.join(TOKENIZER);
    if !tok.join("tokenizer.json").is_file() && !tok.join("spiece.model").is_file() {
        missing.push(format!("{TOKENIZER}/tokenizer.json (or spiece.model)"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Model(format!(
        "{} is not a complete model directory; missing: {} (layout: transformer/, text_encoder/, vae/ with config.json and *.safetensors, tokenizer/tokenizer.json; `ptdit convert` makes safetensors from the official checkpoints)",
        root.display(),
        missing.join(", ")
    )))
}

pub fn load(root: impl AsRef<Path>) -> Result<Components> {
    let root = root.as_ref();
    check(root)?;
    Ok(Components {
        transformer: PtditConfig::from_json(&read_text(
            &root.join(TRANSFORMER).join("config.json"),
        )?)?,
        transformer_weights: read_weights(&root.join(TRANSFORMER))?,
        text_encoder: T5Config::from_json(&read_text(
            &root.join(TEXT_ENCODER).join("config.json"),
        )?)?,
        text_encoder_weights: read_weights(&root.join(TEXT_ENCODER))?,
        tokenizer: Tokenizer::from_dir(root.join(TOKENIZER))?,
        vae: VaeConfig::from_json(&read_text(&root.join(VAE).join("config.json"))?)?,
        vae_weights: read_weights(&root.join(VAE))?,
    })
}
