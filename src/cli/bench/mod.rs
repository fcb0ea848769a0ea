//! `ptdit bench`: figures with their baselines, measured in the same run.

mod cache;
mod memory;
mod ops;
mod pipeline;
mod soak;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use ptdit::autotune::{autotune, Cache};
use ptdit::gpu::readback;
use ptdit::graph::cpu;
use ptdit::graph::ExecOptions;
use ptdit::kernel::Op;
use ptdit::kernel::{MatmulKernel, Tuning};
use ptdit::model::{
    global_block, ptdit as net, random_weights, ForwardInputs, Ptdit, PtditConfig, Shapes,
};
use ptdit::ops::matmul::Matmul;
use ptdit::rng::Rng;
use ptdit::{DType, Executable, GpuContext, Graph, HostTensor, Result, TensorDesc};

/// What a benchmark reports: lines for people, figures (each with its baseline from the same
/// run) for `--json`.
#[derive(Default)]
struct Out {
    lines: Vec<String>,
    figures: Vec<serde_json::Value>,
}

impl Out {
    fn say(&mut self, line: String) {
        self.lines.push(line);
    }
    /// A figure; `baseline` is (what, value) measured in the same run, if the figure has one.
    fn figure(&mut self, name: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>) {
        let mut f = serde_json::json!({ "name": name, "value": value, "unit": unit });
        if let Some((what, b)) = baseline {
            f["baseline"] = serde_json::json!({ "name": what, "value": b });
            f["ratio"] = serde_json::json!(value / b);
        }
        self.figures.push(f);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Matmul GFLOP/s at 512³: the engine against the plain CPU reference.
    Matmul,
    /// A PT-DiT forward pass of a small config: tokens/s on the GPU and on the CPU reference.
    Forward,
    /// The proxy-token payoff: a PT-DiT block vs a global-attention block, time and FLOP ratios.
    Payoff,
    /// Peak GPU memory of the released pipeline, phase by phase, for each storage choice, at
    /// 1024² and 2048², and the download size (no GPU needed).
    Memory,
    /// The share of a forward pass spent in each op (the `forward` model), timed per dispatch.
    Profile,
    /// Every case of the op-test table under each kernel variant: time per run and GFLOP/s on
    /// the GPU against the CPU reference (the perf mode of `tests/ops.rs`).
    Ops,
    /// Many generations of the built-in model in one process, through the CLI's pipeline and
    /// the embedding API: host and device memory after each (a leak grows the second half).
    Soak,
    /// The step cache: on the built-in model, each level's generation time, skipped steps and
    /// PSNR against the uncached image (levels alternated); with `--released`, a skipped step
    /// against a full one on the released XL's shapes.
    Cache,
    /// One image of the released shapes (T5-XXL, PT-DiT/XL, CausalVAE), random weights
    /// streamed in (no files): text encoding, each denoising step, VAE decode, total and peak
    /// GPU memory, for each storage choice, at `--side` (1024 on a real GPU) and `--steps`.
    Pipeline,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum, default_value = "matmul")]
    which: Which,
    /// Matrix size for `matmul` (M = N = K).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// More `matmul` products, each `MxKxN` (e.g. the released model's `8192x1152x4608`),
    /// timed after the square one.
    #[arg(long, value_delimiter = ',', value_parser = parse_mkn)]
    shapes: Vec<[usize; 3]>,
    /// Token grid sides for `payoff`.
    #[arg(long, value_delimiter = ',', default_value = "32,64")]
    grids: Vec<usize>,
    /// Print one JSON document (adapter, figures with baselines and ratios) instead of text.
    #[arg(long)]
    json: bool,
    /// Width of the `forward`/`profile` model (a multiple of 64).
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// Layers of the `forward`/`profile` model.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Latent side of the `forward`/`profile` model (a multiple of 16: patch 2, 8×8 windows).
    #[arg(long, default_value_t = 64)]
    latent: usize,
    /// Skip the one-thread CPU baselines of `matmul` and `forward` (for sizes where they would
    /// take minutes, e.g. on a real GPU); the figures then have no baseline.
    #[arg(long)]
    no_cpu: bool,
    /// For `ops`: only the cases whose names contain this (e.g. `attention`); for `pipeline`,
    /// only the storage choices whose names contain one of its comma-separated parts (e.g.
    /// `f32 T5 + f32,--preset small`).
    #[arg(long)]
    filter: Option<String>,
    /// For `matmul`: also time each kernel with the weight stored packed (bf16, q8, q4)
    /// against the same kernel on f32 weights (products whose K is a multiple of 32).
    #[arg(long)]
    packed: bool,
    /// For `soak`: generations through each path.
    #[arg(long, default_value_t = 100)]
    generations: usize,
    /// For `soak` and `pipeline`: denoising steps a generation.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// For `cache`: the levels to compare, `off` first (names or RULE:THRESHOLD specs).
    #[arg(long, value_delimiter = ';', default_value = "off;light;medium;heavy")]
    levels: Vec<String>,
    /// For `cache`: a file of prompts, one a line [default: 8 built-in names].
    #[arg(long)]
    prompts: Option<std::path::PathBuf>,
    /// For `cache`: write every image as DIR/<level index>/<prompt index>.png.
    #[arg(long)]
    images: Option<std::path::PathBuf>,
    /// For `cache`: the first prompt's seed (prompt i gets seed + i, as in evaluate.py).
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    /// For `cache`: time a skipped step against a full one on the released XL's shapes.
    #[arg(long)]
    released: bool,
    /// For `cache --released` and `pipeline`: the image side in pixels.
    #[arg(long, default_value_t = 256)]
    side: usize,
    /// For `cache --released`: weights and activations in f16.
    #[arg(long)]
    f16: bool,
    /// For `pipeline`: the released structure at small widths (one block, one T5 layer, thin
    /// VAE stages), which a software GPU runs in seconds.
    #[arg(long)]
    miniature: bool,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let mut out = Out::default();
    let mut adapter = serde_json::Value::Null;
    if args.which == Which::Memory {
        memory::run(&mut out)?;
    } else if args.which == Which::Soak {
        soak::run(args.generations, args.steps, &mut out)?;
    } else {
        let ctx = GpuContext::new_blocking()?;
        let r = &ctx.report;
        out.say(format!(
            "adapter: {} ({}, {})",
            r.name, r.backend, r.device_type
        ));
        let tuned = pollster::block_on(autotune(&ctx, &Cache::Default))?;
        out.say(tuned.summary());
        let coop = r.coop.map(|c| format!("{0}x{0} f16 -> f32", c.edge));
        adapter = serde_json::json!({ "name": r.name, "backend": r.backend, "device_type": r.device_type, "driver": r.driver, "matmul_kernel": tuned.tuning.matmul.name(), "coop_matrix": coop, "f16_graphs_on_coop": tuned.tuning.coop, "f16_attention_on_coop": tuned.tuning.coop_attention });
        match args.which {
            Which::Matmul => {
                let square = [args.size; 3];
                for &mkn in std::iter::once(&square).chain(&args.shapes) {
                    matmul(&ctx, mkn, !args.no_cpu, &mut out)?;
                    if args.packed {
                        matmul_packed(&ctx, mkn, &mut out)?;
                    }
                }
            }
            Which::Forward => forward(&ctx, args, &mut out)?,
            Which::Profile => profile(&ctx, args, &mut out)?,
            Which::Payoff => payoff(&ctx, &args.grids, &mut out)?,
            Which::Ops => ops::ops(&ctx, args.filter.as_deref(), &mut out)?,
            Which::Cache if args.released => {
                let float = if args.f16 { DType::F16 } else { DType::F32 };
                cache::released(&ctx, args.side, float, &mut out)?
            }
            Which::Cache => {
                let a = cache::CacheArgs {
                    levels: &args.levels,
                    prompts: args.prompts.as_ref(),
                    images: args.images.as_ref(),
                    steps: args.steps,
                    seed: args.seed,
                };
                cache::run(&ctx, &a, &mut out)?
            }
            Which::Pipeline => {
                let a = pipeline::PipelineArgs {
                    side: args.side,
                    steps: args.steps,
                    miniature: args.miniature,
                    filter: args.filter.as_deref(),
                };
                pipeline::run(&ctx, &a, &mut out)?
            }
            Which::Memory | Which::Soak => {}
        }
    }
    let text = if args.json {
        let doc = serde_json::json!({ "adapter": adapter, "benchmark": format!("{:?}", args.which).to_lowercase(), "figures": out.figures });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    } else {
        out.lines.join("\n")
    };
    // A closed pipe (`| head`) ends the output quietly rather than with a panic.
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
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

/// `MxKxN` for `--shapes`.
fn parse_mkn(s: &str) -> std::result::Result<[usize; 3], String> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("{s:?} is not MxKxN: {e}"))?;
    match dims[..] {
        [m, k, n] if m > 0 && k > 0 && n > 0 => Ok([m, k, n]),
        _ => Err(format!("{s:?} is not MxKxN with three positive sizes")),
    }
}

fn matmul(ctx: &GpuContext, mkn: [usize; 3], with_cpu: bool, out: &mut Out) -> Result<()> {
    let [m, k, n] = mkn;
    let (g, av, wv) = product(mkn, DType::F32)?;
    let flops = 2.0 * (m * k * n) as f64;
    let shape = if m == k && k == n {
        format!("{m}^3")
    } else {
        format!("{m}x{k}x{n}")
    };
    out.say(format!("matmul {m}x{k}x{n} f32"));

    let cg = if with_cpu {
        let op = Matmul {
            bias: false,
            gelu: false,
            residual: false,
            gate: None,
        };
        let out_desc = TensorDesc::f32([m, n]);
        let cpu = time_per_call(2.0, || {
            std::hint::black_box(op.cpu(&[&av, &wv], &out_desc));
            Ok(())
        })?;
        Some(flops / cpu / 1e9)
    } else {
        None
    };
    // Every kernel variant (each on this product, whatever its size), each against the CPU
    // reference; the autotuner keeps the fastest.
    for kernel in MatmulKernel::ALL.into_iter().filter(|k| k.takes_f32()) {
        let tuning = Tuning {
            matmul: kernel,
            fuse_gelu: false,
            per_shape: false,
            ..Default::default()
        };
        let gpu = time_product(ctx, &g, tuning, &av, &wv)?;
        let gg = flops / gpu / 1e9;
        out.say(format!(
            "  engine, {:<9} kernel {gg:9.2} GFLOP/s  ({:.3} ms)",
            kernel.name(),
            gpu * 1e3
        ));
        let name = format!("matmul {shape} f32, {} kernel", kernel.name());
        match cg {
            Some(cg) => out.figure(
                &name,
                gg,
                "GFLOP/s",
                Some(("CPU reference, one thread", cg)),
            ),
            None => out.figure(&name, gg, "GFLOP/s", None),
        }
    }
    if let Some(cg) = cg {
        out.say(format!(
            "  CPU reference     {cg:9.2} GFLOP/s  (one thread)"
        ));
    }
    if ctx.has_f16() {
        matmul_f16_math(ctx, mkn, &shape, out)?;
    }
    Ok(())
}

/// Every kernel with the weight stored as f16 (where the adapter has shader-f16), bf16, q8 and
/// q4, against the same kernel on f32 weights; activations f32. Quantized weights buy memory:
/// at these sizes the products are compute-bound, so the unpacking is what this measures.
fn matmul_packed(ctx: &GpuContext, [m, k, n]: [usize; 3], out: &mut Out) -> Result<()> {
    let flops = 2.0 * (m * k * n) as f64;
    let shape = format!("{m}x{k}x{n}");
    let mut formats = vec![DType::BF16];
    if k.is_multiple_of(ptdit::quant::BLOCK) {
        formats.extend([DType::Q8, DType::Q4]);
    }
    out.say(format!(
        "matmul {shape}, weights stored packed (f32 activations)"
    ));
    for kernel in MatmulKernel::ALL.into_iter().filter(|k| k.takes_f32()) {
        let tuning = Tuning {
            matmul: kernel,
            per_shape: false,
            ..Default::default()
        };
        let (g, av, wv) = product([m, k, n], DType::F32)?;
        let base = flops / time_product(ctx, &g, tuning, &av, &wv)? / 1e9;
        let mut line = format!("  {:<9} f32 {base:8.2}", kernel.name());
        for storage in formats.iter().copied() {
            let (g, av, wv) = stored_product([m, k, n], storage)?;
            let rate = flops / time_product(ctx, &g, tuning, &av, &wv)? / 1e9;
            line.push_str(&format!(
                "  {} {rate:8.2} ({:.2}x)",
                storage.name(),
                rate / base
            ));
            out.figure(
                &format!(
                    "matmul {shape} {} weights, {} kernel",
                    storage.name(),
                    kernel.name()
                ),
                rate,
                "GFLOP/s",
                Some(("f32 weights, same kernel", base)),
            );
        }
        out.say(format!("{line}  GFLOP/s"));
    }
    Ok(())
}

/// The kernels that can multiply in f16, on f16 operands: f16 sums against f32 sums; then,
/// where the device has cooperative matrices, `coop` against the fastest of those.
fn matmul_f16_math(
    ctx: &GpuContext,
    [m, k, n]: [usize; 3],
    shape: &str,
    out: &mut Out,
) -> Result<()> {
    let (g, av, wv) = product([m, k, n], DType::F16)?;
    let flops = 2.0 * (m * k * n) as f64;
    out.say(format!("matmul {m}x{k}x{n} f16 operands"));
    let mut best: Option<(String, f64)> = None;
    for kernel in MatmulKernel::ALL.into_iter().filter(|k| k.has_f16_math()) {
        let mut rate = [0.0; 2];
        for (f16_math, r) in [(false, 0), (true, 1)] {
            let tuning = Tuning {
                matmul: kernel,
                per_shape: false,
                f16_math,
                ..Default::default()
            };
            rate[r] = flops / time_product(ctx, &g, tuning, &av, &wv)? / 1e9;
            let name = format!("{}, {} math", kernel.name(), ["f32", "f16"][r]);
            if best.as_ref().is_none_or(|b| rate[r] > b.1) {
                best = Some((name, rate[r]));
            }
        }
        out.say(format!(
            "  engine, {:<9} kernel {:9.2} GFLOP/s multiplying in f16, {:.2} in f32 ({:.2}x)",
            kernel.name(),
            rate[1],
            rate[0],
            rate[1] / rate[0]
        ));
        out.figure(
            &format!(
                "matmul {shape} f16 operands, {} kernel, f16 math",
                kernel.name()
            ),
            rate[1],
            "GFLOP/s",
            Some(("f32 math, same kernel", rate[0])),
        );
    }
    if let (Some(shape_c), Some((base_name, base))) = (ctx.coop(), best) {
        let tuning = Tuning {
            matmul: MatmulKernel::Coop,
            per_shape: false,
            ..Default::default()
        };
        let rate = flops / time_product(ctx, &g, tuning, &av, &wv)? / 1e9;
        out.say(format!(
            "  engine, coop      kernel {rate:9.2} GFLOP/s on {0}x{0} cooperative matrices, {1:.2}x {base_name}",
            shape_c.edge,
            rate / base
        ));
        out.figure(
            &format!("matmul {shape} f16 operands, coop kernel"),
            rate,
            "GFLOP/s",
            Some((&format!("{base_name} (the fastest without)"), base)),
        );
    }
    Ok(())
}

/// `y = a · wᵀ` (M, K, N) in `float`, and random operands for it.
fn product([m, k, n]: [usize; 3], float: DType) -> Result<(Graph, HostTensor, HostTensor)> {
    let mut g = Graph::with_float(float);
    let a = g.input("a", TensorDesc::new([m, k], float))?;
    let w = g.param("w", [n, k])?;
    let y = g.matmul(a, w, None)?;
    g.output(y, "y")?;
    let mut rng = Rng::new(0);
    let av = HostTensor::f32([m, k], rng.normals(m * k, 1.0));
    let wv = HostTensor::f32([n, k], rng.normals(n * k, 1.0));
    Ok((g, av, wv))
}

/// [`product`] in f32 with the weight stored as `storage` (a packed format).
fn stored_product(mkn: [usize; 3], storage: DType) -> Result<(Graph, HostTensor, HostTensor)> {
    let [m, k, n] = mkn;
    let (_, av, wv) = product(mkn, DType::F32)?;
    let mut g = Graph::new();
    let a = g.input("a", TensorDesc::f32([m, k]))?;
    let w = g.param_as("w", [n, k], storage)?;
    let y = g.matmul(a, w, None)?;
    g.output(y, "y")?;
    Ok((g, av, wv))
}

/// Seconds per run of the product `g` (inputs `a`, `w`) with `tuning`.
fn time_product(
    ctx: &GpuContext,
    g: &Graph,
    tuning: Tuning,
    av: &HostTensor,
    wv: &HostTensor,
) -> Result<f64> {
    let opts = ExecOptions {
        tuning: Some(tuning),
        ..Default::default()
    };
    time_runs(ctx, g, &opts, [("a", av), ("w", wv)], 2.0)
}

/// Seconds per run of `g` compiled with `opts` and fed `feeds`, timed for `min_secs`.
fn time_runs<'a>(
    ctx: &GpuContext,
    g: &Graph,
    opts: &ExecOptions,
    feeds: impl IntoIterator<Item = (&'a str, &'a HostTensor)>,
    min_secs: f64,
) -> Result<f64> {
    let exe = pollster::block_on(Executable::with_options(ctx, g, opts))?;
    for (name, v) in feeds {
        exe.write(name, v)?;
    }
    // A batch of runs per wait, so per-submit latency is amortised as in a denoising loop.
    let batch = 8;
    Ok(time_per_call(min_secs, || {
        for _ in 0..batch {
            exe.run()?;
        }
        exe.wait()
    })? / batch as f64)
}

/// The benchmark model: the released block structure at `width` (heads of 64), `layers`,
/// a `latent`² latent (patch 2, 8×8 windows), CFG batch 2, text 32 tokens, random weights.
struct SmallModel {
    cfg: PtditConfig,
    shapes: Shapes,
    graph: Graph,
    weights: std::collections::HashMap<String, HostTensor>,
    inputs: ForwardInputs,
}

fn small_model(width: usize, layers: usize, latent: usize) -> Result<SmallModel> {
    if width == 0 || !width.is_multiple_of(64) || layers == 0 {
        return Err(ptdit::Error::Input(format!(
            "--width {width} must be a positive multiple of 64 (heads of 64) and --layers positive"
        )));
    }
    let mut cfg = PtditConfig::released_xl();
    cfg.num_attention_heads = width / 64;
    cfg.attention_head_dim = 64;
    cfg.cross_attention_dim = Some(width);
    cfg.num_layers = layers;
    cfg.caption_channels = width;
    let grid = cfg.grid(1, latent, latent)?;
    let shapes = Shapes {
        batch: 2,
        grid,
        text_len: 32,
        traces: false,
    };
    let graph = net::build(&cfg, &shapes)?;
    let weights = random_weights(&graph, 1);
    let mut rng = Rng::new(2);
    let n = 2 * 4 * latent * latent;
    let inputs = ForwardInputs {
        latent: HostTensor::f32([2, 4, 1, latent, latent], rng.normals(n, 1.0)),
        timestep: vec![500.0, 500.0],
        text: HostTensor::f32([2, 32, width], rng.normals(2 * 32 * width, 1.0)),
        text_mask: vec![1.0; 64],
    };
    Ok(SmallModel {
        cfg,
        shapes,
        graph,
        weights,
        inputs,
    })
}

fn forward(ctx: &GpuContext, args: &BenchArgs, out: &mut Out) -> Result<()> {
    let SmallModel {
        cfg,
        shapes,
        graph,
        weights,
        inputs,
    } = small_model(args.width, args.layers, args.latent)?;
    let grid = shapes.grid;
    let model = Ptdit::new_blocking(ctx, &cfg, shapes, &weights)?;
    for (k, v) in inputs.feeds(&shapes)? {
        model.exe.write(&k, &v)?;
    }
    let gpu = time_per_call(3.0, || {
        model.exe.run()?;
        model.exe.wait()
    })?;
    let cpu_s = if args.no_cpu {
        None
    } else {
        let mut feeds = weights.clone();
        feeds.extend(inputs.feeds(&shapes)?);
        let start = Instant::now();
        std::hint::black_box(cpu::run(&graph, &feeds)?);
        Some(start.elapsed().as_secs_f64())
    };
    let tokens = (shapes.batch * grid.tokens()) as f64;
    let gflop = graph.flops() as f64 / 1e9;
    let what = format!(
        "PT-DiT forward, width {}, {} layers, {} tokens x 2",
        args.width,
        args.layers,
        grid.tokens()
    );
    out.say(format!(
        "PT-DiT forward: width {} ({}x64), {} layers, {}x{} latent = {} tokens x batch 2, text 32",
        args.width,
        args.width / 64,
        args.layers,
        args.latent,
        args.latent,
        grid.tokens()
    ));
    out.say(format!(
        "  {} dispatches in one submission, {:.1} GFLOP",
        model.exe.dispatches, gflop
    ));
    out.say(format!(
        "  engine (GPU)        {:10.0} tokens/s  ({:.1} ms, {:.2} GFLOP/s)",
        tokens / gpu,
        gpu * 1e3,
        gflop / gpu
    ));
    match cpu_s {
        Some(cpu_s) => {
            out.say(format!(
                "  CPU reference       {:10.0} tokens/s  ({:.1} ms, one thread)",
                tokens / cpu_s,
                cpu_s * 1e3
            ));
            out.say(format!("  ratio engine / CPU  {:10.2}x", cpu_s / gpu));
            out.figure(
                &what,
                tokens / gpu,
                "tokens/s",
                Some(("CPU reference forward, one thread", tokens / cpu_s)),
            );
        }
        None => out.figure(&what, tokens / gpu, "tokens/s", None),
    }
    let m = &model.exe.memory;
    out.say(format!(
        "  memory: peak {:.1} MiB (intermediates {:.1} MiB shared, {:.1} MiB if unshared)",
        m.peak_bytes() as f64 / 1048576.0,
        m.intermediate_bytes as f64 / 1048576.0,
        m.unshared_bytes as f64 / 1048576.0
    ));
    drop(model);
    fused_projections(ctx, &cfg, &shapes, &graph, out)
}

/// The forward with fused projections (q/k/v in self-attention, k/v in cross-attention: one
/// matmul each) against the same graph with them apart, timed in alternation.
fn fused_projections(
    ctx: &GpuContext,
    cfg: &PtditConfig,
    shapes: &Shapes,
    fused: &Graph,
    out: &mut Out,
) -> Result<()> {
    let mut apart = Graph::with_float(DType::F32);
    apart.keep_projections_apart(true);
    let o = net::build_into(&mut apart, cfg, shapes)?;
    apart.output(o, net::io::SAMPLE)?;
    let t = time_alternating(ctx, &[fused, &apart], 3.0)?;
    let matmuls = |g: &Graph| g.nodes().iter().filter(|n| n.op.name() == "matmul").count();
    out.say(format!(
        "  fused projections   {:10.1} ms ({} ops, {} matmuls)",
        t[0] * 1e3,
        fused.nodes().len(),
        matmuls(fused)
    ));
    out.say(format!(
        "  projections apart   {:10.1} ms ({} ops, {} matmuls); fused / apart {:.3}",
        t[1] * 1e3,
        apart.nodes().len(),
        matmuls(&apart),
        t[0] / t[1]
    ));
    out.figure(
        "PT-DiT forward with fused projections (ms)",
        t[0] * 1e3,
        "ms",
        Some(("the same forward, projections apart (ms)", t[1] * 1e3)),
    );
    Ok(())
}

/// Compiles `graph` with random weights and inputs.
fn compile_random(ctx: &GpuContext, graph: &Graph) -> Result<Executable> {
    let exe = Executable::new_blocking(ctx, graph)?;
    exe.write_random(graph, 4, 0.05)?;
    Ok(exe)
}

/// Seconds per run of each graph, timed in alternation (a run of each per round, at least 3
/// rounds and `min_secs` in all, after a warm-up run of each), each the median of its rounds:
/// a machine whose speed drifts then slows both alike, and the ratio holds.
fn time_alternating(ctx: &GpuContext, graphs: &[&Graph], min_secs: f64) -> Result<Vec<f64>> {
    let exes = graphs
        .iter()
        .map(|g| compile_random(ctx, g))
        .collect::<Result<Vec<_>>>()?;
    let once = |exe: &Executable| -> Result<f64> {
        let t = Instant::now();
        exe.run()?;
        exe.wait()?;
        Ok(t.elapsed().as_secs_f64())
    };
    for exe in &exes {
        once(exe)?;
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); exes.len()];
    let start = Instant::now();
    while times[0].len() < 3 || start.elapsed().as_secs_f64() < min_secs {
        for (exe, t) in exes.iter().zip(&mut times) {
            t.push(once(exe)?);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

/// The proxy-token payoff: a PT-DiT block against an equal-width global-attention block.
fn payoff(ctx: &GpuContext, grids: &[usize], out: &mut Out) -> Result<()> {
    let (d, heads, text) = (256, 4, 120);
    let mut cfg = PtditConfig::released_xl();
    cfg.num_attention_heads = heads;
    cfg.attention_head_dim = d / heads;
    cfg.cross_attention_dim = Some(d);
    out.say(format!("PT-DiT block vs global-attention (PixArt-style) block, width {d}, {heads} heads, text {text}, batch 2"));
    out.say(
        "  windows: 64 windows per image ((1, g/8, g/8)), one proxy each, as the paper scales them"
            .to_string(),
    );
    out.say(format!(
        "  {:>9} {:>8} {:>14} {:>14} {:>11} {:>11}",
        "grid", "tokens", "PT-DiT ms", "global ms", "time ratio", "FLOP ratio"
    ));
    for &side in grids {
        let w = side / 8;
        cfg.compress_ratios = [1, w, w];
        cfg.proxy_compress_ratios = [1, w, w];
        let grid = cfg.grid(1, side * cfg.patch_size, side * cfg.patch_size)?;
        let shapes = Shapes {
            batch: 2,
            grid,
            text_len: text,
            traces: false,
        };
        let pt = net::build_block(&cfg, &shapes, DType::F32)?;
        let gl = global_block::build(2, side * side, d, heads, text)?;
        let t = time_alternating(ctx, &[&pt, &gl], 4.0)?;
        let (tp, tg) = (t[0], t[1]);
        out.say(format!(
            "  {:>9} {:>8} {:>14.1} {:>14.1} {:>11.3} {:>11.3}",
            format!("{side}x{side}"),
            side * side,
            tp * 1e3,
            tg * 1e3,
            tp / tg,
            pt.flops() as f64 / gl.flops() as f64
        ));
        // The figure is the PT-DiT block's time; its baseline the global block's. The FLOP
        // ratio the time ratio should approach goes alongside.
        out.figure(
            &format!("PT-DiT block {side}x{side} (ms)"),
            tp * 1e3,
            "ms",
            Some(("global-attention block (ms)", tg * 1e3)),
        );
        out.figure(
            &format!("FLOP ratio PT-DiT / global {side}x{side}"),
            pt.flops() as f64 / gl.flops() as f64,
            "ratio",
            None,
        );
    }
    Ok(())
}

/// Where a forward pass spends its time: each dispatch submitted and waited for alone, the cost
/// of an empty submission subtracted, summed per op. Per-dispatch submission removes the
/// overlap a real run has, so the shares are of GPU work, not of a run's wall time.
/// Seconds each dispatch ran on the GPU in `rounds` runs (round-major), from timestamp
/// queries; `None` when the device has none (or the run has too many dispatches for one set).
fn timestamps(ctx: &GpuContext, exe: &Executable, rounds: usize) -> Result<Option<Vec<f64>>> {
    let n = 2 * exe.dispatches;
    if !ctx
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
        || n > 4096
        || n == 0
    {
        return Ok(None);
    }
    let dev = &ctx.device;
    let queries = dev.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("profile"),
        ty: wgpu::QueryType::Timestamp,
        count: n as u32,
    });
    let bytes = (n * 8) as u64;
    let resolve = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile resolve"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let period = ctx.queue.get_timestamp_period() as f64 * 1e-9;
    let mut out = Vec::with_capacity(rounds * exe.dispatches);
    for _ in 0..rounds {
        let bytes = pollster::block_on(readback::read_staged(
            ctx,
            bytes,
            "timestamps",
            |enc, st| {
                exe.record_timed(enc, &queries);
                enc.resolve_query_set(&queries, 0..n as u32, &resolve, 0);
                enc.copy_buffer_to_buffer(&resolve, 0, st, 0, bytes);
            },
        ))?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        for pair in ticks.chunks_exact(2) {
            out.push(pair[1].saturating_sub(pair[0]) as f64 * period);
        }
    }
    // All zeros means the adapter accepted the queries but does not write them.
    Ok(out.iter().any(|t| *t > 0.0).then_some(out))
}

fn profile(ctx: &GpuContext, args: &BenchArgs, out: &mut Out) -> Result<()> {
    let m = small_model(args.width, args.layers, args.latent)?;
    let model = Ptdit::new_blocking(ctx, &m.cfg, m.shapes, &m.weights)?;
    for (k, v) in m.inputs.feeds(&m.shapes)? {
        model.exe.write(&k, &v)?;
    }
    let exe = &model.exe;
    let submit = |range: std::ops::Range<usize>| -> Result<()> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        exe.record_range(&mut enc, range);
        ctx.queue.submit([enc.finish()]);
        exe.wait()
    };
    let whole = time_per_call(2.0, || submit(0..exe.dispatches))?;
    let rounds = 3;
    submit(0..exe.dispatches)?; // warm-up
    let stamps = timestamps(ctx, exe, rounds)?;
    // Per-dispatch submissions pay a fixed cost, measured once and subtracted.
    let empty = match stamps {
        Some(_) => 0.0,
        None => time_per_call(0.5, || submit(0..0))?,
    };
    // Seconds per dispatch, averaged over the rounds.
    let mut per_dispatch = vec![0.0; exe.dispatches];
    for r in 0..rounds {
        for (i, dt) in per_dispatch.iter_mut().enumerate() {
            *dt += match &stamps {
                Some(t) => t[r * exe.dispatches + i],
                None => {
                    let t = Instant::now();
                    submit(i..i + 1)?;
                    (t.elapsed().as_secs_f64() - empty).max(0.0)
                }
            } / rounds as f64;
        }
    }
    out.say(match stamps {
        Some(_) => "timed with GPU timestamp queries (a pass per dispatch)".to_string(),
        None => format!(
            "timed per dispatch, each submitted alone (the adapter has no timestamp queries; an empty submission's {:.3} ms subtracted)",
            empty * 1e3
        ),
    });
    let total: f64 = per_dispatch.iter().sum();
    out.say(format!(
        "profile: PT-DiT forward, width {}, {} layers, {} tokens x 2: {} dispatches, {:.1} ms in one submission, {:.1} ms summed per dispatch",
        args.width,
        args.layers,
        m.shapes.grid.tokens(),
        exe.dispatches,
        whole * 1e3,
        total * 1e3,
    ));
    let by_op = group(
        exe.dispatch_ops.iter().map(|s| s.to_string()),
        &per_dispatch,
    );
    let op_flops: Vec<(String, u64)> = m
        .graph
        .flops_by_op()
        .into_iter()
        .map(|(o, f)| (o.to_string(), f))
        .collect();
    print_shares(out, "share of forward", &by_op, &op_flops, total);
    // Attention by kind and matmul by shape: the finer labels of the ops that have them.
    out.say("  by attention kind (batch x queries x keys) and matmul shape (MxKxN):".to_string());
    let by_label = group(exe.dispatch_labels.iter().cloned(), &per_dispatch);
    let fine: Vec<(String, f64, usize)> = by_label
        .into_iter()
        .filter(|(l, _, _)| l.starts_with("attention") || l.starts_with("matmul"))
        .collect();
    print_shares(
        out,
        "share of forward by kind",
        &fine,
        &m.graph.flops_by_label(),
        total,
    );
    Ok(())
}

/// Sums per-dispatch seconds under each dispatch's key: (key, seconds, dispatches), slowest first.
fn group(keys: impl Iterator<Item = String>, seconds: &[f64]) -> Vec<(String, f64, usize)> {
    let mut out: Vec<(String, f64, usize)> = Vec::new();
    for (key, dt) in keys.zip(seconds) {
        match out.iter_mut().find(|(k, _, _)| *k == key) {
            Some(e) => {
                e.1 += dt;
                e.2 += 1;
            }
            None => out.push((key, *dt, 1)),
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// One line (and one share figure, plus a GFLOP/s figure where FLOPs are known) per group.
fn print_shares(
    out: &mut Out,
    figure: &str,
    groups: &[(String, f64, usize)],
    flops: &[(String, u64)],
    total: f64,
) {
    let width = groups.iter().map(|g| g.0.len()).max().unwrap_or(0).max(14);
    for (key, t, n) in groups {
        let f = flops.iter().find(|(k, _)| k == key).map_or(0, |e| e.1) as f64;
        let rate = (f > 0.0 && *t > 0.0).then(|| f / t / 1e9);
        out.say(format!(
            "  {key:<width$} {:5.1}%  {:8.2} ms  {n:4} dispatches  {}",
            100.0 * t / total,
            t * 1e3,
            rate.map_or(String::new(), |r| format!("{r:7.2} GFLOP/s")),
        ));
        out.figure(&format!("{figure}: {key}"), 100.0 * t / total, "%", None);
        if let Some(r) = rate {
            out.figure(&format!("GFLOP/s: {key}"), r, "GFLOP/s", None);
        }
    }
}
