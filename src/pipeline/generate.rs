//! Text → image (or video frames): tokenize, encode with T5, denoise with PT-DiT on the GPU,
//! decode with the VAE (or nothing, for a pixel-space model), convert to 8-bit RGB.

use super::decode::Decoder;
use super::denoiser::{self, Denoiser};
use super::embeddings::PromptEmbeddings;
use super::limits;
use super::model_dir::{Components, Weights};
use super::sampler::{RectifiedFlow, Step, Task};
use super::step_cache::StepCache;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::model::t5::T5Encoder;
use crate::model::vae;
use crate::rng::Rng;
use crate::tensor::{DType, HostTensor};

#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    /// Output frames: 1 for an image; video needs `4k + 1`.
    pub frames: usize,
    pub steps: usize,
    pub cfg: f32,
    pub seed: u64,
    /// The initial noise `(1, C, T, H, W)` of the latents; `None` draws it from `seed`.
    pub noise: Option<HostTensor>,
    /// The text encoder's outputs to use instead of encoding `prompt` and `negative_prompt`
    /// (which are then ignored); the only way in for a model without a text encoder.
    pub embeddings: Option<PromptEmbeddings>,
    /// Skip the middle transformer blocks on steps where they barely change
    /// ([`super::step_cache`]); `None` runs every block of every step.
    pub cache: Option<StepCache>,
}

/// What a run did besides its image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub steps: usize,
    /// Steps whose skippable blocks the step cache skipped.
    pub skipped_steps: usize,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            prompt: String::new(),
            negative_prompt: String::new(),
            width: 1024,
            height: 1024,
            frames: 1,
            steps: 30,
            cfg: 4.0,
            seed: 0,
            noise: None,
            embeddings: None,
            cache: None,
        }
    }
}

/// One output frame, RGB, 8 bits per channel, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Frame {
    /// Bilinear upscaling by an integer factor (pixel centres aligned, edges clamped): for
    /// showing a small model's output at a viewable size.
    /// Sides beyond [`limits::MAX_IMAGE_SIDE`] are refused.
    pub fn upscale(&self, factor: usize) -> Result<Frame> {
        let (w, h) = limits::upscaled(self.width, self.height, factor)?;
        if factor == 1 {
            return Ok(self.clone());
        }
        let src = |x: usize, y: usize, c: usize| self.rgb[(y * self.width + x) * 3 + c] as f32;
        let coord = |o: usize, n: usize| {
            let f = ((o as f32 + 0.5) / factor as f32 - 0.5).clamp(0.0, (n - 1) as f32);
            let i = (f as usize).min(n - 1);
            (i, (i + 1).min(n - 1), f - i as f32)
        };
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let (y0, y1, fy) = coord(y, self.height);
            for x in 0..w {
                let (x0, x1, fx) = coord(x, self.width);
                for c in 0..3 {
                    let top = src(x0, y0, c) * (1.0 - fx) + src(x1, y0, c) * fx;
                    let bottom = src(x0, y1, c) * (1.0 - fx) + src(x1, y1, c) * fx;
                    rgb.push((top * (1.0 - fy) + bottom * fy).round() as u8);
                }
            }
        }
        Ok(Frame {
            width: w,
            height: h,
            rgb,
        })
    }

    /// What a generation's file holds, for a model of `task`: a multi-view model's views side
    /// by side in one picture, every frame otherwise (an animated PNG for video). The CLI's
    /// `--out`, the JS API's `png` and the desktop app's Save all write this.
    pub fn written(task: Option<Task>, frames: &[Frame]) -> Result<Vec<Frame>> {
        match task {
            Some(Task::MultiView) => Ok(vec![Frame::side_by_side(frames)?]),
            _ => Ok(frames.to_vec()),
        }
    }

    /// Frames of one size side by side, left to right: a multi-view model's views as one
    /// picture.
    pub fn side_by_side(frames: &[Frame]) -> Result<Frame> {
        let first = frames
            .first()
            .ok_or_else(|| Error::Input("no views to put side by side".into()))?;
        let (w, h) = (first.width, first.height);
        if frames.iter().any(|f| (f.width, f.height) != (w, h)) {
            return Err(Error::Input("views differ in size".into()));
        }
        let width = limits::product("the views side by side", &[w, frames.len()])?;
        let mut rgb = Vec::with_capacity(width * h * 3);
        for y in 0..h {
            for f in frames {
                rgb.extend_from_slice(&f.rgb[y * w * 3..(y + 1) * w * 3]);
            }
        }
        Ok(Frame {
            width,
            height: h,
            rgb,
        })
    }

    /// The pixels as RGBA, opaque (what canvases and RGBA8 textures take).
    pub fn rgba(&self) -> Vec<u8> {
        self.rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    }

    /// The smallest factor that makes both sides at least `min_side` pixels.
    pub fn factor_for(&self, min_side: usize) -> usize {
        limits::factor_for(self.width, self.height, min_side)
    }
}

/// A denoising run ready to go: the step graph with noise and text uploaded, and its schedule.
pub struct Prepared {
    pub den: Denoiser,
    pub schedule: Vec<Step>,
}

/// The pipeline's components; the GPU parts are compiled per request size.
pub struct TextToImage {
    ctx: GpuContext,
    pub components: std::sync::Arc<Components>,
    /// Text length (tokens, with EOS and padding): 200 for the released model.
    pub text_len: usize,
    /// Storage type of the transformer and the VAE (f16 halves their memory; needs
    /// `shader-f16`). The text encoder always runs in f32, as released: T5 v1.1's activations
    /// overflow f16.
    float: DType,
}

/// Pixels per latent in H and W (1 in pixel space).
fn spatial_factor(c: &Components) -> usize {
    c.vae.as_ref().map_or(1, |v| v.spatial_factor())
}

impl TextToImage {
    /// The pipeline in f32. Weights still on the host are uploaded now, once: every request
    /// after binds them where they are.
    pub fn new(ctx: &GpuContext, components: Components) -> Result<Self> {
        Self::with_float(ctx, components, DType::F32)
    }

    /// The pipeline with the transformer and the VAE stored as `float` (f16 needs
    /// `shader-f16`). Weights streamed to the device must have been streamed as `float`.
    pub fn with_float(ctx: &GpuContext, mut c: Components, float: DType) -> Result<Self> {
        if float == DType::F16 && !ctx.has_f16() {
            return Err(Error::Limit {
                op: "pipeline",
                detail: "f16 weights need shader-f16, which this device lacks".into(),
            });
        }
        let [t, e, v] = super::model_dir::wanted(&c, float)?;
        let take = |w: &mut Weights| std::mem::replace(w, Weights::Host(Default::default()));
        if let Some(t) = t {
            c.transformer_weights = take(&mut c.transformer_weights).to_device(ctx, t)?;
        }
        if let Some(e) = e {
            c.text_encoder_weights = take(&mut c.text_encoder_weights).to_device(ctx, e)?;
        }
        if let Some(v) = v {
            c.vae_weights = take(&mut c.vae_weights).to_device(ctx, v)?;
        }
        ctx.take_errors("uploading the weights")?;
        // In the browser, WebGPU handles (the weights' buffers) belong to one thread, so the
        // Arc is not Send there; the components are shared only within that thread.
        #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
        Ok(TextToImage {
            ctx: ctx.clone(),
            text_len: c.text_len,
            components: std::sync::Arc::new(c),
            float,
        })
    }

    /// What the weights were trained for, if the model says (its scheduler config).
    pub fn task(&self) -> Option<Task> {
        self.components.scheduler.task
    }

    /// How the transformer and the VAE are stored.
    pub fn float(&self) -> DType {
        self.float
    }

    /// The device this pipeline runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// A request with this model's defaults (size, frames, steps, guidance) and the given
    /// prompt. The size is the scheduler config's; without one, a latent model gets the
    /// released 1024² and a pixel-space model (this project's, trained small) 4 windows a side.
    /// The frames are the trained count of a video or multi-view model, else 1.
    pub fn request(&self, prompt: &str) -> Request {
        let c = &self.components;
        let sampler = c.scheduler.sampler();
        let [height, width] = c.scheduler.sample_size.unwrap_or_else(|| match &c.vae {
            Some(_) => [1024, 1024],
            None => {
                let t = &c.transformer;
                let [_, wh, ww] = t.compress_ratios;
                [4 * t.patch_size * wh, 4 * t.patch_size * ww]
            }
        });
        Request {
            prompt: prompt.into(),
            width,
            height,
            frames: c.scheduler.default_frames(),
            steps: sampler.steps,
            cfg: sampler.cfg,
            ..Request::default()
        }
    }

    /// Checks the output size against the VAE factor and the windows; the error names the
    /// nearest valid size in pixels.
    pub fn check_size(
        &self,
        width: usize,
        height: usize,
        frames: usize,
    ) -> Result<(usize, usize, usize)> {
        let c = &self.components;
        let f = spatial_factor(c);
        let cr = c.transformer.compress_ratios;
        let p = c.transformer.patch_size;
        let near = |n: usize, step: usize| {
            let lo = (n / step).max(1) * step;
            let hi = n.div_ceil(step).max(1).saturating_mul(step);
            if n.abs_diff(lo) <= hi.abs_diff(n) {
                lo
            } else {
                hi
            }
        };
        for (what, n, win) in [("width", width, cr[2]), ("height", height, cr[1])] {
            let step = limits::product("the model's window in pixels", &[f, p, win])?;
            if n == 0 || n % step != 0 {
                return Err(Error::Input(format!("{what} {n} px does not fit the model's windows: it must be a multiple of {step} px; the nearest valid {what} is {}", near(n, step))));
            }
        }
        if c.vae.is_none() {
            if frames == 0 || !frames.is_multiple_of(cr[0]) {
                return Err(Error::Input(format!("{frames} frames: this pixel-space model needs a positive multiple of its {}-frame windows", cr[0])));
            }
            return Ok((width, height, frames));
        }
        if frames == 0 || !(frames - 1).is_multiple_of(4) {
            return Err(Error::Input(format!("{frames} frames: video needs 4k + 1 frames (the VAE decodes 4 frames per latent after the first)")));
        }
        let t = (frames - 1) / 4 + 1;
        if !t.is_multiple_of(cr[0]) {
            return Err(Error::Input(format!("{frames} frames give {t} latent frames, not a multiple of the model's {}-frame windows", cr[0])));
        }
        Ok((width / f, height / f, t))
    }

    /// Checks everything a request asks for before anything is allocated: the size against the
    /// model's windows, steps and guidance, and the tensors it makes against the device's
    /// largest buffer. Gives the latent's `(width, height, frames)`.
    pub fn check_request(&self, req: &Request) -> Result<(usize, usize, usize)> {
        let c = &self.components;
        let (lw, lh, lt) = self.check_size(req.width, req.height, req.frames)?;
        limits::check_frames(req.frames)?;
        limits::check_steps(req.steps, limits::MAX_STEPS)?;
        if let Some(c) = &req.cache {
            c.check(self.components.transformer.num_layers)?;
        }
        limits::check_cfg(req.cfg)?;
        let max = self.ctx.device.limits().max_buffer_size;
        let t = &c.transformer;
        let float = self.float.size();
        let what = format!(
            "the latent of {}×{}, {} frames",
            req.width, req.height, req.frames
        );
        let latent = limits::product(&what, &[t.in_channels, lt, lh, lw, 4])?;
        limits::check_buffer("the latent", latent, max)?;
        let tokens = limits::product(
            "the token count",
            &[lt, lh / t.patch_size, lw / t.patch_size],
        )?;
        let act = limits::product(
            "the transformer's activations",
            &[2, tokens, t.dim(), float],
        )?;
        limits::check_buffer("the transformer's activations (both CFG halves)", act, max)?;
        let px = limits::product(
            "the decoded pixels",
            &[3, req.frames, req.height, req.width, 4],
        )?;
        limits::check_buffer("the decoded pixels", px, max)?;
        self.check_trained_for(req)?;
        Ok((lw, lh, lt))
    }

    /// Refuses a request the weights were not trained for, naming what they were: another
    /// size, frames from an image model, another frame or view count. Only a model whose
    /// scheduler config declares its `task` is held to it (the built-in ones); the untrained
    /// output such a request would give is noise that looks like a result.
    pub fn check_trained_for(&self, req: &Request) -> Result<()> {
        let s = &self.components.scheduler;
        let (Some(task), Some(trained)) = (s.task, s.trained_for()) else {
            return Ok(());
        };
        let refuse = |asked: String| {
            Err(Error::Input(format!(
                "{asked}: this model was trained for {trained} only (its \
                 scheduler/scheduler_config.json)"
            )))
        };
        let n = s.default_frames();
        if req.frames != n {
            let asked = format!("{} frame(s)", req.frames);
            return match task {
                Task::Image => refuse(format!("{asked} need a video model")),
                _ => refuse(asked),
            };
        }
        if let Some([h, w]) = s.sample_size {
            if (req.width, req.height) != (w, h) {
                return refuse(format!("{}×{} px", req.width, req.height));
            }
        }
        Ok(())
    }

    /// Builds now the kernels that a request of the model's default size runs before the VAE
    /// (the text encoder and the denoising step), so the first image does not wait for them: on
    /// a software GPU that is over a second. Later requests of any size reuse them. The VAE's
    /// kernels are built at its first decode.
    pub async fn warm(&self) -> Result<()> {
        let req = Request {
            steps: 1,
            ..self.request("")
        };
        self.prepare(&req).await.map(|_| ())
    }

    /// Runs a request; `on_step(i, n, latents)` is called after each denoising step and returns
    /// whether to go on (false cancels with [`Error::Cancelled`]); latents are given when
    /// `want_previews` (otherwise nothing is read back during the loop).
    pub async fn generate(
        &self,
        req: &Request,
        on_step: impl FnMut(usize, usize, Option<&HostTensor>) -> bool,
        want_previews: bool,
    ) -> Result<Vec<Frame>> {
        Ok(self.generate_report(req, on_step, want_previews).await?.0)
    }

    /// [`generate`](Self::generate), also saying what the run did (steps the cache skipped).
    pub async fn generate_report(
        &self,
        req: &Request,
        on_step: impl FnMut(usize, usize, Option<&HostTensor>) -> bool,
        want_previews: bool,
    ) -> Result<(Vec<Frame>, RunReport)> {
        let (latents, report) = self.denoise_report(req, on_step, want_previews).await?;
        Ok((self.decode(latents).await?, report))
    }

    /// The denoising half of [`generate`](Self::generate): text encoding and the sampler loop,
    /// giving the final latents `(1, C, T, H, W)` (pixels in [−1, 1] for a pixel-space model).
    pub async fn denoise(
        &self,
        req: &Request,
        on_step: impl FnMut(usize, usize, Option<&HostTensor>) -> bool,
        want_previews: bool,
    ) -> Result<HostTensor> {
        Ok(self.denoise_report(req, on_step, want_previews).await?.0)
    }

    /// [`denoise`](Self::denoise), also saying what the run did.
    pub async fn denoise_report(
        &self,
        req: &Request,
        mut on_step: impl FnMut(usize, usize, Option<&HostTensor>) -> bool,
        want_previews: bool,
    ) -> Result<(HostTensor, RunReport)> {
        let Prepared { den, schedule } = self.prepare(req).await?;
        let n = schedule.len();
        for (i, step) in schedule.iter().enumerate() {
            den.step(i, n, step, req.cfg)?;
            if want_previews {
                let l = den.latent().await?;
                if !on_step(i + 1, schedule.len(), Some(&l)) {
                    return Err(Error::Cancelled);
                }
            } else {
                #[cfg(not(target_arch = "wasm32"))]
                den.exe.wait()?;
                if !on_step(i + 1, schedule.len(), None) {
                    return Err(Error::Cancelled);
                }
            }
        }
        let report = RunReport {
            steps: n,
            skipped_steps: den.skipped_steps().await?,
        };
        Ok((den.latent().await?, report))
    }

    /// Encodes the text and compiles the step graph with the noise and text in place: a
    /// denoising run ready to step through `schedule`.
    pub async fn prepare(&self, req: &Request) -> Result<Prepared> {
        let c = &self.components;
        let (lw, lh, lt) = self.check_request(req)?;
        let sampler = RectifiedFlow {
            steps: req.steps,
            cfg: req.cfg,
            ..c.scheduler.sampler()
        };
        let schedule = sampler.schedule(req.height, req.width, req.frames)?;

        let emb = match &req.embeddings {
            Some(e) => e.clone(),
            None => self.encode(&req.prompt, &req.negative_prompt).await?,
        };
        // Any length works (padding is masked out); the tokenizer's is what `encode` gives.
        let text_len = emb.cond.shape.dims().get(1).copied().unwrap_or(0);
        emb.check(text_len, c.transformer.caption_channels)?;
        let text = denoiser::text_feeds(&emb.cond, &emb.cond_mask, &emb.uncond, &emb.uncond_mask)?;

        let grid = c.transformer.grid(lt, lh, lw)?;
        let den = Denoiser::with_weights(
            &self.ctx,
            &c.transformer,
            1,
            grid,
            text_len,
            c.transformer_weights.device()?,
            self.float,
            req.cache,
        )
        .await?;
        let shape = [1, c.transformer.in_channels, lt, lh, lw];
        let n: usize = shape.iter().product();
        let noise = match &req.noise {
            Some(t) if t.shape.dims() != shape => {
                return Err(Error::Input(format!(
                    "the given noise is {:?}, this request needs {shape:?}",
                    t.shape.dims()
                )))
            }
            Some(t) => t.clone(),
            None => HostTensor::f32(shape, Rng::new(req.seed).normals(n, 1.0)),
        };
        den.start(&noise, &text)?;
        Ok(Prepared { den, schedule })
    }

    /// The text encoder's outputs for `prompt` and `negative`: cond and uncond in one batch;
    /// the encoder's graph is dropped before denoising so its memory is free for the
    /// transformer. An error names what is missing for a model without a text encoder.
    pub async fn encode(&self, prompt: &str, negative: &str) -> Result<PromptEmbeddings> {
        encode_prompts(&self.ctx, &self.components, prompt, negative).await
    }

    /// Latents to 8-bit RGB frames: the VAE, or nothing in pixel space.
    pub async fn decode(&self, latents: HostTensor) -> Result<Vec<Frame>> {
        decode_frames(&self.ctx, &self.components, self.float, latents).await
    }
}

/// `c`'s text encoder (its weights on the device) on `prompt` and `negative`: the embeddings
/// and masks the transformer reads. An error names what is missing for a model without one.
pub async fn encode_prompts(
    ctx: &GpuContext,
    c: &Components,
    prompt: &str,
    negative: &str,
) -> Result<PromptEmbeddings> {
    let (Some(t5c), Some(tok)) = (&c.text_encoder, &c.tokenizer) else {
        return Err(Error::Input(
            "this model has no text encoder (text_encoder/ and tokenizer/): give prompt \
             embeddings (`ptdit encode` with the full model writes them)"
                .into(),
        ));
    };
    let len = c.text_len;
    let cond = tok.encode(prompt, len)?;
    let uncond = tok.encode(negative, len)?;
    let weights = c.text_encoder_weights.device()?;
    let enc = T5Encoder::with_weights(ctx, t5c, 2, len, weights, DType::F32).await?;
    let ids: Vec<u32> = cond.ids.iter().chain(&uncond.ids).copied().collect();
    let mask: Vec<f32> = cond.mask.iter().chain(&uncond.mask).copied().collect();
    let emb = enc.encode(&ids, &mask).await?;
    let half = len * t5c.d_model;
    Ok(PromptEmbeddings {
        cond: HostTensor::f32([1, len, t5c.d_model], emb.as_f32()[..half].to_vec()),
        cond_mask: cond.mask,
        uncond: HostTensor::f32([1, len, t5c.d_model], emb.as_f32()[half..].to_vec()),
        uncond_mask: uncond.mask,
    })
}

/// Latents `(1, C, T, H, W)` of `c`'s transformer to 8-bit RGB frames: through the VAE stored
/// as `float`, or as they are for a pixel-space model.
pub(crate) async fn decode_frames(
    ctx: &GpuContext,
    c: &Components,
    float: DType,
    latents: HostTensor,
) -> Result<Vec<Frame>> {
    let px = match &c.vae {
        Some(vae) => {
            let w = c.vae_weights.device()?.clone();
            let mut dec = Decoder::new(ctx, vae.clone(), w, float)?;
            dec.decode(&latents).await?
        }
        None => latents,
    };
    let o = px.shape.dims().to_vec();
    let (t, h, w) = (o[2], o[3], o[4]);
    let data = px.as_f32();
    let mut frames = Vec::with_capacity(t);
    for f in 0..t {
        let mut planes = Vec::with_capacity(3 * h * w);
        for ch in 0..3 {
            let start = (ch * t + f) * h * w;
            planes.extend_from_slice(&data[start..start + h * w]);
        }
        frames.push(Frame {
            width: w,
            height: h,
            rgb: vae::to_rgb8(&planes, h, w),
        });
    }
    Ok(frames)
}

/// A cheap RGB preview of latents `(1, C, T, H, W)` (frame 0): the first three channels
/// scaled to bytes, one pixel per latent.
pub fn preview(latents: &HostTensor) -> Frame {
    let d = latents.shape.dims();
    let (c, t, h, w) = (d[1], d[2], d[3], d[4]);
    let v = latents.as_f32();
    let mut rgb = Vec::with_capacity(3 * h * w);
    for i in 0..h * w {
        for ch in 0..3 {
            let x = if ch < c { v[(ch * t) * h * w + i] } else { 0.0 };
            rgb.push(((x * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0) as u8);
        }
    }
    Frame {
        width: w,
        height: h,
        rgb,
    }
}
