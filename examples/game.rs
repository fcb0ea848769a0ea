//! A game scene that generates its own texture: a rotating cube whose faces show an image that
//! ptdit denoises in-game, on the game's own device, a slice of GPU work per frame.
//!
//! ```text
//! cargo run --release --example game -- --prompt "red apple"
//! cargo run --release --example game -- --prompt "rocket" --screenshot game.png   # and exit
//! cargo run --release --example game -- --video --prompt "rocket moving up"      # animated
//! ```
//!
//! With `--video` the texture comes from the built-in video model: its frames are the layers
//! of an array texture, and the cube plays them by choosing the layer it samples.
//!
//! It renders `--baseline` frames without generation first, then generates, then prints the
//! frame times of both phases from the same run. When the device is lost it starts over on a
//! new one, on the same window (`--lose-device-after-steps N` tests that).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use glam::{Mat4, Vec3};
use ptdit::autotune::{autotune, Cache};
use ptdit::embed::{Budget, Generation};
use ptdit::pipeline::generate::{Frame, TextToImage};
use ptdit::pipeline::{default_model, model_dir, png, Task};
use ptdit::GpuContext;
use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::window::{Window, WindowId};

#[derive(Parser, Clone)]
struct Args {
    /// [default: "red apple", or "rocket moving up" with --video]
    #[arg(long)]
    prompt: Option<String>,
    /// An animated texture from the built-in video model instead of an image.
    #[arg(long)]
    video: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute dispatches per frame given to generation.
    #[arg(long, default_value_t = 48)]
    budget: usize,
    /// Frames rendered before generation starts (the no-generation baseline).
    #[arg(long, default_value_t = 60)]
    baseline: usize,
    /// Save a screenshot when the image is done, then exit.
    #[arg(long)]
    screenshot: Option<std::path::PathBuf>,
    /// Destroy the device after this many steps, as a driver reset loses it, to test that
    /// the game starts over on a new device (once).
    #[arg(long)]
    lose_device_after_steps: Option<usize>,
}

impl Args {
    fn prompt(&self) -> &str {
        match (&self.prompt, self.video) {
            (Some(p), _) => p,
            (None, false) => "red apple",
            (None, true) => "rocket moving up",
        }
    }
}

const SHADER: &str = r#"
struct U { mvp: mat4x4<f32>, layer: u32 }
@group(0) @binding(0) var<uniform> u: U;
// One layer per frame of a video (one for an image).
@group(0) @binding(1) var tex: texture_2d_array<f32>;
@group(0) @binding(2) var samp: sampler;

struct V { @builtin(position) pos: vec4<f32>, @location(0) uv: vec2<f32>, @location(1) shade: f32 }

// 36 vertices of a unit cube, computed from the vertex index: 6 faces x 2 triangles, counter-
// clockwise seen from outside (the front face under back-face culling). Corner (0, 0) is each
// face's top left as seen from outside, where the texture's top left goes.
@vertex
fn vs(@builtin(vertex_index) i: u32) -> V {
    let face = i / 6u;
    let corner = array<vec2<f32>, 6>(vec2(0.0, 0.0), vec2(1.0, 1.0), vec2(1.0, 0.0),
                                     vec2(0.0, 0.0), vec2(0.0, 1.0), vec2(1.0, 1.0))[i % 6u];
    let s = corner * 2.0 - 1.0;
    var p: vec3<f32>;
    var n: vec3<f32>;
    switch face {
        case 0u: { p = vec3(s.x, -s.y, 1.0); n = vec3(0.0, 0.0, 1.0); }
        case 1u: { p = vec3(-s.x, -s.y, -1.0); n = vec3(0.0, 0.0, -1.0); }
        case 2u: { p = vec3(1.0, -s.y, -s.x); n = vec3(1.0, 0.0, 0.0); }
        case 3u: { p = vec3(-1.0, -s.y, s.x); n = vec3(-1.0, 0.0, 0.0); }
        case 4u: { p = vec3(s.x, 1.0, s.y); n = vec3(0.0, 1.0, 0.0); }
        default: { p = vec3(s.x, -1.0, -s.y); n = vec3(0.0, -1.0, 0.0); }
    }
    var o: V;
    o.pos = u.mvp * vec4(p, 1.0);
    o.uv = corner;
    o.shade = 0.55 + 0.45 * abs(dot(normalize(n), normalize(vec3(0.4, 0.7, 1.0))));
    return o;
}

@fragment
fn fs(v: V) -> @location(0) vec4<f32> {
    let c = textureSample(tex, samp, v.uv, u.layer).rgb;
    return vec4(c * v.shade, 1.0);
}
"#;

struct Scene {
    pipeline: wgpu::RenderPipeline,
    bind_group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    format: wgpu::TextureFormat,
    /// The texture's frames.
    layers: u32,
}

/// The uniform: the 4×4 matrix, then the layer (WGSL pads the struct to 80 bytes).
const UNIFORM_BYTES: u64 = 80;

/// A video texture's frames per second.
const FPS: f32 = 6.0;

impl Scene {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat, image: &wgpu::Texture) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("scene"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("cube"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState {
                cull_mode: Some(wgpu::Face::Back),
                ..Default::default()
            },
            depth_stencil: Some(wgpu::DepthStencilState {
                format: wgpu::TextureFormat::Depth32Float,
                depth_write_enabled: Some(true),
                depth_compare: Some(wgpu::CompareFunction::Less),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(format.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mvp and layer"),
            size: UNIFORM_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let view = image.create_view(&wgpu::TextureViewDescriptor {
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..Default::default()
        });
        let layers = image.depth_or_array_layers();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("cube"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::Sampler(&sampler),
                },
            ],
        });
        Scene {
            pipeline,
            bind_group,
            uniform,
            format,
            layers,
        }
    }

    /// Draws the cube at time `t` into `target` (with a fresh depth buffer of its size), showing
    /// the texture's frame of that time.
    fn draw(&self, device: &wgpu::Device, queue: &wgpu::Queue, target: &wgpu::Texture, t: f32) {
        let size = target.size();
        let aspect = size.width as f32 / size.height.max(1) as f32;
        let mvp = Mat4::perspective_rh(0.8, aspect, 0.1, 20.0)
            * Mat4::look_at_rh(Vec3::new(0.0, 0.8, 4.2), Vec3::ZERO, Vec3::Y)
            * Mat4::from_rotation_y(t * 0.6)
            * Mat4::from_rotation_x(0.35);
        let layer = (t * FPS) as u32 % self.layers.max(1);
        let mut u = [0u32; UNIFORM_BYTES as usize / 4];
        u[..16].copy_from_slice(bytemuck::cast_slice(&mvp.to_cols_array()));
        u[16] = layer;
        queue.write_buffer(&self.uniform, 0, bytemuck::cast_slice(&u));
        let depth = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("depth"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Depth32Float,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        let color = target.create_view(&Default::default());
        let depth_view = depth.create_view(&Default::default());
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("scene"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &color,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color {
                            r: 0.08,
                            g: 0.1,
                            b: 0.16,
                            a: 1.0,
                        }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &depth_view,
                    depth_ops: Some(wgpu::Operations {
                        load: wgpu::LoadOp::Clear(1.0),
                        store: wgpu::StoreOp::Discard,
                    }),
                    stencil_ops: None,
                }),
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.draw(0..36, 0..1);
        }
        queue.submit([enc.finish()]);
    }
}

/// Frame times of one phase.
#[derive(Default)]
struct Times(Vec<Duration>);

impl Times {
    fn report(&self, what: &str) -> String {
        let mut ms: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        if ms.is_empty() {
            return format!("{what}: no frames");
        }
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        let p95 = ms[(ms.len() * 95 / 100).min(ms.len() - 1)];
        format!(
            "{what}: mean {mean:.2} ms, p95 {p95:.2} ms over {} frames",
            ms.len()
        )
    }
}

/// Everything on the device: made again, on the same window, when the device is lost.
struct Gpu {
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    ctx: GpuContext,
    pipe: TextToImage,
    image: wgpu::Texture,
    scene: Scene,
}

impl Gpu {
    fn new(instance: &wgpu::Instance, window: &Arc<Window>, video: bool) -> Result<Self, String> {
        let surface = instance
            .create_surface(window.clone())
            .map_err(|e| e.to_string())?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            compatible_surface: Some(&surface),
            ..Default::default()
        }))
        .map_err(|e| format!("no GPU adapter for this window: {e}"))?;
        // The game's device: what the adapter offers, so the engine can use it too.
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("game"),
            required_features: adapter.features() & wgpu::Features::SHADER_F16,
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
        let size = window.inner_size();
        let mut config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .ok_or("the surface does not support this adapter")?;
        config.present_mode = wgpu::PresentMode::AutoNoVsync;
        surface.configure(&device, &config);

        let ctx = GpuContext::borrowed(device.clone(), queue.clone(), Some(&adapter.get_info()));
        // The device and its callbacks are the game's: it tells the engine when the device is
        // lost (so the engine stops at once), and keeps GPU errors from panicking (wgpu's
        // default handler) while it starts over on a new device.
        let report_loss = ctx.loss_reporter();
        device.set_device_lost_callback(move |reason, message| {
            report_loss(match message.is_empty() {
                true => format!("{reason:?}"),
                false => format!("{reason:?}: {message}"),
            })
        });
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| eprintln!("GPU error: {e}")));
        // Kernel variants for this GPU: measured on the first run, then read from the cache.
        pollster::block_on(autotune(&ctx, &Cache::Default)).map_err(|e| e.to_string())?;
        let task = if video { Task::Video } else { Task::Image };
        let files = default_model::built_in(task)
            .ok_or_else(|| format!("this build has no built-in {} model", task.name()))?;
        let comps = model_dir::from_files(&files).map_err(|e| e.to_string())?;
        let pipe = TextToImage::new(&ctx, comps).map_err(|e| e.to_string())?;
        let req = pipe.request("");
        let image = device.create_texture(&Generation::texture_descriptor(&req));
        let grey = vec![128u8; req.width * req.height * req.frames * 4];
        queue.write_texture(
            image.as_image_copy(),
            &grey,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * req.width as u32),
                rows_per_image: Some(req.height as u32),
            },
            image.size(),
        );
        let scene = Scene::new(&device, config.format, &image);
        println!("adapter: {}", adapter.get_info().name);
        Ok(Gpu {
            surface,
            config,
            ctx,
            pipe,
            image,
            scene,
        })
    }
}

struct Running {
    window: Arc<Window>,
    instance: wgpu::Instance,
    gpu: Gpu,
    generation: Option<Generation>,
    frames: usize,
    last: Instant,
    start: Instant,
    baseline: Times,
    generating: Times,
    done_at: Option<usize>,
    /// Devices lost so far (each one started over on a new device).
    losses: usize,
}

struct App {
    args: Args,
    running: Option<Running>,
    error: Option<String>,
}

impl App {
    fn start(&mut self, el: &ActiveEventLoop) -> Result<Running, String> {
        let attrs = Window::default_attributes()
            .with_title("ptdit: a texture generated in-game")
            .with_inner_size(winit::dpi::PhysicalSize::new(640, 480));
        let window = Arc::new(el.create_window(attrs).map_err(|e| e.to_string())?);
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_with_display_handle_from_env(
                Box::new(el.owned_display_handle()),
            ));
        let gpu = Gpu::new(&instance, &window, self.args.video)?;
        Ok(Running {
            window,
            instance,
            gpu,
            generation: None,
            frames: 0,
            last: Instant::now(),
            start: Instant::now(),
            baseline: Times::default(),
            generating: Times::default(),
            done_at: None,
            losses: 0,
        })
    }

    fn frame(&mut self, el: &ActiveEventLoop) -> Result<(), String> {
        let args = self.args.clone();
        let Some(r) = self.running.as_mut() else {
            return Ok(());
        };
        // A lost device (a driver reset; here also `--lose-device-after-steps`) takes every
        // resource with it: start over on a new device, same window, same generation.
        // Polling runs the device's callbacks, the lost one among them.
        let _ = r.gpu.ctx.device.poll(wgpu::PollType::Poll);
        if let Err(lost) = r.gpu.ctx.check_alive() {
            r.losses += 1;
            println!("{lost}; starting again on a new device");
            r.generation = None;
            r.gpu = Gpu::new(&r.instance, &r.window, args.video)?;
            println!("recovered from a lost device: generating again");
            r.last = Instant::now(); // the restart is no frame's time
        }
        let now = Instant::now();
        let dt = now - r.last;
        r.last = now;
        if r.frames > 0 {
            match (&r.generation, r.done_at) {
                (None, None) => r.baseline.0.push(dt),
                (Some(_), None) => r.generating.0.push(dt),
                _ => {}
            }
        }
        r.frames += 1;

        if r.frames >= args.baseline && r.generation.is_none() && r.done_at.is_none() {
            let req = ptdit::pipeline::generate::Request {
                seed: args.seed,
                ..r.gpu.pipe.request(args.prompt())
            };
            let g = pollster::block_on(Generation::new(&r.gpu.pipe, &req, &r.gpu.image))
                .map_err(|e| e.to_string())?;
            println!(
                "generating {:?}: {} steps of {} dispatches, {} dispatches a frame",
                args.prompt(),
                req.steps,
                g.dispatches_per_step(),
                args.budget
            );
            r.generation = Some(g);
            r.last = Instant::now();
        }
        if let (Some(g), None) = (r.generation.as_mut(), r.done_at) {
            match g.advance(Budget::Dispatches(args.budget)) {
                Ok(p) if p.done => {
                    r.done_at = Some(r.frames);
                    println!("{}", r.baseline.report("frame time without generation"));
                    println!("{}", r.generating.report("frame time while generating"));
                }
                Ok(p) => {
                    if args.lose_device_after_steps == Some(p.step) && r.losses == 0 {
                        println!(
                            "destroying the device after step {} (a test of recovery)",
                            p.step
                        );
                        r.gpu.ctx.device.destroy();
                    }
                }
                // Handled at the top of the next frame.
                Err(ptdit::Error::DeviceLost(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        if r.gpu.ctx.check_alive().is_err() {
            r.window.request_redraw();
            return Ok(());
        }

        let t = r.start.elapsed().as_secs_f32();
        let gpu = &r.gpu;
        let frame = match gpu.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f)
            | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                gpu.surface.configure(&gpu.ctx.device, &gpu.config);
                r.window.request_redraw();
                return Ok(());
            }
            // A lost device fails here before its lost callback has run, which wgpu does once
            // the queue's work is done: wait for that, and a new device comes next frame.
            _ if gpu
                .ctx
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .is_err()
                || gpu.ctx.check_alive().is_err() =>
            {
                r.window.request_redraw();
                return Ok(());
            }
            other => return Err(format!("cannot draw the window: {other:?}")),
        };
        gpu.scene
            .draw(&gpu.ctx.device, &gpu.ctx.queue, &frame.texture, t);
        r.window.pre_present_notify();
        gpu.ctx.queue.present(frame);

        // A few frames after the image is done (so it shows on every face), take the shot.
        if let (Some(done), Some(path)) = (r.done_at, &args.screenshot) {
            if r.frames >= done + 3 {
                // At a fixed turn, not the frame's: a test checks which face is where.
                let shot = screenshot(gpu, SHOT_TIME)?;
                std::fs::write(path, png::encode(&[shot]).map_err(|e| e.to_string())?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote {}", path.display());
                el.exit();
                return Ok(());
            }
        }
        r.window.request_redraw();
        Ok(())
    }
}

/// The scene's time in the screenshot: the cube turned 0.3 rad, its front, top and a side face
/// in view.
const SHOT_TIME: f32 = 0.5;

/// Draws the scene once more into an offscreen texture of the window's size and reads it back.
fn screenshot(r: &Gpu, t: f32) -> Result<Frame, String> {
    let dev = &r.ctx.device;
    let (w, h) = (r.config.width, r.config.height);
    let target = dev.create_texture(&wgpu::TextureDescriptor {
        label: Some("screenshot"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: r.scene.format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    r.scene.draw(dev, &r.ctx.queue, &target, t);
    pollster::block_on(ptdit::embed::read_texture(&r.ctx, &target)).map_err(|e| e.to_string())
}

impl ApplicationHandler for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.running.is_some() {
            return;
        }
        match self.start(el) {
            Ok(r) => {
                r.window.request_redraw();
                self.running = Some(r);
            }
            Err(e) => {
                self.error = Some(e);
                el.exit();
            }
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => el.exit(),
            WindowEvent::Resized(size) => {
                if let Some(r) = self.running.as_mut() {
                    let gpu = &mut r.gpu;
                    gpu.config.width = size.width.max(1);
                    gpu.config.height = size.height.max(1);
                    gpu.surface.configure(&gpu.ctx.device, &gpu.config);
                }
            }
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.frame(el) {
                    self.error = Some(e);
                    el.exit();
                }
            }
            _ => {}
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let el = match EventLoop::new() {
        Ok(el) => el,
        Err(e) => {
            eprintln!("error: cannot open a window ({e}); is a display (or Xvfb) running?");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut app = App {
        args,
        running: None,
        error: None,
    };
    if let Err(e) = el.run_app(&mut app) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match app.error {
        Some(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
        None => std::process::ExitCode::SUCCESS,
    }
}
