//! The desktop app: a model directory to open, prompt, steps, seed, guidance and step cache,
//! Generate and Cancel, the live preview, Save PNG (with the settings, as `ptdit generate`
//! writes them), and the recent generations, each one click from its settings again. Built on eframe (egui on wgpu). The engine advances a slice of GPU work
//! per UI frame, so the window stays responsive while it denoises. It runs on a device of its
//! own, not eframe's: a device lost to a long compute job or a driver reset then takes only
//! the engine, which the app starts again on a new device and resumes the generation (each
//! step's preview is copied to the UI, a few KB). The game example shows the other way, the
//! engine on the host's device.
//!
//! ```text
//! cargo run --release --example desktop
//! cargo run --release --example desktop -- --prompt "rocket" --screenshot desktop.png   # and exit
//! cargo run --release --example desktop -- --model path/to/model-dir
//! cargo run --release --example desktop -- --task video --prompt "rocket moving up"
//! ```
//!
//! The task choice (image, video, multi-view) loads that task's built-in model: a video plays
//! in a loop, a multi-view model's views are shown side by side; Save PNG writes what `ptdit
//! generate` writes (an animated PNG for video, the views side by side).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Generations kept in the Recent list.
const RECENT: usize = 8;

use clap::Parser;
use eframe::egui;
use ptdit::autotune::{autotune, Cache};
use ptdit::embed::{Budget, Generation};
use ptdit::pipeline::generate::{Frame, Request, TextToImage};
use ptdit::pipeline::settings::{model_name, ImageSettings};
use ptdit::pipeline::step_cache::LEVELS;
use ptdit::pipeline::{default_model, model_dir, png, StepCache, Task};
use ptdit::GpuContext;

#[derive(Parser)]
struct Args {
    /// Start generating this prompt at once.
    #[arg(long)]
    prompt: Option<String>,
    /// With --prompt: save a screenshot of the window when the image is done, then exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// With --prompt: also save the image as Save PNG does (with its settings) when it is done.
    #[arg(long)]
    save: Option<PathBuf>,
    /// A model directory instead of the embedded default model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The built-in model of this task: image, video or views.
    #[arg(long, default_value = "image", value_parser = parse_task)]
    task: Task,
    /// Compute dispatches per UI frame.
    #[arg(long, default_value_t = 64)]
    budget: usize,
    /// Step cache: off, light, medium or heavy (docs/caching.md).
    #[arg(long, default_value = "off")]
    cache: String,
    /// Destroy the engine's device after this many steps, as a driver reset loses it, to test
    /// that the app starts the engine again (once).
    #[arg(long)]
    lose_device_after_steps: Option<usize>,
}

fn parse_task(s: &str) -> Result<Task, String> {
    TASKS
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("no task {s:?}: image, video or views"))
}

/// The task choice's entries.
const TASKS: [(&str, Task); 3] = [
    ("image", Task::Image),
    ("video", Task::Video),
    ("views", Task::MultiView),
];

/// A video's frames per second as the app plays it.
const FPS: f32 = 6.0;

/// What the image panel shows of a generation's frames at `t` seconds: a multi-view model's
/// views side by side, a video's frame of that time, or the image.
fn picture(task: Option<Task>, frames: &[Frame], t: f32) -> Frame {
    // Frames from one generation share their size, so only an empty list fails.
    let shown = Frame::written(task, frames).unwrap_or_else(|_| frames.to_vec());
    shown[(t * FPS) as usize % shown.len().max(1)].clone()
}

/// The engine on a device of its own, with the model loaded (a directory, or the task's
/// built-in model): made again when the device is lost.
fn engine(
    model: Option<&std::path::Path>,
    task: Task,
) -> Result<(GpuContext, TextToImage), String> {
    let ctx = GpuContext::new_blocking().map_err(|e| e.to_string())?;
    // Kernel variants for this GPU: measured on the first run, then read from the cache.
    pollster::block_on(autotune(&ctx, &Cache::Default)).map_err(|e| e.to_string())?;
    let comps = match model {
        Some(dir) => model_dir::open(&ctx, dir, ptdit::DType::F32),
        None => {
            let files = default_model::built_in(task)
                .ok_or_else(|| format!("this build has no built-in {} model", task.name()))?;
            model_dir::from_files(&files)
        }
    }
    .map_err(|e| e.to_string())?;
    let pipe = TextToImage::new(&ctx, comps).map_err(|e| e.to_string())?;
    Ok((ctx, pipe))
}

struct Run {
    gen: Generation,
    /// The engine's texture it writes; each step is copied to `App::shown`.
    target: wgpu::Texture,
    started: Instant,
}

struct App {
    ctx: GpuContext,
    pipe: TextToImage,
    model: Option<PathBuf>,
    /// The task chosen for the built-in model (a directory's model declares its own).
    task: Task,
    req: Request,
    /// The step cache level's name (`ptdit::pipeline::step_cache::LEVELS`).
    cache: String,
    /// The latest image or preview, as the UI holds it, and its frames as RGB for saving.
    shown: Option<(egui::TextureHandle, Vec<Frame>)>,
    /// When the video shown started playing, and the frame on screen.
    playing: (Instant, usize),
    /// The settings of the generation shown, saved with it.
    made_with: Option<ImageSettings>,
    /// The last generations, newest first: settings, thumbnail, frames.
    recent: Vec<(ImageSettings, egui::TextureHandle, Vec<Frame>)>,
    /// The model directory field (empty: the built-in model).
    model_field: String,
    run: Option<Run>,
    lose_device_after_steps: Option<usize>,
    status: String,
    save_path: String,
    budget: usize,
    screenshot: Option<PathBuf>,
    save_when_done: Option<PathBuf>,
    shot: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
    shot_requested: bool,
}

impl App {
    fn new(_cc: &eframe::CreationContext<'_>, args: Args) -> Result<Self, String> {
        let (ctx, pipe) = engine(args.model.as_deref(), args.task)?;
        let status = format!("adapter: {} ({})", ctx.report.name, ctx.report.backend);
        let mut req = pipe.request(args.prompt.as_deref().unwrap_or("red apple"));
        req.cache = StepCache::level(&args.cache).map_err(|e| e.to_string())?;
        let model_field = args
            .model
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let mut app = App {
            ctx,
            pipe,
            model: args.model,
            task: args.task,
            req,
            cache: args.cache,
            shown: None,
            playing: (Instant::now(), 0),
            made_with: None,
            recent: Vec::new(),
            model_field,
            run: None,
            lose_device_after_steps: args.lose_device_after_steps,
            status,
            save_path: "ptdit.png".into(),
            budget: args.budget,
            screenshot: args.screenshot,
            save_when_done: args.save,
            shot: Default::default(),
            shot_requested: false,
        };
        if args.prompt.is_some() {
            app.start();
        }
        Ok(app)
    }

    /// How the settings name the model in use.
    fn model_name(&self) -> String {
        match &self.model {
            Some(dir) => model_name(Some(dir)),
            None => default_model::built_in_name(self.task).to_string(),
        }
    }

    fn start(&mut self) {
        let model = self.model_name();
        let float = self.pipe.float();
        self.made_with = Some(ImageSettings::of(&self.req, model, float, &self.cache, 1));
        let target = self
            .ctx
            .device
            .create_texture(&Generation::texture_descriptor(&self.req));
        match pollster::block_on(Generation::new(&self.pipe, &self.req, &target)) {
            Ok(gen) => {
                self.run = Some(Run {
                    gen,
                    target,
                    started: Instant::now(),
                })
            }
            Err(e) => self.status = format!("error: {e}"),
        }
    }

    /// Copies the engine's texture (a layer per frame) to the UI's.
    fn show(&mut self, ui: &egui::Context) -> ptdit::Result<()> {
        let Some(run) = &self.run else { return Ok(()) };
        let rgba = pollster::block_on(ptdit::embed::read_texture_rgba(&self.ctx, &run.target))?;
        let (w, h) = (run.target.width() as usize, run.target.height() as usize);
        let frames: Vec<Frame> = rgba
            .chunks(w * h * 4)
            .map(|layer| Frame {
                width: w,
                height: h,
                rgb: layer.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            })
            .collect();
        self.set_shown(ui, frames);
        Ok(())
    }

    /// Shows these frames (from their first) in the image panel.
    fn set_shown(&mut self, ui: &egui::Context, frames: Vec<Frame>) {
        let f = picture(self.pipe.task(), &frames, 0.0);
        let image = egui::ColorImage::from_rgb([f.width, f.height], &f.rgb);
        self.playing = (Instant::now(), 0);
        match &mut self.shown {
            Some((handle, shown)) => {
                handle.set(image, egui::TextureOptions::LINEAR);
                *shown = frames;
            }
            None => {
                let handle = ui.load_texture("image", image, egui::TextureOptions::LINEAR);
                self.shown = Some((handle, frames));
            }
        }
    }

    /// A finished video plays in a loop: the frame of this moment in the image panel.
    fn play(&mut self, ui: &egui::Context) {
        let Some((handle, frames)) = &mut self.shown else {
            return;
        };
        if self.run.is_some() || frames.len() < 2 || self.pipe.task() == Some(Task::MultiView) {
            return;
        }
        let t = self.playing.0.elapsed().as_secs_f32();
        let i = (t * FPS) as usize % frames.len();
        if i != self.playing.1 {
            self.playing.1 = i;
            let f = &frames[i];
            let image = egui::ColorImage::from_rgb([f.width, f.height], &f.rgb);
            handle.set(image, egui::TextureOptions::LINEAR);
        }
        ui.request_repaint_after(std::time::Duration::from_secs_f32(1.0 / FPS));
    }

    /// Keeps the image shown and its settings at the top of the recent generations.
    fn remember(&mut self, ui: &egui::Context) {
        if let (Some((_, frames)), Some(settings)) = (&self.shown, &self.made_with) {
            // A texture of its own: the shown one is overwritten by the next generation.
            let frame = picture(self.pipe.task(), frames, 0.0);
            let image = egui::ColorImage::from_rgb([frame.width, frame.height], &frame.rgb);
            let thumb = ui.load_texture("recent", image, egui::TextureOptions::LINEAR);
            self.recent
                .insert(0, (settings.clone(), thumb, frames.clone()));
            self.recent.truncate(RECENT);
        }
    }

    /// Makes a generation of the list current again: its settings in the controls, its image
    /// shown and ready to save.
    fn recall(&mut self, ui: &egui::Context, i: usize) {
        let Some((s, _, frames)) = self.recent.get(i).cloned() else {
            return;
        };
        let r = &mut self.req;
        (r.prompt, r.negative_prompt) = (s.prompt.clone(), s.negative_prompt.clone());
        (r.seed, r.steps, r.cfg) = (s.seed, s.steps, s.guidance);
        self.cache = s.cache.clone();
        self.set_shown(ui, frames);
        self.status = format!("seed {}, {} steps: {}", s.seed, s.steps, s.prompt);
        self.made_with = Some(s);
    }

    /// Loads another model directory (empty: the built-in model) on a new engine; the one in
    /// use stays if it fails.
    fn open_model(&mut self) {
        let dir = self.model_field.trim();
        let model = (!dir.is_empty()).then(|| PathBuf::from(dir));
        match engine(model.as_deref(), self.task) {
            Ok((ctx, pipe)) => {
                let prompt = std::mem::take(&mut self.req.prompt);
                self.req = Request {
                    cache: self.req.cache,
                    ..pipe.request(&prompt)
                };
                (self.ctx, self.pipe, self.model, self.run) = (ctx, pipe, model, None);
                self.status = format!("model: {}", self.model_name());
            }
            Err(e) => self.status = format!("cannot open {dir}: {e}"),
        }
    }

    /// After a lost device: a new engine on a new device, and the generation started again.
    fn restart(&mut self, lost: &ptdit::Error) {
        let resume = self.run.take().is_some();
        match engine(self.model.as_deref(), self.task) {
            Ok((ctx, pipe)) => {
                self.ctx = ctx;
                self.pipe = pipe;
                self.status = format!("{lost}; the engine started again on a new device");
                println!("{}", self.status);
                if resume {
                    self.start();
                }
            }
            Err(e) => self.status = format!("{lost}; starting the engine again failed: {e}"),
        }
    }

    /// One slice of denoising per UI frame.
    fn advance(&mut self, ui: &egui::Context) {
        let Some(run) = self.run.as_mut() else { return };
        let before = run.gen.progress().step;
        let advanced = run.gen.advance(Budget::Dispatches(self.budget));
        let shown = match &advanced {
            Ok(p) if p.step > before => self.show(ui),
            _ => Ok(()),
        };
        let Some(run) = self.run.as_mut() else { return };
        match advanced.and_then(|p| shown.map(|()| p)) {
            Ok(p) if p.done => {
                let decoded = pollster::block_on(run.gen.decode()).and_then(|()| self.show(ui));
                let Some(run) = self.run.as_mut() else { return };
                if let Err(e) = decoded {
                    self.status = format!("error: {e}");
                } else {
                    let skipped = match self.req.cache {
                        Some(_) => pollster::block_on(run.gen.skipped_steps())
                            .map(|n| format!(", {n} skipped by the step cache"))
                            .unwrap_or_default(),
                        None => String::new(),
                    };
                    self.status = format!(
                        "done: {} steps in {:.1} s{skipped}",
                        p.steps,
                        run.started.elapsed().as_secs_f32()
                    );
                    self.remember(ui);
                }
                self.run = None;
            }
            Ok(p) => {
                self.status = format!("step {}/{}", p.step, p.steps);
                if self.lose_device_after_steps == Some(p.step) {
                    self.lose_device_after_steps = None;
                    println!(
                        "destroying the device after step {} (a test of recovery)",
                        p.step
                    );
                    self.ctx.device.destroy();
                }
            }
            Err(e) => {
                // A lost device shows first as whatever call met it; its callback runs once
                // the queue's work is done.
                let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
                match self.ctx.check_alive() {
                    Err(lost) => self.restart(&lost),
                    Ok(()) => {
                        self.status = format!("error: {e}");
                        self.run = None;
                    }
                }
            }
        }
    }

    /// Saves the image with the settings that made it (`ptdit info FILE.png` shows them,
    /// `ptdit generate --from FILE.png` repeats them).
    fn save(&mut self) {
        let Some((_, frames)) = &self.shown else {
            return;
        };
        let Some(settings) = &self.made_with else {
            return;
        };
        // What `ptdit generate` writes: the views side by side, or every frame (an animated
        // PNG for a video).
        self.status = match Frame::written(self.pipe.task(), frames)
            .map_err(|e| e.to_string())
            .and_then(|frames| {
                let f = frames.first().ok_or("no frames to save")?;
                let factor = f.factor_for(128);
                let frames = frames
                    .iter()
                    .map(|f| f.upscale(factor).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                let text = ImageSettings {
                    upscale: factor,
                    ..settings.clone()
                }
                .to_text();
                let bytes = png::encode_with_text(&frames, &text).map_err(|e| e.to_string())?;
                std::fs::write(&self.save_path, bytes).map_err(|e| e.to_string())
            }) {
            Ok(()) => format!("saved {}", self.save_path),
            Err(e) => format!("cannot save {}: {e}", self.save_path),
        };
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.advance(&ctx);
        self.play(&ctx);
        if self.run.is_some() {
            ctx.request_repaint();
        }

        egui::Panel::left("controls")
            .resizable(false)
            .exact_size(260.0)
            .show(ui, |ui| {
                ui.heading("ptdit");
                let before = self.task;
                egui::ComboBox::from_label("task")
                    .selected_text(
                        TASKS
                            .iter()
                            .find(|(_, t)| *t == self.task)
                            .map_or("", |t| t.0),
                    )
                    .show_ui(ui, |ui| {
                        for (name, task) in TASKS {
                            ui.selectable_value(&mut self.task, task, name);
                        }
                    });
                if self.task != before {
                    // The task's built-in model in place of the one in use.
                    if self.run.is_none() {
                        self.model_field.clear();
                        self.open_model();
                        if self.model.is_none() && self.pipe.task() != Some(self.task) {
                            self.task = before; // it failed: the status says why
                        } else {
                            self.shown = None;
                        }
                    } else {
                        self.task = before;
                    }
                }
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.model_field)
                            .hint_text("model directory (empty: built-in)")
                            .desired_width(180.0),
                    );
                    if ui
                        .add_enabled(self.run.is_none(), egui::Button::new("Open"))
                        .clicked()
                    {
                        self.open_model();
                    }
                });
                ui.label("Prompt");
                ui.add(egui::TextEdit::multiline(&mut self.req.prompt).desired_rows(3));
                ui.label("Negative prompt");
                ui.text_edit_singleline(&mut self.req.negative_prompt);
                ui.add(egui::Slider::new(&mut self.req.steps, 1..=100).text("steps"));
                ui.add(egui::Slider::new(&mut self.req.cfg, 1.0..=12.0).text("guidance"));
                egui::ComboBox::from_label("step cache")
                    .selected_text(self.cache.clone())
                    .show_ui(ui, |ui| {
                        for level in LEVELS {
                            ui.selectable_value(&mut self.cache, level.to_string(), *level);
                        }
                    });
                // Every listed level parses; a failure would leave the cache off.
                self.req.cache = StepCache::level(&self.cache).ok().flatten();
                ui.horizontal(|ui| {
                    ui.label("seed");
                    ui.add(egui::DragValue::new(&mut self.req.seed));
                    if ui.button("random").clicked() {
                        self.req.seed = Instant::now().elapsed().subsec_nanos() as u64
                            ^ self.req.seed.wrapping_mul(6364136223846793005);
                    }
                });
                ui.separator();
                ui.horizontal(|ui| {
                    let idle = self.run.is_none();
                    if ui
                        .add_enabled(idle, egui::Button::new("Generate"))
                        .clicked()
                    {
                        self.start();
                    }
                    if ui.add_enabled(!idle, egui::Button::new("Cancel")).clicked() {
                        self.run = None;
                        self.status = "cancelled".into();
                    }
                });
                if let Some(run) = &self.run {
                    let p = run.gen.progress();
                    ui.add(
                        egui::ProgressBar::new(p.step as f32 / p.steps.max(1) as f32)
                            .text(format!("{}/{}", p.step, p.steps)),
                    );
                }
                ui.separator();
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut self.save_path).desired_width(140.0));
                    if ui
                        .add_enabled(
                            self.shown.is_some() && self.run.is_none(),
                            egui::Button::new("Save PNG"),
                        )
                        .clicked()
                    {
                        self.save();
                    }
                });
                ui.separator();
                ui.label(&self.status);
                if !self.recent.is_empty() {
                    ui.separator();
                    ui.label("Recent (click to use again)");
                    let mut picked = None;
                    for (i, (s, thumb, _)) in self.recent.iter().enumerate() {
                        let text = format!("seed {}, {} steps: {}", s.seed, s.steps, s.prompt);
                        let image = egui::Image::new(egui::load::SizedTexture::new(
                            thumb.id(),
                            egui::vec2(24.0 * thumb.aspect_ratio(), 24.0),
                        ));
                        if ui
                            .add(egui::Button::image_and_text(image, text).truncate())
                            .clicked()
                        {
                            picked = Some(i);
                        }
                    }
                    if let Some(i) = picked {
                        self.recall(&ctx, i);
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some((handle, _)) = &self.shown {
                let id = handle.id();
                // As large as fits, in the picture's shape (views side by side are wide).
                let [w, h] = handle.size().map(|v| v.max(1) as f32);
                let scale =
                    ((ui.available_width() - 8.0) / w).min((ui.available_height() - 8.0) / h);
                ui.centered_and_justified(|ui| {
                    ui.add(egui::Image::new(egui::load::SizedTexture::new(
                        id,
                        egui::vec2(w * scale, h * scale),
                    )));
                });
            } else {
                ui.centered_and_justified(|ui| ui.label("Type a prompt and press Generate."));
            }
        });

        // Automation: once the image is done, the image saved and a screenshot of the window,
        // then exit.
        if self.run.is_none() && self.shown.is_some() {
            if let Some(path) = self.save_when_done.take() {
                let done = self.status.clone();
                self.save_path = path.display().to_string();
                self.save();
                println!("{}", self.status);
                self.status = done; // the screenshot shows how the generation went
            }
        }
        if let Some(path) = self.screenshot.clone() {
            let done = self.run.is_none() && self.shown.is_some();
            if done && !self.shot_requested {
                self.shot_requested = true;
                let slot = self.shot.clone();
                let c = ctx.clone();
                ctx.request_screenshot(move |img| {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(img);
                    }
                    c.request_repaint();
                });
            }
            let taken = self.shot.lock().ok().and_then(|mut s| s.take());
            if let Some(img) = taken {
                let [w, h] = img.size;
                let rgb = img
                    .pixels
                    .iter()
                    .flat_map(|c| [c.r(), c.g(), c.b()])
                    .collect();
                let f = Frame {
                    width: w,
                    height: h,
                    rgb,
                };
                match png::encode(&[f]).map_err(|e| e.to_string()).and_then(|b| {
                    std::fs::write(&path, b).map_err(|e| format!("{}: {e}", path.display()))
                }) {
                    Ok(()) => println!(
                        "wrote {} ({}; {} in Recent; {w}x{h})",
                        path.display(),
                        self.status,
                        self.recent.len()
                    ),
                    Err(e) => eprintln!("error: {e}"),
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            ctx.request_repaint();
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // eframe's own device draws the UI only; the engine makes its own (see the top).
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([820.0, 560.0])
            .with_title("ptdit"),
        ..Default::default()
    };
    let result = eframe::run_native(
        "ptdit",
        options,
        Box::new(move |cc| {
            App::new(cc, args)
                .map(|a| Box::new(a) as Box<dyn eframe::App>)
                .map_err(|e| e.into())
        }),
    );
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
