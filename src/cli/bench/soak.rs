//! `ptdit bench soak`: many generations in one process, through the pipeline the CLI runs and
//! through the embedding API (a host's texture), with the process's resident memory and the
//! device's buffer bytes after each. A leak shows as growth from the first half of the run to
//! the second; `tests/native/cli.rs` holds a short run to no growth.

use ptdit::embed::{Budget, Generation};
use ptdit::pipeline::generate::{Request, TextToImage};
use ptdit::pipeline::{default_model, model_dir};
use ptdit::{Error, GpuContext, Result};

use super::Out;

/// Memory after each generation: (resident host bytes, device buffer bytes).
type Samples = Vec<(u64, u64)>;

fn sample(ctx: &GpuContext) -> (u64, u64) {
    (
        crate::cli::process_memory("VmRSS").unwrap_or(0),
        ctx.buffer_bytes().unwrap_or(0),
    )
}

/// The largest value of the first half and of the second.
fn halves(values: impl Iterator<Item = u64>) -> (u64, u64) {
    let v: Vec<u64> = values.collect();
    let (a, b) = v.split_at(v.len() / 2);
    (
        a.iter().copied().max().unwrap_or(0),
        b.iter().copied().max().unwrap_or(0),
    )
}

pub fn run(generations: usize, steps: usize, out: &mut Out) -> Result<()> {
    if generations < 2 {
        return Err(Error::Input(
            "a soak run needs at least 2 generations".into(),
        ));
    }
    let ctx = GpuContext::new_blocking()?;
    let pipe = TextToImage::new(&ctx, model_dir::from_files(&default_model::files())?)?;
    let prompts = ["red apple", "grinning face", "thumbs up sign", "rocket"];
    let request = |i: usize| Request {
        steps,
        seed: i as u64,
        ..pipe.request(prompts[i % prompts.len()])
    };
    let mut cli = Samples::new();
    for i in 0..generations {
        pollster::block_on(pipe.generate(&request(i), |_, _, _| true, false))?;
        cli.push(sample(&ctx));
    }
    let mut embed = Samples::new();
    for i in 0..generations {
        let req = request(i);
        let texture = ctx
            .device
            .create_texture(&Generation::texture_descriptor(&req));
        let mut g = pollster::block_on(Generation::new(&pipe, &req, &texture))?;
        while !g.advance(Budget::Steps(1))?.done {}
        pollster::block_on(g.decode())?;
        ctx.wait("a soak generation")?;
        drop(g);
        drop(texture);
        embed.push(sample(&ctx));
    }
    for (what, s) in [("pipeline", &cli), ("embedding API", &embed)] {
        out.say(format!(
            "{what}: {generations} generations of {steps} steps"
        ));
        for (i, (host, gpu)) in s.iter().enumerate() {
            out.say(format!(
                "  {:>3}  host {:>8.1} MiB  device {:>8.1} MiB",
                i + 1,
                *host as f64 / 1048576.0,
                *gpu as f64 / 1048576.0
            ));
        }
        let (h1, h2) = halves(s.iter().map(|x| x.0));
        let (g1, g2) = halves(s.iter().map(|x| x.1));
        let first = "first half's peak";
        out.figure(
            &format!("{what}: host resident peak, second half"),
            h2 as f64,
            "bytes",
            Some((first, h1 as f64)),
        );
        out.figure(
            &format!("{what}: device buffer peak, second half"),
            g2 as f64,
            "bytes",
            Some((first, g1 as f64)),
        );
    }
    Ok(())
}
