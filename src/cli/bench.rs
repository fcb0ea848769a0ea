//! `ptdit bench`: figures with their baselines, measured in the same run.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use ptdit::ops::matmul::Matmul;
use ptdit::ops::Op;
use ptdit::rng::Rng;
use ptdit::{Executable, GpuContext, Graph, HostTensor, Result, TensorDesc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Matmul GFLOP/s at 512³: the engine against the plain CPU reference.
    Matmul,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum, default_value = "matmul")]
    which: Which,
    /// Matrix size for `matmul` (M = N = K).
    #[arg(long, default_value_t = 512)]
    size: usize,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let ctx = GpuContext::new_blocking()?;
    println!(
        "adapter: {} ({}, {})",
        ctx.report.name, ctx.report.backend, ctx.report.device_type
    );
    match args.which {
        Which::Matmul => matmul(&ctx, args.size)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `f` until at least `min_secs` have passed (and at least twice); seconds per call.
fn time_per_call(min_secs: f64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up: pipeline JIT, first-use costs
    let start = Instant::now();
    let mut n = 0u32;
    while n < 2 || start.elapsed().as_secs_f64() < min_secs {
        f()?;
        n += 1;
    }
    Ok(start.elapsed().as_secs_f64() / n as f64)
}

fn matmul(ctx: &GpuContext, s: usize) -> Result<()> {
    let mut g = Graph::new();
    let a = g.input("a", TensorDesc::f32([s, s]))?;
    let w = g.param("w", [s, s])?;
    let y = g.matmul(a, w, None)?;
    g.output(y, "y")?;
    let exe = Executable::new_blocking(ctx, &g)?;
    let mut rng = Rng::new(0);
    let av = HostTensor::f32([s, s], rng.normals(s * s, 1.0));
    let wv = HostTensor::f32([s, s], rng.normals(s * s, 1.0));
    exe.write("a", &av)?;
    exe.write("w", &wv)?;
    let flops = 2.0 * (s as f64).powi(3);

    // GPU: submit a batch of runs and wait, so per-submit latency is amortised as in a
    // denoising loop.
    let batch = 8;
    let gpu = time_per_call(2.0, || {
        for _ in 0..batch {
            exe.run()?;
        }
        exe.wait()
    })? / batch as f64;

    let op = Matmul { bias: false };
    let out = TensorDesc::f32([s, s]);
    let cpu = time_per_call(2.0, || {
        std::hint::black_box(op.cpu(&[&av, &wv], &out));
        Ok(())
    })?;

    let gg = flops / gpu / 1e9;
    let cg = flops / cpu / 1e9;
    println!("matmul {s}x{s}x{s} f32");
    println!(
        "  engine (GPU)        {gg:8.2} GFLOP/s  ({:.2} ms)",
        gpu * 1e3
    );
    println!(
        "  CPU reference       {cg:8.2} GFLOP/s  ({:.2} ms, one thread)",
        cpu * 1e3
    );
    println!("  ratio engine / CPU  {:8.2}x", gg / cg);
    Ok(())
}
