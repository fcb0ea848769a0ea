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

use crate::error::{Error, LoadError, Result};
use crate::gpu::GpuContext;
use crate::model::config_keys::misspelled;
use crate::model::t5::{self, T5Config};
use crate::model::upload::{self, DeviceWeights, Upload, Wanted};
use crate::model::vae::{self, VaeConfig};
use crate::model::{bounds, PtditConfig};
use crate::pipeline::sampler::SchedulerConfig;
use crate::pipeline::text::{Tokenizer, MAX_LEN};
use crate::tensor::{DType, HostTensor};

pub const TRANSFORMER: &str = "transformer";
pub const TEXT_ENCODER: &str = "text_encoder";
pub const TOKENIZER: &str = "tokenizer";
pub const VAE: &str = "vae";
pub const SCHEDULER: &str = "scheduler";
/// Every component folder, in the order they are read.
pub const COMPONENTS: [&str; 5] = [TRANSFORMER, TEXT_ENCODER, TOKENIZER, VAE, SCHEDULER];

/// A component's weights, by official key.
#[derive(Clone, Debug)]
pub enum Weights {
    /// Read whole into host memory (f32): uploaded when a pipeline is made.
    Host(HashMap<String, HostTensor>),
    /// Safetensors files in host memory, by path: streamed to the device through the same
    /// [`Upload`] as files from a disk or a network when a pipeline is made (packed weights
    /// stay packed).
    Files(Files),
    /// On the device already, streamed there as the files arrived ([`Streamed`]).
    Device(DeviceWeights),
}

impl Weights {
    /// The weights on the device (a pipeline uploads host weights when it is made).
    pub fn device(&self) -> Result<&DeviceWeights> {
        match self {
            Weights::Device(w) => Ok(w),
            Weights::Host(_) | Weights::Files(_) => Err(Error::Graph(
                "these weights were never uploaded to the device".into(),
            )),
        }
    }

    /// Puts host weights on the device as `wanted` describes them; checks device weights
    /// against it (a model streamed as f16 cannot run as f32).
    pub fn to_device(self, ctx: &GpuContext, wanted: Wanted) -> Result<Weights> {
        match self {
            Weights::Host(map) => Ok(Weights::Device(upload::upload_host(ctx, wanted, &map)?)),
            Weights::Files(files) => {
                let mut up = Upload::new(ctx, wanted);
                for (path, bytes) in &files {
                    up.push(path, bytes)?;
                    up.end(path)?;
                }
                Ok(Weights::Device(up.finish()?))
            }
            Weights::Device(w) => {
                w.check(&wanted)?;
                Ok(Weights::Device(w))
            }
        }
    }
}

/// Every component: configs, tokenizer, and weights on the host or the device.
pub struct Components {
    pub transformer: PtditConfig,
    pub transformer_weights: Weights,
    /// `None` for a directory without `text_encoder/`: it generates from embeddings only.
    pub text_encoder: Option<T5Config>,
    pub text_encoder_weights: Weights,
    /// Present with the text encoder.
    pub tokenizer: Option<Tokenizer>,
    /// Tokens per prompt, EOS and padding included.
    pub text_len: usize,
    /// `None` for a pixel-space model.
    pub vae: Option<VaeConfig>,
    pub vae_weights: Weights,
    pub scheduler: SchedulerConfig,
    /// Keys of the configs that look misspelled ("`shift_windw` is not read; did you mean
    /// `shift_window`?"), by file: a front end shows them.
    pub warnings: Vec<String>,
}

/// The files of a model directory by relative path (`transformer/config.json`, …): read from
/// disk natively, handed over by JavaScript in the browser.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Reads every file of a model directory that the pipeline uses.
pub fn read_dir(root: &Path) -> Result<Files> {
    let mut files = Files::new();
    for (rel, path) in list_dir(root)? {
        let bytes = std::fs::read(&path).map_err(|err| Error::io(&path, err))?;
        files.insert(rel, bytes);
    }
    Ok(files)
}

/// The files of a model directory that the pipeline uses: (relative path, path).
pub(crate) fn list_dir(root: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    let mut files = Vec::new();
    for comp in COMPONENTS {
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
                files.push((format!("{comp}/{name}"), e.path()));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The safetensors files of component `comp`.
fn weight_files(files: &Files, comp: &str) -> Files {
    let dir = format!("{comp}/");
    (files.range(dir.clone()..))
        .take_while(|(path, _)| path.starts_with(&dir))
        .filter(|(path, _)| path.ends_with(".safetensors"))
        .map(|(path, bytes)| (path.clone(), bytes.clone()))
        .collect()
}

fn text<'a>(files: &'a Files, path: &str) -> Result<&'a str> {
    let b = files.get(path).ok_or_else(|| {
        Error::load(LoadError::MissingFiles {
            missing: vec![path.to_string()],
            hint: String::new(),
        })
    })?;
    std::str::from_utf8(b).map_err(|_| {
        let error = LoadError::BadFile {
            format: "text",
            detail: "it is not UTF-8".into(),
        };
        Error::load_in(path, error)
    })
}

/// Checks that every piece is there, listing all that are missing.
pub fn check(files: &Files) -> Result<()> {
    let mut missing = Vec::new();
    // Only a pixel-space transformer (3 input channels) may come without a VAE; a broken
    // transformer config is reported as itself, not as a missing VAE.
    let pixel_space = match files.contains_key("transformer/config.json") {
        true => transformer_config(files)?.in_channels == 3,
        false => false,
    };
    let has = |comp: &str| files.keys().any(|k| k.starts_with(&format!("{comp}/")));
    for comp in [TRANSFORMER, TEXT_ENCODER, VAE] {
        // Without a text encoder the model generates from prompt embeddings only.
        if (comp == VAE && pixel_space || comp == TEXT_ENCODER) && !has(comp) {
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
    if has(TEXT_ENCODER)
        && !files.contains_key("tokenizer/tokenizer.json")
        && !files.contains_key("tokenizer/spiece.model")
    {
        missing.push(format!("{TOKENIZER}/tokenizer.json (or spiece.model)"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::load(LoadError::MissingFiles {
        missing,
        hint: " (layout: transformer/, text_encoder/, vae/ (absent for a pixel-space model) with config.json and *.safetensors, tokenizer/tokenizer.json or spiece.model; `ptdit convert` makes safetensors from the official checkpoints)".into(),
    }))
}

/// Loads every component from the files of a model directory; the weight files are kept as
/// they are and streamed to the device when a pipeline is made.
pub fn from_files(files: &Files) -> Result<Components> {
    let mut c = parts(files)?;
    c.transformer_weights = Weights::Files(weight_files(files, TRANSFORMER));
    c.text_encoder_weights = Weights::Files(weight_files(files, TEXT_ENCODER));
    c.vae_weights = Weights::Files(weight_files(files, VAE));
    Ok(c)
}

/// Everything but the weights (left empty): configs, tokenizer, scheduler.
fn parts(files: &Files) -> Result<Components> {
    check(files)?;
    let text_encoder = match files.contains_key("text_encoder/config.json") {
        true => Some(config(
            files,
            "text_encoder/config.json",
            T5Config::from_json,
        )?),
        false => None,
    };
    let tokenizer = match (files.get("tokenizer/tokenizer.json"), &text_encoder) {
        (_, None) => None,
        (Some(b), _) => {
            Some(Tokenizer::from_bytes(b).map_err(|e| e.in_file("tokenizer/tokenizer.json"))?)
        }
        (None, _) => {
            let path = "tokenizer/spiece.model";
            let bytes = files.get(path).map(|v| v.as_slice()).unwrap_or_default();
            Some(Tokenizer::from_spiece(bytes).map_err(|e| e.in_file(path))?)
        }
    };
    let transformer = transformer_config(files)?;
    let vae = match files.contains_key("vae/config.json") {
        true => Some(config(files, "vae/config.json", VaeConfig::from_json)?),
        false if transformer.in_channels == 3 => None,
        false => {
            return Err(Error::load(LoadError::Config(format!(
                "no vae/: a pixel-space model must have 3 input channels (RGB), this transformer has {}",
                transformer.in_channels
            ))))
        }
    };
    let text_len = match files.contains_key(TOKENIZER_CONFIG) {
        true => config(files, TOKENIZER_CONFIG, text_len_from_json)?,
        false => MAX_LEN,
    };
    let scheduler = match files.contains_key("scheduler/scheduler_config.json") {
        true => config(
            files,
            "scheduler/scheduler_config.json",
            SchedulerConfig::from_json,
        )?,
        false => SchedulerConfig::default(),
    };
    let mut warnings = Vec::new();
    let mut near = |path: &str, example: &dyn Fn(&str) -> Vec<String>| {
        if let Some(t) = files.get(path).and_then(|b| std::str::from_utf8(b).ok()) {
            warnings.extend(example(t).into_iter().map(|w| format!("{path}: {w}")));
        }
    };
    let q = "quantization";
    near("transformer/config.json", &|t| {
        misspelled(
            t,
            &PtditConfig::released_xl(),
            &[q, "num_heads", "head_dim"],
        )
    });
    near("text_encoder/config.json", &|t| {
        misspelled(t, &T5Config::released_xxl(), &[q])
    });
    near("vae/config.json", &|t| {
        misspelled(t, &VaeConfig::released(), &[])
    });
    near("scheduler/scheduler_config.json", &|t| {
        misspelled(t, &SchedulerConfig::default(), &[])
    });
    Ok(Components {
        warnings,
        transformer,
        transformer_weights: Weights::Host(HashMap::new()),
        text_encoder,
        text_encoder_weights: Weights::Host(HashMap::new()),
        tokenizer,
        text_len,
        vae,
        vae_weights: Weights::Host(HashMap::new()),
        scheduler,
    })
}

const TOKENIZER_CONFIG: &str = "tokenizer/tokenizer_config.json";

/// The config file `path` parsed by `parse`; an error names the file.
fn config<T>(files: &Files, path: &str, parse: impl Fn(&str) -> Result<T>) -> Result<T> {
    parse(text(files, path)?).map_err(|e| e.in_file(path))
}

fn transformer_config(files: &Files) -> Result<PtditConfig> {
    config(files, "transformer/config.json", PtditConfig::from_json)
}

/// The text length from `tokenizer_config.json`'s `model_max_length`: absent, or the value
/// Hugging Face writes for "no limit" (`int(1e30)`), gives the released 200.
fn text_len_from_json(text: &str) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct TokenizerConfig {
        model_max_length: Option<serde_json::Number>,
    }
    let bad = |why: String| Error::load(LoadError::Config(why));
    let c: TokenizerConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let Some(n) = c.model_max_length else {
        return Ok(MAX_LEN);
    };
    match (n.as_u64(), n.as_f64()) {
        (Some(v), _) if (1..=bounds::TEXT_LEN as u64).contains(&v) => Ok(v as usize),
        (None, Some(f)) if f >= 1e29 => Ok(MAX_LEN),
        _ => Err(bad(format!(
            "model_max_length {n} must be between 1 and {} tokens (or Hugging Face's \
             1e30 for no limit)",
            bounds::TEXT_LEN
        ))),
    }
}

/// Loads a model directory from disk.
pub fn load(root: impl AsRef<Path>) -> Result<Components> {
    let root = root.as_ref();
    from_files(&read_dir(root)?).map_err(|e| e.under(root.display()))
}

/// What each component reads, when the transformer and the VAE are stored as `float` (the text
/// encoder is always f32: T5 v1.1's activations overflow f16).
pub fn wanted(c: &Components, float: DType) -> Result<[Option<Wanted>; 3]> {
    Ok([
        Some(crate::model::ptdit::wanted(&c.transformer, float)?),
        match &c.text_encoder {
            Some(t) => Some(t5::wanted(t, DType::F32)?),
            None => None,
        },
        match &c.vae {
            Some(v) => Some(vae::wanted(v, float)?),
            None => None,
        },
    ])
}

/// A model directory whose small files (configs, tokenizer) are at hand and whose weights
/// arrive in pieces, from a network or a disk: each piece goes to the device as it arrives
/// ([`Upload`]), so no weight file is ever whole in memory. Feed each `*.safetensors` file's
/// bytes in order with [`push`](Self::push), close it with [`end`](Self::end), then
/// [`finish`](Self::finish).
pub struct Streamed {
    parts: Components,
    /// Transformer, text encoder, VAE (none for a pixel-space model).
    uploads: [Option<Upload>; 3],
    bytes: u64,
}

impl Streamed {
    /// `small` holds the configs and the tokenizer; `weight_files` names every safetensors file
    /// that will be pushed (`transformer/…`, `text_encoder/…`, `vae/…`); the transformer and
    /// the VAE are stored as `float`.
    pub fn new(
        ctx: &GpuContext,
        small: &Files,
        weight_files: &[String],
        float: DType,
    ) -> Result<Self> {
        let mut listed = small.clone();
        for f in weight_files {
            if !f.ends_with(".safetensors") {
                let error = LoadError::BadFile {
                    format: "weight",
                    detail: "weight files must be *.safetensors".into(),
                };
                return Err(Error::load_in(f, error));
            }
            listed.insert(f.clone(), Vec::new());
        }
        let parts = parts(&listed)?;
        let uploads = wanted(&parts, float)?.map(|w| w.map(|w| Upload::new(ctx, w)));
        Ok(Streamed {
            parts,
            uploads,
            bytes: 0,
        })
    }

    fn upload(&mut self, path: &str) -> Result<&mut Upload> {
        let i = [TRANSFORMER, TEXT_ENCODER, VAE]
            .iter()
            .position(|c| path.starts_with(&format!("{c}/")));
        match i.and_then(|i| self.uploads[i].as_mut()) {
            Some(u) => Ok(u),
            None => Err(Error::load_in(
                path,
                LoadError::BadFile {
                    format: "weight",
                    detail: "not a weight file of this model (transformer/, text_encoder/ or vae/)"
                        .into(),
                },
            )),
        }
    }

    /// The next bytes of weight file `path` (pieces of any size, in order).
    pub fn push(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.bytes += bytes.len() as u64;
        self.upload(path)?.push(path, bytes)
    }

    /// Weight file `path` is complete.
    pub fn end(&mut self, path: &str) -> Result<()> {
        self.upload(path)?.end(path)
    }

    /// Bytes pushed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Every file has ended: the components, weights on the device.
    pub fn finish(self) -> Result<Components> {
        let mut c = self.parts;
        let [t, e, v] = self.uploads;
        let done = |u: Option<Upload>| -> Result<Weights> {
            Ok(match u {
                Some(u) => Weights::Device(u.finish()?),
                None => Weights::Host(HashMap::new()),
            })
        };
        c.transformer_weights = done(t)?;
        c.text_encoder_weights = done(e)?;
        c.vae_weights = done(v)?;
        Ok(c)
    }
}

impl Components {
    /// Puts the text encoder's weights on the device (when they are not yet), for
    /// [`encode_prompts`](super::generate::encode_prompts) without a whole pipeline.
    pub fn upload_text_encoder(&mut self, ctx: &GpuContext) -> Result<()> {
        if let Some(t) = &self.text_encoder {
            let w = std::mem::replace(
                &mut self.text_encoder_weights,
                Weights::Host(HashMap::new()),
            );
            self.text_encoder_weights = w.to_device(ctx, t5::wanted(t, DType::F32)?)?;
        }
        Ok(())
    }

    /// Forgets the text encoder and its weights: the model then generates from embeddings only.
    pub fn drop_text_encoder(&mut self) {
        self.text_encoder = None;
        self.tokenizer = None;
        self.text_encoder_weights = Weights::Host(HashMap::new());
    }
}

/// Which components of a model directory go to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Every component.
    All,
    /// The text encoder and tokenizer alone: prompts to embeddings (`ptdit encode`).
    Text,
    /// Everything but the text encoder: embeddings to images (the text encoder's memory is
    /// never taken).
    Image,
}

/// Opens a model directory on disk, streaming its weights to the device in pieces (host
/// memory stays a few MiB however large the files).
#[cfg(not(target_arch = "wasm32"))]
pub fn open(ctx: &GpuContext, root: impl AsRef<Path>, float: DType) -> Result<Components> {
    open_part(ctx, root, float, Part::All)
}

/// [`open`] for some of the components: the others' configs are read, their weights are not
/// (and for [`Part::Image`] the text encoder is absent, as in a directory without one).
#[cfg(not(target_arch = "wasm32"))]
pub fn open_part(
    ctx: &GpuContext,
    root: impl AsRef<Path>,
    float: DType,
    part: Part,
) -> Result<Components> {
    use std::io::Read;
    let root = root.as_ref();
    let named = |e: Error| e.under(root.display());
    let mut small = Files::new();
    let mut weight_files = Vec::new();
    for (rel, path) in list_dir(root)? {
        if rel.ends_with(".safetensors") {
            weight_files.push(rel);
        } else if part != Part::Image || !rel.starts_with(&format!("{TEXT_ENCODER}/")) {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            small.insert(rel, bytes);
        }
    }
    let mut buf = vec![0u8; 8 << 20];
    let read = |rel: &str, push: &mut dyn FnMut(&[u8]) -> Result<()>| -> Result<()> {
        let path = root.join(rel);
        let mut f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(&path, e))?;
            if n == 0 {
                return Ok(());
            }
            push(&buf[..n])?;
        }
    };
    stream_part(ctx, small, &weight_files, float, part, read).map_err(named)
}

/// [`open_part`] from any source of bytes: `small` holds the configs and the tokenizer (a
/// part's unneeded ones may be left out), `weight_files` names every `*.safetensors` file,
/// and `read(rel, push)` hands file `rel`'s bytes to `push` in pieces of any size. Only the
/// files of `part` are read.
pub fn stream_part(
    ctx: &GpuContext,
    mut small: Files,
    weight_files: &[String],
    float: DType,
    part: Part,
    mut read: impl FnMut(&str, &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
) -> Result<Components> {
    let text = |rel: &str| rel.starts_with(&format!("{TEXT_ENCODER}/"));
    if part == Part::Image {
        small.retain(|rel, _| !text(rel));
    }
    // The image side's files are listed for Part::Text (the model is complete) but never
    // read; for Part::Image the text encoder is absent.
    let listed: Vec<String> = (weight_files.iter())
        .filter(|rel| part != Part::Image || !text(rel))
        .cloned()
        .collect();
    let mut s = Streamed::new(ctx, &small, &listed, float)?;
    if part == Part::Text {
        // The image side's configs were read; its weights stay where they are.
        s.uploads[0] = None;
        s.uploads[2] = None;
    }
    for rel in &listed {
        if part == Part::Text && !text(rel) {
            continue;
        }
        read(rel, &mut |bytes| s.push(rel, bytes))?;
        s.end(rel)?;
    }
    s.finish()
}
