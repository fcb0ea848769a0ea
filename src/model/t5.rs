//! The T5 v1.1 encoder (HF `T5EncoderModel`, the pipeline's text encoder) on the engine.
//!
//! Per block: `x += o(attn(rms(x)))` with relative-position buckets whose bias (stored in
//! block 0) is shared by all layers, no score scaling, the padding mask on keys; then
//! `x += wo(gelu_tanh(wi_0 n) · wi_1 n)` with `n = rms(x)`; a final RMS norm. No biases.
//! The token embedding lookup and the position-bias table are host work: a gather of L rows
//! from a table that for T5-XXL is 0.5 GB in f32 (kept smaller where the component allows:
//! `host_table`), and an `(H, L, L)` table computed once per length.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{config_error, Error, LoadError, Result};
use crate::formats::quantized;
use crate::gpu::GpuContext;
use crate::graph::{ExecOptions, Executable, Graph};
use crate::model::bounds;
use crate::model::host_table::{HostForm, HostTable};
use crate::model::upload::{self, DeviceWeights, Wanted};
use crate::model::weights;
use crate::nn::attention::Projections;
use crate::nn::{Attention, Epilogue, Linear};
use crate::ops::attention::AttentionExtras;
use crate::tensor::{DType, HostTensor};

/// Names of the graph's inputs and outputs.
pub mod io {
    pub const EMBEDDINGS: &str = "embeddings";
    pub const MASK_BIAS: &str = "mask_bias";
    pub const POSITION_BIAS: &str = "position_bias";
    pub const OUTPUT: &str = "last_hidden_state";
    pub fn trace(n: usize) -> String {
        format!("trace.block_{n}")
    }
}

/// The key of the shared relative-attention bias.
pub const REL_BIAS_KEY: &str =
    "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
pub const EMBED_KEY: &str = "shared.weight";

/// Mask value for padded keys. HF uses `finfo(float32).min`; any value whose exp underflows to
/// zero gives the same result, and this one is also exact in f16 and leaves room so that adding
/// the position bias can never reach infinity.
pub const MASKED: f32 = -60000.0;

fn default_buckets() -> usize {
    32
}
fn default_distance() -> usize {
    128
}
fn default_eps() -> f32 {
    1e-6
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default)]
    pub feed_forward_proj: Option<String>,
    #[serde(default)]
    pub dense_act_fn: Option<String>,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f32,
    /// Packed Linear weights (`formats::quantized`); absent: f32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<crate::formats::quantized::Quantization>,
}

impl T5Config {
    pub fn from_json(text: &str) -> Result<Self> {
        let c: T5Config =
            serde_json::from_str(text).map_err(|e| config_error(format!("T5 config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// The released text encoder: t5-v1_1-xxl's encoder (its Hugging Face config).
    pub fn released_xxl() -> Self {
        T5Config {
            vocab_size: 32128,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10240,
            num_layers: 24,
            num_heads: 64,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            feed_forward_proj: Some("gated-gelu".into()),
            dense_act_fn: Some("gelu_new".into()),
            layer_norm_epsilon: 1e-6,
            quantization: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(config_error(format!("T5 config: {why}")));
        bounds::check(
            "T5 config",
            &[
                ("vocab_size", self.vocab_size, bounds::VOCAB),
                ("d_model", self.d_model, bounds::WIDTH),
                ("d_kv", self.d_kv, bounds::HEADS),
                ("d_ff", self.d_ff, bounds::WIDTH),
                ("num_layers", self.num_layers, bounds::LAYERS),
                ("num_heads", self.num_heads, bounds::HEADS),
                (
                    "relative_attention_num_buckets",
                    self.relative_attention_num_buckets,
                    bounds::BUCKETS,
                ),
                (
                    "relative_attention_max_distance",
                    self.relative_attention_max_distance,
                    bounds::DISTANCE,
                ),
            ],
        )?;
        // Both factors are bounded above, so the product cannot overflow.
        let heads = self.num_heads * self.d_kv;
        bounds::check("T5 config", &[("num_heads × d_kv", heads, bounds::WIDTH)])?;
        match self.feed_forward_proj.as_deref() {
            None | Some("gated-gelu") => {}
            Some(f) => {
                return bad(format!(
                    "feed_forward_proj `{f}` is not supported (T5 v1.1 uses gated-gelu)"
                ))
            }
        }
        match self.dense_act_fn.as_deref() {
            None | Some("gelu_new") | Some("gelu_pytorch_tanh") => {}
            Some(f) => {
                return bad(format!(
                    "dense_act_fn `{f}` is not supported (T5 v1.1 uses gelu_new)"
                ))
            }
        }
        if self.relative_attention_num_buckets < 4
            || self.relative_attention_max_distance < self.relative_attention_num_buckets / 4
        {
            return bad("relative attention buckets / distance are too small".into());
        }
        Ok(())
    }
}

/// HF's bidirectional relative-position bucket of key `j` for query `i`, in f32 as HF computes it.
pub fn relative_bucket(i: usize, j: usize, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let rel = j as i64 - i as i64;
    let mut bucket = if rel > 0 { half } else { 0 };
    let rel = rel.unsigned_abs() as usize;
    let max_exact = half / 2;
    if rel < max_exact {
        bucket += rel;
    } else {
        let scaled = (rel as f32 / max_exact as f32).ln()
            / (max_distance as f32 / max_exact as f32).ln()
            * (half - max_exact) as f32;
        bucket += (max_exact + scaled as usize).min(half - 1);
    }
    bucket
}

/// `(L, L)` bucket indices.
pub fn buckets(cfg: &T5Config, len: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(len * len);
    for i in 0..len {
        for j in 0..len {
            v.push(relative_bucket(
                i,
                j,
                cfg.relative_attention_num_buckets,
                cfg.relative_attention_max_distance,
            ));
        }
    }
    v
}

/// `(H, L, L)` position bias from the shared `(buckets, H)` table.
pub fn position_bias(cfg: &T5Config, table: &HostTensor, len: usize) -> HostTensor {
    let h = cfg.num_heads;
    let t = table.as_f32();
    let b = buckets(cfg, len);
    let mut out = vec![0f32; h * len * len];
    for head in 0..h {
        for (ij, bucket) in b.iter().enumerate() {
            out[head * len * len + ij] = t[bucket * h + head];
        }
    }
    HostTensor::f32([h, len, len], out)
}

/// A host table of the wrong shape.
fn wrong_shape(key: &str, found: &crate::tensor::Shape, expected: [usize; 2]) -> Error {
    let expected = crate::tensor::Shape(expected.to_vec());
    Error::load(LoadError::Mismatch {
        missing: Vec::new(),
        unexpected: Vec::new(),
        wrong: vec![format!("{key}: expected {expected}, found {found}")],
    })
}

/// The encoder graph for `batch` sequences of `len` tokens.
pub fn build(cfg: &T5Config, batch: usize, len: usize, traces: bool) -> Result<Graph> {
    build_as(cfg, batch, len, traces, DType::F32)
}

/// The encoder graph with weights and activations stored as `float`. T5 v1.1's feed-forward
/// activations can exceed f16's range on real prompts (the released pipeline runs it in f32);
/// in f16 such values become infinite and the result is wrong, not silently clipped.
pub fn build_as(
    cfg: &T5Config,
    batch: usize,
    len: usize,
    traces: bool,
    float: DType,
) -> Result<Graph> {
    cfg.validate()?;
    let mut g = Graph::with_float(float);
    g.set_linear_storage(crate::formats::quantized::linear_storage(
        &cfg.quantization,
    )?);
    let (d, hk) = (cfg.d_model, cfg.num_heads * cfg.d_kv);
    let mut x = g.input(io::EMBEDDINGS, g.float_desc([batch, len, d]))?;
    let mask = g.input(io::MASK_BIAS, g.float_desc([batch, 1, len]))?;
    let pos = g.input(io::POSITION_BIAS, g.float_desc([cfg.num_heads, len, len]))?;

    let eps = cfg.layer_norm_epsilon;
    for n in 0..cfg.num_layers {
        let pre = format!("encoder.block.{n}.layer");
        // Self-attention: q, k, v and o without biases, unscaled scores plus the relative
        // position bias, the residual added in o's epilogue.
        let w0 = g.param(&format!("{pre}.0.layer_norm.weight"), [d])?;
        let h = g.rms_norm(x, w0, eps)?;
        let sa = format!("{pre}.0.SelfAttention");
        let lin = |g: &mut Graph, key: &str, inp: usize, out: usize| {
            Linear::new(g, &format!("{sa}.{key}"), inp, out, false)
        };
        // Kept apart: T5 runs once per prompt, and XXL's q, k and v stacked in f32 would be
        // one 192 MiB buffer, near WebGPU's default 256 MiB per buffer.
        let attn = Attention {
            proj: Projections::Separate {
                q: lin(&mut g, "q", d, hk)?,
                k: lin(&mut g, "k", d, hk)?,
                v: lin(&mut g, "v", d, hk)?,
            },
            out: lin(&mut g, "o", hk, d)?,
            heads: cfg.num_heads,
        };
        let extras = AttentionExtras {
            bias: Some(mask),
            head_bias: Some(pos),
            scale: Some(1.0),
            map: None,
            kind: Some("T5 self"),
        };
        x = attn.forward(&mut g, h, h, extras, Epilogue::Residual(x))?;
        // Gated-GELU feed-forward: wo(gelu(wi_0(h)) · wi_1(h)), the residual in wo's epilogue.
        let w1 = g.param(&format!("{pre}.1.layer_norm.weight"), [d])?;
        let h = g.rms_norm(x, w1, eps)?;
        let ff = format!("{pre}.1.DenseReluDense");
        let wi0 = Linear::new(&mut g, &format!("{ff}.wi_0"), d, cfg.d_ff, false)?;
        let wi1 = Linear::new(&mut g, &format!("{ff}.wi_1"), d, cfg.d_ff, false)?;
        let wo = Linear::new(&mut g, &format!("{ff}.wo"), cfg.d_ff, d, false)?;
        let a = wi0.forward_into(&mut g, h, Epilogue::Gelu)?;
        let b = wi1.forward(&mut g, h)?;
        let f = g.mul(a, b)?;
        x = wo.forward_into(&mut g, f, Epilogue::Residual(x))?;
        if traces {
            let t = g.reshape(x, [batch, len, d])?;
            g.output(t, &io::trace(n))?;
        }
    }
    let wf = g.param("encoder.final_layer_norm.weight", [d])?;
    let out = g.rms_norm(x, wf, eps)?;
    g.output(out, io::OUTPUT)?;
    Ok(g)
}

/// Host-side inputs: embeddings looked up, the mask as a bias.
pub fn feeds(
    cfg: &T5Config,
    embed: &HostTable,
    ids: &[u32],
    mask: &[f32],
    batch: usize,
) -> Result<HashMap<String, HostTensor>> {
    let (d, len) = (cfg.d_model, ids.len() / batch.max(1));
    if ids.len() != batch * len || mask.len() != ids.len() {
        return Err(Error::Input(format!(
            "{} ids and {} mask entries for batch {batch}",
            ids.len(),
            mask.len()
        )));
    }
    if embed.shape.dims() != [cfg.vocab_size, d] {
        return Err(wrong_shape(EMBED_KEY, &embed.shape, [cfg.vocab_size, d]));
    }
    let mut e = Vec::with_capacity(ids.len() * d);
    for id in ids {
        embed.row_into(*id as usize, &mut e).ok_or_else(|| {
            Error::Input(format!(
                "token id {id} is outside the vocabulary of {}",
                cfg.vocab_size
            ))
        })?;
    }
    let bias = mask
        .iter()
        .map(|m| if *m > 0.5 { 0.0 } else { MASKED })
        .collect();
    let mut f = HashMap::new();
    f.insert(
        io::EMBEDDINGS.to_string(),
        HostTensor::f32([batch, len, d], e),
    );
    f.insert(
        io::MASK_BIAS.to_string(),
        HostTensor::f32([batch, 1, len], bias),
    );
    Ok(f)
}

/// Weights the graph reads as params (everything but the embedding and the bucket table).
pub fn graph_params(
    graph: &Graph,
    w: &HashMap<String, HostTensor>,
) -> Result<HashMap<String, HostTensor>> {
    weights::select_params(
        graph,
        w,
        &[EMBED_KEY, "encoder.embed_tokens.weight", REL_BIAS_KEY],
        weights::FIXTURE_PREFIXES,
    )
}

/// What the encoder reads from its checkpoint when stored as `float`: the layers' params on
/// the device, the token table and the bucket table on the host (a lookup of L rows and a
/// table of L² entries are cheaper there than shipping the tables to the GPU).
pub fn wanted(cfg: &T5Config, float: DType) -> Result<Wanted> {
    let mut w = Wanted::graph(&build_as(cfg, 1, 1, false, float)?);
    // A component whose Linears are packed keeps its token table as q8 rows as well: it was
    // quantized to fit, and the table is its largest host allocation (`host_table`).
    let table_form = match quantized::linear_storage(&cfg.quantization)? {
        Some(DType::Q8 | DType::Q4) => HostForm::Q8,
        _ => HostForm::Exact,
    };
    w.host = vec![
        (
            EMBED_KEY.into(),
            vec![cfg.vocab_size, cfg.d_model],
            table_form,
        ),
        (
            REL_BIAS_KEY.into(),
            vec![cfg.relative_attention_num_buckets, cfg.num_heads],
            HostForm::Exact,
        ),
    ];
    w.aliases = vec![("encoder.embed_tokens.weight".into(), EMBED_KEY.into())];
    Ok(w)
}

/// The encoder compiled for one batch and length, with its weights.
pub struct T5Encoder {
    pub config: T5Config,
    pub batch: usize,
    pub len: usize,
    embed: HostTable,
    pub exe: Executable,
}

impl T5Encoder {
    /// Uploads `w` (host tensors under the official keys) and compiles.
    pub async fn new(
        ctx: &GpuContext,
        cfg: &T5Config,
        batch: usize,
        len: usize,
        w: &HashMap<String, HostTensor>,
        float: DType,
    ) -> Result<Self> {
        let mut wanted = wanted(cfg, float)?;
        wanted.skip_prefixes = weights::FIXTURE_PREFIXES
            .iter()
            .map(|p| p.to_string())
            .collect();
        let w = upload::upload_host(ctx, wanted, w)?;
        Self::with_weights(ctx, cfg, batch, len, &w, float).await
    }

    /// Compiles over weights already on the device (see [`wanted`]).
    pub async fn with_weights(
        ctx: &GpuContext,
        cfg: &T5Config,
        batch: usize,
        len: usize,
        w: &DeviceWeights,
        float: DType,
    ) -> Result<Self> {
        let graph = build_as(cfg, batch, len, false, float)?;
        let embed = w.host(EMBED_KEY)?;
        if embed.shape.dims() != [cfg.vocab_size, cfg.d_model] {
            return Err(wrong_shape(
                EMBED_KEY,
                &embed.shape,
                [cfg.vocab_size, cfg.d_model],
            ));
        }
        let table = w.host(REL_BIAS_KEY)?.to_tensor();
        if table.shape.dims() != [cfg.relative_attention_num_buckets, cfg.num_heads] {
            let buckets = cfg.relative_attention_num_buckets;
            return Err(wrong_shape(
                REL_BIAS_KEY,
                &table.shape,
                [buckets, cfg.num_heads],
            ));
        }
        let exe = Executable::with_params(ctx, &graph, &ExecOptions::default(), &w.params)
            .await
            .map_err(|e| e.for_work(format!("the text encoder ({len} tokens)")))?;
        exe.write(io::POSITION_BIAS, &position_bias(cfg, &table, len))?;
        Ok(T5Encoder {
            config: cfg.clone(),
            batch,
            len,
            embed: embed.clone(),
            exe,
        })
    }

    /// Encodes `batch` sequences of `len` token ids; returns `(B, L, d_model)`.
    pub async fn encode(&self, ids: &[u32], mask: &[f32]) -> Result<HostTensor> {
        for (k, v) in feeds(&self.config, &self.embed, ids, mask, self.batch)? {
            self.exe.write(&k, &v)?;
        }
        self.exe.run()?;
        self.exe.read(io::OUTPUT).await
    }
}
