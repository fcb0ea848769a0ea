//! The step cache (#22) on the built-in model: off is today's graph, a zero threshold never
//! skips (and gives the uncached image bit for bit), a huge one skips every step the rule
//! allows, the GPU's decision agrees with its CPU reference on a recorded trajectory and covers
//! both CFG halves at once, and a host's render loop with a cache keeps its budgets.

use crate::common::gpu;
use ptdit::embed::{Budget, Generation};
use ptdit::model::ptdit::io;
use ptdit::ops::change::SLICE;
use ptdit::ops::skip_decision::{decide, state};
use ptdit::pipeline::generate::{Prepared, Request, TextToImage};
use ptdit::pipeline::{default_model, model_dir, StepCache};
use ptdit::GpuContext;

fn pipe(ctx: &GpuContext) -> TextToImage {
    TextToImage::new(ctx, model_dir::from_files(&default_model::files()).unwrap()).unwrap()
}

fn request(pipe: &TextToImage, cache: &str, steps: usize) -> Request {
    Request {
        steps,
        seed: 5,
        cache: StepCache::parse(cache).unwrap(),
        ..pipe.request("grinning face")
    }
}

fn run(pipe: &TextToImage, req: &Request) -> (Vec<u8>, usize) {
    let (frames, report) =
        pollster::block_on(pipe.generate_report(req, |_, _, _| true, false)).unwrap();
    assert_eq!(report.steps, req.steps);
    (frames[0].rgb.clone(), report.skipped_steps)
}

#[test]
fn off_is_the_uncached_graph_and_a_zero_threshold_gives_its_image_exactly() {
    let ctx = gpu();
    let pipe = pipe(&ctx);
    assert_eq!(StepCache::parse("off").unwrap(), None);
    assert_eq!(pipe.request("x").cache, None, "caching is opt-in");
    let off = request(&pipe, "off", 8);
    let Prepared { den, .. } = pollster::block_on(pipe.prepare(&off)).unwrap();
    assert!(
        den.exe.descriptor(io::CACHE_STATE).is_none()
            && !den.exe.dispatch_ops.contains(&"skip_args"),
        "an uncached step has no cache in it"
    );
    let (want, skipped) = run(&pipe, &off);
    assert_eq!(skipped, 0);
    for spec in ["first-block:0", "accumulated:0,warmup=0,final=0"] {
        let (got, skipped) = run(&pipe, &request(&pipe, spec, 8));
        assert_eq!(skipped, 0, "{spec} skipped");
        assert!(got == want, "{spec}: running every block changed the image");
    }
}

#[test]
fn a_huge_threshold_skips_every_step_the_rule_allows() {
    let ctx = gpu();
    let pipe = pipe(&ctx);
    // 10 steps, 2 of warm-up and 1 final forced: 7 may skip; at most 3 in a row makes the
    // pattern skip, skip, skip, run, skip, skip, skip.
    for (spec, want) in [
        ("first-block:1e30,warmup=2,final=1,max=1000", 7),
        ("accumulated:1e30,warmup=2,final=1,max=1000", 7),
        ("first-block:1e30,warmup=2,final=1,max=3", 6),
        ("first-block:1e30,warmup=0,final=0,max=1000", 9),
    ] {
        let (img, skipped) = run(&pipe, &request(&pipe, spec, 10));
        assert_eq!(skipped, want, "{spec}");
        assert!(img.iter().any(|v| *v != img[0]), "{spec}: a flat image");
    }
}

/// Runs `spec` step by step on the GPU, reading the first block's residual and the state after
/// each, and replays the rule on the CPU from the recorded residuals.
fn replay(pipe: &TextToImage, spec: &str) -> (usize, usize) {
    let req = request(pipe, spec, 30);
    let cache = req.cache.unwrap();
    let Prepared { den, schedule } = pollster::block_on(pipe.prepare(&req)).unwrap();
    let n = schedule.len();
    let first = den.exe.descriptor(io::CACHE_FIRST).unwrap().shape.clone();
    let (mut reference, mut old) = (vec![0f32; first.numel()], vec![0f32; state::LEN]);
    let (mut skipped, mut near, mut alphas) = (0, 0, 0);
    let mut halves_differ = false;
    for (i, step) in schedule.iter().enumerate() {
        den.step(i, n, step, req.cfg).unwrap();
        let r = den.exe.read_blocking(io::CACHE_FIRST).unwrap().into_f32();
        let got = pollster::block_on(den.cache_state()).unwrap().unwrap();
        // Sums per slice in f32, as the kernel does, then their totals.
        let sum = |f: &dyn Fn(usize) -> f32, range: std::ops::Range<usize>| -> f32 {
            let v: Vec<usize> = range.collect();
            v.chunks(SLICE)
                .map(|c| c.iter().map(|k| f(*k)).sum::<f32>())
                .sum()
        };
        let d = |k: usize| (r[k] - reference[k]).abs();
        let m = |k: usize| reference[k].abs();
        let ctl = cache.control(i, n);
        let want = decide(sum(&d, 0..r.len()), sum(&m, 0..r.len()), &old, ctl.as_f32());
        let rel = want[state::REL];
        assert!(
            (got[state::REL] - rel).abs() <= 1e-4 * rel.abs().max(1e-3),
            "{spec} step {i}: the GPU measured {} and the CPU {rel}",
            got[state::REL]
        );
        if got[state::SKIP] != want[state::SKIP] {
            // Only a change within rounding of the threshold may decide differently.
            assert!(
                (want[state::ACC] - cache.threshold).abs() < 1e-4 * cache.threshold,
                "{spec} step {i}: GPU {got:?}, CPU {want:?}"
            );
            near += 1;
        } else {
            use state::*;
            for k in [UPDATE_REF, RUN, SKIPPED, STEPS, SINCE, GAP, ALPHA] {
                assert_eq!(got[k], want[k], "{spec} step {i}, state {k}");
            }
            alphas += (got[ALPHA] != 0.0) as usize;
        }
        // Both CFG halves are measured: the cond half alone would give another change.
        let half = r.len() / 2;
        if rel > 0.0 {
            let cond = sum(&d, 0..half) / sum(&m, 0..half);
            halves_differ |= (cond - rel).abs() > 1e-3 * rel;
        }
        skipped += got[state::SKIP] as usize;
        if got[state::UPDATE_REF] != 0.0 {
            reference = r;
        }
        old = got;
    }
    assert!(
        halves_differ,
        "{spec}: the uncond half never changed the measure"
    );
    assert_eq!(
        alphas > 0,
        cache.extrapolate,
        "{spec}: extrapolated on {alphas} steps"
    );
    (skipped, near)
}

#[test]
fn the_gpu_decision_agrees_with_its_cpu_reference_on_a_recorded_trajectory() {
    let ctx = gpu();
    let pipe = pipe(&ctx);
    for spec in ["first-block:0.15,order=0", "accumulated:0.3,order=1"] {
        let (skipped, near) = replay(&pipe, spec);
        assert!(
            (3..=26).contains(&skipped),
            "{spec}: {skipped} skips tell nothing"
        );
        assert!(
            near <= 1,
            "{spec}: {near} decisions on the threshold's edge"
        );
    }
}

#[test]
fn a_host_render_loop_with_a_cache_keeps_its_budget_and_gives_the_pipelines_image() {
    let own = gpu();
    let ctx = GpuContext::borrowed(own.device.clone(), own.queue.clone(), None);
    let pipe = pipe(&ctx);
    let req = request(&pipe, "first-block:1e30,warmup=1,final=1", 6);
    let (want, skipped) = run(&pipe, &req);
    assert_eq!(skipped, 3, "skip, skip, skip, run between the forced steps");
    let texture = ctx
        .device
        .create_texture(&Generation::texture_descriptor(&req));
    let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture)).unwrap();
    let per_step = g.dispatches_per_step();
    let budget = per_step / 4 + 3;
    let mut calls = 0;
    while !g.advance(Budget::Dispatches(budget)).unwrap().done {
        calls += 1;
        assert!(calls < 200, "no progress");
    }
    assert_eq!(
        calls + 1,
        (6 * per_step).div_ceil(budget),
        "a call went over its budget"
    );
    assert_eq!(pollster::block_on(g.skipped_steps()).unwrap(), 3);
    let got = pollster::block_on(ptdit::embed::read_texture(&ctx, &texture)).unwrap();
    assert!(got.rgb == want, "the render loop and the pipeline differ");
}
