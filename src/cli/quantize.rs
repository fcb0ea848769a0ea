//! `ptdit quantize IN_DIR OUT_DIR`: a model directory with packed Linear weights.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::pipeline::quantize::{quantize_dir, Plan};
use ptdit::{DType, Error, Result};

#[derive(Args)]
pub struct QuantizeArgs {
    /// The model directory to read (transformer/, text_encoder/, tokenizer/, vae/).
    input: PathBuf,
    /// The directory to write (new or empty).
    output: PathBuf,
    /// Named choices: small (q4 T5, q8 PT-DiT), medium (q8 T5), bf16 (both bf16).
    #[arg(long)]
    preset: Option<String>,
    /// The text encoder's Linear weights: bf16, q8, q4 or keep (overrides the preset).
    #[arg(long, value_parser = parse_storage)]
    text_encoder: Option<Choice>,
    /// The transformer's Linear weights: bf16, q8, q4 or keep (overrides the preset).
    #[arg(long, value_parser = parse_storage)]
    transformer: Option<Choice>,
    /// Write every other f32 tensor (norms, embeddings, the VAE) as bf16 (the presets do).
    #[arg(long)]
    rest_bf16: bool,
}

/// A component's choice on the command line: a packed format, or `keep`.
#[derive(Clone, Copy)]
struct Choice(Option<DType>);

fn parse_storage(s: &str) -> std::result::Result<Choice, String> {
    match s {
        "keep" => Ok(Choice(None)),
        _ => DType::from_name(s)
            .filter(|d| d.is_packed())
            .map(|d| Choice(Some(d)))
            .ok_or_else(|| format!("`{s}` is not bf16, q8, q4 or keep")),
    }
}

pub fn run(args: &QuantizeArgs) -> Result<ExitCode> {
    let mut plan = match &args.preset {
        None => Plan::default(),
        Some(p) => Plan::preset(p)
            .ok_or_else(|| Error::Input(format!("unknown preset `{p}` (small, medium or bf16)")))?,
    };
    if let Some(Choice(c)) = args.text_encoder {
        plan.text_encoder = c;
    }
    if let Some(Choice(c)) = args.transformer {
        plan.transformer = c;
    }
    plan.rest_bf16 |= args.rest_bf16;
    if plan == Plan::default() {
        return Err(Error::Input(
            "nothing to do: give --preset, --text-encoder, --transformer or --rest-bf16".into(),
        ));
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let (mut total_in, mut total_out) = (0, 0);
    for w in quantize_dir(&args.input, &args.output, plan)? {
        let storage = w.storage.map_or("as is", |s| s.name());
        println!(
            "{:<13} {storage:<6} {:>4} tensors packed  {:>10.1} MiB -> {:>10.1} MiB",
            w.component,
            w.packed_tensors,
            mib(w.bytes_in),
            mib(w.bytes_out)
        );
        total_in += w.bytes_in;
        total_out += w.bytes_out;
    }
    println!(
        "wrote {}: {:.1} MiB -> {:.1} MiB",
        args.output.display(),
        mib(total_in),
        mib(total_out)
    );
    Ok(ExitCode::SUCCESS)
}
