//! `ptdit random-model OUT`: the released pipeline's shapes with seeded random weights.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::pipeline::quantize::Plan;
use ptdit::pipeline::random_model::RandomModel;
use ptdit::{DType, Error, Result};

#[derive(Args)]
pub struct RandomModelArgs {
    /// The directory to write (new or empty).
    output: PathBuf,
    /// Storage of the Linear weights as `ptdit quantize` names it: small, medium or bf16;
    /// without one, every weight is f32 (about 23 GB).
    #[arg(long)]
    preset: Option<String>,
    /// Tokens per prompt (the released pipeline: 200).
    #[arg(long, default_value_t = 200)]
    text_len: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: &RandomModelArgs) -> Result<ExitCode> {
    let plan = match &args.preset {
        None => Plan::default(),
        Some(p) => Plan::preset(p)
            .ok_or_else(|| Error::Input(format!("unknown preset `{p}` (small, medium or bf16)")))?,
    };
    let written = RandomModel::released(plan, args.text_len, args.seed).write(&args.output)?;
    let name = |d: Option<DType>| d.map_or("f32", |d| d.name());
    println!(
        "released shapes, random weights (seed {}): T5-XXL {}, PT-DiT/XL {}, the rest {}",
        args.seed,
        name(plan.text_encoder),
        name(plan.transformer),
        if plan.rest_bf16 { "bf16" } else { "f32" }
    );
    for (comp, bytes) in written {
        println!(
            "  {comp:<13} {:>8.2} GiB",
            bytes as f64 / (1u64 << 30) as f64
        );
    }
    Ok(ExitCode::SUCCESS)
}
