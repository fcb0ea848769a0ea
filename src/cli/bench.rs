//! `ptdit bench`: figures with their baselines, measured in the same run.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use ptdit::graph::cpu;
use ptdit::model::{ptdit as net, random_weights, ForwardInputs, Ptdit, PtditConfig, Shapes};
use ptdit::ops::matmul::Matmul;
use ptdit::ops::Op;
use ptdit::rng::Rng;
use ptdit::{Executable, GpuContext, Graph, HostTensor, Result, TensorDesc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Matmul GFLOP/s at 512³: the engine against the plain CPU reference.
    Matmul,
    /// A PT-DiT forward pass of a small config: tokens/s on the GPU and on the CPU reference.
    Forward,
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
        Which::Forward => forward(&ctx)?,
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

/// A small PT-DiT: the released block structure (windows 8×8, one proxy per window, shifted
/// windows) at width 256, 4 layers, a 64×64 latent (1024 tokens), CFG batch 2.
fn forward(ctx: &GpuContext) -> Result<()> {
    let mut cfg = PtditConfig::released_xl();
    cfg.num_attention_heads = 4;
    cfg.attention_head_dim = 64;
    cfg.cross_attention_dim = Some(256);
    cfg.num_layers = 4;
    cfg.caption_channels = 256;
    let grid = cfg.grid(1, 64, 64)?;
    let shapes = Shapes {
        batch: 2,
        grid,
        text_len: 32,
        traces: false,
    };
    let graph = net::build(&cfg, &shapes)?;
    let weights = random_weights(&graph, 1);
    let mut rng = Rng::new(2);
    let latent = HostTensor::f32([2, 4, 1, 64, 64], rng.normals(2 * 4 * 64 * 64, 1.0));
    let text = HostTensor::f32([2, 32, 256], rng.normals(2 * 32 * 256, 1.0));
    let inputs = ForwardInputs {
        latent,
        timestep: vec![500.0, 500.0],
        text,
        text_mask: vec![1.0; 64],
    };
    let model = Ptdit::new_blocking(ctx, &cfg, shapes, &weights)?;
    for (k, v) in inputs.feeds(&shapes)? {
        model.exe.write(&k, &v)?;
    }
    let gpu = time_per_call(3.0, || {
        model.exe.run()?;
        model.exe.wait()
    })?;
    let mut feeds = weights.clone();
    feeds.extend(inputs.feeds(&shapes)?);
    let start = Instant::now();
    std::hint::black_box(cpu::run(&graph, &feeds)?);
    let cpu_s = start.elapsed().as_secs_f64();
    let tokens = (shapes.batch * grid.tokens()) as f64;
    let gflop = graph.flops() as f64 / 1e9;
    println!(
        "PT-DiT forward: width 256 (4x64), 4 layers, 64x64 latent = {} tokens x batch 2, text 32",
        grid.tokens()
    );
    println!(
        "  {} dispatches in one submission, {:.1} GFLOP",
        model.exe.dispatches, gflop
    );
    println!(
        "  engine (GPU)        {:10.0} tokens/s  ({:.1} ms, {:.2} GFLOP/s)",
        tokens / gpu,
        gpu * 1e3,
        gflop / gpu
    );
    println!(
        "  CPU reference       {:10.0} tokens/s  ({:.1} ms, one thread)",
        tokens / cpu_s,
        cpu_s * 1e3
    );
    println!("  ratio engine / CPU  {:10.2}x", cpu_s / gpu);
    let m = &model.exe.memory;
    println!(
        "  memory: peak {:.1} MiB (intermediates {:.1} MiB shared, {:.1} MiB if unshared)",
        m.peak_bytes() as f64 / 1048576.0,
        m.intermediate_bytes as f64 / 1048576.0,
        m.unshared_bytes as f64 / 1048576.0
    );
    Ok(())
}
