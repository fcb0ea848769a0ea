//! `ptdit bench memory`: the released pipeline's GPU memory, phase by phase, for each way of
//! storing its weights, planned from shapes (no GPU, no files): what the memory planner
//! allocates for each graph the pipeline compiles, and the weights' bytes as stored.

use ptdit::formats::quantized::Quantization;
use ptdit::graph::planner;

use ptdit::model::t5::{self, T5Config};
use ptdit::model::vae::{self, VaeConfig};
use ptdit::model::PtditConfig;
use ptdit::{DType, Graph, Result};

use super::Out;

/// The released text length.
pub(super) const TEXT_LEN: usize = 200;
/// The VAE decodes tiles of 64 latents every 56 (`pipeline::decode::Tiling`).
const TILE: usize = 64;
const STRIDE: usize = 56;

/// One way to store the pipeline: T5's Linears, PT-DiT's float type and Linears (`bench
/// pipeline` times the same ones).
pub(super) struct Choice {
    pub name: &'static str,
    pub t5: Option<DType>,
    pub float: DType,
    pub dit: Option<DType>,
}

pub(super) const CHOICES: &[Choice] = &[
    Choice {
        name: "f32 T5 + f32 PT-DiT (the engine before packed weights)",
        t5: None,
        float: DType::F32,
        dit: None,
    },
    Choice {
        name: "f32 T5 + f16 PT-DiT",
        t5: None,
        float: DType::F16,
        dit: None,
    },
    Choice {
        name: "bf16 T5 + f16 PT-DiT",
        t5: Some(DType::BF16),
        float: DType::F16,
        dit: None,
    },
    Choice {
        name: "q8 T5 + f16 PT-DiT (--preset medium)",
        t5: Some(DType::Q8),
        float: DType::F16,
        dit: None,
    },
    Choice {
        name: "q4 T5 + q8 PT-DiT (--preset small)",
        t5: Some(DType::Q4),
        float: DType::F16,
        dit: Some(DType::Q8),
    },
    Choice {
        name: "q4 T5 + q4 PT-DiT",
        t5: Some(DType::Q4),
        float: DType::F16,
        dit: Some(DType::Q4),
    },
];

/// Params (weights) and the rest of a graph's planned memory.
fn split(g: &Graph) -> (u64, u64) {
    let p = planner::plan(g);
    let params: u64 = g
        .tensors()
        .filter(|(_, t)| matches!(t.source, ptdit::graph::Source::Param))
        .map(|(_, t)| planner::align(t.desc.bytes()))
        .sum();
    (params, p.peak_bytes() - params)
}

/// The sizes of the tiles the VAE decodes `n` latents in (one tile when it fits).
fn tiles(n: usize) -> Vec<usize> {
    if n <= TILE {
        return vec![n];
    }
    let mut v: Vec<usize> = (0..n)
        .step_by(STRIDE)
        .map(|i| (i + TILE).min(n) - i)
        .collect();
    v.dedup();
    v
}

pub fn run(out: &mut Out) -> Result<()> {
    step_table(out)?;
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let (xl, vae_cfg) = (PtditConfig::released_xl(), VaeConfig::released());
    out.say("released pipeline (T5-XXL encoder, PT-DiT/XL with CFG, CausalVAE), GPU memory planned from shapes, GiB:".into());
    out.say(format!(
        "  {:<56} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9}",
        "storage", "image", "T5 w", "DiT w", "text", "step", "decode", "together", "phased"
    ));
    // The VAE keeps the transformer's float type and has no packed Linears.
    for c in CHOICES {
        let mut t5c = T5Config::released_xxl();
        t5c.quantization = c.t5.map(Quantization::new);
        // Cond and uncond in one batch, f32 (T5's activations overflow f16).
        let (t5_w, t5_a) = split(&t5::build_as(&t5c, 2, TEXT_LEN, false, DType::F32)?);
        let mut dit = xl.clone();
        dit.quantization = c.dit.map(Quantization::new);
        for px in [1024, 2048] {
            let lat = px / vae_cfg.spatial_factor();
            let grid = dit.grid(1, lat, lat)?;
            let step = ptdit::pipeline::denoiser::build(&dit, 1, grid, TEXT_LEN, c.float)?;
            let (dit_w, step_a) = split(&step);
            // Each distinct tile shape is compiled and kept during the decode.
            let mut vae_w = 0;
            let mut decode_a = 0;
            let sizes = tiles(lat);
            for &h in &sizes {
                for &w in &sizes {
                    let g =
                        vae::build_as(&vae_cfg, [1, vae_cfg.z_channels, 1, h, w], false, c.float)?;
                    let (wb, a) = split(&g);
                    vae_w = wb;
                    decode_a += a;
                }
            }
            let weights = t5_w + dit_w + vae_w;
            // Every component on the device at once, as `TextToImage` holds them.
            let together = weights + t5_a.max(step_a).max(decode_a);
            // The text encoder released before the transformer and VAE are loaded (`ptdit
            // encode`, then `generate --embeddings`).
            let phased = (t5_w + t5_a).max(dit_w + vae_w + step_a.max(decode_a));
            out.say(format!(
                "  {:<56} {:>6} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>9.2} {:>9.2}",
                c.name,
                format!("{px}²"),
                gib(t5_w),
                gib(dit_w),
                gib(t5_a),
                gib(step_a),
                gib(decode_a),
                gib(together),
                gib(phased)
            ));
            let tag = format!("{} {px}", c.name.split(" (").next().unwrap_or(c.name));
            out.figure(
                &format!("pipeline peak, phased: {tag}"),
                gib(phased),
                "GiB",
                Some(("every component at once", gib(together))),
            );
        }
        // What a user downloads: the packed Linears, and every other tensor in bf16 (as
        // `ptdit quantize --rest-bf16` and its presets write them); T5's token table included.
        let download = download_bytes(&t5c, &dit, &vae_cfg)?;
        out.say(format!("  {:<56} download {:.2} GiB", "", gib(download)));
        let tag = c.name.split(" (").next().unwrap_or(c.name);
        out.figure(&format!("download: {tag}"), gib(download), "GiB", None);
    }
    out.say("  T5 w / DiT w: weights on the device; text / step / decode: what each phase's graph adds; together: every component resident (TextToImage); phased: the text encoder released first.".into());
    // The token table stays on the host (`model::host_table`): bf16 where the file holds bf16,
    // q8 rows when T5's Linears are packed.
    let t5c = T5Config::released_xxl();
    let n = t5c.vocab_size * t5c.d_model;
    out.say(format!(
        "  The host also holds T5's token table: {:.2} GiB in f32, {:.2} GiB where the file holds bf16 (`--rest-bf16`, the bf16 preset), {:.2} GiB as the q8 rows of a T5 packed q8 or q4 (the small and medium presets).",
        gib(DType::F32.bytes_for(n)),
        gib(DType::BF16.bytes_for(n)),
        gib(ptdit::quant::packed_bytes(DType::Q8, n))
    ));
    Ok(())
}

/// Bytes of the weights as files: packed params at their size, the rest (and the token and
/// bucket tables) at two bytes a value.
fn download_bytes(t5c: &T5Config, dit: &PtditConfig, vae_cfg: &VaeConfig) -> Result<u64> {
    let stored = |w: &ptdit::model::upload::Wanted| -> u64 {
        w.device
            .values()
            .map(|d| match d.dtype.is_packed() {
                true => d.bytes(),
                false => 2 * d.shape.numel() as u64,
            })
            .sum()
    };
    let tables = 2
        * (t5c.vocab_size * t5c.d_model + t5c.relative_attention_num_buckets * t5c.num_heads)
            as u64;
    Ok(stored(&t5::wanted(t5c, DType::F32)?)
        + tables
        + stored(&ptdit::model::ptdit::wanted(dit, DType::F16)?)
        + stored(&vae::wanted(vae_cfg, DType::F16)?))
}

/// Peak GPU memory of one denoising step of the released PT-DiT/XL, from shapes alone.
fn step_table(out: &mut Out) -> Result<()> {
    let cfg = PtditConfig::released_xl();
    out.say(
        "released PT-DiT/XL denoising step (CFG batch 2, text 200), memory planned from shapes:"
            .to_string(),
    );
    out.say(format!(
        "  {:>10} {:>6} {:>12} {:>14} {:>12} {:>12}",
        "image", "type", "weights", "activations", "peak", "unshared"
    ));
    for px in [1024, 2048] {
        for float in [DType::F16, DType::F32] {
            let grid = cfg.grid(1, px / 8, px / 8)?;
            let g = ptdit::pipeline::denoiser::build(&cfg, 1, grid, 200, float)?;
            let p = planner::plan(&g);
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            out.say(format!(
                "  {:>10} {:>6} {:>10.2} GiB {:>10.3} GiB {:>8.2} GiB {:>8.2} GiB",
                format!("{px}x{px}"),
                float.wgsl(),
                gib(p.fixed_bytes),
                gib(p.output_bytes + p.intermediate_bytes),
                gib(p.peak_bytes()),
                gib(p.fixed_bytes + p.output_bytes + p.unshared_bytes)
            ));
            out.figure(
                &format!("released XL step {px}x{px} {} peak", float.wgsl()),
                gib(p.peak_bytes()),
                "GiB",
                Some((
                    "without lifetime sharing",
                    gib(p.fixed_bytes + p.output_bytes + p.unshared_bytes),
                )),
            );
        }
    }
    Ok(())
}
