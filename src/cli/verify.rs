//! `ptdit verify FILE...`: the engine against golden fixtures of the official code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::formats::safetensors::TensorFile;
use ptdit::model::verify::{linear_storage_tolerance, Comparison, Fixture};
use ptdit::{DType, GpuContext, Result};

/// Tolerance on max |error|, relative to the reference's standard deviation: 1e-3 in f32;
/// 3e-2 with f16 storage (f32 arithmetic), whose roundings add up over the layers.
pub const F32_REL_TOL: f32 = 1e-3;
pub const F16_REL_TOL: f32 = 3e-2;

#[derive(Args)]
pub struct VerifyArgs {
    /// Fixture files (safetensors with `config` metadata, weights, `input.*`, `output.*`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Run the CPU reference forward instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Store weights and activations in f16 (needs `shader-f16`); arithmetic stays f32.
    #[arg(long)]
    f16: bool,
    /// Store the models' Linear weights packed (bf16, q8 or q4, quantized from the fixture's
    /// weights as they are loaded) and report the error against the golden output.
    #[arg(long, value_parser = parse_quant)]
    quant: Option<DType>,
}

fn parse_quant(s: &str) -> std::result::Result<DType, String> {
    DType::from_name(s)
        .filter(|d| d.is_packed())
        .ok_or_else(|| format!("`{s}` is not a packed weight format: bf16, q8 or q4"))
}

fn line(c: &Comparison, tol: f32, indent: &str) {
    println!(
        "{indent}{:<32} max|err| {:.3e}  max|err|/std {:.3e}  rms/std {:.1e}  (tolerance {})  {}",
        c.name,
        c.max_abs_err,
        c.relative(),
        c.relative_rms(),
        if c.tolerance == 0.0 {
            "exact".to_string()
        } else {
            format!("{tol:.0e}·std")
        },
        if c.passed() { "ok" } else { "FAIL" }
    );
}

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let ctx = if args.cpu {
        None
    } else {
        Some(GpuContext::new_blocking()?)
    };
    if let Some(c) = &ctx {
        println!("adapter: {} ({})", c.report.name, c.report.backend);
    }
    let (float, tol) = if args.f16 {
        (DType::F16, F16_REL_TOL)
    } else {
        (DType::F32, F32_REL_TOL)
    };
    // With packed Linear weights, the formats' own error (`linear_storage_tolerance`).
    let tol = args
        .quant
        .map_or(tol, |q| tol.max(linear_storage_tolerance(q).0));
    let mode = match (&ctx, args.f16) {
        (Some(_), false) => "GPU, f32",
        (Some(_), true) => "GPU, f16 storage",
        (None, false) => "CPU reference",
        (None, true) => "CPU reference, f16 storage",
    };
    let mode = match args.quant {
        Some(q) => format!("{mode}, {} Linear weights", q.name()),
        None => mode.to_string(),
    };
    let mut failed = 0;
    for path in &args.files {
        let outcome = (|| -> Result<bool> {
            let fx = Fixture::stored(TensorFile::read(path)?, args.quant)?;
            let report = match &ctx {
                Some(c) => pollster::block_on(fx.run_gpu(c, tol, float))?,
                None => fx.run_cpu(tol, float)?,
            };
            let verdict = if report.passed() { "PASS" } else { "FAIL" };
            println!("{}: {} ({mode}) {verdict}", path.display(), report.kind);
            line(&report.output, tol, "  ");
            for t in &report.traces {
                line(t, tol, "  ");
            }
            if let Some(first) = report.first_divergence() {
                println!("  first divergence: {}", first.name);
            }
            Ok(report.passed())
        })();
        match outcome {
            Ok(true) => {}
            Ok(false) => failed += 1,
            Err(e) => {
                println!("{}: ERROR {e}", path.display());
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
