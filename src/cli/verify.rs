//! `ptdit verify FILE...`: the engine against golden fixtures of the official code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ptdit::model::verify::{Comparison, Fixture};
use ptdit::model::weights::TensorFile;
use ptdit::{GpuContext, Result};

/// f32 tolerance on max |error|, relative to the reference's standard deviation.
pub const F32_REL_TOL: f32 = 1e-3;

#[derive(Args)]
pub struct VerifyArgs {
    /// Fixture files (safetensors with `config` metadata, weights, `input.*`, `output.*`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Run the CPU reference forward instead of the GPU.
    #[arg(long)]
    cpu: bool,
}

fn line(c: &Comparison, indent: &str) {
    println!(
        "{indent}{:<16} max|err| {:.3e}  max|err|/std {:.3e}  (tolerance {:.0e}·std)  {}",
        c.name,
        c.max_abs_err,
        c.relative(),
        F32_REL_TOL,
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
    let mut failed = 0;
    for path in &args.files {
        let outcome = (|| -> Result<bool> {
            let fx = Fixture::from_file(TensorFile::read(path)?)?;

            let report = match &ctx {
                Some(c) => pollster::block_on(fx.run_gpu(c, F32_REL_TOL))?,
                None => fx.run_cpu(F32_REL_TOL)?,
            };
            let verdict = if report.passed() { "PASS" } else { "FAIL" };
            println!(
                "{}: {} ({}) {verdict}",
                path.display(),
                report.kind,
                if ctx.is_some() {
                    "GPU, f32"
                } else {
                    "CPU reference"
                }
            );
            line(&report.output, "  ");
            for t in &report.traces {
                line(t, "  ");
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
