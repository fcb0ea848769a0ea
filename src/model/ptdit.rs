//! The PT-DiT forward pass (`PTDiTDiffuser.forward`, spec §2) as a graph of engine ops.
//!
//! The hidden state stays window-major, `(B·P, S, D)`, from the patch embedding to the final
//! layer: windows, proxies and text attention all read it in place, and shifted windows go
//! through a row map instead of rolling it.

use super::config::{Grid, PtditConfig};
use super::tables;
use super::upload::Wanted;
use crate::error::Result;
use crate::graph::{Graph, TensorId};
use crate::nn::adaln::{
    FINAL_SCALE, FINAL_SHIFT, GATE_MLP, GATE_MSA, SCALE_MLP, SCALE_MSA, SHIFT_MLP, SHIFT_MSA,
};
use crate::nn::attention::ProjectionKeys;
use crate::nn::{self, AdaLn, Attention, Epilogue, Fuse, Linear};
use crate::ops::attention::AttentionExtras;
use crate::tensor::{DType, TensorDesc};

/// Names of the graph's inputs and outputs.
pub mod io {
    /// `(B, C_in, F, H, W)` latents.
    pub const LATENT: &str = "latent";
    /// `(B, 256)` timestep features, from `model::tables::timestep_features`.
    pub const TIMESTEP: &str = "timestep_features";
    /// `(B, L, caption_channels)` text encoder output.
    pub const TEXT: &str = "text";
    /// `(B, 1, L)` padding bias, from `model::tables::text_bias`.
    pub const TEXT_BIAS: &str = "text_bias";
    /// `(B, C_out, F, H, W)` raw model output.
    pub const SAMPLE: &str = "sample";
    /// The hidden state after block `n`, window-major `(B·P, S, D)`.
    pub fn trace(n: usize) -> String {
        format!("trace.block_{n}")
    }
    /// With a step cache ([`super::CacheSplit`]): threshold, force, max run, accumulate,
    /// extrapolate, written before each step (`ops::skip_decision::control`).
    pub const CACHE_CONTROL: &str = "cache.control";
    /// The cache's state (`ops::skip_decision::state`), carried from step to step; zeros to start.
    pub const CACHE_STATE: &str = "cache.state";
    /// The first blocks' residual the change is measured against, `(B·P, S, D)`; carried.
    pub const CACHE_REFERENCE: &str = "cache.reference";
    /// What the skippable blocks added at their last run, `(B·P, S, D)`; carried.
    pub const CACHE_RESIDUAL: &str = "cache.residual";
    /// What the skippable blocks added at the run before their last, `(B·P, S, D)`; carried
    /// (a skipped step may extrapolate from the two).
    pub const CACHE_PREVIOUS: &str = "cache.residual_previous";
    /// This step's residual of the first blocks, `(B·P, S, D)` (both CFG halves): what the
    /// decision measured, readable after the step.
    pub const CACHE_FIRST: &str = "cache.first";
}

/// Which blocks a step cache may skip: the first `first` always run (the change of their
/// residual from step to step is what the cache decides on), the last `last` always run, and
/// the blocks between run or add their residual from the last step that ran them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSplit {
    pub first: usize,
    pub last: usize,
}

impl CacheSplit {
    /// At least one block must run first (its residual is the measure) and one be left to skip.
    pub fn check(&self, layers: usize) -> Result<()> {
        let CacheSplit { first, last } = *self;
        if first == 0 || first.saturating_add(last) >= layers {
            return Err(crate::error::Error::Input(format!(
                "the step cache runs {first} block(s) first and {last} last, which leaves none \
                 of this model's {layers} to skip (at least one must run first)"
            )));
        }
        Ok(())
    }
}

/// Channels of the timestep features.
pub const TIMESTEP_CHANNELS: usize = 256;

/// What one graph is built for.
#[derive(Clone, Copy, Debug)]
pub struct Shapes {
    pub batch: usize,
    pub grid: Grid,
    pub text_len: usize,
    /// Keep every block's output readable (for `verify`); costs their memory.
    pub traces: bool,
}

/// Checkpoint keys the engine does not read: it computes the positional table itself.
pub const UNUSED_KEYS: &[&str] = &["pos_embed.pos_embed"];

/// What a PT-DiT reads from its checkpoint when stored as `float`: the params of any graph of
/// this config (they do not depend on the image size).
pub fn wanted(cfg: &PtditConfig, float: DType) -> Result<Wanted> {
    let [wf, wh, ww] = cfg.compress_ratios;
    let p = cfg.patch_size;
    let shapes = Shapes {
        batch: 1,
        grid: cfg.grid(wf, p * wh, p * ww)?,
        text_len: 1,
        traces: false,
    };
    let mut w = Wanted::graph(&build_as(cfg, &shapes, float)?);
    w.ignore = UNUSED_KEYS.iter().map(|k| k.to_string()).collect();
    Ok(w)
}

/// Builds the forward graph in f32; weights are params under their official keys.
pub fn build(cfg: &PtditConfig, s: &Shapes) -> Result<Graph> {
    build_as(cfg, s, DType::F32)
}

/// Builds the forward graph with weights and activations stored as `float` (f32 or f16; the
/// arithmetic is f32 either way). The latent input and the output stay f32.
pub fn build_as(cfg: &PtditConfig, s: &Shapes, float: DType) -> Result<Graph> {
    let mut g = Graph::with_float(float);
    let out = build_into(&mut g, cfg, s)?;
    g.output(out, io::SAMPLE)?;
    Ok(g)
}

/// Adds the forward to `g` (for graphs that do more, like a denoising step); returns the
/// output `(B, C_out, F, H, W)`.
pub fn build_into(g: &mut Graph, cfg: &PtditConfig, s: &Shapes) -> Result<TensorId> {
    build_cached_into(g, cfg, s, None)
}

/// [`build_into`] with a step cache over the blocks `cache` leaves skippable (its inputs and
/// carried state under the `io::CACHE_*` names).
pub fn build_cached_into(
    g: &mut Graph,
    cfg: &PtditConfig,
    s: &Shapes,
    cache: Option<CacheSplit>,
) -> Result<TensorId> {
    cfg.validate()?;
    if let Some(c) = cache {
        c.check(cfg.num_layers)?;
        if s.traces {
            return Err(crate::error::Error::Input(
                "a step cache's skipped blocks have no traces to keep".into(),
            ));
        }
    }
    g.set_linear_storage(cfg.linear_storage()?);
    let mut b = Builder::new(cfg, s, std::mem::take(g))?;
    b.cache = cache;
    let out = b.forward();
    *g = b.g;
    out
}

/// One PT-DiT block alone, for benchmarks: inputs `hidden` `(B·P, S, D)` window-major, `t6`
/// `(B, 6, D)`, `text` `(B, L, D)` (already projected) and `text_bias`; output `hidden_out`.
pub fn build_block(cfg: &PtditConfig, s: &Shapes, float: DType) -> Result<Graph> {
    cfg.validate()?;
    let mut g = Graph::with_float(float);
    g.set_linear_storage(cfg.linear_storage()?);
    let mut b = Builder::new(cfg, s, g)?;
    let (bsz, d) = (s.batch, cfg.dim());
    let h =
        b.g.input("hidden", TensorDesc::new([bsz * b.p, b.win, d], float))?;
    let t6 = b.g.input("t6", TensorDesc::new([bsz, 6, d], float))?;
    let text =
        b.g.input("text", TensorDesc::new([bsz, s.text_len, d], float))?;
    let text_bias =
        b.g.input("text_bias", TensorDesc::new([bsz, 1, s.text_len], float))?;
    let (swin_mask, swin_map) = if cfg.shift_window {
        let m =
            b.g.constant("swin_mask", tables::shift_window_mask(&s.grid))?;
        let r =
            b.g.constant("swin_map", tables::shift_window_map(&s.grid, bsz))?;
        (Some(m), Some(r))
    } else {
        (None, None)
    };
    let cx = Context {
        t6,
        text,
        text_bias,
        swin_mask,
        swin_map,
    };
    let out = b.block(0, h, &cx)?;
    b.g.output(out, "hidden_out")?;
    Ok(b.g)
}

/// Per-forward tensors every block reads.
struct Context {
    /// `(B, 6, D)` adaLN-single projection of the timestep.
    t6: TensorId,
    /// `(B, L, D)` projected text.
    text: TensorId,
    text_bias: TensorId,
    swin_mask: Option<TensorId>,
    swin_map: Option<TensorId>,
}

struct Builder<'a> {
    g: Graph,
    cfg: &'a PtditConfig,
    s: Shapes,
    d: usize,
    heads: usize,
    /// Windows per batch item.
    p: usize,
    /// Tokens per window.
    win: usize,
    /// Proxies per window.
    k: usize,
    cache: Option<CacheSplit>,
}

impl<'a> Builder<'a> {
    fn new(cfg: &'a PtditConfig, s: &Shapes, g: Graph) -> Result<Self> {
        let k = cfg.proxy_strides().iter().product();
        Ok(Builder {
            g,
            cfg,
            s: *s,
            d: cfg.dim(),
            heads: cfg.num_attention_heads,
            p: s.grid.windows(),
            win: s.grid.window_tokens(),
            k,
            cache: None,
        })
    }

    /// `Linear(x)` with `epilogue`, the Linear `{prefix}` (with bias) reading `x`'s width.
    fn project(
        &mut self,
        x: TensorId,
        prefix: &str,
        out: usize,
        epilogue: Epilogue,
    ) -> Result<TensorId> {
        let inp = self.g.shape(x).last();
        let lin = Linear::new(&mut self.g, prefix, inp, out, true)?;
        lin.forward_into(&mut self.g, x, epilogue)
    }

    fn param(&mut self, key: &str, shape: &[usize]) -> Result<TensorId> {
        nn::param(&mut self.g, key, shape)
    }

    /// A diffusers `Attention` of the model's width under `{prefix}`, its projections that
    /// read one input fused: q/k/v for self-attention, k/v for cross-attention.
    fn attention(&mut self, prefix: &str, fuse: Fuse) -> Result<Attention> {
        let (d, heads, bias) = (self.d, self.heads, self.cfg.attention_bias);
        let keys = ProjectionKeys::DIFFUSERS;
        Attention::new(&mut self.g, prefix, keys, d, heads, bias, fuse)
    }

    fn forward(&mut self) -> Result<TensorId> {
        let (cfg, s, d) = (self.cfg, self.s, self.d);
        let (bsz, grid) = (s.batch, s.grid);
        let (c_in, pch) = (cfg.in_channels, cfg.patch_size);
        let float = self.g.float();
        let latent = self.g.input(
            io::LATENT,
            TensorDesc::f32([bsz, c_in, grid.frames, grid.rows * pch, grid.cols * pch]),
        )?;
        let tfeat = self.g.input(
            io::TIMESTEP,
            TensorDesc::new([bsz, TIMESTEP_CHANNELS], float),
        )?;

        let text = self.g.input(
            io::TEXT,
            TensorDesc::new([bsz, s.text_len, cfg.caption_channels], float),
        )?;
        let text_bias = self
            .g
            .input(io::TEXT_BIAS, TensorDesc::new([bsz, 1, s.text_len], float))?;

        // Patch embedding straight into window-major order, plus the positional embedding.
        let mut h = self.patchify(latent)?;
        let pe = self
            .g
            .constant("pos_embed", tables::positional_embedding(&grid, d))?;
        h = self.g.add(h, pe)?;
        h = self.g.reshape(h, [bsz * self.p, self.win, d])?;

        // adaLN-single: temb = linear_2(SiLU(linear_1(t))), t6 = linear(SiLU(temb)).
        let none = Epilogue::None;
        let t1 = self.project(
            tfeat,
            "adaln_single.emb.timestep_embedder.linear_1",
            d,
            none,
        )?;
        let t1 = self.g.silu(t1)?;
        let temb = self.project(t1, "adaln_single.emb.timestep_embedder.linear_2", d, none)?;
        let st = self.g.silu(temb)?;
        let t6 = self.project(st, "adaln_single.linear", 6 * d, none)?;
        let t6 = self.g.reshape(t6, [bsz, 6, d])?;

        // Caption projection: linear_1, GELU(tanh), linear_2.
        let y = self.project(text, "caption_projection.linear_1", d, Epilogue::Gelu)?;
        let y = self.project(y, "caption_projection.linear_2", d, none)?;

        let (swin_mask, swin_map) = if cfg.shift_window {
            let m = self
                .g
                .constant("swin_mask", tables::shift_window_mask(&grid))?;
            let r = self
                .g
                .constant("swin_map", tables::shift_window_map(&grid, bsz))?;
            (Some(m), Some(r))
        } else {
            (None, None)
        };
        let cx = Context {
            t6,
            text: y,
            text_bias,
            swin_mask,
            swin_map,
        };

        match self.cache {
            Some(split) => h = self.cached_blocks(h, &cx, split)?,
            None => {
                for n in 0..cfg.num_layers {
                    h = self.block(n, h, &cx)?;
                    if s.traces {
                        let t = self.g.reshape(h, [bsz * self.p, self.win, d])?;
                        self.g.output(t, &io::trace(n))?;
                    }
                }
            }
        }

        // Final layer: LN, modulation by (table + temb), proj_out, unpatchify.
        let sst = self.param("scale_shift_table", &[2, d])?;
        let temb3 = self.g.reshape(temb, [bsz, 1, d])?;
        let ada = AdaLn::new(temb3, sst);
        let n = ada.norm_modulate(&mut self.g, h, 1e-6, FINAL_SHIFT, FINAL_SCALE)?;
        let o = self.project(n, "proj_out", pch * pch * cfg.out_channels(), none)?;
        self.unpatchify(o)
    }

    /// The blocks with a step cache: the first blocks; the decision from how much their
    /// residual changed; the middle blocks, skippable, or the residual they added last time;
    /// the last blocks. Every step records the same dispatches and reads nothing back.
    fn cached_blocks(&mut self, h: TensorId, cx: &Context, split: CacheSplit) -> Result<TensorId> {
        use crate::ops::skip_decision::{control, state};
        let layers = self.cfg.num_layers;
        let desc = self.g.float_desc([self.s.batch * self.p, self.win, self.d]);
        let h = self.g.reshape(h, desc.shape.clone())?;
        let reference = self.g.input(io::CACHE_REFERENCE, desc.clone())?;
        let residual = self.g.input(io::CACHE_RESIDUAL, desc.clone())?;
        let previous = self.g.input(io::CACHE_PREVIOUS, desc)?;
        let old = self
            .g
            .input(io::CACHE_STATE, TensorDesc::f32([state::LEN]))?;
        let ctl = self
            .g
            .input(io::CACHE_CONTROL, TensorDesc::f32([control::LEN]))?;

        let mut x = h;
        for n in 0..split.first {
            x = self.block(n, x, cx)?;
        }
        let first = self.g.sub(x, h)?;
        self.g.output(first, io::CACHE_FIRST)?;
        let sums = self.g.change_sums(first, reference)?;
        let decision = self.g.skip_decision(sums, old, ctl)?;
        let next_ref = self
            .g
            .select(decision, state::UPDATE_REF, first, reference)?;
        let next_previous = self.g.select(decision, state::SKIP, previous, residual)?;
        let cached = self
            .g
            .extrapolate(x, residual, previous, decision, state::ALPHA)?;

        let start = self.g.nodes().len();
        let mut y = x;
        for n in split.first..layers - split.last {
            y = self.block(n, y, cx)?;
        }
        let added = self.g.sub(y, x)?;
        let picked = self
            .g
            .skippable(start, decision, &[(y, cached), (added, residual)])?;
        let (mut y, next_residual) = (picked[0], picked[1]);
        self.g.output(decision, "cache.state_next")?;
        self.g.carry(decision, old)?;
        self.g.output(next_ref, "cache.reference_next")?;
        self.g.carry(next_ref, reference)?;
        self.g.output(next_residual, "cache.residual_next")?;
        self.g.carry(next_residual, residual)?;
        self.g
            .output(next_previous, "cache.residual_previous_next")?;
        self.g.carry(next_previous, previous)?;
        for n in layers - split.last..layers {
            y = self.block(n, y, cx)?;
        }
        Ok(y)
    }

    /// One `ProxyTokensTransformerBlock` (spec §2.7): its six steps in order.
    fn block(&mut self, n: usize, h: TensorId, cx: &Context) -> Result<TensorId> {
        let pre = format!("transformer_blocks.{n}");
        let table = self.param(&format!("{pre}.scale_shift_table"), &[6, self.d])?;
        let ada = AdaLn::new(cx.t6, table);
        let proxies = self.proxy_self_attention(&pre, h)?;
        let h = self.proxy_cross_attention(&pre, h, proxies)?;
        let h = self.window_attention(&pre, h, ada)?;
        let h = match (cx.swin_mask, cx.swin_map) {
            (Some(mask), Some(map)) => self.shifted_window_attention(&pre, h, cx, mask, map)?,
            _ => h,
        };
        let h = self.text_cross_attention(&pre, h, cx)?;
        self.mlp(&pre, h, ada)
    }

    /// Step 1: proxies are window means (dilated when several per window), then
    /// `p + proxy_attn1(proxy_norm1(p))` among all proxies of a batch item.
    fn proxy_self_attention(&mut self, pre: &str, h: TensorId) -> Result<TensorId> {
        let (bsz, pk, d) = (self.s.batch, self.p * self.k, self.d);
        let p = self
            .g
            .window_mean(h, self.cfg.compress_ratios, self.cfg.proxy_strides())?;
        let p = self.g.reshape(p, [bsz, pk, d])?;
        let n = self.g.layer_norm(p, self.cfg.norm_eps)?;
        let extras = AttentionExtras {
            kind: Some("proxy self"),
            ..Default::default()
        };
        let attn = self.attention(&format!("{pre}.proxy_attn1"), Fuse::Qkv)?;
        attn.forward(&mut self.g, n, n, extras, Epilogue::Residual(p))
    }

    /// Step 2: every token attends to its batch item's proxies;
    /// `h + linear_1_visual(pvisual_attn2(norm_before(h), proxy_cross_norm(p)))`.
    fn proxy_cross_attention(
        &mut self,
        pre: &str,
        h: TensorId,
        proxies: TensorId,
    ) -> Result<TensorId> {
        let (bsz, d, eps) = (self.s.batch, self.d, self.cfg.norm_eps);
        let all = self.g.reshape(h, [bsz, self.p * self.win, d])?;
        let a = self.g.layer_norm(all, eps)?;
        let kv = self.g.layer_norm(proxies, eps)?;
        let extras = AttentionExtras {
            kind: Some("proxy to latent cross"),
            ..Default::default()
        };
        let attn = self.attention(&format!("{pre}.pvisual_attn2"), Fuse::Kv)?;
        let o = attn.forward(&mut self.g, a, kv, extras, Epilogue::None)?;
        let o = self.project(
            o,
            &format!("{pre}.linear_1_visual"),
            d,
            Epilogue::Residual(all),
        )?;
        self.g.reshape(o, [bsz * self.p, self.win, d])
    }

    /// Step 3: `h + gate_msa · attn1(norm1(h)·(1 + scale_msa) + shift_msa)` within windows.
    fn window_attention(&mut self, pre: &str, h: TensorId, ada: AdaLn) -> Result<TensorId> {
        let eps = self.cfg.norm_eps;
        let n = ada.norm_modulate(&mut self.g, h, eps, SHIFT_MSA, SCALE_MSA)?;
        let extras = AttentionExtras {
            kind: Some("window"),
            ..Default::default()
        };
        let attn = self.attention(&format!("{pre}.attn1"), Fuse::Qkv)?;
        let onto = Epilogue::Gated {
            residual: h,
            ada,
            gate: GATE_MSA,
        };
        attn.forward(&mut self.g, n, n, extras, onto)
    }

    /// Step 4: attention within windows of the grid rolled by half a window, with the Swin
    /// mask, rolled back, then `h + linear_2(gate_sw · o)`. Modulation uses the first three
    /// chunks of t6 with the block's own `proxy_scale_shift_table`. LayerNorm, modulation and
    /// the projections act per token, so they commute with the roll: only the attention reads
    /// through the row map.
    fn shifted_window_attention(
        &mut self,
        pre: &str,
        h: TensorId,
        cx: &Context,
        mask: TensorId,
        map: TensorId,
    ) -> Result<TensorId> {
        let ptable = self.param(&format!("{pre}.proxy_scale_shift_table"), &[3, self.d])?;
        let ada = AdaLn::new(cx.t6, ptable);
        let n = ada.norm_modulate(&mut self.g, h, self.cfg.norm_eps, SHIFT_MSA, SCALE_MSA)?;
        let extras = AttentionExtras {
            bias: Some(mask),
            map: Some((map, self.p)),
            kind: Some("shifted window"),
            ..Default::default()
        };
        let attn = self.attention(&format!("{pre}.attn3"), Fuse::Qkv)?;
        let gated = Epilogue::Gate {
            ada,
            gate: GATE_MSA,
        };
        let o = attn.forward(&mut self.g, n, n, extras, gated)?;
        self.project(o, &format!("{pre}.linear_2"), self.d, Epilogue::Residual(h))
    }

    /// Step 5: `h + attn2(h, text)` with the padding bias; no norm, no gate.
    fn text_cross_attention(&mut self, pre: &str, h: TensorId, cx: &Context) -> Result<TensorId> {
        let (bsz, d) = (self.s.batch, self.d);
        let all = self.g.reshape(h, [bsz, self.p * self.win, d])?;
        let extras = AttentionExtras {
            bias: Some(cx.text_bias),
            kind: Some("text cross"),
            ..Default::default()
        };
        let attn = self.attention(&format!("{pre}.attn2"), Fuse::Kv)?;
        let o = attn.forward(&mut self.g, all, cx.text, extras, Epilogue::Residual(all))?;
        self.g.reshape(o, [bsz * self.p, self.win, d])
    }

    /// Step 6: `h + gate_mlp · ff(norm2(h)·(1 + scale_mlp) + shift_mlp)`, ff = Linear, GELU(tanh),
    /// Linear.
    fn mlp(&mut self, pre: &str, h: TensorId, ada: AdaLn) -> Result<TensorId> {
        let d = self.d;
        let n = ada.norm_modulate(&mut self.g, h, self.cfg.norm_eps, SHIFT_MLP, SCALE_MLP)?;
        let f = self.project(n, &format!("{pre}.ff.net.0.proj"), 4 * d, Epilogue::Gelu)?;
        let onto = Epilogue::Gated {
            residual: h,
            ada,
            gate: GATE_MLP,
        };
        self.project(f, &format!("{pre}.ff.net.2"), d, onto)
    }

    /// Latent `(B, C, F, H, W)` → window-major tokens `(B·P·S, D)`: gather each patch as
    /// `(c, p, q)` (the Conv2d weight's layout) in window-major order, then one matmul.
    fn patchify(&mut self, latent: TensorId) -> Result<TensorId> {
        let (cfg, s) = (self.cfg, self.s);
        let (c, pp) = (cfg.in_channels, cfg.patch_size);
        let [wf, wh, ww] = s.grid.window;
        let [nf, nh, nw] = s.grid.windows_per_axis();
        let view = [s.batch, c, nf, wf, nh, wh, pp, nw, ww, pp];
        let perm = [0, 2, 4, 7, 3, 5, 8, 1, 6, 9];
        let rows = s.batch * s.grid.tokens();
        let float = self.g.float();
        let patches = self
            .g
            .reindex_to(latent, &view, &perm, &[rows, c * pp * pp], float)?;
        let w = self.param("pos_embed.proj.weight", &[self.d, c, pp, pp])?;
        let w = self.g.reshape(w, [self.d, c * pp * pp])?;
        let b = self.param("pos_embed.proj.bias", &[self.d])?;
        let h = Linear::from_params(&self.g, w, Some(b))?.forward(&mut self.g, patches)?;
        self.g.reshape(h, [s.batch, s.grid.tokens(), self.d])
    }

    /// `(B·P·S, p·q·C)` → `(B, C, F, H, W)`: each token's outputs are `(p, q, c)`, c fastest.
    fn unpatchify(&mut self, o: TensorId) -> Result<TensorId> {
        let (cfg, s) = (self.cfg, self.s);
        let (c, pp) = (cfg.out_channels(), cfg.patch_size);
        let [wf, wh, ww] = s.grid.window;
        let [nf, nh, nw] = s.grid.windows_per_axis();
        let view = [s.batch, nf, nh, nw, wf, wh, ww, pp, pp, c];
        let perm = [0, 9, 1, 4, 2, 5, 7, 3, 6, 8];
        let out = [
            s.batch,
            c,
            s.grid.frames,
            s.grid.rows * pp,
            s.grid.cols * pp,
        ];
        self.g.reindex_to(o, &view, &perm, &out, DType::F32)
    }
}
