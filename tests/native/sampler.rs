//! The released sampler: its 30 timesteps, and the GPU denoising loop against a CPU reference
//! of the same loop.
// Native only: these drive the GPU synchronously (pollster) or use files and processes.

use std::collections::HashMap;

use crate::common::gpu;
use ptdit::graph::cpu;
use ptdit::model::ptdit::io;
use ptdit::model::{random_weights, PtditConfig};
use ptdit::pipeline::denoiser::{self, Denoiser};
use ptdit::pipeline::RectifiedFlow;
use ptdit::rng::Rng;
use ptdit::{DType, HostTensor};

/// spec §3.4: (t', the bf16 value the model sees, dt) at 1024², all 30 steps.
const RELEASED: [(f32, f32, f32); 30] = [
    (1000.0000, 1000.0, 0.016949),
    (983.0509, 984.0, 0.017534),
    (965.5172, 964.0, 0.018149),
    (947.3684, 948.0, 0.018797),
    (928.5715, 928.0, 0.019481),
    (909.0909, 908.0, 0.020202),
    (888.889, 888.0, 0.020964),
    (867.9246, 868.0, 0.021771),
    (846.1538, 848.0, 0.022624),
    (823.5294, 824.0, 0.023529),
    (800.0000, 800.0, 0.024490),
    (775.5102, 776.0, 0.025510),
    (750.0000, 752.0, 0.026596),
    (723.4043, 724.0, 0.027752),
    (695.6521, 696.0, 0.028985),
    (666.6667, 668.0, 0.030303),
    (636.3636, 636.0, 0.031713),
    (604.6511, 604.0, 0.033223),
    (571.4286, 572.0, 0.034843),
    (536.5853, 536.0, 0.036585),
    (500.0000, 500.0, 0.038462),
    (461.5385, 462.0, 0.040486),
    (421.0526, 422.0, 0.042674),
    (378.3784, 378.0, 0.045045),
    (333.3333, 334.0, 0.047619),
    (285.7143, 286.0, 0.050420),
    (235.2941, 235.0, 0.053476),
    (181.8182, 182.0, 0.056818),
    (125.0000, 125.0, 0.060484),
    (64.5161, 64.5, 0.064516),
];

#[test]
fn released_timesteps_at_1024_and_their_bf16_values() {
    let s = RectifiedFlow::released().schedule(1024, 1024, 1).unwrap();
    assert_eq!(s.len(), 30);
    assert_eq!(RectifiedFlow::shift_ratio(1024, 1024, 1), 2.0);
    for (i, (step, (t, tb, dt))) in s.iter().zip(RELEASED).enumerate() {
        // The spec prints 4 decimals of t' (±5e-5) and 6 of dt; f32 near 1000 has 6e-5 ulps.
        assert!(
            (step.t - t).abs() < 1.2e-4,
            "step {i}: t' {} vs {t}",
            step.t
        );
        assert_eq!(step.t_model, tb, "step {i}: bf16 of {}", step.t);
        assert!(
            (step.dt - dt).abs() < 6e-7,
            "step {i}: dt {} vs {dt}",
            step.dt
        );
    }
    let total: f32 = s.iter().map(|x| x.dt).sum();
    assert!((total - 1.0).abs() < 1e-5, "dt sums to {total}");
}

/// The released XL's structure at a test's size: 2 heads of 16, 4×4 windows, `layers` blocks.
fn small_config(layers: usize) -> PtditConfig {
    let mut cfg = PtditConfig::released_xl();
    cfg.num_attention_heads = 2;
    cfg.attention_head_dim = 16;
    cfg.cross_attention_dim = Some(32);
    cfg.num_layers = layers;
    cfg.caption_channels = 16;
    cfg.compress_ratios = [1, 4, 4];
    cfg.proxy_compress_ratios = [1, 4, 4];
    cfg
}

#[test]
fn denoising_loop_on_gpu_matches_the_cpu_loop() {
    let cfg = small_config(1);
    let (batch, text_len) = (1, 6);
    let grid = cfg.grid(1, 8, 16).unwrap();
    let graph = denoiser::build(&cfg, batch, grid, text_len, DType::F32).unwrap();
    let weights = random_weights(&graph, 5);
    let mut r = Rng::new(9);
    let noise = HostTensor::f32([1, 4, 1, 8, 16], r.normals(4 * 8 * 16, 1.0));
    let cond = HostTensor::f32([1, text_len, 16], r.normals(text_len * 16, 1.0));
    let uncond = HostTensor::f32([1, text_len, 16], r.normals(text_len * 16, 1.0));
    let (cm, um) = (
        vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    );
    let text = denoiser::text_feeds(&cond, &cm, &uncond, &um).unwrap();
    let sampler = RectifiedFlow {
        steps: 4,
        ..RectifiedFlow::released()
    };
    let schedule = sampler.schedule(64, 128, 1).unwrap();

    // CPU: the same graph, the carried latents fed back by hand.
    let mut feeds: HashMap<String, HostTensor> = weights.clone();
    feeds.extend(text.clone());
    feeds.insert(io::LATENT.into(), denoiser::doubled(&noise));
    for step in &schedule {
        feeds.extend(denoiser::step_feeds(step, sampler.cfg, batch));
        let mut out = cpu::run(&graph, &feeds).unwrap();
        feeds.insert(
            io::LATENT.into(),
            out.remove(denoiser::NEXT_LATENT).unwrap(),
        );
    }
    let want = denoiser::first_half(&feeds[io::LATENT]);

    let ctx = gpu();
    let d = pollster::block_on(Denoiser::new(
        &ctx,
        &cfg,
        batch,
        grid,
        text_len,
        &weights,
        DType::F32,
        None,
    ))
    .unwrap();
    d.start(&noise, &text).unwrap();
    for (i, step) in schedule.iter().enumerate() {
        d.step(i, schedule.len(), step, sampler.cfg).unwrap();
    }
    let got = pollster::block_on(d.latent()).unwrap();
    let moved = got
        .as_f32()
        .iter()
        .zip(noise.as_f32())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(moved > 0.1, "the latents did not move");
    // Four steps of f32 model evaluations, GPU vs CPU: same bound as one forward (1e-4 of the
    // scale) with room for the errors of four steps adding up.
    let e = crate::common::rel_err(got.as_f32(), want.as_f32());
    assert!(e < 4e-4, "GPU loop vs CPU loop: {e:e}");
}

/// The cached step graph, GPU against the CPU interpreter over a forced pattern (run, run,
/// skip, skip, run, skip, skip): the skippable region, the selects, the extrapolated residual
/// and every carried tensor of the cache, with the decisions forced so both sides take the same
/// branches whatever their rounding.
#[test]
fn cached_denoising_loop_on_gpu_matches_the_cpu_loop() {
    use ptdit::ops::skip_decision::{control, state};
    use ptdit::pipeline::StepCache;
    let cfg = small_config(3);
    let (batch, text_len) = (1, 6);
    let grid = cfg.grid(1, 8, 16).unwrap();
    let cache = StepCache::parse("first-block:0,order=1").unwrap().unwrap();
    let graph =
        denoiser::build_cached(&cfg, batch, grid, text_len, DType::F32, Some(cache.split)).unwrap();
    let weights = random_weights(&graph, 6);
    let mut r = Rng::new(10);
    let noise = HostTensor::f32([1, 4, 1, 8, 16], r.normals(4 * 8 * 16, 1.0));
    let cond = HostTensor::f32([1, text_len, 16], r.normals(text_len * 16, 1.0));
    let mask = vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
    let text = denoiser::text_feeds(&cond, &mask, &cond, &mask).unwrap();
    let sampler = RectifiedFlow {
        steps: 7,
        ..RectifiedFlow::released()
    };
    let schedule = sampler.schedule(64, 128, 1).unwrap();
    let skips = [false, false, true, true, false, true, true];
    let forced = |skip: bool| {
        let mut c = vec![0f32; control::LEN];
        c[control::THRESHOLD] = if skip { f32::MAX } else { 0.0 };
        c[control::MAX_RUN] = 100.0;
        c[control::EXTRAPOLATE] = 1.0;
        HostTensor::f32([control::LEN], c)
    };

    // CPU: the graph, every carried value fed back by hand.
    let ctx = gpu();
    let d = pollster::block_on(Denoiser::new(
        &ctx,
        &cfg,
        batch,
        grid,
        text_len,
        &weights,
        DType::F32,
        Some(cache),
    ))
    .unwrap();
    d.start(&noise, &text).unwrap();
    let mut feeds: HashMap<String, HostTensor> = weights.clone();
    feeds.extend(text.clone());
    for name in [
        io::LATENT,
        io::CACHE_STATE,
        io::CACHE_REFERENCE,
        io::CACHE_RESIDUAL,
        io::CACHE_PREVIOUS,
    ] {
        let v = d.exe.read_blocking(name).unwrap();
        feeds.insert(name.into(), v);
    }
    let carries: Vec<(String, String)> = graph
        .carries()
        .iter()
        .map(|(f, i)| (graph.info(*f).name.clone(), graph.info(*i).name.clone()))
        .collect();
    for (i, step) in schedule.iter().enumerate() {
        let n = schedule.len();
        let mut f = d.feeds(i, n, step, sampler.cfg);
        f.insert(io::CACHE_CONTROL.into(), forced(skips[i]));
        feeds.extend(f.clone());
        let mut out = cpu::run(&graph, &feeds).unwrap();
        for (from, into) in &carries {
            feeds.insert(into.clone(), out.remove(from).unwrap());
        }
        // GPU: the same step.
        for (k, v) in &f {
            d.exe.write(k, v).unwrap();
        }
        d.exe.run().unwrap();
        let st = d.exe.read_blocking(io::CACHE_STATE).unwrap();
        assert_eq!(st.as_f32()[state::SKIP], skips[i] as u8 as f32, "step {i}");
        assert_eq!(
            feeds[io::CACHE_STATE].as_f32()[state::SKIP],
            st.as_f32()[state::SKIP]
        );
    }
    let alpha = feeds[io::CACHE_STATE].as_f32()[state::ALPHA];
    assert_eq!(
        alpha,
        2.0 / 3.0,
        "two steps past a run three after the one before"
    );
    for name in [
        io::LATENT,
        io::CACHE_RESIDUAL,
        io::CACHE_PREVIOUS,
        io::CACHE_REFERENCE,
    ] {
        let got = d.exe.read_blocking(name).unwrap();
        let e = crate::common::rel_err(got.as_f32(), feeds[name].as_f32());
        // Seven steps of f32 model evaluations: as the uncached loop's bound, for seven steps.
        assert!(e < 7e-4, "{name}: GPU loop vs CPU loop: {e:e}");
    }
}
