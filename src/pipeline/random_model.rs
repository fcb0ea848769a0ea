//! Random models: a model directory of the released shapes (T5-XXL, PT-DiT/XL, the CausalVAE),
//! or of their miniature, with seeded random weights in any storage choice, so that the
//! full-size path (the files streamed to the device, the memory and time each phase takes)
//! runs for real without the released checkpoints. The images are noise; the shapes, the
//! bytes and the memory are the released pipeline's.
//!
//! A model is drawn file by file and tensor by tensor (host memory is the largest tensor),
//! with the same rule that decides what `ptdit quantize` packs: the graph the engine builds
//! for each component (`formats::quantized`). `ptdit random-model` writes it to a directory;
//! `ptdit bench pipeline` streams it onto the device as a download would arrive, no files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::model_dir::{Files, TEXT_ENCODER, TOKENIZER, TRANSFORMER, VAE};
use super::quantize::Plan;
use crate::error::{Error, Result};
use crate::formats::quantized::{self, Quantization};
use crate::formats::safetensors::{self, Dtype, OutEntry};
use crate::model::t5::{self, T5Config};
use crate::model::vae::{self, VaeConfig};
use crate::model::PtditConfig;
use crate::quant;
use crate::rng::Rng;
use crate::tensor::{DType, Shape};

/// What was written, per component: (name, bytes).
pub type Written = Vec<(String, u64)>;

/// A component's tensors: key, shape and the dtype the engine stores it as.
type Tensors = Vec<(String, Shape, DType)>;

/// A pipeline's configs: transformer, text encoder, VAE.
pub type Configs = (PtditConfig, T5Config, VaeConfig);

/// The released pipeline's configs.
pub fn released() -> Configs {
    (
        PtditConfig::released_xl(),
        T5Config::released_xxl(),
        VaeConfig::released(),
    )
}

/// The released structure (XL's patch, windows and compression, T5's layout, the VAE's four
/// stages) at widths a software GPU runs in seconds: one block of width 64, one T5 layer of
/// width 64, VAE stages of 32 channels.
pub fn miniature() -> Configs {
    let dit = PtditConfig {
        num_attention_heads: 2,
        attention_head_dim: 32,
        num_layers: 1,
        cross_attention_dim: Some(64),
        caption_channels: 64,
        ..PtditConfig::released_xl()
    };
    let mut t5c = T5Config::released_xxl();
    (t5c.vocab_size, t5c.d_model, t5c.d_kv, t5c.num_heads) = (32, 64, 16, 4);
    (t5c.d_ff, t5c.num_layers) = (128, 1);
    let mut vc = VaeConfig::released();
    (vc.hidden_size, vc.hidden_size_mult, vc.num_res_blocks) = (32, vec![1; 4], 1);
    (dit, t5c, vc)
}

/// A model with random weights: its configs, how its Linears are stored, its text length and
/// seed. Each component draws from its own seed, so any one can be drawn alone.
#[derive(Clone)]
pub struct RandomModel {
    pub configs: Configs,
    pub plan: Plan,
    /// Tokens per prompt (the released pipeline: 200).
    pub text_len: usize,
    pub seed: u64,
}

/// The weight file of each component, in the order they are drawn.
pub const WEIGHT_FILES: [&str; 3] = [
    "transformer/model.safetensors",
    "text_encoder/model.safetensors",
    "vae/model.safetensors",
];

impl RandomModel {
    /// The released shapes.
    pub fn released(plan: Plan, text_len: usize, seed: u64) -> Self {
        RandomModel {
            configs: released(),
            plan,
            text_len,
            seed,
        }
    }

    /// The small files by relative path: each component's `config.json` and the tokenizer.
    pub fn small_files(&self) -> Result<Files> {
        if self.text_len == 0 {
            return Err(Error::Input("the text length must be positive".into()));
        }
        let mut files = Files::new();
        for name in [TRANSFORMER, TEXT_ENCODER, VAE] {
            let (config, _) = self.component(name)?;
            files.insert(format!("{name}/config.json"), config.into_bytes());
        }
        files.insert(
            format!("{TOKENIZER}/tokenizer.json"),
            super::text::toy_tokenizer_json().into_bytes(),
        );
        files.insert(
            format!("{TOKENIZER}/tokenizer_config.json"),
            format!("{{\"model_max_length\": {}}}", self.text_len).into_bytes(),
        );
        Ok(files)
    }

    /// Draws weight file `rel` (one of [`WEIGHT_FILES`]) and hands its bytes to `push` in
    /// order, the header first, then one tensor at a time; returns the file's size.
    pub fn draw_file(&self, rel: &str, push: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<u64> {
        let index = WEIGHT_FILES
            .iter()
            .position(|f| *f == rel)
            .ok_or_else(|| Error::Input(format!("{rel} is not a weight file of a random model")))?;
        let name = [TRANSFORMER, TEXT_ENCODER, VAE][index];
        let (_, mut tensors) = self.component(name)?;
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let plan = self.plan;
        let float = if plan.rest_bf16 {
            Dtype::BF16
        } else {
            Dtype::F32
        };
        let mut entries = Vec::new();
        for (key, shape, dtype) in &tensors {
            let dims = shape.dims().to_vec();
            match dtype {
                d if d.is_packed() => entries.extend(quantized::file_entries(key, *d, &dims)),
                _ => entries.push(OutEntry {
                    key: key.clone(),
                    dtype: float,
                    shape: dims,
                }),
            }
        }
        let metadata = BTreeMap::from([("ptdit.random_weights".to_string(), "1".to_string())]);
        let head = safetensors::header_bytes(&entries, &metadata);
        push(&head)?;
        let mut total = head.len() as u64;
        let mut rng = Rng::new(self.seed.wrapping_add(index as u64));
        for (key, shape, dtype) in &tensors {
            let values = draw(key, shape.dims(), &mut rng);
            let bytes = match dtype {
                d if d.is_packed() => quant::file_bytes(*d, &values),
                _ if plan.rest_bf16 => quant::bf16_bytes(&values),
                _ => bytemuck::cast_slice(&values).to_vec(),
            };
            push(&bytes)?;
            total += bytes.len() as u64;
        }
        Ok(total)
    }

    /// Writes the model to `out` (new or empty).
    pub fn write(&self, out: &Path) -> Result<Written> {
        if out.exists()
            && std::fs::read_dir(out)
                .map_err(|e| Error::io(out, e))?
                .next()
                .is_some()
        {
            return Err(Error::Input(format!("{} is not empty", out.display())));
        }
        for (rel, bytes) in self.small_files()? {
            let p = out.join(&rel);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        let mut written = Vec::new();
        for (rel, name) in WEIGHT_FILES.iter().zip([TRANSFORMER, TEXT_ENCODER, VAE]) {
            let p = out.join(rel);
            let file = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
            let mut w = std::io::BufWriter::with_capacity(8 << 20, file);
            let bytes =
                self.draw_file(rel, &mut |b| w.write_all(b).map_err(|e| Error::io(&p, e)))?;
            w.flush().map_err(|e| Error::io(&p, e))?;
            written.push((name.to_string(), bytes));
        }
        Ok(written)
    }

    /// Component `name`'s config as JSON and its tensors: (key, shape, dtype as the engine
    /// stores it, packed where the plan says).
    fn component(&self, name: &str) -> Result<(String, Tensors)> {
        let (dit, t5c, vc) = &self.configs;
        let list = |w: crate::model::upload::Wanted| -> Tensors {
            (w.device.iter())
                .map(|(k, d)| (k.clone(), d.shape.clone(), d.dtype))
                .collect()
        };
        match name {
            TRANSFORMER => {
                let mut dit = dit.clone();
                dit.quantization = self.plan.transformer.map(Quantization::new);
                let w = crate::model::ptdit::wanted(&dit, DType::F32)?;
                Ok((to_json(&dit, name)?, list(w)))
            }
            TEXT_ENCODER => {
                let mut t5c = t5c.clone();
                t5c.quantization = self.plan.text_encoder.map(Quantization::new);
                let mut tensors = list(t5::wanted(&t5c, DType::F32)?);
                tensors.push((
                    t5::EMBED_KEY.into(),
                    Shape(vec![t5c.vocab_size, t5c.d_model]),
                    DType::F32,
                ));
                tensors.push((
                    t5::REL_BIAS_KEY.into(),
                    Shape(vec![t5c.relative_attention_num_buckets, t5c.num_heads]),
                    DType::F32,
                ));
                Ok((to_json(&t5c, name)?, tensors))
            }
            _ => Ok((to_json(vc, name)?, list(vae::wanted(vc, DType::F32)?))),
        }
    }
}

fn to_json(config: &impl serde::Serialize, name: &str) -> Result<String> {
    serde_json::to_string_pretty(config).map_err(|e| Error::Model(format!("{name} config: {e}")))
}

/// Values of the size a trained model's tensor of this kind has, so that the activations stay
/// finite through 24 T5 layers and 28 blocks: norms' weights 1, biases 0, a matrix or kernel
/// uniform with the std 1/√fan-in, tables and embeddings small.
fn draw(key: &str, dims: &[usize], rng: &mut Rng) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let is_norm = key.contains("norm") && key.ends_with("weight") && dims.len() == 1;
    if is_norm {
        return vec![1.0; n];
    }
    if key.ends_with("bias") && dims.len() == 1 {
        return vec![0.0; n];
    }
    let std = match dims.len() {
        d if d >= 2 && !key.contains("table") && !key.contains("shared") => {
            let fan_in: usize = dims[1..].iter().product();
            1.0 / (fan_in as f32).sqrt()
        }
        _ => 0.02,
    };
    // Uniform in [−a, a] with a = √3·std: two values a draw, cheaper than normals for the
    // released 4.7 B parameters.
    let a = 3f32.sqrt() * std;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let r = rng.next_u64();
        for half in [r as u32, (r >> 32) as u32] {
            if v.len() < n {
                v.push((half as f32 / u32::MAX as f32 * 2.0 - 1.0) * a);
            }
        }
    }
    v
}
