//! `ptdit generate`: text → PNG.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ptdit::autotune::{autotune, Cache};
use ptdit::pipeline::embeddings::PromptEmbeddings;
use ptdit::pipeline::generate::{encode_prompts, Frame, Request, TextToImage};
use ptdit::pipeline::model_dir::Part;
use ptdit::pipeline::settings::{model_name, ImageSettings};
use ptdit::pipeline::{default_model, limits, model_dir, png, StepCache};
use ptdit::pipeline::{SchedulerConfig, Task};
use ptdit::{Error, GpuContext, Result};

#[derive(Args, Clone)]
pub struct GenerateArgs {
    /// What to draw.
    #[arg(long, required_unless_present_any = ["embeddings", "prompt_file", "from"])]
    prompt: Option<String>,
    /// Repeats the generation that wrote this PNG (its settings are in its text chunks:
    /// `ptdit info FILE`), giving the same image. --out, --stats and --model (where that
    /// model's files are now) may be given with it; the settings may not.
    #[arg(long, conflicts_with_all = [
        "prompt", "prompt_file", "embeddings", "negative_prompt", "size", "steps", "cfg",
        "seed", "frames", "views", "f16", "upscale", "cache",
    ])]
    from: Option<PathBuf>,
    /// Reads the prompt from a UTF-8 file instead (`-`: standard input); one final newline is
    /// dropped.
    #[arg(long, conflicts_with = "prompt")]
    prompt_file: Option<PathBuf>,
    /// Prompt embeddings written by `ptdit encode`, instead of --prompt and
    /// --negative-prompt: the text encoder is never loaded.
    #[arg(long, conflicts_with_all = ["prompt", "prompt_file", "negative_prompt"])]
    embeddings: Option<PathBuf>,
    /// What to steer away from (the released pipeline uses the empty prompt).
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// Model directory (transformer/, text_encoder/, tokenizer/, vae/); without it, the
    /// embedded default model (emoji, 32×32 px).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output size in pixels, WIDTHxHEIGHT [default: the model's, 1024x1024 when released].
    #[arg(long)]
    size: Option<String>,
    /// Denoising steps [default: the model's, 30 when released].
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale [default: the model's, 4.0 when released].
    #[arg(long, allow_negative_numbers = true)]
    cfg: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frames, written as an animated PNG [default: the model's trained count]; without
    /// --model, more than one frame (or no N) asks for the built-in video model. With a VAE,
    /// video needs 4k + 1.
    #[arg(long, num_args = 0..=1)]
    frames: Option<Option<usize>>,
    /// Views of one object from around it, written side by side and as FILE.turntable.png
    /// [default: the model's trained count]; without --model, the built-in multi-view model.
    #[arg(long, num_args = 0..=1, conflicts_with = "frames")]
    views: Option<Option<usize>>,
    #[arg(long, default_value = "out.png")]
    out: PathBuf,
    /// Store the transformer and the VAE in f16 (half the memory; needs shader-f16).
    #[arg(long)]
    f16: bool,
    /// Enlarge the written image by this integer factor (bilinear) [default: enough for
    /// 128 px, so the 32 px default model writes 128×128; 1 keeps the model's pixels].
    #[arg(long)]
    upscale: Option<usize>,
    /// Print the peak of the device's buffer memory (wgpu's count, sampled every 5 ms) and of
    /// the process's resident host memory.
    #[arg(long)]
    stats: bool,
    /// Step cache: skip the middle transformer blocks on steps where the first block's output
    /// barely changed. off, light, medium or heavy (more skipping: faster, further from the
    /// uncached image; docs/caching.md), or RULE:THRESHOLD[,KEY=N...] to measure others.
    #[arg(long, default_value = "off")]
    cache: String,
}

fn read_embeddings(path: &std::path::Path) -> Result<PromptEmbeddings> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    PromptEmbeddings::from_bytes(&bytes).map_err(|e| e.in_file(path.display()))
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::Input(format!("--size `{s}` must be WIDTHxHEIGHT, e.g. 1024x1024"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

/// Checks what can be checked before the GPU is touched: the output's folder, the upscale
/// factor (its result is checked again against the model's size), the step count.
fn check_args(args: &GenerateArgs) -> Result<()> {
    let dir = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "--out {}: the folder {} does not exist",
            args.out.display(),
            dir.display()
        )));
    }
    if let Some(f) = args.upscale {
        if f == 0 || f > limits::MAX_IMAGE_SIDE {
            return Err(Error::Input(format!(
                "--upscale {f}: the factor must be between 1 and {}",
                limits::MAX_IMAGE_SIDE
            )));
        }
    }
    if let Some(s) = args.steps {
        limits::check_steps(s, limits::MAX_STEPS)?;
    }
    StepCache::parse(&args.cache)?;
    match args.count() {
        Some(n) => limits::check_frames(n),
        None => Ok(()),
    }
}

impl GenerateArgs {
    /// The task the flags ask for: `--views` multi-view, `--frames` other than 1 video.
    fn task(&self) -> Task {
        match (self.views, self.frames) {
            (Some(_), _) => Task::MultiView,
            (None, Some(Some(1)) | None) => Task::Image,
            (None, Some(_)) => Task::Video,
        }
    }

    /// The frame or view count given, if any.
    fn count(&self) -> Option<usize> {
        self.views.or(self.frames).flatten()
    }
}

/// Refuses `--views` for a model that declares another task. (A multi-view model's views are
/// its frames, so `--frames N` means the same there; the count is checked with the request.)
fn check_task(wanted: Task, model: &SchedulerConfig) -> Result<()> {
    match (wanted, model.task, model.trained_for()) {
        (Task::MultiView, Some(m), Some(trained)) if m != Task::MultiView => Err(Error::Input(
            format!("--views needs a multi-view model: this one was trained for {trained}"),
        )),
        _ => Ok(()),
    }
}

/// A prompt from a file or standard input: at most a few times the longest prompt taken is
/// read, so a huge file is refused without being held.
fn read_prompt(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let limit = 4 * ptdit::pipeline::clean::MAX_PROMPT_CHARS as u64 + 1;
    let mut bytes = Vec::new();
    let read = match path.as_os_str() == "-" {
        true => std::io::stdin().take(limit).read_to_end(&mut bytes),
        false => std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes)),
    };
    let name = path.display().to_string();
    read.map_err(|e| Error::Io {
        path: name.clone(),
        source: e,
    })?;
    if bytes.len() as u64 == limit {
        return Err(Error::Input(format!(
            "--prompt-file {name}: longer than {} bytes, more than any prompt taken",
            limit - 1
        )));
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        Error::Input(format!(
            "--prompt-file {name}: not UTF-8 text (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    for end in ["\n", "\r"] {
        if text.ends_with(end) {
            text.pop();
        }
    }
    Ok(text)
}

/// `args` with the settings stored in the PNG at `path`.
fn from_png(args: &GenerateArgs, path: &std::path::Path) -> Result<GenerateArgs> {
    let text = super::info::png_text(path)?;
    let s = ImageSettings::from_text(&text).map_err(|e| match e {
        Error::Input(m) => Error::Input(format!("--from {}: {m}", path.display())),
        e => e,
    })?;
    let f16 = match s.float.as_str() {
        "f16" => true,
        "f32" => false,
        other => {
            return Err(Error::Input(format!(
                "{}: the float type `{other}` is not f32 or f16",
                path.display()
            )))
        }
    };
    let stored = |key: &str| text.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let built_in = [Task::Image, Task::Video, Task::MultiView]
        .into_iter()
        .find(|t| default_model::built_in_name(*t) == s.model);
    let model = match (&args.model, built_in) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(_)) => None,
        (None, None) => Some(PathBuf::from(&s.model)),
    };
    // A multi-view model's count is its views: the flag that picks its built-in model.
    let (frames, views) = match built_in {
        Some(Task::MultiView) => (None, Some(Some(s.frames))),
        _ => (Some(Some(s.frames)), None),
    };
    Ok(GenerateArgs {
        prompt: stored(EMBEDDINGS_KEY).is_none().then_some(s.prompt),
        embeddings: stored(EMBEDDINGS_KEY).map(PathBuf::from),
        negative_prompt: s.negative_prompt,
        model,
        size: Some(format!("{}x{}", s.width, s.height)),
        steps: Some(s.steps),
        cfg: Some(s.guidance),
        seed: s.seed,
        frames,
        views,
        f16,
        upscale: Some(s.upscale),
        cache: s.cache,
        from: None,
        ..args.clone()
    })
}

/// The text chunk naming the prompt embeddings a generation used instead of a prompt.
const EMBEDDINGS_KEY: &str = "embeddings";

pub fn run(args: &GenerateArgs) -> Result<ExitCode> {
    let args = &match &args.from {
        Some(path) => from_png(args, path)?,
        None => args.clone(),
    };
    check_args(args)?;
    let from_file = args.prompt_file.as_deref().map(read_prompt).transpose()?;
    let prompt = from_file.as_deref().or(args.prompt.as_deref());
    let ctx = GpuContext::new_blocking()?;
    let sampler = args.stats.then(|| super::PeakSampler::start(&ctx));
    let tuned = pollster::block_on(autotune(&ctx, &Cache::Default))?;
    if !tuned.cached && !tuned.forced {
        eprintln!("first run on this adapter: {}", tuned.summary());
    }
    if let Some(note) = &tuned.note {
        eprintln!("note: {note}");
    }
    let float = match args.f16 {
        true => ptdit::DType::F16,
        false => ptdit::DType::F32,
    };
    // A model directory streams its weights to the device; nothing is whole in host memory.
    // Its text encoder runs first and is released before the transformer and the VAE are
    // loaded, so the two never share the device (`ptdit bench memory`, "phased").
    let embeddings = match (&args.embeddings, &args.model) {
        (Some(path), _) => Some(read_embeddings(path)?),
        (None, Some(dir)) => {
            let c = model_dir::open_part(&ctx, dir, float, Part::Text)?;
            let e = encode_prompts(&ctx, &c, prompt.unwrap_or_default(), &args.negative_prompt);
            Some(pollster::block_on(e)?)
        }
        (None, None) => None,
    };
    let wanted = args.task();
    let components = match &args.model {
        Some(dir) => model_dir::open_part(&ctx, dir, float, Part::Image)?,
        None => {
            let files = default_model::built_in(wanted).ok_or_else(|| {
                Error::Input(format!(
                    "this build has no built-in {} model yet: give --model DIR of one \
                     (tools/train/train.py --task {} writes one)",
                    wanted.name().trim_start_matches("text-to-"),
                    if wanted == Task::Video {
                        "video"
                    } else {
                        "views"
                    },
                ))
            })?;
            let mut c = model_dir::from_files(&files)?;
            if embeddings.is_some() {
                c.drop_text_encoder();
            }
            println!("model: the {}", default_model::built_in_name(wanted));
            c
        }
    };
    for w in &components.warnings {
        eprintln!("warning: {}", super::printable(w));
    }
    check_task(wanted, &components.scheduler)?;
    let pipe = TextToImage::with_float(&ctx, components, float)?;
    let mut defaults = pipe.request(prompt.unwrap_or_default());
    defaults.embeddings = embeddings;
    let (width, height) = match &args.size {
        Some(s) => parse_size(s)?,
        None => (defaults.width, defaults.height),
    };
    let req = Request {
        negative_prompt: args.negative_prompt.clone(),
        width,
        height,
        frames: args.count().unwrap_or(defaults.frames),
        steps: args.steps.unwrap_or(defaults.steps),
        cfg: args.cfg.unwrap_or(defaults.cfg),
        seed: args.seed,
        cache: StepCache::parse(&args.cache)?,
        ..defaults
    };
    pipe.check_request(&req)?;
    let factor = args
        .upscale
        .unwrap_or_else(|| limits::factor_for(width, height, 128));
    limits::upscaled(width, height, factor)?;
    let bar = ProgressBar::new(req.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} denoising [{bar:30}] {pos}/{len} steps  {per_sec}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let (frames, report) = pollster::block_on(pipe.generate_report(
        &req,
        |i, _, _| {
            bar.set_position(i as u64);
            true
        },
        false,
    ))?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    if req.cache.is_some() {
        println!(
            "step cache: skipped the middle blocks on {} of {} steps ({seconds:.2} s)",
            report.skipped_steps, report.steps
        );
    }
    let frames = frames
        .iter()
        .map(|f| f.upscale(factor))
        .collect::<Result<Vec<_>>>()?;
    let model = match &args.model {
        Some(dir) => model_name(Some(dir)),
        None => default_model::built_in_name(wanted).to_string(),
    };
    let settings = ImageSettings::of(&req, model, float, &args.cache, factor);
    let mut text = settings.to_text();
    if let Some(path) = &args.embeddings {
        text.push((EMBEDDINGS_KEY.to_string(), path.display().to_string()));
    }
    let write = |path: &std::path::Path, frames: &[Frame]| {
        let bytes = png::encode_with_text(frames, &text)?;
        std::fs::write(path, bytes).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })
    };
    // A multi-view model's views: side by side in one picture, and as a turntable next to it.
    if pipe.task() == Some(Task::MultiView) {
        let turntable = args.out.with_extension("turntable.png");
        write(&turntable, &frames)?;
        println!("wrote {} (the views as a turntable)", turntable.display());
    }
    let frames = Frame::written(pipe.task(), &frames)?;
    write(&args.out, &frames)?;
    if let Some(s) = sampler {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let gpu = s.finish();
        match gpu {
            0 => println!("peak GPU buffer memory: not counted on this backend"),
            b => println!("peak GPU buffer memory: {:.3} GiB ({b} bytes)", gib(b)),
        }
        if let Some(b) = super::process_memory("VmHWM") {
            println!("peak host memory (RSS): {:.3} GiB", gib(b));
        }
    }
    println!(
        "wrote {} ({}x{}, {} frame{})",
        args.out.display(),
        frames[0].width,
        frames[0].height,
        frames.len(),
        if frames.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
