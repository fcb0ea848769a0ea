//! `ptdit convert IN OUT`: an official PyTorch checkpoint to safetensors, executing nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::formats::{safetensors, torch};
use ptdit::{Error, Result};

#[derive(Args)]
pub struct ConvertArgs {
    /// A PyTorch checkpoint (.pt, .pth, .ckpt, .bin).
    input: PathBuf,
    /// The safetensors file to write.
    output: PathBuf,
    /// The top-level entry that holds the state dict (e.g. `ema`), when it holds several.
    #[arg(long)]
    key: Option<String>,
}

pub fn run(args: &ConvertArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.input).map_err(|e| Error::Io {
        path: args.input.display().to_string(),
        source: e,
    })?;
    let ck = torch::read_checkpoint_at(&bytes, args.key.as_deref())
        .map_err(|e| e.in_file(args.input.display()))?;
    if let Some(k) = &ck.from {
        println!("the state dict under `{}`", super::printable(k));
    }
    let out = safetensors::write(&ck.tensors)?;
    std::fs::write(&args.output, out).map_err(|e| Error::Io {
        path: args.output.display().to_string(),
        source: e,
    })?;
    let params: usize = ck
        .tensors
        .values()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    println!(
        "wrote {}: {} tensors, {} parameters",
        args.output.display(),
        ck.tensors.len(),
        params
    );
    if !ck.skipped.is_empty() {
        println!(
            "skipped {} entries that are not tensors: {}",
            ck.skipped.len(),
            super::printable(&ck.skipped.join(", "))
        );
    }
    Ok(ExitCode::SUCCESS)
}
