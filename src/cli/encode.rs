//! `ptdit encode`: a prompt and a negative prompt through the text encoder alone, written as
//! prompt embeddings (`pipeline::embeddings`) that `generate --embeddings` reads without
//! loading the text encoder.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::pipeline::default_model;
use ptdit::pipeline::generate::encode_prompts;
use ptdit::pipeline::model_dir::{self, Part};
use ptdit::{DType, Error, GpuContext, Result};

#[derive(Args)]
pub struct EncodeArgs {
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// Model directory; only its text encoder and tokenizer are loaded [default: the
    /// built-in model].
    #[arg(long)]
    model: Option<PathBuf>,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &EncodeArgs) -> Result<ExitCode> {
    let ctx = GpuContext::new_blocking()?;
    let c = match &args.model {
        Some(dir) => model_dir::open_part(&ctx, dir, DType::F32, Part::Text)?,
        None => {
            let mut c = model_dir::from_files(&default_model::files())?;
            c.upload_text_encoder(&ctx)?;
            c
        }
    };
    for w in &c.warnings {
        eprintln!("warning: {}", super::printable(w));
    }
    let e = pollster::block_on(encode_prompts(
        &ctx,
        &c,
        &args.prompt,
        &args.negative_prompt,
    ))?;
    let bytes = e.to_bytes(&args.prompt, &args.negative_prompt)?;
    std::fs::write(&args.out, bytes).map_err(|e| Error::Io {
        path: args.out.display().to_string(),
        source: e,
    })?;
    let d = e.cond.shape.dims();
    println!(
        "wrote {}: prompt and negative prompt, {} tokens of {} channels each",
        args.out.display(),
        d[1],
        d[2]
    );
    Ok(ExitCode::SUCCESS)
}
