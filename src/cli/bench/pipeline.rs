//! `ptdit bench pipeline`: one image of the released shapes (T5-XXL, PT-DiT/XL, the CausalVAE)
//! phase by phase, for each storage choice of `bench memory`: text encoding, every denoising
//! step, the VAE decode and the total, each phase's peak GPU memory (wgpu's count), and how
//! long the weights took to stream in. No files: the weights are drawn on the host one tensor
//! at a time and streamed to the device as a download would arrive
//! (`pipeline::random_model`), through the loader every model directory goes through.
//!
//! The phases run as `generate --model` runs them: the text encoder is loaded, run and
//! released before the transformer and the VAE are loaded. Each phase runs once untimed
//! first (one step, one decode), so the figures are those of a warm app: kernels compiled,
//! the allocator settled. The first choice run is every figure's baseline (same run).
//! `--miniature` keeps the released structure at small widths: what a software GPU and the
//! tests finish in seconds.

use std::time::Instant;

use ptdit::pipeline::generate::{encode_prompts, Prepared, Request, TextToImage};
use ptdit::pipeline::model_dir::{self, Components, Part};
use ptdit::pipeline::quantize::Plan;
use ptdit::pipeline::random_model::{self, RandomModel, WEIGHT_FILES};
use ptdit::{DType, Error, GpuContext, Result};

use super::memory::{Choice, CHOICES, TEXT_LEN};
use super::Out;
use crate::cli::PeakSampler;

const PROMPT: &str = "a red apple on a wooden table";

pub struct PipelineArgs<'a> {
    pub side: usize,
    pub steps: usize,
    pub miniature: bool,
    /// Only the choices whose names contain one of these comma-separated parts.
    pub filter: Option<&'a str>,
}

/// One generation's figures, seconds and bytes.
struct Phases {
    load_text: f64,
    text: f64,
    load_image: f64,
    setup: f64,
    steps: Vec<f64>,
    decode: f64,
    /// Peak GPU buffer bytes: text encoding, denoising, decode.
    peaks: [u64; 3],
}

impl Phases {
    fn denoising(&self) -> f64 {
        self.steps.iter().sum()
    }
    fn median_step(&self) -> f64 {
        let mut s = self.steps.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        s.get(s.len() / 2).copied().unwrap_or(0.0)
    }
    /// What a user waits for once the weights are in: text, step setup, steps, decode.
    fn total(&self) -> f64 {
        self.text + self.setup + self.denoising() + self.decode
    }
    /// The reported figures: (what, value, unit).
    fn figures(&self) -> [(&'static str, f64, &'static str); 6] {
        let peak = self.peaks.into_iter().max().unwrap_or(0);
        [
            ("text encoding", self.text, "s"),
            ("denoising step (median)", self.median_step(), "s"),
            ("denoising", self.denoising(), "s"),
            ("VAE decode", self.decode, "s"),
            ("total", self.total(), "s"),
            ("peak GPU memory", peak as f64 / (1u64 << 30) as f64, "GiB"),
        ]
    }
}

pub fn run(ctx: &GpuContext, a: &PipelineArgs, out: &mut Out) -> Result<()> {
    if a.steps == 0 {
        return Err(Error::Input("--steps must be at least 1".into()));
    }
    let (configs, what) = match a.miniature {
        true => (
            random_model::miniature(),
            "the released structure in miniature",
        ),
        false => (
            random_model::released(),
            "the released shapes (T5-XXL, PT-DiT/XL, CausalVAE)",
        ),
    };
    let side = a.side;
    out.say(format!(
        "pipeline: {what}, {side}x{side}, {} steps with CFG, text {TEXT_LEN} tokens; random \
         weights streamed in (no files)",
        a.steps
    ));
    let chosen: Vec<&Choice> = (CHOICES.iter())
        .filter(|c| {
            a.filter
                .is_none_or(|f| f.split(',').any(|p| c.name.contains(p.trim())))
        })
        .filter(|c| c.float != DType::F16 || ctx.has_f16())
        .collect();
    if chosen.is_empty() {
        return Err(Error::Input(format!(
            "no storage choice matches {:?} on this adapter (f16 ones need shader-f16); the \
             choices: {}",
            a.filter.unwrap_or(""),
            CHOICES
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let mut base: Option<(&str, Phases)> = None;
    for choice in chosen {
        let model = RandomModel {
            configs: configs.clone(),
            plan: Plan {
                transformer: choice.dit,
                text_encoder: choice.t5,
                rest_bf16: false,
            },
            text_len: TEXT_LEN,
            seed: 0,
        };
        let p = generation(ctx, &model, choice.float, side, a.steps)?;
        out.say(format!("  {}", choice.name));
        out.say(format!(
            "    text {:.3} s | step setup {:.3} s | steps {:.3} s (median {:.3} s, first {:.3} \
             s) | VAE decode {:.3} s | total {:.3} s",
            p.text,
            p.setup,
            p.denoising(),
            p.median_step(),
            p.steps[0],
            p.decode,
            p.total()
        ));
        out.say(format!(
            "    peak GPU memory: text {}, denoising {}, decode {}; weights streamed in {:.1} s \
             (text encoder) + {:.1} s (the rest)",
            size(p.peaks[0]),
            size(p.peaks[1]),
            size(p.peaks[2]),
            p.load_text,
            p.load_image
        ));
        let base_figures = base.as_ref().map(|(name, b)| (*name, b.figures()));
        for (i, (what, value, unit)) in p.figures().into_iter().enumerate() {
            let name = format!("pipeline {side}x{side}, {}: {what}", choice.name);
            let baseline = base_figures.as_ref().map(|(n, b)| (*n, b[i].1));
            out.figure(&name, value, unit, baseline);
        }
        if base.is_none() {
            base = Some((choice.name, p));
        }
    }
    Ok(())
}

/// Bytes in GiB, or MiB below one GiB (a miniature's figures).
fn size(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

/// Loads `model` phase by phase as `generate --model` does and times one warm generation.
fn generation(
    ctx: &GpuContext,
    model: &RandomModel,
    float: DType,
    side: usize,
    steps: usize,
) -> Result<Phases> {
    let files: Vec<String> = WEIGHT_FILES.iter().map(|f| f.to_string()).collect();
    let open = |part: Part| -> Result<Components> {
        let draw = |rel: &str, push: &mut dyn FnMut(&[u8]) -> Result<()>| {
            model.draw_file(rel, push).map(|_| ())
        };
        model_dir::stream_part(ctx, model.small_files()?, &files, float, part, draw)
    };

    let sampler = PeakSampler::start(ctx);
    let t = Instant::now();
    let text_part = open(Part::Text)?;
    let load_text = t.elapsed().as_secs_f64();
    pollster::block_on(encode_prompts(ctx, &text_part, PROMPT, ""))?; // warm-up
    let t = Instant::now();
    let emb = pollster::block_on(encode_prompts(ctx, &text_part, PROMPT, ""))?;
    let text = t.elapsed().as_secs_f64();
    drop(text_part);
    ctx.wait("releasing the text encoder")?;
    let text_peak = sampler.finish();

    let sampler = PeakSampler::start(ctx);
    let t = Instant::now();
    let pipe = TextToImage::with_float(ctx, open(Part::Image)?, float)?;
    ctx.wait("loading the transformer and the VAE")?;
    let load_image = t.elapsed().as_secs_f64();
    let req = Request {
        width: side,
        height: side,
        steps,
        embeddings: Some(emb),
        ..pipe.request("")
    };
    let warm = Request {
        steps: 1,
        ..req.clone()
    };
    let latents = pollster::block_on(pipe.denoise(&warm, |_, _, _| true, false))?;
    pollster::block_on(pipe.decode(latents))?;

    let t = Instant::now();
    let Prepared { den, schedule } = pollster::block_on(pipe.prepare(&req))?;
    den.exe.wait()?;
    let setup = t.elapsed().as_secs_f64();
    let mut step_times = Vec::with_capacity(schedule.len());
    for (i, step) in schedule.iter().enumerate() {
        let t = Instant::now();
        den.step(i, schedule.len(), step, req.cfg)?;
        den.exe.wait()?;
        step_times.push(t.elapsed().as_secs_f64());
    }
    let latents = pollster::block_on(den.latent())?;
    drop(den);
    ctx.wait("releasing the step graph")?;
    let denoise_peak = sampler.finish();

    let sampler = PeakSampler::start(ctx);
    let t = Instant::now();
    let frames = pollster::block_on(pipe.decode(latents))?;
    let decode = t.elapsed().as_secs_f64();
    let decode_peak = sampler.finish();
    if frames.first().map(|f| (f.width, f.height)) != Some((side, side)) {
        return Err(Error::Graph(format!(
            "the pipeline gave no {side}x{side} image"
        )));
    }
    Ok(Phases {
        load_text,
        text,
        load_image,
        setup,
        steps: step_times,
        decode,
        peaks: [text_peak, denoise_peak, decode_peak],
    })
}
