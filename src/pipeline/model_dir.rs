//! The model directory: one folder per component, each a `config.json` (the official names)
//! and safetensors weights (any number of `*.safetensors` files, merged).
//!
//! ```text
//! MODEL/
//!   transformer/   config.json + *.safetensors   PT-DiT (official keys)
//!   text_encoder/  config.json + *.safetensors   T5 encoder (HF keys)
//!   tokenizer/     tokenizer.json or spiece.model   T5 tokenizer (HF or SentencePiece format)
//!   vae/           config.json + *.safetensors   CausalVAE (official keys; encoder ignored)
//!   scheduler/     scheduler_config.json          sampler defaults (optional)
//! ```
//!
//! A model without `vae/` works in pixel space: the transformer denoises RGB directly (the
//! embedded emoji model). `tokenizer/tokenizer_config.json` may give `model_max_length`, the
//! text length (200 when absent, as released).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::model::t5::T5Config;
use crate::model::vae::VaeConfig;
use crate::model::weights::TensorFile;
use crate::model::PtditConfig;
use crate::pipeline::sampler::SchedulerConfig;
use crate::pipeline::text::{Tokenizer, MAX_LEN};
use crate::tensor::HostTensor;

pub const TRANSFORMER: &str = "transformer";
pub const TEXT_ENCODER: &str = "text_encoder";
pub const TOKENIZER: &str = "tokenizer";
pub const VAE: &str = "vae";
pub const SCHEDULER: &str = "scheduler";

/// Every component, loaded into host memory.
pub struct Components {
    pub transformer: PtditConfig,
    pub transformer_weights: HashMap<String, HostTensor>,
    pub text_encoder: T5Config,
    pub text_encoder_weights: HashMap<String, HostTensor>,
    pub tokenizer: Tokenizer,
    /// Tokens per prompt, EOS and padding included.
    pub text_len: usize,
    /// `None` for a pixel-space model.
    pub vae: Option<VaeConfig>,
    pub vae_weights: HashMap<String, HostTensor>,
    pub scheduler: SchedulerConfig,
}

/// The files of a model directory by relative path (`transformer/config.json`, …): read from
/// disk natively, handed over by JavaScript in the browser.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Reads every file of a model directory that the pipeline uses.
pub fn read_dir(root: &Path) -> Result<Files> {
    let mut files = Files::new();
    for comp in [TRANSFORMER, TEXT_ENCODER, TOKENIZER, VAE, SCHEDULER] {
        let d = root.join(comp);
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = name.ends_with(".safetensors")
                || [
                    "config.json",
                    "tokenizer.json",
                    "spiece.model",
                    "tokenizer_config.json",
                    "scheduler_config.json",
                ]
                .contains(&name.as_str());
            if wanted && e.path().is_file() {
                let bytes = std::fs::read(e.path()).map_err(|err| Error::io(e.path(), err))?;
                files.insert(format!("{comp}/{name}"), bytes);
            }
        }
    }
    Ok(files)
}

fn weights(files: &Files, comp: &str) -> Result<HashMap<String, HostTensor>> {
    let mut all = HashMap::new();
    for (path, bytes) in files.range(format!("{comp}/")..) {
        if !path.starts_with(&format!("{comp}/")) {
            break;
        }
        if path.ends_with(".safetensors") {
            let f = TensorFile::parse(bytes).map_err(|e| Error::Model(format!("{path}: {e}")))?;
            all.extend(f.tensors);
        }
    }
    Ok(all)
}

fn text<'a>(files: &'a Files, path: &str) -> Result<&'a str> {
    let b = files
        .get(path)
        .ok_or_else(|| Error::Model(format!("missing {path}")))?;
    std::str::from_utf8(b).map_err(|_| Error::Model(format!("{path} is not UTF-8 text")))
}

/// Checks that every piece is there, listing all that are missing.
pub fn check(files: &Files) -> Result<()> {
    let mut missing = Vec::new();
    // Only a pixel-space transformer (3 input channels) may come without a VAE.
    let pixel_space = files
        .get("transformer/config.json")
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| PtditConfig::from_json(t).ok())
        .is_some_and(|c| c.in_channels == 3);
    let has = |comp: &str| files.keys().any(|k| k.starts_with(&format!("{comp}/")));
    for comp in [TRANSFORMER, TEXT_ENCODER, VAE] {
        if comp == VAE && pixel_space && !has(VAE) {
            continue;
        }
        if !files.contains_key(&format!("{comp}/config.json")) {
            missing.push(format!("{comp}/config.json"));
        }
        if !files
            .keys()
            .any(|k| k.starts_with(&format!("{comp}/")) && k.ends_with(".safetensors"))
        {
            missing.push(format!("{comp}/*.safetensors"));
        }
    }
    if !files.contains_key("tokenizer/tokenizer.json")
        && !files.contains_key("tokenizer/spiece.model")
    {
        missing.push(format!("{TOKENIZER}/tokenizer.json (or spiece.model)"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Model(format!(
        "not a complete model directory; missing: {} (layout: transformer/, text_encoder/, vae/ (absent for a pixel-space model) with config.json and *.safetensors, tokenizer/tokenizer.json or spiece.model; `ptdit convert` makes safetensors from the official checkpoints)",
        missing.join(", ")
    )))
}

/// Loads every component from the files of a model directory.
pub fn from_files(files: &Files) -> Result<Components> {
    check(files)?;
    let tokenizer = match files.get("tokenizer/tokenizer.json") {
        Some(b) => Tokenizer::from_bytes(b)?,
        None => Tokenizer::from_spiece(
            files
                .get("tokenizer/spiece.model")
                .map(|v| v.as_slice())
                .unwrap_or_default(),
        )?,
    };
    let transformer = PtditConfig::from_json(text(files, "transformer/config.json")?)?;
    let vae = match files.contains_key("vae/config.json") {
        true => Some(VaeConfig::from_json(text(files, "vae/config.json")?)?),
        false if transformer.in_channels == 3 => None,
        false => {
            return Err(Error::Model(format!(
                "no vae/: a pixel-space model must have 3 input channels (RGB), this transformer has {}",
                transformer.in_channels
            )))
        }
    };
    let text_len = match files.get("tokenizer/tokenizer_config.json") {
        None => MAX_LEN,
        Some(_) => {
            #[derive(serde::Deserialize)]
            struct TokenizerConfig {
                model_max_length: Option<usize>,
            }
            let c: TokenizerConfig =
                serde_json::from_str(text(files, "tokenizer/tokenizer_config.json")?)
                    .map_err(|e| Error::Model(format!("tokenizer/tokenizer_config.json: {e}")))?;
            match c.model_max_length {
                Some(0) => {
                    return Err(Error::Model(
                        "tokenizer/tokenizer_config.json: model_max_length must be positive".into(),
                    ))
                }
                Some(n) => n,
                None => MAX_LEN,
            }
        }
    };
    let scheduler = match files.get("scheduler/scheduler_config.json") {
        Some(_) => SchedulerConfig::from_json(text(files, "scheduler/scheduler_config.json")?)?,
        None => SchedulerConfig::default(),
    };
    Ok(Components {
        transformer,
        transformer_weights: weights(files, TRANSFORMER)?,
        text_encoder: T5Config::from_json(text(files, "text_encoder/config.json")?)?,
        text_encoder_weights: weights(files, TEXT_ENCODER)?,
        tokenizer,
        text_len,
        vae,
        vae_weights: weights(files, VAE)?,
        scheduler,
    })
}

/// Loads a model directory from disk.
pub fn load(root: impl AsRef<Path>) -> Result<Components> {
    let root = root.as_ref();
    from_files(&read_dir(root)?).map_err(|e| match e {
        Error::Model(m) => Error::Model(format!("{}: {m}", root.display())),
        e => e,
    })
}
