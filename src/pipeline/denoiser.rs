//! The denoising loop on the GPU: one graph holds the PT-DiT forward on the batch
//! `[cond, uncond]` and the guided Euler update, and carries the new latents into its own input,
//! so a step uploads two small tensors (timestep features, `[dt, cfg]`) and reads nothing back.

use std::collections::HashMap;

use super::sampler::Step;
use super::step_cache::StepCache;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{ExecOptions, Executable, Graph};
use crate::model::ptdit::{self as net, io, CacheSplit, Shapes, TIMESTEP_CHANNELS};
use crate::model::upload::{self, DeviceWeights};
use crate::model::{tables, PtditConfig};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// Name of the `[dt, cfg]` input and of the latents after the step.
pub const STEP: &str = "step";
pub const NEXT_LATENT: &str = "latent_next";

/// The step graph for `batch` images (the graph's batch is `2·batch`), the transformer stored
/// as `float`; the latents stay f32 between steps.
pub fn build(
    cfg: &PtditConfig,
    batch: usize,
    grid: crate::model::Grid,
    text_len: usize,
    float: DType,
) -> Result<Graph> {
    build_cached(cfg, batch, grid, text_len, float, None)
}

/// [`build`] with a step cache over the blocks `cache` leaves skippable.
pub fn build_cached(
    cfg: &PtditConfig,
    batch: usize,
    grid: crate::model::Grid,
    text_len: usize,
    float: DType,
    cache: Option<CacheSplit>,
) -> Result<Graph> {
    let shapes = Shapes {
        batch: 2 * batch,
        grid,
        text_len,
        traces: false,
    };
    let mut g = Graph::with_float(float);
    let sample = net::build_cached_into(&mut g, cfg, &shapes, cache)?;
    let latent = g
        .find(io::LATENT)
        .ok_or_else(|| Error::Graph("model has no latent input".into()))?;
    let step = g.input(STEP, TensorDesc::f32([2]))?;
    let next = g.cfg_euler(sample, latent, step)?;
    g.output(next, NEXT_LATENT)?;
    g.carry(next, latent)?;
    Ok(g)
}

/// Host-side inputs of one step.
pub fn step_feeds(step: &Step, cfg: f32, batch: usize) -> HashMap<String, HostTensor> {
    let mut f = HashMap::new();
    f.insert(
        io::TIMESTEP.to_string(),
        tables::timestep_features(&vec![step.t_model; 2 * batch], TIMESTEP_CHANNELS),
    );
    f.insert(STEP.to_string(), HostTensor::f32([2], vec![step.dt, cfg]));
    f
}

/// The text inputs for `[cond, uncond]`: embeddings `(B, L, C)` each, masks `(B·L)` each.
pub fn text_feeds(
    cond: &HostTensor,
    cond_mask: &[f32],
    uncond: &HostTensor,
    uncond_mask: &[f32],
) -> Result<HashMap<String, HostTensor>> {
    if cond.shape != uncond.shape || cond_mask.len() != uncond_mask.len() || cond.shape.rank() != 3
    {
        return Err(Error::Input(format!("conditional {} and unconditional {} text embeddings must have the same (B, L, C) shape", cond.shape, uncond.shape)));
    }
    let d = cond.shape.dims();
    let mut shape = d.to_vec();
    shape[0] *= 2;
    let mut data = cond.as_f32().to_vec();
    data.extend_from_slice(uncond.as_f32());
    let mut mask = cond_mask.to_vec();
    mask.extend_from_slice(uncond_mask);
    let mut f = HashMap::new();
    f.insert(io::TEXT.to_string(), HostTensor::f32(shape, data));
    f.insert(
        io::TEXT_BIAS.to_string(),
        tables::text_bias(&mask, 2 * d[0]),
    );
    Ok(f)
}

/// Both halves of the batch start from the same noise.
pub fn doubled(x: &HostTensor) -> HostTensor {
    let mut shape = x.shape.dims().to_vec();
    shape[0] *= 2;
    let mut v = x.as_f32().to_vec();
    v.extend_from_slice(x.as_f32());
    HostTensor::f32(shape, v)
}

/// The first half of a `[cond, uncond]` latent.
pub fn first_half(x: &HostTensor) -> HostTensor {
    let mut shape = x.shape.dims().to_vec();
    shape[0] /= 2;
    let n = x.shape.numel() / 2;
    HostTensor::f32(shape, x.as_f32()[..n].to_vec())
}

/// The compiled denoising step with its weights.
pub struct Denoiser {
    pub batch: usize,
    pub exe: Executable,
    cache: Option<StepCache>,
}

impl Denoiser {
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        ctx: &GpuContext,
        cfg: &PtditConfig,
        batch: usize,
        grid: crate::model::Grid,
        text_len: usize,
        w: &HashMap<String, HostTensor>,
        float: DType,
        cache: Option<StepCache>,
    ) -> Result<Self> {
        let w = upload::upload_host(ctx, net::wanted(cfg, float)?, w)?;
        Self::with_weights(ctx, cfg, batch, grid, text_len, &w, float, cache).await
    }

    /// The step graph over transformer weights already on the device (as
    /// [`net::wanted`] describes them for `float`), with a step cache if one is given.
    #[allow(clippy::too_many_arguments)]
    pub async fn with_weights(
        ctx: &GpuContext,
        cfg: &PtditConfig,
        batch: usize,
        grid: crate::model::Grid,
        text_len: usize,
        w: &DeviceWeights,
        float: DType,
        cache: Option<StepCache>,
    ) -> Result<Self> {
        let split = cache.map(|c| c.split);
        let graph = build_cached(cfg, batch, grid, text_len, float, split)?;
        let exe = Executable::with_params(ctx, &graph, &ExecOptions::default(), &w.params)
            .await
            .map_err(|e| {
                e.for_work(format!(
                    "the denoising step (batch {batch}, {} frame(s) of {}×{} tokens)",
                    grid.frames, grid.rows, grid.cols
                ))
            })?;
        Ok(Denoiser { batch, exe, cache })
    }

    /// Sets the starting noise `(B, C, F, H, W)` and the text, and clears the step cache.
    pub fn start(&self, noise: &HostTensor, text: &HashMap<String, HostTensor>) -> Result<()> {
        self.exe.write(io::LATENT, &doubled(noise))?;
        for (k, v) in text {
            self.exe.write(k, v)?;
        }
        if self.cache.is_some() {
            for name in [
                io::CACHE_STATE,
                io::CACHE_REFERENCE,
                io::CACHE_RESIDUAL,
                io::CACHE_PREVIOUS,
            ] {
                let d = self.exe.descriptor(name).ok_or_else(|| {
                    Error::Graph(format!("the cached step graph has no `{name}`"))
                })?;
                self.exe.write(name, &HostTensor::zeros(d.shape.clone()))?;
            }
        }
        Ok(())
    }

    /// The host inputs of step `index` of `steps`: timestep, `[dt, cfg]` and the cache's
    /// control.
    pub fn feeds(
        &self,
        index: usize,
        steps: usize,
        step: &Step,
        cfg: f32,
    ) -> HashMap<String, HostTensor> {
        let mut f = step_feeds(step, cfg, self.batch);
        if let Some(c) = &self.cache {
            f.insert(io::CACHE_CONTROL.to_string(), c.control(index, steps));
        }
        f
    }

    /// Records and submits step `index` of `steps`; nothing is read back.
    pub fn step(&self, index: usize, steps: usize, step: &Step, cfg: f32) -> Result<()> {
        for (k, v) in self.feeds(index, steps, step, cfg) {
            self.exe.write(&k, &v)?;
        }
        self.exe.run()
    }

    /// The step cache's state after the steps run so far (`ops::skip_decision::state`), or
    /// `None` without a cache; one small readback.
    pub async fn cache_state(&self) -> Result<Option<Vec<f32>>> {
        if self.cache.is_none() {
            return Ok(None);
        }
        Ok(Some(self.exe.read(io::CACHE_STATE).await?.into_f32()))
    }

    /// Steps whose skippable blocks were skipped since [`Denoiser::start`] (0 without a cache).
    pub async fn skipped_steps(&self) -> Result<usize> {
        let s = self.cache_state().await?;
        Ok(s.map_or(0, |s| s[crate::ops::skip_decision::state::SKIPPED] as usize))
    }

    /// The current latents `(B, C, F, H, W)`.
    pub async fn latent(&self) -> Result<HostTensor> {
        Ok(first_half(&self.exe.read(io::LATENT).await?))
    }
}
