//! Generation inside a host's render loop (a game, a desktop app): the host lends its
//! `wgpu::Device` and `Queue` ([`GpuContext::borrowed`]), owns an RGBA8 texture, and calls
//! [`Generation::advance`] once a frame with a budget of GPU dispatches. Each finished denoising
//! step writes its preview into the texture on the GPU; when the last step is done the texture
//! holds the image. Nothing is read back to the CPU on this path (for a model with a VAE, the
//! final decode is [`Generation::decode`], which does read back; the default model has none).
//!
//! ```ignore
//! let ctx = GpuContext::borrowed(device.clone(), queue.clone(), None);
//! pollster::block_on(ptdit::autotune::autotune(&ctx, &Cache::Default))?; // once: kernel variants
//! let pipe = TextToImage::new(&ctx, model_dir::from_files(&default_model::files())?)?;
//! let req = pipe.request("red apple");
//! let texture = device.create_texture(&Generation::texture_descriptor(&req)); // or your own
//! let mut gen = pollster::block_on(Generation::new(&pipe, &req, &texture))?;
//! // every frame:
//! let progress = gen.advance(Budget::Dispatches(64))?;
//! // ... render with `texture` ...
//! ```

use crate::error::{Error, Result};
use crate::gpu::readback::read_staged;
use crate::gpu::GpuContext;
use crate::kernel::{Kernel, ParamBlock};
use crate::model::ptdit::io;
use crate::pipeline::denoiser::Denoiser;
use crate::pipeline::generate::{decode_frames, Frame, Prepared, Request, TextToImage};
use crate::pipeline::sampler::Step;
use crate::tensor::HostTensor;

/// How much work one [`Generation::advance`] call may record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// At most this many compute dispatches (at least one is always recorded). A denoising step
    /// of the default model is about 150 dispatches; of the released XL, about 700.
    Dispatches(usize),
    /// Whole denoising steps.
    Steps(usize),
}

/// Where a generation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Denoising steps finished (each has updated the texture).
    pub step: usize,
    pub steps: usize,
    /// All steps are done; for a pixel-space model the texture holds the final image.
    pub done: bool,
}

/// One text-to-image run that advances in slices and draws into a host texture.
pub struct Generation {
    ctx: GpuContext,
    pipe_float: crate::tensor::DType,
    components: std::sync::Arc<crate::pipeline::model_dir::Components>,
    den: Denoiser,
    schedule: Vec<Step>,
    cfg: f32,
    step: usize,
    cursor: usize,
    writer: TextureWriter,
    target: wgpu::Texture,
}

impl Generation {
    /// A texture that fits a request's output: RGBA8 (sRGB), sampled by the host, written by
    /// copies; one array layer per frame (a video's frames, a multi-view model's views), so a
    /// host plays a video by choosing the layer it samples.
    pub fn texture_descriptor(req: &Request) -> wgpu::TextureDescriptor<'static> {
        wgpu::TextureDescriptor {
            label: Some("ptdit image"),
            size: wgpu::Extent3d {
                width: req.width as u32,
                height: req.height as u32,
                depth_or_array_layers: req.frames.max(1) as u32,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        }
    }

    /// Encodes the text and compiles the step graph (this waits for the GPU once, for the text
    /// embeddings), then returns a run that has done no denoising yet. `target` must be RGBA8
    /// (unorm or sRGB), exactly the request's size, with `COPY_DST` and a layer per frame.
    pub async fn new(pipe: &TextToImage, req: &Request, target: &wgpu::Texture) -> Result<Self> {
        let ctx = pipe.context().clone();
        let size = target.size();
        if !matches!(
            target.format(),
            wgpu::TextureFormat::Rgba8Unorm | wgpu::TextureFormat::Rgba8UnormSrgb
        ) || !target.usage().contains(wgpu::TextureUsages::COPY_DST)
        {
            return Err(Error::Input(format!(
                "the target texture is {:?} with usage {:?}: it must be Rgba8Unorm or Rgba8UnormSrgb with COPY_DST",
                target.format(),
                target.usage()
            )));
        }
        if (size.width as usize, size.height as usize) != (req.width, req.height) {
            return Err(Error::Input(format!(
                "the target texture is {}x{} but the request makes {}x{} images",
                size.width, size.height, req.width, req.height
            )));
        }
        if size.depth_or_array_layers as usize != req.frames.max(1)
            || target.dimension() != wgpu::TextureDimension::D2
        {
            return Err(Error::Input(format!(
                "the target texture has {} layer(s) ({:?}) but the request makes {} frame(s): \
                 it must be a 2D texture with one array layer per frame",
                size.depth_or_array_layers,
                target.dimension(),
                req.frames
            )));
        }
        let Prepared { den, schedule } = pipe.prepare(req).await?;
        let latent = den.exe.buffer(io::LATENT)?;
        let d = den
            .exe
            .descriptor(io::LATENT)
            .ok_or_else(|| Error::Graph("the step graph has no latents".into()))?;
        let dims = d.shape.dims().to_vec();
        let writer = TextureWriter::new(&ctx, latent, &dims, target)?;
        Ok(Generation {
            ctx,
            pipe_float: pipe.float(),
            components: pipe.components.clone(),
            den,
            schedule,
            cfg: req.cfg,
            step: 0,
            cursor: 0,
            writer,
            target: target.clone(),
        })
    }

    pub fn progress(&self) -> Progress {
        Progress {
            step: self.step,
            steps: self.schedule.len(),
            done: self.step == self.schedule.len(),
        }
    }

    /// Dispatches in one denoising step.
    pub fn dispatches_per_step(&self) -> usize {
        self.den.exe.dispatches
    }

    /// Records and submits up to `budget` of work. A step's inputs are uploaded when it starts
    /// and each finished step writes the texture, so a step that spans several calls is the
    /// same as one run.
    pub fn advance(&mut self, budget: Budget) -> Result<Progress> {
        self.ctx.check_alive()?;
        let per_step = self.den.exe.dispatches;
        let mut left = match budget {
            Budget::Dispatches(n) => n.max(1),
            Budget::Steps(n) => n.max(1) * per_step,
        };
        while left > 0 && self.step < self.schedule.len() {
            if self.cursor == 0 {
                // Uploads are ordered before the next submission: the previous step's
                // dispatches have all been submitted, so this cannot change them.
                let n = self.schedule.len();
                let step = &self.schedule[self.step];
                for (k, v) in self.den.feeds(self.step, n, step, self.cfg) {
                    self.den.exe.write(&k, &v)?;
                }
            }
            let n = left.min(per_step - self.cursor);
            let mut enc = self
                .ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("ptdit slice"),
                });
            self.den
                .exe
                .record_range(&mut enc, self.cursor..self.cursor + n);
            self.cursor += n;
            left -= n;
            if self.cursor == per_step {
                self.writer.record(&mut enc, &self.target);
                self.cursor = 0;
                self.step += 1;
            }
            self.ctx.queue.submit([enc.finish()]);
        }
        Ok(self.progress())
    }

    /// For a model with a VAE, once all steps are done: decodes the latents (on the GPU, read
    /// back between tiles) and uploads the image into the texture. A pixel-space model's texture
    /// is already final and this does nothing.
    pub async fn decode(&self) -> Result<()> {
        if self.components.vae.is_none() {
            return Ok(());
        }
        if !self.progress().done {
            return Err(Error::Input(
                "decode() needs every denoising step done first".into(),
            ));
        }
        let latents = self.den.latent().await?;
        let frames = decode_frames(&self.ctx, &self.components, self.pipe_float, latents).await?;
        if frames.is_empty() {
            return Err(Error::Model("the VAE produced no frame".into()));
        }
        let size = self.target.size();
        for (layer, f) in frames
            .iter()
            .take(size.depth_or_array_layers as usize)
            .enumerate()
        {
            self.ctx.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &self.target,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: 0,
                        z: layer as u32,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                &f.rgba(),
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * f.width as u32),
                    rows_per_image: None,
                },
                wgpu::Extent3d {
                    depth_or_array_layers: 1,
                    ..size
                },
            );
        }
        Ok(())
    }

    /// Steps so far whose middle blocks the request's step cache skipped (one small readback).
    pub async fn skipped_steps(&self) -> Result<usize> {
        self.den.skipped_steps().await
    }

    /// The current latents `(1, C, T, H, W)` (reads back; for tests and saving).
    pub async fn latents(&self) -> Result<HostTensor> {
        self.den.latent().await
    }
}

/// Reads an RGBA8 or BGRA8 texture back as an RGB [`Frame`]: for saving what a host shows (a
/// user's "save" or a screenshot), never part of generation.
pub async fn read_texture(ctx: &GpuContext, texture: &wgpu::Texture) -> Result<Frame> {
    let rgba = read_texture_rgba(ctx, texture).await?;
    Ok(Frame {
        width: texture.width() as usize,
        height: texture.height() as usize,
        rgb: rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
    })
}

/// Reads an RGBA8 or BGRA8 texture back as RGBA bytes, row-major, layer after layer (BGRA is
/// reordered).
pub async fn read_texture_rgba(ctx: &GpuContext, texture: &wgpu::Texture) -> Result<Vec<u8>> {
    use wgpu::TextureFormat as F;
    let bgra = match texture.format() {
        F::Rgba8Unorm | F::Rgba8UnormSrgb => false,
        F::Bgra8Unorm | F::Bgra8UnormSrgb => true,
        f => {
            return Err(Error::Input(format!(
                "read_texture reads 8-bit RGBA or BGRA textures, not {f:?}"
            )))
        }
    };
    let (w, h) = (texture.width(), texture.height());
    let layers = texture.depth_or_array_layers();
    let pitch = (w * 4).div_ceil(256) * 256;
    let bytes = pitch as u64 * h as u64 * layers as u64;
    let data = read_staged(ctx, bytes, "a texture", |enc, buf| {
        enc.copy_texture_to_buffer(
            texture.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: buf,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(pitch),
                    rows_per_image: Some(h),
                },
            },
            texture.size(),
        )
    })
    .await?;
    let mut rgba = Vec::with_capacity((w * h * layers * 4) as usize);
    for y in 0..(h * layers) as usize {
        for px in data[y * pitch as usize..][..w as usize * 4].chunks(4) {
            match bgra {
                true => rgba.extend_from_slice(&[px[2], px[1], px[0], px[3]]),
                false => rgba.extend_from_slice(px),
            }
        }
    }
    Ok(rgba)
}

/// The `to_rgba8` kernel bound to a latents buffer, and the staging buffer it fills for a copy
/// into the texture.
struct TextureWriter {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    texels: wgpu::Buffer,
    pitch: u32,
    /// Layers written: the target's, or fewer where the latents have fewer frames (a VAE's).
    layers: u32,
    groups: (u32, u32),
}

crate::param_block! {
    /// `shaders/to_rgba8.wgsl`'s parameters.
    pub struct ToRgba8Params {
        c: u32,
        t: u32,
        h: u32,
        w: u32,
        scale: u32,
        out_w: u32,
        out_h: u32,
        pitch: u32,
        layers: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

impl TextureWriter {
    fn new(
        ctx: &GpuContext,
        latent: &wgpu::Buffer,
        dims: &[usize],
        target: &wgpu::Texture,
    ) -> Result<Self> {
        let (c, t, h, w) = (dims[1], dims[2], dims[3], dims[4]);
        let size = target.size();
        let scale = (size.width as usize / w).max(1) as u32;
        // copy_buffer_to_texture needs rows in multiples of 256 bytes.
        let pitch = (size.width * 4).div_ceil(256) * 64;
        let layers = size.depth_or_array_layers.min(t as u32);
        let p = ctx.pipeline(
            &Kernel::new("to_rgba8")
                .read("x")
                .with_params::<ToRgba8Params>(),
        )?;
        let params = ToRgba8Params {
            c: c as u32,
            t: t as u32,
            h: h as u32,
            w: w as u32,
            scale,
            out_w: size.width,
            out_h: size.height,
            pitch,
            layers,
            pad0: 0,
            pad1: 0,
            pad2: 0,
        };
        let uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("to_rgba8 params"),
            size: 256,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue
            .write_buffer(&uniform, 0, bytemuck::cast_slice(&params.words()));
        let texels = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("to_rgba8 texels"),
            size: pitch as u64 * 4 * size.height as u64 * layers as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("to_rgba8"),
            layout: &p.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &uniform,
                        offset: 0,
                        size: wgpu::BufferSize::new(4 * params.words().len() as u64),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: latent.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: texels.as_entire_binding(),
                },
            ],
        });
        Ok(TextureWriter {
            pipeline: p.pipeline,
            bind_group,
            texels,
            pitch,
            layers,
            groups: (size.width.div_ceil(8), size.height.div_ceil(8)),
        })
    }

    fn record(&self, enc: &mut wgpu::CommandEncoder, target: &wgpu::Texture) {
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("to_rgba8"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[0]);
            pass.dispatch_workgroups(self.groups.0, self.groups.1, self.layers);
        }
        enc.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: &self.texels,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(self.pitch * 4),
                    rows_per_image: Some(target.height()),
                },
            },
            target.as_image_copy(),
            wgpu::Extent3d {
                depth_or_array_layers: self.layers,
                ..target.size()
            },
        );
    }
}

/// The CPU reference of the texture writer: RGBA8 bytes, row-major, frame after frame (the
/// layers of the texture), of batch item 0 of `x (B, C, T, H, W)`, each source pixel repeated
/// `scale` times in each direction.
pub fn rgba8_reference(x: &HostTensor, scale: usize) -> Vec<u8> {
    let d = x.shape.dims();
    let (c, t, h, w) = (d[1], d[2], d[3], d[4]);
    let v = x.as_f32();
    let byte = |x: f32| ((x.clamp(-1.0, 1.0) + 1.0) * 0.5 * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
    let mut out = Vec::with_capacity(t * h * w * scale * scale * 4);
    for f in 0..t {
        for oy in 0..h * scale {
            for ox in 0..w * scale {
                let (sy, sx) = (oy / scale, ox / scale);
                for ch in 0..3 {
                    out.push(if ch < c {
                        byte(v[(ch * t + f) * h * w + sy * w + sx])
                    } else {
                        0
                    });
                }
                out.push(255);
            }
        }
    }
    out
}
