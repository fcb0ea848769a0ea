//! Checking the engine against golden fixtures of the official code (`ptdit verify`).

use std::collections::HashMap;

use super::config::PtditConfig;
use super::ptdit::{io, Shapes};
use super::weights::TensorFile;
use super::{ForwardInputs, Ptdit};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::cpu;
use crate::tensor::HostTensor;

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub name: String,
    pub max_abs_err: f32,
    pub std_ref: f32,
    pub tolerance: f32,
}

impl Comparison {
    pub fn new(name: &str, got: &[f32], want: &[f32], rel_tol: f32) -> Self {
        let n = want.len().max(1) as f64;
        let mean = want.iter().map(|v| *v as f64).sum::<f64>() / n;
        let std = (want.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt() as f32;
        let max_abs_err = got.iter().zip(want).fold(0f32, |m, (a, b)| {
            if a.is_finite() {
                m.max((a - b).abs())
            } else {
                f32::INFINITY
            }
        });
        let max_abs_err = if got.len() == want.len() {
            max_abs_err
        } else {
            f32::INFINITY
        };
        Comparison {
            name: name.to_string(),
            max_abs_err,
            std_ref: std,
            tolerance: rel_tol * std,
        }
    }
    pub fn passed(&self) -> bool {
        self.max_abs_err <= self.tolerance
    }
    pub fn relative(&self) -> f32 {
        self.max_abs_err / self.std_ref.max(f32::MIN_POSITIVE)
    }
}

/// The outcome for one fixture file.
#[derive(Clone, Debug)]
pub struct Report {
    pub kind: &'static str,
    pub output: Comparison,
    pub traces: Vec<Comparison>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.output.passed()
    }
    /// The first trace that exceeds the tolerance: where the computation first went wrong.
    pub fn first_divergence(&self) -> Option<&Comparison> {
        self.traces.iter().find(|c| !c.passed())
    }
}

/// A PT-DiT fixture: config, weights, inputs, golden output and traces.
pub struct PtditFixture {
    pub config: PtditConfig,
    pub file: TensorFile,
    pub shapes: Shapes,
    pub inputs: ForwardInputs,
}

impl PtditFixture {
    pub fn from_file(file: TensorFile) -> Result<Self> {
        let cfg_text = file
            .metadata
            .get("config")
            .ok_or_else(|| Error::Model("fixture has no `config` metadata".into()))?;
        let config = PtditConfig::from_json(cfg_text)?;
        let latent = file.get("input.hidden_states")?.clone();
        let text = file.get("input.encoder_hidden_states")?.clone();
        let timestep = file.get("input.timestep")?.as_f32().to_vec();
        let mask = file.get("input.encoder_attention_mask")?.as_f32().to_vec();
        let (ls, ts) = (latent.shape.dims(), text.shape.dims());
        if ls.len() != 5 || ts.len() != 3 {
            return Err(Error::Model(format!(
                "fixture inputs have shapes {} and {}; expected (B, C, F, H, W) and (B, L, C)",
                latent.shape, text.shape
            )));
        }
        let grid = config.grid(ls[2], ls[3], ls[4])?;
        let traces = file.tensors.keys().any(|k| k.starts_with("trace.block_"));
        let shapes = Shapes {
            batch: ls[0],
            grid,
            text_len: ts[1],
            traces,
        };
        let inputs = ForwardInputs {
            latent,
            timestep,
            text,
            text_mask: mask,
        };
        Ok(PtditFixture {
            config,
            file,
            shapes,
            inputs,
        })
    }

    fn trace_names(&self) -> Vec<String> {
        (0..self.config.num_layers)
            .map(io::trace)
            .filter(|n| self.file.tensors.contains_key(n))
            .collect()
    }

    fn compare(&self, outputs: &HashMap<String, HostTensor>, rel_tol: f32) -> Result<Report> {
        let want = self.file.get("output.sample")?;
        let got = outputs
            .get(io::SAMPLE)
            .ok_or_else(|| Error::Model("no output".into()))?;
        let output = Comparison::new("output.sample", got.as_f32(), want.as_f32(), rel_tol);
        let mut traces = Vec::new();
        for name in self.trace_names() {
            if let (Some(g), Ok(w)) = (outputs.get(&name), self.file.get(&name)) {
                traces.push(Comparison::new(&name, g.as_f32(), w.as_f32(), rel_tol));
            }
        }
        Ok(Report {
            kind: "PT-DiT",
            output,
            traces,
        })
    }

    /// Runs the fixture on the GPU.
    pub async fn run_gpu(&self, ctx: &GpuContext, rel_tol: f32) -> Result<Report> {
        let model = Ptdit::new(ctx, &self.config, self.shapes, &self.file.tensors).await?;
        for (k, v) in self.inputs.feeds(&self.shapes)? {
            model.exe.write(&k, &v)?;
        }
        model.exe.run()?;
        let mut outputs = HashMap::new();
        let mut names = self.trace_names();
        names.push(io::SAMPLE.to_string());
        for n in names {
            outputs.insert(n.clone(), model.exe.read(&n).await?);
        }
        self.compare(&outputs, rel_tol)
    }

    /// Runs the fixture on the CPU reference forward.
    pub fn run_cpu(&self, rel_tol: f32) -> Result<Report> {
        let graph = super::ptdit::build(&self.config, &self.shapes)?;
        let mut feeds = super::weights::select_params(
            &graph,
            &self.file.tensors,
            &["pos_embed.pos_embed"],
            &["input.", "output.", "trace."],
        )?;
        feeds.extend(self.inputs.feeds(&self.shapes)?);
        let outputs = cpu::run(&graph, &feeds)?;
        self.compare(&outputs, rel_tol)
    }
}
