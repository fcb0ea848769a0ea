//! The desktop app: prompt, steps, seed, guidance and step cache, Generate and Cancel, the live
//! preview, Save PNG. Built on eframe (egui on wgpu); the engine shares eframe's device and
//! advances a slice of GPU work per UI frame, writing straight into the texture the UI shows, so
//! the window stays responsive while it denoises.
//!
//! ```text
//! cargo run --release --example desktop
//! cargo run --release --example desktop -- --prompt "rocket" --screenshot desktop.png   # and exit
//! cargo run --release --example desktop -- --model path/to/model-dir
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use eframe::{egui, egui_wgpu};
use ptdit::autotune::{autotune, Cache};
use ptdit::embed::{Budget, Generation};
use ptdit::pipeline::generate::{Frame, Request, TextToImage};
use ptdit::pipeline::step_cache::LEVELS;
use ptdit::pipeline::{default_model, model_dir, png, StepCache};
use ptdit::GpuContext;

#[derive(Parser)]
struct Args {
    /// Start generating this prompt at once.
    #[arg(long)]
    prompt: Option<String>,
    /// With --prompt: save a screenshot of the window when the image is done, then exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// A model directory instead of the embedded default model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Compute dispatches per UI frame.
    #[arg(long, default_value_t = 64)]
    budget: usize,
    /// Step cache: off, light, medium or heavy (docs/caching.md).
    #[arg(long, default_value = "off")]
    cache: String,
}

struct Run {
    gen: Generation,
    started: Instant,
}

struct App {
    ctx: GpuContext,
    pipe: TextToImage,
    req: Request,
    /// The step cache level's name (`ptdit::pipeline::step_cache::LEVELS`).
    cache: String,
    texture: Option<(wgpu::Texture, egui::TextureId)>,
    run: Option<Run>,
    status: String,
    save_path: String,
    budget: usize,
    screenshot: Option<PathBuf>,
    shot: Arc<Mutex<Option<Arc<egui::ColorImage>>>>,
    shot_requested: bool,
}

impl App {
    fn new(cc: &eframe::CreationContext<'_>, args: Args) -> Result<Self, String> {
        let rs = cc
            .wgpu_render_state
            .as_ref()
            .ok_or("eframe did not start on wgpu")?;
        let info = rs.adapter.get_info();
        let ctx = GpuContext::borrowed(rs.device.clone(), rs.queue.clone(), Some(&info));
        // Kernel variants for this GPU: measured on the first run, then read from the cache.
        pollster::block_on(autotune(&ctx, &Cache::Default)).map_err(|e| e.to_string())?;
        let comps = match &args.model {
            Some(dir) => model_dir::open(&ctx, dir, ptdit::DType::F32),
            None => model_dir::from_files(&default_model::files()),
        }
        .map_err(|e| e.to_string())?;
        let pipe = TextToImage::new(&ctx, comps).map_err(|e| e.to_string())?;
        let mut req = pipe.request(args.prompt.as_deref().unwrap_or("red apple"));
        req.cache = StepCache::level(&args.cache).map_err(|e| e.to_string())?;
        let mut app = App {
            ctx,
            pipe,
            req,
            cache: args.cache,
            texture: None,
            run: None,
            status: format!("adapter: {} ({:?})", info.name, info.backend),
            save_path: "ptdit.png".into(),
            budget: args.budget,
            screenshot: args.screenshot,
            shot: Default::default(),
            shot_requested: false,
        };
        if args.prompt.is_some() {
            app.start(cc.wgpu_render_state.as_ref());
        }
        Ok(app)
    }

    /// A texture of the request's size, registered with egui (a new one when the size changes).
    fn target(&mut self, rs: &egui_wgpu::RenderState) -> wgpu::Texture {
        let size = (self.req.width as u32, self.req.height as u32);
        if let Some((t, id)) = &self.texture {
            if (t.width(), t.height()) == size {
                return t.clone();
            }
            rs.renderer.write().free_texture(id);
        }
        let t = self
            .ctx
            .device
            .create_texture(&Generation::texture_descriptor(&self.req));
        let view = t.create_view(&Default::default());
        let id = rs.renderer.write().register_native_texture(
            &rs.device,
            &view,
            wgpu::FilterMode::Linear,
        );
        self.texture = Some((t.clone(), id));
        t
    }

    fn start(&mut self, rs: Option<&egui_wgpu::RenderState>) {
        let Some(rs) = rs else { return };
        let target = self.target(rs);
        match pollster::block_on(Generation::new(&self.pipe, &self.req, &target)) {
            Ok(gen) => {
                self.run = Some(Run {
                    gen,
                    started: Instant::now(),
                })
            }
            Err(e) => self.status = format!("error: {e}"),
        }
    }

    /// One slice of denoising per UI frame.
    fn advance(&mut self) {
        let Some(run) = self.run.as_mut() else { return };
        match run.gen.advance(Budget::Dispatches(self.budget)) {
            Ok(p) if p.done => {
                if let Err(e) = pollster::block_on(run.gen.decode()) {
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
                }
                self.run = None;
            }
            Ok(p) => self.status = format!("step {}/{}", p.step, p.steps),
            Err(e) => {
                self.status = format!("error: {e}");
                self.run = None;
            }
        }
    }

    fn save(&mut self) {
        let Some((t, _)) = &self.texture else { return };
        let read = pollster::block_on(ptdit::embed::read_texture(&self.ctx, t));
        self.status = match read.map_err(|e| e.to_string()).and_then(|f| {
            let f = f.upscale(f.factor_for(128)).unwrap_or_else(|_| f.clone());
            let bytes = png::encode(&[f]).map_err(|e| e.to_string())?;
            std::fs::write(&self.save_path, bytes).map_err(|e| e.to_string())
        }) {
            Ok(()) => format!("saved {}", self.save_path),
            Err(e) => format!("cannot save {}: {e}", self.save_path),
        };
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.advance();
        if self.run.is_some() {
            ctx.request_repaint();
        }

        egui::Panel::left("controls")
            .resizable(false)
            .exact_size(260.0)
            .show(ui, |ui| {
                ui.heading("ptdit");
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
                        self.start(frame.wgpu_render_state());
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
                            self.texture.is_some() && self.run.is_none(),
                            egui::Button::new("Save PNG"),
                        )
                        .clicked()
                    {
                        self.save();
                    }
                });
                ui.separator();
                ui.label(&self.status);
            });
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some((_, id)) = &self.texture {
                let side = ui.available_width().min(ui.available_height()) - 8.0;
                ui.centered_and_justified(|ui| {
                    ui.add(egui::Image::new(egui::load::SizedTexture::new(
                        *id,
                        egui::vec2(side, side),
                    )));
                });
            } else {
                ui.centered_and_justified(|ui| ui.label("Type a prompt and press Generate."));
            }
        });

        // Automation: once the image is done, a screenshot of the window, then exit.
        if let Some(path) = self.screenshot.clone() {
            let done = self.run.is_none() && self.texture.is_some();
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
                    Ok(()) => println!("wrote {} ({}; {w}x{h})", path.display(), self.status),
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
    // The engine shares eframe's device: ask for what the adapter offers (the limits, and
    // shader-f16 where it exists) rather than eframe's conservative defaults.
    let setup = egui_wgpu::WgpuSetupCreateNew {
        device_descriptor: Arc::new(|adapter| wgpu::DeviceDescriptor {
            label: Some("ptdit desktop"),
            required_features: adapter.features() & wgpu::Features::SHADER_F16,
            required_limits: adapter.limits(),
            ..Default::default()
        }),
        ..egui_wgpu::WgpuSetupCreateNew::without_display_handle()
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([820.0, 560.0])
            .with_title("ptdit"),
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: egui_wgpu::WgpuSetup::CreateNew(setup),
            ..Default::default()
        },
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
