//! `ptdit generate`: text → PNG.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ptdit::pipeline::generate::{Request, TextToImage};
use ptdit::pipeline::{model_dir, png};
use ptdit::{Error, GpuContext, Result};

#[derive(Args)]
pub struct GenerateArgs {
    /// What to draw.
    #[arg(long)]
    prompt: String,
    /// What to steer away from (the released pipeline uses the empty prompt).
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// Model directory (transformer/, text_encoder/, tokenizer/, vae/).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1024x1024")]
    size: String,
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 4.0)]
    cfg: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frames (video: 4k + 1; written as an animated PNG).
    #[arg(long, default_value_t = 1)]
    frames: usize,
    #[arg(long, default_value = "out.png")]
    out: PathBuf,
    /// Store the transformer and the VAE in f16 (half the memory; needs shader-f16).
    #[arg(long)]
    f16: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::Input(format!("--size `{s}` must be WIDTHxHEIGHT, e.g. 1024x1024"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

pub fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let (width, height) = parse_size(&args.size)?;
    let dir = args.model.clone().ok_or_else(|| {
        Error::Input("no --model DIR given (a model directory: transformer/, text_encoder/, tokenizer/, vae/); the embedded default model is not shipped yet".into())
    })?;
    let components = model_dir::load(&dir)?;
    let ctx = GpuContext::new_blocking()?;
    let mut pipe = TextToImage::new(&ctx, components);
    if args.f16 {
        pipe.float = ptdit::DType::F16;
    }

    pipe.check_size(width, height, args.frames)?;
    let req = Request {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        width,
        height,
        frames: args.frames,
        steps: args.steps,
        cfg: args.cfg,
        seed: args.seed,
    };
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} denoising [{bar:30}] {pos}/{len} steps  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let frames = pollster::block_on(pipe.generate(
        &req,
        |i, _, _| {
            bar.set_position(i as u64);
            true
        },
        false,
    ))?;
    bar.finish();
    let bytes = png::encode(&frames)?;
    std::fs::write(&args.out, bytes).map_err(|e| Error::Io {
        path: args.out.display().to_string(),
        source: e,
    })?;
    println!(
        "wrote {} ({}x{}, {} frame{})",
        args.out.display(),
        frames[0].width,
        frames[0].height,
        frames.len(),
        if frames.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
