//! `ptdit random-model`: a model directory of the released shapes (T5-XXL, PT-DiT/XL, the
//! CausalVAE) with seeded random weights, in any storage choice, so the full-size path (the
//! files streamed to the device, the memory each phase takes) runs for real without the
//! released checkpoints. The images are noise; the shapes, the bytes and the memory are the
//! released pipeline's.
//!
//! Every tensor is drawn and written one at a time (host memory is the largest tensor), with
//! the same rule that decides what `ptdit quantize` packs: the graph the engine builds for each
//! component (`formats::quantized`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::model_dir::{TEXT_ENCODER, TOKENIZER, TRANSFORMER, VAE};
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

/// Writes the released pipeline with random weights to `out` (new or empty), the Linears
/// stored as `plan` says, text `text_len` tokens long.
pub fn write_released(out: &Path, plan: Plan, text_len: usize, seed: u64) -> Result<Written> {
    let configs = (
        PtditConfig::released_xl(),
        T5Config::released_xxl(),
        VaeConfig::released(),
    );
    write(out, configs, plan, text_len, seed)
}

/// [`write_released`] for other configs (the tests' small ones).
pub fn write(
    out: &Path,
    (mut dit, mut t5c, vc): (PtditConfig, T5Config, VaeConfig),
    plan: Plan,
    text_len: usize,
    seed: u64,
) -> Result<Written> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .next()
            .is_some()
    {
        return Err(Error::Input(format!("{} is not empty", out.display())));
    }
    if text_len == 0 {
        return Err(Error::Input("the text length must be positive".into()));
    }
    let mut rng = Rng::new(seed);
    let mut written = Vec::new();

    dit.quantization = plan.transformer.map(Quantization::new);
    let w = crate::model::ptdit::wanted(&dit, DType::F32)?;
    let tensors = w
        .device
        .iter()
        .map(|(k, d)| (k.clone(), d.shape.clone(), d.dtype));
    let bytes = component(out, TRANSFORMER, &dit, tensors.collect(), plan, &mut rng)?;
    written.push((TRANSFORMER.to_string(), bytes));

    t5c.quantization = plan.text_encoder.map(Quantization::new);
    let w = t5::wanted(&t5c, DType::F32)?;
    let mut tensors: Vec<_> = (w.device.iter())
        .map(|(k, d)| (k.clone(), d.shape.clone(), d.dtype))
        .collect();
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
    let bytes = component(out, TEXT_ENCODER, &t5c, tensors, plan, &mut rng)?;
    written.push((TEXT_ENCODER.to_string(), bytes));

    let w = vae::wanted(&vc, DType::F32)?;
    let tensors = w
        .device
        .iter()
        .map(|(k, d)| (k.clone(), d.shape.clone(), d.dtype));
    let bytes = component(out, VAE, &vc, tensors.collect(), plan, &mut rng)?;
    written.push((VAE.to_string(), bytes));

    let dir = out.join(TOKENIZER);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let files = [
        ("tokenizer.json", super::text::toy_tokenizer_json()),
        (
            "tokenizer_config.json",
            format!("{{\"model_max_length\": {text_len}}}"),
        ),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    Ok(written)
}

/// Writes one component's `config.json` and `model.safetensors`; returns the file's bytes.
fn component(
    out: &Path,
    name: &str,
    config: &impl serde::Serialize,
    mut tensors: Vec<(String, Shape, DType)>,
    plan: Plan,
    rng: &mut Rng,
) -> Result<u64> {
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let cfg = serde_json::to_string_pretty(config)
        .map_err(|e| Error::Model(format!("{name} config: {e}")))?;
    let p = dir.join("config.json");
    std::fs::write(&p, cfg).map_err(|e| Error::io(&p, e))?;

    tensors.sort_by(|a, b| a.0.cmp(&b.0));
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
    let p = dir.join("model.safetensors");
    let file = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
    let mut w = std::io::BufWriter::with_capacity(8 << 20, file);
    let io = |e| Error::io(&p, e);
    let head = safetensors::header_bytes(&entries, &metadata);
    w.write_all(&head).map_err(io)?;
    let mut total = head.len() as u64;
    for (key, shape, dtype) in &tensors {
        let values = draw(key, shape.dims(), rng);
        let bytes = match dtype {
            d if d.is_packed() => quant::file_bytes(*d, &values),
            _ if plan.rest_bf16 => quant::bf16_bytes(&values),
            _ => bytemuck::cast_slice(&values).to_vec(),
        };
        w.write_all(&bytes).map_err(io)?;
        total += bytes.len() as u64;
    }
    w.flush().map_err(io)?;
    Ok(total)
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
