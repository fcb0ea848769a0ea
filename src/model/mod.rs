//! PT-DiT on the engine: config, derived tables, the forward graph, weights, and a compiled
//! model ready to run.

pub mod bounds;
pub mod config;
pub mod config_keys;
pub mod global_block;
pub mod host_table;
pub mod ptdit;
pub mod t5;
pub(crate) mod tables;
pub mod upload;
pub mod vae;
pub mod verify;
pub(crate) mod weights;

use std::collections::HashMap;

pub use config::{Grid, PtditConfig};
pub use ptdit::Shapes;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{ExecOptions, Executable, Graph};
use crate::tensor::HostTensor;

/// One forward's inputs, as the official `forward` takes them.
#[derive(Clone, Debug)]
pub struct ForwardInputs {
    /// `(B, C_in, F, H, W)`.
    pub latent: HostTensor,
    /// `(B,)`, used as given (the sampler rounds it to bf16 as the released pipeline does).
    pub timestep: Vec<f32>,
    /// `(B, L, caption_channels)`.
    pub text: HostTensor,
    /// `(B, L)`, 1 = keep, 0 = padding.
    pub text_mask: Vec<f32>,
}

impl ForwardInputs {
    /// The graph inputs, with the derived tables (timestep features, text bias).
    pub fn feeds(&self, s: &Shapes) -> Result<HashMap<String, HostTensor>> {
        if self.timestep.len() != s.batch || self.text_mask.len() != s.batch * s.text_len {
            return Err(Error::Input(format!(
                "{} timesteps and {} mask entries given for batch {} and text length {}",
                self.timestep.len(),
                self.text_mask.len(),
                s.batch,
                s.text_len
            )));
        }
        if let Some(t) = self.timestep.iter().find(|t| !t.is_finite()) {
            return Err(Error::Input(format!("timestep {t} is not finite")));
        }
        let mut f = HashMap::new();
        f.insert(ptdit::io::LATENT.to_string(), self.latent.clone());
        f.insert(
            ptdit::io::TIMESTEP.to_string(),
            tables::timestep_features(&self.timestep, ptdit::TIMESTEP_CHANNELS),
        );
        f.insert(ptdit::io::TEXT.to_string(), self.text.clone());
        f.insert(
            ptdit::io::TEXT_BIAS.to_string(),
            tables::text_bias(&self.text_mask, s.batch),
        );
        Ok(f)
    }
}

/// A PT-DiT compiled for one set of shapes, with its weights on the GPU.
pub struct Ptdit {
    pub config: PtditConfig,
    pub shapes: Shapes,
    pub graph: Graph,
    pub exe: Executable,
}

impl Ptdit {
    /// Builds the graph, compiles it and uploads the weights (official keys, f32 values).
    /// Missing, unexpected or wrong-shaped weights are reported together.
    pub async fn new(
        ctx: &GpuContext,
        config: &PtditConfig,
        shapes: Shapes,
        weights: &HashMap<String, HostTensor>,
    ) -> Result<Self> {
        let graph = ptdit::build(config, &shapes)?;
        let mut wanted = upload::Wanted::graph(&graph);
        wanted.ignore = ptdit::UNUSED_KEYS.iter().map(|k| k.to_string()).collect();
        wanted.skip_prefixes = weights::FIXTURE_PREFIXES
            .iter()
            .map(|p| p.to_string())
            .collect();
        let w = upload::upload_host(ctx, wanted, weights)?;
        let exe = Executable::with_params(ctx, &graph, &ExecOptions::default(), &w.params).await?;
        Ok(Ptdit {
            config: config.clone(),
            shapes,
            graph,
            exe,
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(
        ctx: &GpuContext,
        config: &PtditConfig,
        shapes: Shapes,
        weights: &HashMap<String, HostTensor>,
    ) -> Result<Self> {
        pollster::block_on(Self::new(ctx, config, shapes, weights))
    }

    /// Runs one forward and reads the output `(B, C_out, F, H, W)`.
    pub async fn forward(&self, inputs: &ForwardInputs) -> Result<HostTensor> {
        for (k, v) in inputs.feeds(&self.shapes)? {
            self.exe.write(&k, &v)?;
        }
        self.exe.run()?;
        self.exe.read(ptdit::io::SAMPLE).await
    }
}

/// Random weights for every param of `graph`, like the fixtures': matrices N(0, 0.05), vectors
/// N(0, 0.02). For tests and benchmarks that need a model but not a trained one.
pub fn random_weights(graph: &Graph, seed: u64) -> HashMap<String, HostTensor> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut out = HashMap::new();
    // By the checkpoint's keys: a stacked param's parts, as a checkpoint holds them.
    for t in graph.checkpoint_tensors() {
        let std = if t.desc.shape.rank() >= 2 { 0.05 } else { 0.02 };
        let n = t.desc.shape.numel();
        out.insert(t.key, HostTensor::f32(t.desc.shape, rng.normals(n, std)));
    }
    out
}
