//! What a model directory holds, read from its configs and the headers of its weight files
//! only (no weights are read, no GPU is used): `ptdit info --model DIR`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::model_dir::{self, Files};
use crate::error::{Error, LoadError, Result};
use crate::formats::quantized::SCALE_SUFFIX;
use crate::formats::safetensors::{self, Dtype};

/// One component's weight files, from their headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightSummary {
    pub files: usize,
    pub tensors: usize,
    /// Logical values (a q4 byte holds two; scales are not counted).
    pub parameters: u64,
    /// Bytes of tensor data on disk.
    pub bytes: u64,
    /// Tensors by stored dtype (`F16`, `I8`, …).
    pub dtypes: BTreeMap<String, usize>,
}

/// One line of the report: a component, what its config says, and its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentInfo {
    pub name: &'static str,
    pub summary: String,
    pub weights: Option<WeightSummary>,
}

/// The whole directory.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub components: Vec<ComponentInfo>,
    /// Sizes, frames, views, steps: what a request may ask of this model.
    pub supports: Vec<(String, String)>,
    /// Files the pipeline needs that are not there; empty when the model is complete.
    pub missing: Vec<String>,
    /// Config keys that look misspelled.
    pub warnings: Vec<String>,
}

/// Describes the model directory at `root` from its small files and its weights' headers.
pub fn describe(root: &Path) -> Result<ModelInfo> {
    if !root.is_dir() {
        return Err(Error::Input(format!(
            "{}: not a directory (a model directory has transformer/, text_encoder/, \
             tokenizer/, vae/)",
            root.display()
        )));
    }
    let mut small = Files::new();
    let mut headers: BTreeMap<String, Vec<safetensors::Entry>> = BTreeMap::new();
    for (rel, path) in model_dir::list_dir(root)? {
        if rel.ends_with(".safetensors") {
            headers.insert(
                rel.clone(),
                read_header(&path).map_err(|e| e.in_file(&rel))?,
            );
            // An empty stand-in: the completeness check looks at names only.
            small.insert(rel, Vec::new());
        } else {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            small.insert(rel, bytes);
        }
    }
    let missing = match model_dir::check(&small) {
        Ok(()) => Vec::new(),
        Err(Error::Load {
            error: LoadError::MissingFiles { missing, .. },
            ..
        }) => missing,
        Err(e) => return Err(e),
    };
    if !missing.is_empty() {
        return Ok(ModelInfo {
            components: Vec::new(),
            supports: Vec::new(),
            missing,
            warnings: Vec::new(),
        });
    }
    let c = model_dir::from_files(&small)?;
    let weights = |comp: &str, q4: bool| summarize(&headers, comp, q4);
    let t = &c.transformer;
    let q4 = |q: &Option<crate::formats::quantized::Quantization>| {
        q.as_ref().is_some_and(|q| q.linear == "q4")
    };
    let storage = |q: &Option<crate::formats::quantized::Quantization>| match q {
        Some(q) => format!("; Linear weights {}", q.linear),
        None => String::new(),
    };
    let [wt, wh, ww] = t.compress_ratios;
    let mut components = vec![ComponentInfo {
        name: "transformer",
        summary: format!(
            "PT-DiT: {} layers, {} heads × {}, patch {}, windows {wt}×{wh}×{ww}, {} input \
             channels{}{}",
            t.num_layers,
            t.num_attention_heads,
            t.attention_head_dim,
            t.patch_size,
            t.in_channels,
            if c.vae.is_none() {
                " (pixel space)"
            } else {
                ""
            },
            storage(&t.quantization)
        ),
        weights: Some(weights("transformer", q4(&t.quantization))),
    }];
    components.push(match &c.text_encoder {
        Some(e) => ComponentInfo {
            name: "text encoder",
            summary: format!(
                "T5: {} layers, width {}, {} heads × {}, FFN {}, {} tokens a prompt{}",
                e.num_layers,
                e.d_model,
                e.num_heads,
                e.d_kv,
                e.d_ff,
                c.text_len,
                storage(&e.quantization)
            ),
            weights: Some(weights("text_encoder", q4(&e.quantization))),
        },
        None => ComponentInfo {
            name: "text encoder",
            summary: "none: generates from prompt embeddings (`ptdit encode`) only".into(),
            weights: None,
        },
    });
    components.push(ComponentInfo {
        name: "tokenizer",
        summary: match (&c.tokenizer, small.contains_key("tokenizer/tokenizer.json")) {
            (None, _) => "none".into(),
            (Some(_), true) => "tokenizer.json".into(),
            (Some(_), false) => "spiece.model".into(),
        },
        weights: None,
    });
    components.push(match &c.vae {
        Some(v) => ComponentInfo {
            name: "vae",
            summary: format!(
                "CausalVAE decoder: {}× spatial, {} latent channels",
                v.spatial_factor(),
                v.z_channels
            ),
            weights: Some(weights("vae", false)),
        },
        None => ComponentInfo {
            name: "vae",
            summary: "none: the transformer works on pixels".into(),
            weights: None,
        },
    });
    let factor = c.vae.as_ref().map_or(1, |v| v.spatial_factor());
    let step = |win: usize| factor * t.patch_size * win;
    let sampler = c.scheduler.sampler();
    let default_size = match c.scheduler.sample_size {
        Some([h, w]) => format!("{w}×{h}"),
        None if c.vae.is_some() => "1024×1024 (the released default)".into(),
        None => format!("{}×{}", 4 * step(ww), 4 * step(wh)),
    };
    // What the engine accepts; whether the weights were trained for more than one frame is
    // not in the configs.
    let frames = match &c.vae {
        None => format!("a multiple of {wt} (its windows span {wt} frame(s))"),
        Some(_) => format!("4k + 1, giving a multiple of {wt} latent frame(s)"),
    };
    let mut supports = vec![];
    if let Some(t) = c.scheduler.trained_for() {
        // The engine refuses any other request (`TextToImage::check_trained_for`).
        supports.push(("trained for".to_string(), format!("{t} (nothing else)")));
    }
    supports.extend([
        (
            "size".to_string(),
            format!(
                "width a multiple of {} px, height of {} px; default {default_size}",
                step(ww),
                step(wh)
            ),
        ),
        ("frames".to_string(), frames),
        (
            "views".to_string(),
            "1 (not a multi-view model)".to_string(),
        ),
        (
            "sampler".to_string(),
            format!("{} steps, guidance {}", sampler.steps, sampler.cfg),
        ),
    ]);
    Ok(ModelInfo {
        components,
        supports,
        missing,
        warnings: c.warnings,
    })
}

/// The header of the safetensors file at `path`: the file is fed to the streaming reader (its
/// header checks) until the header is whole, and its data is not read.
fn read_header(path: &Path) -> Result<Vec<safetensors::Entry>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut stream = safetensors::Stream::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            // The header never completed: `end` says how the file falls short.
            return Err(stream.end().err().unwrap_or_else(safetensors::empty));
        }
        let mut entries = None;
        stream.push(&buf[..n], |piece| {
            if let safetensors::Piece::Header(e) = piece {
                entries = Some(e.to_vec());
            }
            Ok(())
        })?;
        if let Some(e) = entries {
            return Ok(e);
        }
    }
}

fn summarize(
    headers: &BTreeMap<String, Vec<safetensors::Entry>>,
    comp: &str,
    q4: bool,
) -> WeightSummary {
    let mut s = WeightSummary::default();
    let dir = format!("{comp}/");
    for (_, entries) in headers.iter().filter(|(k, _)| k.starts_with(&dir)) {
        s.files += 1;
        for e in entries {
            s.tensors += 1;
            s.bytes += e.end - e.start;
            *s.dtypes.entry(format!("{:?}", e.dtype)).or_default() += 1;
            let numel: u64 = e.shape.iter().map(|&d| d as u64).product();
            let scale = e.key.ends_with(SCALE_SUFFIX) && e.dtype == Dtype::F16;
            s.parameters += match (scale, q4 && e.dtype == Dtype::U8) {
                (true, _) => 0,
                (false, true) => 2 * numel,
                (false, false) => numel,
            };
        }
    }
    s
}
