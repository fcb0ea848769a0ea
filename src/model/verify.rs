//! Checking the engine against golden fixtures of the official code (`ptdit verify`).

use std::collections::HashMap;

use super::config::PtditConfig;
use super::host_table::HostTable;
use super::ptdit::{io, Shapes};
use super::t5::{self, T5Config};
use super::vae::{self, VaeConfig};

use super::ForwardInputs;
use crate::error::{Error, Result};
use crate::formats::safetensors::TensorFile;
use crate::gpu::GpuContext;
use crate::graph::{cpu, Executable, Graph};

use crate::tensor::{DType, HostTensor};

/// How far the official fixtures' outputs may be from the golden ones, relative to the golden
/// output's standard deviation, with the models' Linear weights stored as `linear`: (max |error|,
/// rms error). Measured on the tiny fixtures (GPU and CPU reference agree on the quantized
/// weights to f32 precision, so this is the formats' own error, not the kernels'):
///
/// - bf16 rounds a weight to 8 mantissa bits (2^-9 relative); max 1.4e-2 and rms 4.3e-3 on T5,
///   under the f16-storage tolerance (3e-2) as issue #20 asks.
/// - q8's step is max|w|/127 per block of 32: a weight's rms error is ~0.5 % of the weights'
///   std, and the 14 Linears of the 2-layer T5 add that up to ~2 % of its output (measured
///   rms 1.4e-2, max 6.5e-2; PT-DiT 6.3e-3 and 2.5e-2). Bounds: max 0.1, rms 0.025. The
///   issue's goal of max 1e-2 is out of reach for any 8-bit format with a block scale on these
///   random-weight fixtures; the closing note says so.
/// - q4 (a step of max|w|/8): ~8 % a weight, measured rms 0.18 and max 0.69 on T5, PT-DiT 0.11
///   and 0.46. Reported and bounded: max 1.0, rms 0.3.
pub fn linear_storage_tolerance(linear: DType) -> (f32, f32) {
    match linear {
        DType::BF16 => (3e-2, 1e-2),
        DType::Q8 => (0.1, 0.025),
        _ => (1.0, 0.3),
    }
}

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub name: String,
    pub max_abs_err: f32,
    /// Root mean square of the error.
    pub rms_err: f32,
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
        let sq = got
            .iter()
            .zip(want)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>();
        Comparison {
            name: name.to_string(),
            max_abs_err,
            rms_err: (sq / n).sqrt() as f32,
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
    /// The rms error over the reference's standard deviation.
    pub fn relative_rms(&self) -> f32 {
        self.rms_err / self.std_ref.max(f32::MIN_POSITIVE)
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

/// Compares our output `ours` with the fixture's golden tensor `golden`.
fn compare_output(
    file: &TensorFile,
    outputs: &HashMap<String, HostTensor>,
    golden: &str,
    ours: &str,
    rel_tol: f32,
) -> Result<Comparison> {
    let want = file.get(golden)?;
    finite_golden(golden, want)?;
    let got = outputs
        .get(ours)
        .ok_or_else(|| Error::Model(format!("the graph produced no `{ours}`")))?;
    Ok(Comparison::new(
        golden,
        got.as_f32(),
        want.as_f32(),
        rel_tol,
    ))
}

/// A golden tensor must hold numbers: a NaN in it would make every comparison meaningless
/// (an error ratio of 1e32 was printed).
fn finite_golden(name: &str, t: &HostTensor) -> Result<()> {
    match t.as_f32().iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::Model(format!(
            "the golden `{name}` holds {} at element {i}: the fixture is broken",
            t.as_f32()[i]
        ))),
    }
}

/// A golden fixture: how to build its graph and feeds, and how to judge the outputs.
pub trait Golden {
    /// The graph (weights as params, traces as outputs) and every value it needs.
    fn graph_and_feeds(&self, float: DType) -> Result<(Graph, HashMap<String, HostTensor>)>;
    /// Compares the outputs with the golden ones.
    fn compare(
        &self,
        outputs: &HashMap<String, HostTensor>,
        feeds: &HashMap<String, HostTensor>,
        rel_tol: f32,
    ) -> Result<Report>;
}

/// Runs a fixture on the GPU with `float` storage.
pub async fn check_gpu(
    f: &dyn Golden,
    ctx: &GpuContext,
    rel_tol: f32,
    float: DType,
) -> Result<Report> {
    let (graph, feeds) = f.graph_and_feeds(float)?;
    f.compare(&run_gpu(ctx, &graph, &feeds).await?, &feeds, rel_tol)
}

/// Runs a fixture on the CPU reference.
pub fn check_cpu(f: &dyn Golden, rel_tol: f32, float: DType) -> Result<Report> {
    let (graph, feeds) = f.graph_and_feeds(float)?;
    f.compare(&cpu::run(&graph, &feeds)?, &feeds, rel_tol)
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
        let cfg_text = file.config_text()?;
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
}

impl Golden for PtditFixture {
    fn compare(
        &self,
        outputs: &HashMap<String, HostTensor>,
        _feeds: &HashMap<String, HostTensor>,
        rel_tol: f32,
    ) -> Result<Report> {
        let output = compare_output(&self.file, outputs, "output.sample", io::SAMPLE, rel_tol)?;
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

    fn graph_and_feeds(&self, float: DType) -> Result<(Graph, HashMap<String, HostTensor>)> {
        let graph = super::ptdit::build_as(&self.config, &self.shapes, float)?;
        let mut feeds = super::weights::select_params(
            &graph,
            &self.file.tensors,
            &["pos_embed.pos_embed"],
            super::weights::FIXTURE_PREFIXES,
        )?;
        feeds.extend(self.inputs.feeds(&self.shapes)?);
        Ok((graph, feeds))
    }
}

/// Compiles `graph`, writes `feeds`, runs once and reads every output.
pub async fn run_gpu(
    ctx: &GpuContext,
    graph: &Graph,
    feeds: &HashMap<String, HostTensor>,
) -> Result<HashMap<String, HostTensor>> {
    let exe = Executable::new(ctx, graph).await?;
    for (k, v) in feeds {
        exe.write(k, v)?;
    }
    exe.run()?;
    let mut out = HashMap::new();
    for (_, info) in graph.tensors() {
        if info.is_output {
            out.insert(info.name.clone(), exe.read(&info.name).await?);
        }
    }
    Ok(out)
}

/// A T5 encoder fixture (HF `T5EncoderModel`).
pub struct T5Fixture {
    pub config: T5Config,
    pub file: TensorFile,
    pub batch: usize,
    pub len: usize,
    pub ids: Vec<u32>,
    pub mask: Vec<f32>,
}

impl T5Fixture {
    pub fn from_file(file: TensorFile) -> Result<Self> {
        let cfg_text = file.config_text()?;
        let config = T5Config::from_json(cfg_text)?;
        let ids_t = file.get("input.input_ids")?;
        let dims = ids_t.shape.dims().to_vec();
        if dims.len() != 2 {
            return Err(Error::Model(format!(
                "input_ids are {}, expected (B, L)",
                ids_t.shape
            )));
        }
        // Token ids are stored as numbers: each must be a whole id of the vocabulary (a
        // negative id was read as 0).
        let vocab = config.vocab_size;
        let mut ids = Vec::with_capacity(ids_t.as_f32().len());
        for (i, v) in ids_t.as_f32().iter().enumerate() {
            if !(v.fract() == 0.0 && *v >= 0.0 && (*v as usize) < vocab) {
                return Err(Error::Model(format!(
                    "input_ids[{i}] is {v}, not a token id of the vocabulary (0 to {})",
                    vocab - 1
                )));
            }
            ids.push(*v as u32);
        }
        let mask = file.get("input.attention_mask")?.as_f32().to_vec();
        Ok(T5Fixture {
            config,
            file,
            batch: dims[0],
            len: dims[1],
            ids,
            mask,
        })
    }
}

impl Golden for T5Fixture {
    fn graph_and_feeds(&self, float: DType) -> Result<(Graph, HashMap<String, HostTensor>)> {
        let graph = t5::build_as(&self.config, self.batch, self.len, true, float)?;
        let mut feeds = t5::graph_params(&graph, &self.file.tensors)?;
        let embed = HostTable::from_tensor(self.file.get(t5::EMBED_KEY)?.clone());
        feeds.extend(t5::feeds(
            &self.config,
            &embed,
            &self.ids,
            &self.mask,
            self.batch,
        )?);
        let table = self.file.get(t5::REL_BIAS_KEY)?;
        let expect = [
            self.config.relative_attention_num_buckets,
            self.config.num_heads,
        ];
        if table.shape.dims() != expect {
            return Err(Error::Model(format!(
                "`{}` is {} but the config's relative_attention_num_buckets and num_heads \
                 make ({}, {})",
                t5::REL_BIAS_KEY,
                table.shape,
                expect[0],
                expect[1]
            )));
        }
        feeds.insert(
            t5::io::POSITION_BIAS.into(),
            t5::position_bias(&self.config, table, self.len),
        );
        Ok((graph, feeds))
    }

    fn compare(
        &self,
        outputs: &HashMap<String, HostTensor>,
        feeds: &HashMap<String, HostTensor>,
        rel_tol: f32,
    ) -> Result<Report> {
        let output = compare_output(
            &self.file,
            outputs,
            "output.last_hidden_state",
            t5::io::OUTPUT,
            rel_tol,
        )?;
        let mut traces = Vec::new();
        // Host-side parts first: buckets (exact), position bias, embeddings.
        if let Ok(b) = self.file.get("trace.relative_position_bucket") {
            let ours: Vec<f32> = t5::buckets(&self.config, self.len)
                .iter()
                .map(|v| *v as f32)
                .collect();
            traces.push(Comparison::new(
                "trace.relative_position_bucket",
                &ours,
                b.as_f32(),
                0.0,
            ));
        }
        if let Ok(p) = self.file.get("trace.position_bias") {
            traces.push(Comparison::new(
                "trace.position_bias",
                feeds[t5::io::POSITION_BIAS].as_f32(),
                p.as_f32(),
                rel_tol,
            ));
        }
        if let Ok(e) = self.file.get("trace.embeddings") {
            traces.push(Comparison::new(
                "trace.embeddings",
                feeds[t5::io::EMBEDDINGS].as_f32(),
                e.as_f32(),
                rel_tol,
            ));
        }
        for n in 0..self.config.num_layers {
            let name = t5::io::trace(n);
            if let (Some(g), Ok(w)) = (outputs.get(&name), self.file.get(&name)) {
                traces.push(Comparison::new(&name, g.as_f32(), w.as_f32(), rel_tol));
            }
        }
        Ok(Report {
            kind: "T5 encoder",
            output,
            traces,
        })
    }
}

/// A CausalVAE decoder fixture.
pub struct VaeFixture {
    pub config: VaeConfig,
    pub file: TensorFile,
    pub latent: [usize; 5],
}

impl VaeFixture {
    pub fn from_file(file: TensorFile) -> Result<Self> {
        let cfg_text = file.config_text()?;
        let config = VaeConfig::from_json(cfg_text)?;
        let l = file.get("input.latents")?.shape.dims().to_vec();
        let latent: [usize; 5] = l.as_slice().try_into().map_err(|_| {
            Error::Model(format!(
                "input.latents has {} dimensions, expected 5",
                l.len()
            ))
        })?;
        Ok(VaeFixture {
            config,
            file,
            latent,
        })
    }
}

impl Golden for VaeFixture {
    fn graph_and_feeds(&self, float: DType) -> Result<(Graph, HashMap<String, HostTensor>)> {
        let graph = vae::build_as(&self.config, self.latent, true, float)?;
        let mut feeds = super::weights::select_params(
            &graph,
            &self.file.tensors,
            &[],
            super::weights::FIXTURE_PREFIXES,
        )?;
        feeds.insert(
            vae::io::LATENTS.into(),
            self.file.get("input.latents")?.clone(),
        );
        Ok((graph, feeds))
    }

    fn compare(
        &self,
        outputs: &HashMap<String, HostTensor>,
        _feeds: &HashMap<String, HostTensor>,
        rel_tol: f32,
    ) -> Result<Report> {
        let output = compare_output(
            &self.file,
            outputs,
            "output.sample",
            vae::io::SAMPLE,
            rel_tol,
        )?;
        // In execution order, so the first failing trace is where the decoder first went wrong.
        let mut names: Vec<&String> = self
            .file
            .tensors
            .keys()
            .filter(|k| k.starts_with("trace.") && outputs.contains_key(*k))
            .collect();
        let levels = self.config.hidden_size_mult.len();
        let mut order: Vec<String> = [
            "post_quant_conv",
            "conv_in",
            "mid.block_1",
            "mid.attn_1",
            "mid.block_2",
        ]
        .iter()
        .map(|n| format!("trace.{n}"))
        .collect();
        for l in (0..levels).rev() {
            order.push(format!("trace.up.{l}.blocks"));
            order.push(format!("trace.up.{l}"));
        }
        names.sort_by_key(|n| order.iter().position(|o| o == *n).unwrap_or(usize::MAX));
        let traces = names
            .into_iter()
            .map(|n| {
                Comparison::new(
                    n,
                    outputs[n].as_f32(),
                    self.file.tensors[n].as_f32(),
                    rel_tol,
                )
            })
            .collect();
        Ok(Report {
            kind: "CausalVAE decoder",
            output,
            traces,
        })
    }
}

/// Any fixture `ptdit verify` knows, recognised by its keys.
pub struct Fixture(pub Box<dyn Golden>);

impl Fixture {
    pub fn from_file(file: TensorFile) -> Result<Self> {
        Self::stored(file, None)
    }

    /// The fixture with its model's Linear weights stored as `linear` (bf16, q8, q4: packed
    /// from the fixture's weights as they are written), as a quantized model directory stores
    /// them; `None` keeps the float type. The VAE has no such Linears (its 1×1×1 convolutions
    /// keep their float type) and is unchanged.
    pub fn stored(file: TensorFile, linear: Option<DType>) -> Result<Self> {
        let quantization = linear.map(crate::formats::quantized::Quantization::new);
        let has = |p: &str| file.tensors.keys().any(|k| k.starts_with(p));
        let golden: Box<dyn Golden> = if has("transformer_blocks.") {
            let mut f = PtditFixture::from_file(file)?;
            f.config.quantization = quantization;
            Box::new(f)
        } else if has("encoder.block.") {
            let mut f = T5Fixture::from_file(file)?;
            f.config.quantization = quantization;
            Box::new(f)
        } else if has("decoder.conv_in.") {
            Box::new(VaeFixture::from_file(file)?)
        } else {
            return Err(Error::Model("not a fixture this engine knows: no PT-DiT (`transformer_blocks.*`), T5 (`encoder.block.*`) or VAE (`decoder.conv_in.*`) weights".into()));
        };
        Ok(Fixture(golden))
    }

    pub async fn run_gpu(&self, ctx: &GpuContext, rel_tol: f32, float: DType) -> Result<Report> {
        check_gpu(self.0.as_ref(), ctx, rel_tol, float).await
    }

    pub fn run_cpu(&self, rel_tol: f32, float: DType) -> Result<Report> {
        check_cpu(self.0.as_ref(), rel_tol, float)
    }
}
