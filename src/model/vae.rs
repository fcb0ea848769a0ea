//! The CausalVAE decoder (Open-Sora-Plan v1.2, the pipeline's VAE) on the engine.
//!
//! `z = latents / 0.18215` → `post_quant_conv` → `conv_in` → mid (ResNet, attention, ResNet)
//! → levels `up.L-1 … up.0` (ResNet blocks, then the level's ×2 upsampler) → GroupNorm, SiLU,
//! `conv_out`. Every conv is causal in time (the first frame repeated in front). Output
//! `(B, 3, 4(T−1)+1, 8H, 8W)` for the released four levels.

use serde::{Deserialize, Serialize};

use crate::error::{config_error, Error, Result};
use crate::graph::{Graph, TensorId};
use crate::model::bounds;
use crate::model::upload::Wanted;
use crate::nn::attention::Projections;
use crate::nn::{Attention, Epilogue, Linear};
use crate::ops::attention::AttentionExtras;
use crate::ops::upsample::UpsampleKind;
use crate::tensor::{DType, HostTensor, TensorDesc};

/// The latents' scale in the pipeline: decode divides by it first.
pub const SCALE: f32 = 0.18215;
/// GroupNorm groups, hard-coded in the official code.
pub const GROUPS: usize = 32;
const EPS: f32 = 1e-6;

pub mod io {
    pub const LATENTS: &str = "latents";
    pub const SAMPLE: &str = "sample";
}

fn default_res() -> usize {
    2
}

/// The `CausalVAE` constructor arguments the decoder depends on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct VaeConfig {
    pub hidden_size: usize,
    pub hidden_size_mult: Vec<usize>,
    #[serde(default = "default_res")]
    pub num_res_blocks: usize,
    pub z_channels: usize,
    pub embed_dim: usize,
    #[serde(default)]
    pub attn_resolutions: Vec<usize>,
    pub decoder_spatial_upsample: Vec<String>,
    #[serde(default)]
    pub decoder_temporal_upsample: Vec<String>,
}

impl VaeConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let c: VaeConfig =
            serde_json::from_str(text).map_err(|e| config_error(format!("VAE config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// The released decoder (spec t5-vae.md §2).
    pub fn released() -> Self {
        VaeConfig {
            hidden_size: 128,
            hidden_size_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            z_channels: 4,
            embed_dim: 4,
            attn_resolutions: vec![],
            decoder_spatial_upsample: vec![
                "".into(),
                "SpatialUpsample2x".into(),
                "Spatial2xTime2x3DUpsample".into(),
                "Spatial2xTime2x3DUpsample".into(),
            ],
            decoder_temporal_upsample: vec!["".into(); 4],
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(config_error(format!("VAE config: {why}")));
        let levels = self.hidden_size_mult.len();
        let widest = self.hidden_size_mult.iter().copied().max().unwrap_or(1);
        bounds::check(
            "VAE config",
            &[
                ("hidden_size", self.hidden_size, bounds::WIDTH),
                ("the number of levels", levels, bounds::LEVELS),
                ("the largest hidden_size_mult", widest, bounds::RATIO),
                ("num_res_blocks", self.num_res_blocks, bounds::RES_BLOCKS),
                ("z_channels", self.z_channels, bounds::CHANNELS),
                ("embed_dim", self.embed_dim, bounds::CHANNELS),
            ],
        )?;
        bounds::check(
            "VAE config",
            &[("the widest level", self.hidden_size * widest, bounds::WIDTH)],
        )?;
        if levels == 0 || self.decoder_spatial_upsample.len() != levels {
            return bad(format!(
                "{} levels but {} spatial upsamplers",
                levels,
                self.decoder_spatial_upsample.len()
            ));
        }
        for m in &self.hidden_size_mult {
            if !(self.hidden_size * m).is_multiple_of(GROUPS) || *m == 0 {
                return bad(format!("every level's width must be a multiple of {GROUPS} (GroupNorm groups): {} × {m}", self.hidden_size));
            }
        }
        if self.decoder_temporal_upsample.iter().any(|t| !t.is_empty()) {
            return bad(
                "decoder_temporal_upsample is not supported (the released decoder has none)".into(),
            );
        }
        if !self.attn_resolutions.is_empty() {
            return bad("attention at decoder levels (attn_resolutions) is not supported (the released decoder has none)".into());
        }
        for u in &self.decoder_spatial_upsample {
            if !["", "SpatialUpsample2x", "Spatial2xTime2x3DUpsample"].contains(&u.as_str()) {
                return bad(format!("upsampler `{u}` is not supported"));
            }
        }
        Ok(())
    }

    /// Output frames and spatial scale for `t` latent frames.
    pub fn output_frames(&self, t: usize) -> usize {
        self.decoder_spatial_upsample
            .iter()
            .filter(|u| u.as_str() == "Spatial2xTime2x3DUpsample")
            .fold(t, |t, _| 2 * t - 1)
    }
    pub fn spatial_factor(&self) -> usize {
        1 << self
            .decoder_spatial_upsample
            .iter()
            .filter(|u| !u.is_empty())
            .count()
    }
}

struct Builder<'a> {
    g: Graph,
    cfg: &'a VaeConfig,
    traces: bool,
}

impl Builder<'_> {
    fn conv(&mut self, x: TensorId, key: &str, cout: usize, k: [usize; 3]) -> Result<TensorId> {
        let cin = self.g.shape(x).dims()[1];
        let w = self
            .g
            .param(&format!("{key}.conv.weight"), [cout, cin, k[0], k[1], k[2]])?;
        let b = self.g.param(&format!("{key}.conv.bias"), [cout])?;
        self.g.conv3d(x, w, b)
    }

    fn norm(&mut self, x: TensorId, key: &str, silu: bool) -> Result<TensorId> {
        let c = self.g.shape(x).dims()[1];
        let w = self.g.param(&format!("{key}.weight"), [c])?;
        let b = self.g.param(&format!("{key}.bias"), [c])?;
        self.g.group_norm(x, w, b, GROUPS, EPS, silu)
    }

    fn trace(&mut self, x: TensorId, name: &str) -> Result<()> {
        if self.traces {
            let v = self.g.reshape(x, self.g.shape(x).clone())?;
            self.g.output(v, &format!("trace.{name}"))?;
        }
        Ok(())
    }

    /// ResnetBlock3D: `shortcut(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))))))`.
    fn resnet(&mut self, x: TensorId, key: &str, cout: usize) -> Result<TensorId> {
        let cin = self.g.shape(x).dims()[1];
        let h = self.norm(x, &format!("{key}.norm1"), true)?;
        let h = self.conv(h, &format!("{key}.conv1"), cout, [3, 3, 3])?;
        let h = self.norm(h, &format!("{key}.norm2"), true)?;
        let h = self.conv(h, &format!("{key}.conv2"), cout, [3, 3, 3])?;
        let s = if cin != cout {
            self.conv(x, &format!("{key}.nin_shortcut"), cout, [1, 1, 1])?
        } else {
            x
        };
        self.g.add(s, h)
    }

    /// AttnBlock3D: one head over each frame's H·W tokens, head dim C, then `proj_out`.
    fn attention(&mut self, x: TensorId, key: &str) -> Result<TensorId> {
        let d = self.g.shape(x).dims().to_vec();
        let (b, c, t, h, w) = (d[0], d[1], d[2], d[3], d[4]);
        let y = self.norm(x, &format!("{key}.norm"), false)?;
        // Channels last, one sequence per frame; the k=1 convs are matmuls there.
        let tokens = self
            .g
            .reindex(y, &d, &[0, 2, 3, 4, 1], &[], &[b * t, h * w, c])?;
        let proj = |g: &mut Graph, name: &str| {
            Linear::pointwise_conv(g, &format!("{key}.{name}.conv"), c, c, 3)
        };
        let attn = Attention {
            proj: Projections::Separate {
                q: proj(&mut self.g, "q")?,
                k: proj(&mut self.g, "k")?,
                v: proj(&mut self.g, "v")?,
            },
            out: proj(&mut self.g, "proj_out")?,
            heads: 1,
        };
        let extras = AttentionExtras {
            kind: Some("VAE mid-block"),
            ..Default::default()
        };
        let o = attn.forward(&mut self.g, tokens, tokens, extras, Epilogue::None)?;
        let o = self
            .g
            .reindex(o, &[b, t, h, w, c], &[0, 4, 1, 2, 3], &[], &d)?;
        self.g.add(x, o)
    }

    fn decode(&mut self, latents: TensorId) -> Result<TensorId> {
        let cfg = self.cfg;
        let widths: Vec<usize> = cfg
            .hidden_size_mult
            .iter()
            .map(|m| m * cfg.hidden_size)
            .collect();
        let levels = widths.len();
        let inv = self
            .g
            .constant("inv_scale", HostTensor::f32([1], vec![1.0 / SCALE]))?;
        let z = self.g.mul(latents, inv)?;
        let z = self.conv(z, "post_quant_conv", cfg.embed_dim, [1, 1, 1])?;
        self.trace(z, "post_quant_conv")?;
        let mut h = self.conv(z, "decoder.conv_in", widths[levels - 1], [3, 3, 3])?;
        self.trace(h, "conv_in")?;
        h = self.resnet(h, "decoder.mid.block_1", widths[levels - 1])?;
        self.trace(h, "mid.block_1")?;
        h = self.attention(h, "decoder.mid.attn_1")?;
        self.trace(h, "mid.attn_1")?;
        h = self.resnet(h, "decoder.mid.block_2", widths[levels - 1])?;
        self.trace(h, "mid.block_2")?;
        for level in (0..levels).rev() {
            for j in 0..=cfg.num_res_blocks {
                h = self.resnet(h, &format!("decoder.up.{level}.block.{j}"), widths[level])?;
            }
            self.trace(h, &format!("up.{level}.blocks"))?;
            let key = format!("decoder.up.{level}.upsample.conv");
            let c = widths[level];
            match cfg.decoder_spatial_upsample[level].as_str() {
                "SpatialUpsample2x" => {
                    h = self.g.upsample(h, UpsampleKind::Nearest2d)?;
                    h = self.conv(h, &key, c, [1, 3, 3])?;
                }
                "Spatial2xTime2x3DUpsample" => {
                    h = self.g.upsample(h, UpsampleKind::CausalTrilinear)?;
                    h = self.conv(h, &key, c, [3, 3, 3])?;
                }
                _ => {}
            }
            self.trace(h, &format!("up.{level}"))?;
        }
        let h = self.norm(h, "decoder.norm_out", true)?;
        self.conv(h, "decoder.conv_out", 3, [3, 3, 3])
    }
}

/// Checkpoint keys under these prefixes are not read: the decoder needs neither the encoder
/// nor the training loss.
pub const UNUSED_PREFIXES: &[&str] = &["encoder.", "quant_conv.", "loss."];

/// What the decoder reads from a CausalVAE checkpoint when stored as `float`: the params of a
/// graph of any latent size (they do not depend on it).
pub fn wanted(cfg: &VaeConfig, float: DType) -> Result<Wanted> {
    let mut w = Wanted::graph(&build_as(cfg, [1, cfg.z_channels, 2, 2, 2], false, float)?);
    w.skip_prefixes = UNUSED_PREFIXES.iter().map(|k| k.to_string()).collect();
    Ok(w)
}

/// The decoder graph for latents `(B, z_channels, T, H, W)`.
pub fn build(cfg: &VaeConfig, latent: [usize; 5], traces: bool) -> Result<Graph> {
    build_as(cfg, latent, traces, DType::F32)
}

/// The decoder graph with weights and activations stored as `float`; latents in and pixels
/// out stay f32.
pub fn build_as(cfg: &VaeConfig, latent: [usize; 5], traces: bool, float: DType) -> Result<Graph> {
    cfg.validate()?;
    if latent[1] != cfg.z_channels || latent.contains(&0) {
        return Err(Error::shape(
            "vae",
            format!(
                "latents {latent:?} must be (B, {}, T, H, W)",
                cfg.z_channels
            ),
        ));
    }
    let mut b = Builder {
        g: Graph::with_float(float),
        cfg,
        traces,
    };
    let x = b.g.input(io::LATENTS, TensorDesc::f32(latent))?;
    let x = if float == DType::F32 {
        x
    } else {
        b.g.cast(x, float)?
    };
    let mut out = b.decode(x)?;
    if float != DType::F32 {
        out = b.g.cast(out, DType::F32)?;
    }

    b.g.output(out, io::SAMPLE)?;
    Ok(b.g)
}

/// Pipeline post-processing: clamp to [−1, 1], map to [0, 255] and truncate after +0.5
/// (round half up), as `QihooPipeline.decode_latents` does. Input `(3, H, W)` planes of one
/// frame; output interleaved RGB bytes.
pub fn to_rgb8(frame: &[f32], h: usize, w: usize) -> Vec<u8> {
    let plane = h * w;
    let mut out = Vec::with_capacity(3 * plane);
    for i in 0..plane {
        for c in 0..3 {
            let v = frame[c * plane + i].clamp(-1.0, 1.0);
            out.push(((v + 1.0) / 2.0 * 255.0 + 0.5).clamp(0.0, 255.0) as u8);
        }
    }
    out
}
