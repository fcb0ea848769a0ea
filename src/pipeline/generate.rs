//! Text → image (or video frames): tokenize, encode with T5, denoise with PT-DiT on the GPU,
//! decode with the VAE, convert to 8-bit RGB.

use super::decode::Decoder;
use super::denoiser::{self, Denoiser};
use super::model_dir::Components;
use super::sampler::RectifiedFlow;
use super::text::MAX_LEN;
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

/// The pipeline's components; the GPU parts are compiled per request size.
pub struct TextToImage {
    ctx: GpuContext,
    pub components: Components,
    /// Text length (tokens, with EOS and padding): 200 for the released model.
    pub text_len: usize,
    /// Storage type of the transformer and the VAE (f16 halves their memory; needs
    /// `shader-f16`). The text encoder always runs in f32, as released: T5 v1.1's activations
    /// overflow f16.
    pub float: DType,
}

/// Pixels per latent in H and W, and the number of latents per valid step.
fn size_step(c: &Components) -> (usize, usize) {
    let f = c.vae.spatial_factor();
    let cr = &c.transformer.compress_ratios;
    (f, c.transformer.patch_size * cr[1].max(cr[2]).max(1))
}

impl TextToImage {
    pub fn new(ctx: &GpuContext, components: Components) -> Self {
        TextToImage {
            ctx: ctx.clone(),
            components,
            text_len: MAX_LEN,
            float: DType::F32,
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
        let (f, _) = size_step(c);
        let cr = c.transformer.compress_ratios;
        let p = c.transformer.patch_size;
        let near = |n: usize, step: usize| {
            let lo = (n / step).max(1) * step;
            let hi = n.div_ceil(step).max(1) * step;
            if n.abs_diff(lo) <= hi.abs_diff(n) {
                lo
            } else {
                hi
            }
        };
        for (what, n, win) in [("width", width, cr[2]), ("height", height, cr[1])] {
            let step = f * p * win;
            if n == 0 || n % step != 0 {
                return Err(Error::Input(format!("{what} {n} px does not fit the model's windows: it must be a multiple of {step} px; the nearest valid {what} is {}", near(n, step))));
            }
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

    /// Runs a request; `on_step(i, n, latents)` is called after each denoising step and returns
    /// whether to go on (false cancels with [`Error::Cancelled`]); latents are given when
    /// `want_previews` (otherwise nothing is read back during the loop).
    pub async fn generate(
        &self,
        req: &Request,
        mut on_step: impl FnMut(usize, usize, Option<&HostTensor>) -> bool,
        want_previews: bool,
    ) -> Result<Vec<Frame>> {
        let c = &self.components;
        let (lw, lh, lt) = self.check_size(req.width, req.height, req.frames)?;
        let sampler = RectifiedFlow {
            steps: req.steps,
            cfg: req.cfg,
            ..RectifiedFlow::released()
        };
        let schedule = sampler.schedule(req.height, req.width, req.frames)?;

        // Text: cond and uncond in one batch; the encoder is dropped before denoising so its
        // memory is free for the transformer.
        let cond = c.tokenizer.encode(&req.prompt, self.text_len)?;
        let uncond = c.tokenizer.encode(&req.negative_prompt, self.text_len)?;
        let (emb, ids_len) = {
            let enc = T5Encoder::new(
                &self.ctx,
                &c.text_encoder,
                2,
                self.text_len,
                &c.text_encoder_weights,
                DType::F32,
            )
            .await?;
            let ids: Vec<u32> = cond.ids.iter().chain(&uncond.ids).copied().collect();
            let mask: Vec<f32> = cond.mask.iter().chain(&uncond.mask).copied().collect();
            (enc.encode(&ids, &mask).await?, self.text_len)
        };
        let d = c.text_encoder.d_model;
        let half = ids_len * d;
        let e_cond = HostTensor::f32([1, ids_len, d], emb.as_f32()[..half].to_vec());
        let e_uncond = HostTensor::f32([1, ids_len, d], emb.as_f32()[half..].to_vec());
        let text = denoiser::text_feeds(&e_cond, &cond.mask, &e_uncond, &uncond.mask)?;

        let grid = c.transformer.grid(lt, lh, lw)?;
        let den = Denoiser::new(
            &self.ctx,
            &c.transformer,
            1,
            grid,
            self.text_len,
            &c.transformer_weights,
            self.float,
        )
        .await?;
        let shape = [1, c.transformer.in_channels, lt, lh, lw];
        let n: usize = shape.iter().product();
        let noise = HostTensor::f32(shape, Rng::new(req.seed).normals(n, 1.0));
        den.start(&noise, &text)?;
        for (i, step) in schedule.iter().enumerate() {
            den.step(step, req.cfg)?;
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
        let latents = den.latent().await?;
        drop(den);

        let mut dec = Decoder::new(&self.ctx, c.vae.clone(), &c.vae_weights)?;
        dec.float = self.float;
        let px = dec.decode(&latents).await?;
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
