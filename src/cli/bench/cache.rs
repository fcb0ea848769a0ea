//! `ptdit bench cache`: the step cache's speed and fidelity.
//!
//! - On the built-in model: each prompt generated at every level, the levels' order rotating
//!   from prompt to prompt so drift falls on all alike; the time of each whole generation, the
//!   steps skipped, and the PSNR of each level's image against the uncached one (same seed).
//!   `--images DIR` writes them for `tools/train/evaluate.py --images` to score.
//! - With `--released`: what a skipped step saves against a full one on the released XL's
//!   shapes (random weights, the pattern forced), steps alternated.

use std::path::PathBuf;
use std::time::Instant;

use ptdit::model::ptdit::io;
use ptdit::model::{random_weights, PtditConfig};
use ptdit::ops::skip_decision::control;
use ptdit::pipeline::denoiser::{self, Denoiser};
use ptdit::pipeline::generate::{Frame, Request, TextToImage};
use ptdit::pipeline::{default_model, model_dir, png, RectifiedFlow, StepCache};
use ptdit::rng::Rng;
use ptdit::{DType, Error, GpuContext, HostTensor, Result};

use super::Out;

/// Prompts when no file is given (names the built-in model was trained on).
const PROMPTS: &[&str] = &[
    "red apple",
    "grinning face",
    "rocket",
    "pizza",
    "cat face",
    "sunflower",
    "ghost",
    "snowman",
];

pub struct CacheArgs<'a> {
    pub levels: &'a [String],
    pub prompts: Option<&'a PathBuf>,
    pub images: Option<&'a PathBuf>,
    pub steps: usize,
    pub seed: u64,
}

/// PSNR of 8-bit images in dB; identical images count as 100 dB so that means stay finite.
pub fn psnr(a: &Frame, b: &Frame) -> f64 {
    let n = a.rgb.len().max(1) as f64;
    let mse: f64 = a
        .rgb
        .iter()
        .zip(&b.rgb)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / n;
    if mse == 0.0 {
        100.0
    } else {
        (10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0)
    }
}

pub fn run(ctx: &GpuContext, args: &CacheArgs, out: &mut Out) -> Result<()> {
    let levels: Vec<(String, Option<StepCache>)> = args
        .levels
        .iter()
        .map(|l| StepCache::parse(l).map(|c| (l.clone(), c)))
        .collect::<Result<_>>()?;
    if levels.first().is_none_or(|(_, c)| c.is_some()) {
        return Err(Error::Input(
            "--levels must start with off: the uncached image is the baseline".into(),
        ));
    }
    let prompts: Vec<String> = match args.prompts {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Error::Io {
                path: p.display().to_string(),
                source: e,
            })?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => PROMPTS.iter().map(|p| p.to_string()).collect(),
    };
    let pipe = TextToImage::new(ctx, model_dir::from_files(&default_model::files())?)?;
    pollster::block_on(pipe.warm())?;
    if let Some(dir) = args.images {
        for (i, _) in levels.iter().enumerate() {
            std::fs::create_dir_all(dir.join(i.to_string())).map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
    }
    // Per level: seconds, skipped steps, PSNR against off; summed over prompts.
    let mut secs = vec![0f64; levels.len()];
    // Per level, each prompt's speed-up: its uncached time over its time at the level, the two
    // measured moments apart (the median of these is robust to a stalled generation).
    let mut ratios = vec![Vec::new(); levels.len()];
    let mut skipped = vec![0usize; levels.len()];
    let mut quality = vec![0f64; levels.len()];
    for (p, prompt) in prompts.iter().enumerate() {
        let mut frames: Vec<Option<Frame>> = vec![None; levels.len()];
        let mut times = vec![0f64; levels.len()];
        for k in 0..levels.len() {
            let l = (p + k) % levels.len();
            let req = Request {
                steps: args.steps,
                seed: args.seed + p as u64,
                cache: levels[l].1,
                ..pipe.request(prompt)
            };
            let t = Instant::now();
            let (f, report) =
                pollster::block_on(pipe.generate_report(&req, |_, _, _| true, false))?;
            times[l] = t.elapsed().as_secs_f64();
            secs[l] += times[l];
            skipped[l] += report.skipped_steps;
            frames[l] = f.into_iter().next();
        }
        for (l, r) in ratios.iter_mut().enumerate() {
            r.push(times[0] / times[l]);
        }
        let base = frames[0]
            .clone()
            .ok_or_else(|| Error::Model("a generation gave no frame".into()))?;
        for (l, f) in frames.iter().enumerate() {
            let f = f
                .as_ref()
                .ok_or_else(|| Error::Model("a generation gave no frame".into()))?;
            quality[l] += psnr(&base, f);
            if let Some(dir) = args.images {
                let path = dir.join(l.to_string()).join(format!("{p}.png"));
                std::fs::write(&path, png::encode(std::slice::from_ref(f))?).map_err(|e| {
                    Error::Io {
                        path: path.display().to_string(),
                        source: e,
                    }
                })?;
            }
        }
    }
    let n = prompts.len() as f64;
    out.say(format!(
        "built-in model, {} steps, {} prompts, seeds {}..: whole generations, levels alternated",
        args.steps,
        prompts.len(),
        args.seed
    ));
    out.say(
        "  level: mean seconds a generation, median speed-up over prompts (mean-time ratio)".into(),
    );
    for (l, (name, _)) in levels.iter().enumerate() {
        let (t, base) = (secs[l] / n, secs[0] / n);
        let r = &mut ratios[l];
        r.sort_by(|a, b| a.total_cmp(b));
        let median = r[r.len() / 2];
        out.say(format!(
            "  {:<28} {:>7.3} s  {:>5.2}x ({:.2}x)  skipped {:>5.1}/{} steps  PSNR {:>6.2} dB{}",
            name,
            t,
            median,
            base / t,
            skipped[l] as f64 / n,
            args.steps,
            quality[l] / n,
            args.images
                .map(|d| format!("  images in {}", d.join(l.to_string()).display()))
                .unwrap_or_default()
        ));
        out.figure(
            &format!("{name}: seconds a generation"),
            t,
            "s",
            Some(("off", base)),
        );
        out.figure(&format!("{name}: median speed-up"), median, "x", None);
        out.figure(
            &format!("{name}: skipped steps"),
            skipped[l] as f64 / n,
            "steps",
            None,
        );
        out.figure(
            &format!("{name}: PSNR against off"),
            quality[l] / n,
            "dB",
            None,
        );
    }
    Ok(())
}

/// A skipped step against a full one on the released XL's shapes at `side`² pixels (latent
/// side / 8, batch 2 for CFG, 120 text tokens), random weights in `float`.
pub fn released(ctx: &GpuContext, side: usize, float: DType, out: &mut Out) -> Result<()> {
    let cfg = PtditConfig::released_xl();
    let lat = side / 8;
    let grid = cfg.grid(1, lat, lat)?;
    let text_len = 120;
    let cache = StepCache::parse("first-block:0")?
        .ok_or_else(|| Error::Input("no cache settings".into()))?;
    let graph = denoiser::build_cached(&cfg, 1, grid, text_len, float, Some(cache.split))?;
    let weights = random_weights(&graph, 7);
    drop(graph);
    let den = pollster::block_on(Denoiser::new(
        ctx,
        &cfg,
        1,
        grid,
        text_len,
        &weights,
        float,
        Some(cache),
    ))?;
    drop(weights);
    let mut rng = Rng::new(3);
    let noise = HostTensor::f32([1, 4, 1, lat, lat], rng.normals(4 * lat * lat, 1.0));
    let text = HostTensor::f32(
        [1, text_len, cfg.caption_channels],
        rng.normals(text_len * cfg.caption_channels, 1.0),
    );
    let mask = vec![1.0; text_len];
    den.start(&noise, &denoiser::text_feeds(&text, &mask, &text, &mask)?)?;
    let steps = RectifiedFlow::released().schedule(side, side, 1)?;
    let forced = |skip: bool| {
        let mut c = vec![0f32; control::LEN];
        // Skip: any change passes and no run limit; full: forced to run.
        c[control::THRESHOLD] = if skip { f32::MAX } else { 0.0 };
        c[control::FORCE] = if skip { 0.0 } else { 1.0 };
        c[control::MAX_RUN] = 1e9;
        HostTensor::f32([control::LEN], c)
    };
    let time = |i: usize, skip: bool| -> Result<f64> {
        for (k, v) in den.feeds(i, steps.len(), &steps[i % steps.len()], 4.0) {
            den.exe.write(&k, &v)?;
        }
        den.exe.write(io::CACHE_CONTROL, &forced(skip))?;
        let t = Instant::now();
        den.exe.run()?;
        den.exe.wait()?;
        Ok(t.elapsed().as_secs_f64())
    };
    time(0, false)?; // warm-up, and the first residuals
    let (mut full, mut skip) = (Vec::new(), Vec::new());
    for i in 0..3 {
        full.push(time(1 + 2 * i, false)?);
        skip.push(time(2 + 2 * i, true)?);
    }
    let state = pollster::block_on(den.cache_state())?.unwrap_or_default();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (f, s) = (median(&mut full), median(&mut skip));
    out.say(format!(
        "released XL at {side}² ({} tokens, CFG batch 2, {:?}), random weights; {} blocks of {} skippable",
        grid.tokens(),
        float,
        cfg.num_layers - cache.split.first - cache.split.last,
        cfg.num_layers
    ));
    let skips = state
        .get(ptdit::ops::skip_decision::state::SKIPPED)
        .copied()
        .unwrap_or(0.0);
    out.say(format!(
        "  full step {f:.3} s (median of 3), skipped step {s:.3} s: a skip saves {:.1} % of a \
         step ({:.2}x); the device skipped {skips} of 7 steps (3 forced)",
        100.0 * (1.0 - s / f),
        f / s,
    ));
    out.figure("released XL: skipped step", s, "s", Some(("full step", f)));
    Ok(())
}
