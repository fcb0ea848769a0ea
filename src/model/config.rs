//! The transformer's `config.json`, under the official names (the released `"predictor"` block
//! of `inference_model_image.json`, and the fixtures' `config` metadata), and the token grid a
//! latent size gives.

use serde::{Deserialize, Serialize};

use crate::error::{config_error, Error, Result};
use crate::formats::quantized::{self, Quantization};
use crate::model::bounds;

fn default_compress() -> [usize; 3] {
    [1, 8, 8]
}
fn default_proxy_compress() -> [usize; 3] {
    [1, 4, 4]
}
fn default_eps() -> f32 {
    1e-5
}

/// Constructor arguments of the official `PTDiTDiffuser` that change the computation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PtditConfig {
    #[serde(alias = "num_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "head_dim")]
    pub attention_head_dim: usize,
    pub in_channels: usize,
    #[serde(default)]
    pub out_channels: Option<usize>,
    pub num_layers: usize,
    #[serde(default)]
    pub cross_attention_dim: Option<usize>,
    pub caption_channels: usize,
    pub patch_size: usize,
    #[serde(default = "default_compress")]
    pub compress_ratios: [usize; 3],
    #[serde(default = "default_proxy_compress")]
    pub proxy_compress_ratios: [usize; 3],
    #[serde(default = "default_eps")]
    pub norm_eps: f32,
    #[serde(default)]
    pub shift_window: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub activation_fn: Option<String>,
    #[serde(default)]
    pub norm_type: Option<String>,
    #[serde(default)]
    pub norm_elementwise_affine: Option<bool>,
    /// Packed Linear weights (`formats::quantized`); absent: the float type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

impl PtditConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: PtditConfig =
            serde_json::from_str(text).map_err(|e| config_error(format!("PT-DiT config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The released PT-DiT/XL (spec §2.0).
    pub fn released_xl() -> Self {
        PtditConfig {
            num_attention_heads: 16,
            attention_head_dim: 72,
            in_channels: 4,
            out_channels: Some(8),
            num_layers: 28,
            cross_attention_dim: Some(1152),
            caption_channels: 4096,
            patch_size: 2,
            compress_ratios: [1, 8, 8],
            proxy_compress_ratios: [1, 8, 8],
            norm_eps: 1e-6,
            shift_window: true,
            attention_bias: true,
            activation_fn: Some("gelu-approximate".into()),
            norm_type: Some("ada_norm_single".into()),
            norm_elementwise_affine: Some(false),
            quantization: None,
        }
    }

    /// How the Linear weights are stored when not as the float type.
    pub fn linear_storage(&self) -> Result<Option<crate::tensor::DType>> {
        quantized::linear_storage(&self.quantization)
    }

    pub fn dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }
    /// Proxies per window along (f, h, w). The official code always uses 1 along f, even when
    /// the f ratios differ (`compress_ratios[0] // compress_ratios[0]`).
    pub fn proxy_strides(&self) -> [usize; 3] {
        let (c, p) = (self.compress_ratios, self.proxy_compress_ratios);
        [1, c[1] / p[1], c[2] / p[2]]
    }

    /// Rejects configurations the official code would not run, or that this engine does not
    /// implement (other norms or activations), with the reason.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(config_error(format!("PT-DiT config: {why}")));
        let [c, p] = [self.compress_ratios, self.proxy_compress_ratios];
        bounds::check(
            "PT-DiT config",
            &[
                (
                    "num_attention_heads",
                    self.num_attention_heads,
                    bounds::HEADS,
                ),
                ("attention_head_dim", self.attention_head_dim, bounds::HEADS),
                ("num_layers", self.num_layers, bounds::LAYERS),
                ("in_channels", self.in_channels, bounds::CHANNELS),
                ("out_channels", self.out_channels(), bounds::CHANNELS),
                ("caption_channels", self.caption_channels, bounds::WIDTH),
                ("patch_size", self.patch_size, bounds::RATIO),
                ("compress_ratios[0]", c[0], bounds::RATIO),
                ("compress_ratios[1]", c[1], bounds::RATIO),
                ("compress_ratios[2]", c[2], bounds::RATIO),
                ("proxy_compress_ratios[0]", p[0], bounds::RATIO),
                ("proxy_compress_ratios[1]", p[1], bounds::RATIO),
                ("proxy_compress_ratios[2]", p[2], bounds::RATIO),
            ],
        )?;
        // Both factors are bounded above, so the product cannot overflow.
        bounds::check(
            "PT-DiT config",
            &[("the width (heads × head dim)", self.dim(), bounds::WIDTH)],
        )?;
        let d = self.dim();
        if !d.is_multiple_of(8) {
            return bad(format!(
                "the width {d} must be a multiple of 8 for the 3-D sin-cos positional embedding"
            ));
        }
        match self.cross_attention_dim {
            Some(c) if c == d => {}
            Some(c) => {
                return bad(format!(
                    "cross_attention_dim {c} must equal the width {d} (text is projected to it)"
                ))
            }
            None => {
                return bad(
                    "cross_attention_dim is required (the block's MLP norm exists only with it)"
                        .into(),
                )
            }
        }
        if let Some(a) = &self.activation_fn {
            if a != "gelu-approximate" {
                return bad(format!("activation_fn `{a}` is not supported (the released model uses gelu-approximate)"));
            }
        }
        if let Some(n) = &self.norm_type {
            if n != "ada_norm_single" {
                return bad(format!("norm_type `{n}` is not supported (the official block raises for anything but ada_norm_single)"));
            }
        }
        if self.norm_elementwise_affine == Some(true) {
            return bad("norm_elementwise_affine = true is not supported (the released model has no LayerNorm weights)".into());
        }
        for a in 0..3 {
            let (c, p) = (self.compress_ratios[a], self.proxy_compress_ratios[a]);
            if a > 0 && c % p != 0 {
                return bad(format!(
                    "proxy_compress_ratios {:?} must divide compress_ratios {:?}",
                    self.proxy_compress_ratios, self.compress_ratios
                ));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps {} must be positive", self.norm_eps));
        }
        Ok(())
    }

    /// The token grid for a latent of `frames × height × width`, or an error naming the
    /// nearest valid size.
    pub fn grid(&self, frames: usize, height: usize, width: usize) -> Result<Grid> {
        let [wf, wh, ww] = self.compress_ratios;
        let p = self.patch_size;
        let check = |what: &str, n: usize, step: usize| -> Result<()> {
            if n == 0 || !n.is_multiple_of(step) {
                let lower = (n / step).max(1) * step;
                let upper = n.div_ceil(step).max(1) * step;
                let nearest = if n - lower.min(n) <= upper - n {
                    lower
                } else {
                    upper
                };
                return Err(Error::Input(format!(
                    "latent {what} {n} does not fit the windows: it must be a multiple of {step}; \
                     the nearest valid {what} is {nearest}"
                )));
            }
            Ok(())
        };
        check("frame count", frames, wf)?;
        check("height", height, p * wh)?;
        check("width", width, p * ww)?;
        Ok(Grid {
            frames,
            rows: height / p,
            cols: width / p,
            window: self.compress_ratios,
        })
    }
}

/// The token grid of one latent: `frames × rows × cols` tokens in windows of `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub frames: usize,
    pub rows: usize,
    pub cols: usize,
    pub window: [usize; 3],
}

impl Grid {
    pub fn tokens(&self) -> usize {
        self.frames * self.rows * self.cols
    }
    /// Tokens per window.
    pub fn window_tokens(&self) -> usize {
        self.window.iter().product()
    }
    /// Windows per latent, along (f, h, w).
    pub fn windows_per_axis(&self) -> [usize; 3] {
        [
            self.frames / self.window[0],
            self.rows / self.window[1],
            self.cols / self.window[2],
        ]
    }
    pub fn windows(&self) -> usize {
        self.windows_per_axis().iter().product()
    }
    /// Window-major row of the token at grid position (f, h, w), within one batch item.
    pub fn row_of(&self, f: usize, h: usize, w: usize) -> usize {
        let [wf, wh, ww] = self.window;
        let [_, nh, nw] = self.windows_per_axis();
        let window = ((f / wf) * nh + h / wh) * nw + w / ww;
        window * self.window_tokens() + ((f % wf) * wh + h % wh) * ww + w % ww
    }
}
