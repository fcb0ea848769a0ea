"""PT-DiT and a T5 v1.1 encoder in PyTorch, written from the project's spec (spec/ptdit.md, the
released architecture and key names) so that the weights trained here load unchanged in the
engine. Also the engine's sampler (rectified flow, CFG, Euler) for evaluation and the agreement
fixture.

Layouts follow the official code: the hidden state is window-major, `(B*P, S, D)`, windows
ordered (b, f_win, h_win, w_win) and tokens inside a window ordered (f, h, w). Frames are video
frames or the views of a multi-view model (one latent, windows spanning frames); an image is
one frame. One proxy per window is all the models here need.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# PT-DiT


def sincos(d, pos):
    """E(d, pos) = [sin(pos w_k), cos(pos w_k)], w_k = 10000^(-k/(d/2)), in float64 (spec 2.3)."""
    half = d // 2
    omega = 1.0 / 10000.0 ** (np.arange(half, dtype=np.float64) / half)
    a = np.outer(np.asarray(pos, dtype=np.float64), omega)
    return np.concatenate([np.sin(a), np.cos(a)], axis=1)


def positional_embedding(frames, rows, cols, dim):
    """(frames*rows*cols, dim) raster order: [temporal E(D/4, f), E_a(n mod rows),
    E_b(n div rows)] with n the token's raster index within its frame (spec 2.3)."""
    n = np.tile(np.arange(rows * cols), frames)
    f = np.repeat(np.arange(frames), rows * cols)
    dt, ds = dim // 4, 3 * dim // 8
    pe = np.concatenate([sincos(dt, f), sincos(ds, n % rows), sincos(ds, n // rows)], axis=1)
    return torch.from_numpy(pe.astype(np.float32))


def timestep_features(t, channels=256):
    """[cos(t f_k), sin(t f_k)], f_k = exp(-ln(10000) k / half); t already rounded to bf16."""
    half = channels // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    f = torch.exp(-math.log(10000.0) * k / half)
    a = t.float()[:, None] * f[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


def round_bf16(t):
    return t.to(torch.bfloat16).float()


def layer_norm(x, eps):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


class Attention(nn.Module):
    """diffusers `Attention` (to_q/to_k/to_v/to_out.0, all with bias), SDPA, scale 1/sqrt(d)."""

    def __init__(self, dim, heads, kv_dim=None):
        super().__init__()
        kv_dim = kv_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x, ctx=None, bias=None):
        ctx = x if ctx is None else ctx
        b, n, d = x.shape
        h = self.heads
        q = self.to_q(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], h, d // h).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.to_out[0](o.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    """ff.net.0.proj -> GELU(tanh) -> ff.net.2 (net.1 is dropout in diffusers, no weights)."""

    def __init__(self, dim, inner):
        super().__init__()
        self.net = nn.ModuleList([nn.Module(), nn.Identity(), nn.Linear(inner, dim)])
        self.net[0].proj = nn.Linear(dim, inner)

    def forward(self, x):
        return self.net[2](F.gelu(self.net[0].proj(x), approximate="tanh"))


class Grid:
    """A (frames, rows, cols) token grid cut into (wf, wh, ww) windows; the shift is half a
    window along each axis (spec 2.6)."""

    def __init__(self, frames, rows, cols, window):
        wf, wh, ww = window
        assert frames % wf == 0 and rows % wh == 0 and cols % ww == 0, \
            "the grid must be a multiple of the window"
        self.frames, self.rows, self.cols, self.window = frames, rows, cols, window
        self.n = (frames // wf, rows // wh, cols // ww)
        self.windows, self.window_tokens = math.prod(self.n), wf * wh * ww
        self.shift = (wf // 2, wh // 2, ww // 2)

    def to_windows(self, g):
        """(B, frames, rows, cols, D) -> (B*P, S, D)."""
        (nf, nh, nw), (wf, wh, ww) = self.n, self.window
        b, d = g.shape[0], g.shape[-1]
        g = g.reshape(b, nf, wf, nh, wh, nw, ww, d).permute(0, 1, 3, 5, 2, 4, 6, 7)
        return g.reshape(b * self.windows, self.window_tokens, d)

    def to_grid(self, w):
        """(B*P, S, D) -> (B, frames, rows, cols, D)."""
        (nf, nh, nw), (wf, wh, ww) = self.n, self.window
        d = w.shape[-1]
        g = w.reshape(-1, nf, nh, nw, wf, wh, ww, d).permute(0, 1, 4, 2, 5, 3, 6, 7)
        return g.reshape(-1, self.frames, self.rows, self.cols, d)

    def roll(self, w, sign):
        """The window-major hidden state with its grid rolled by -shift (sign -1) or back."""
        s = tuple(sign * v for v in self.shift)
        return self.to_windows(torch.roll(self.to_grid(w), s, (1, 2, 3)))

    def shift_mask(self):
        """(P, S, S): 0 where two tokens of a shifted window share a region, -10000 elsewhere."""

        def region(i, n, w):
            s = w // 2
            return 0 if s == 0 or i < n - w else (1 if i < n - s else 2)

        wf, wh, ww = self.window
        lab = torch.zeros(self.frames, self.rows, self.cols)
        for f in range(self.frames):
            for y in range(self.rows):
                for x in range(self.cols):
                    lab[f, y, x] = (region(f, self.frames, wf) * 9
                                    + region(y, self.rows, wh) * 3 + region(x, self.cols, ww))
        lw = self.to_windows(lab[None, ..., None])[..., 0]  # (P, S)
        return torch.where(lw[:, :, None] == lw[:, None, :], 0.0, -10000.0)


class Block(nn.Module):
    """`ProxyTokensTransformerBlock`: the six steps of spec 2.7."""

    def __init__(self, dim, heads, eps):
        super().__init__()
        self.eps = eps
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim**0.5)
        self.proxy_scale_shift_table = nn.Parameter(torch.randn(3, dim) / dim**0.5)
        for name in ["proxy_attn1", "attn1", "pvisual_attn2", "attn2", "attn3"]:
            setattr(self, name, Attention(dim, heads))
        self.linear_1_visual = nn.Linear(dim, dim)
        self.linear_2 = nn.Linear(dim, dim)
        self.ff = FeedForward(dim, 4 * dim)

    def forward(self, h, t6, y, ybias, grid, swmask):
        b = t6.shape[0]
        P, S, D = grid.windows, grid.window_tokens, h.shape[-1]
        ln = lambda x: layer_norm(x, self.eps)  # noqa: E731

        def rows(m):  # (B, D) modulation -> per window row (B*P, 1, D), each batch item its own
            return m[:, None, None, :].expand(b, P, 1, D).reshape(b * P, 1, D)

        mods = (self.scale_shift_table[None] + t6).unbind(1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = map(rows, mods)
        sw = (self.proxy_scale_shift_table[None] + t6[:, :3]).unbind(1)
        shift_sw, scale_sw, gate_sw = map(rows, sw)

        # 1. proxy tokens (window means) attend to each other
        p = h.mean(1).view(b, P, D)
        p = p + self.proxy_attn1(ln(p))
        # 2. every token attends to the proxies
        a = self.pvisual_attn2(ln(h.reshape(b, P * S, D)), ln(p))
        h = h + self.linear_1_visual(a).view(b * P, S, D)
        # 3. window self-attention
        h = h + gate_msa * self.attn1(ln(h) * (1 + scale_msa) + shift_msa)
        # 4. shifted-window self-attention with the Swin mask
        hs = grid.roll(h, -1)
        o = self.attn3(ln(hs) * (1 + scale_sw) + shift_sw, bias=swmask)
        h = h + self.linear_2(gate_sw * grid.roll(o, 1))
        # 5. text cross-attention with the padding bias
        h = h + self.attn2(h.reshape(b, P * S, D), y, bias=ybias).view(b * P, S, D)
        # 6. MLP
        return h + gate_mlp * self.ff(ln(h) * (1 + scale_mlp) + shift_mlp)


class PTDiT(nn.Module):
    """`PTDiTDiffuser` in pixel space, for images and frames: patch embed + sin-cos PE, adaLN-single, caption projection,
    blocks, final modulation and unpatchify (spec 2.3-2.8). Learned-sigma layout: the output has
    `out_channels = 2*in_channels` and only the first half is trained and sampled."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        D = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        c, p, o = cfg["in_channels"], cfg["patch_size"], cfg["out_channels"]
        self.dim, self.eps = D, cfg["norm_eps"]
        self.pos_embed = nn.Module()
        self.pos_embed.proj = nn.Conv2d(c, D, p, p)
        self.adaln_single = nn.Module()
        self.adaln_single.emb = nn.Module()
        te = self.adaln_single.emb.timestep_embedder = nn.Module()
        te.linear_1, te.linear_2 = nn.Linear(256, D), nn.Linear(D, D)
        self.adaln_single.linear = nn.Linear(D, 6 * D)
        self.caption_projection = nn.Module()
        self.caption_projection.linear_1 = nn.Linear(cfg["caption_channels"], D)
        self.caption_projection.linear_2 = nn.Linear(D, D)
        self.transformer_blocks = nn.ModuleList(
            Block(D, cfg["num_attention_heads"], self.eps) for _ in range(cfg["num_layers"])
        )
        self.scale_shift_table = nn.Parameter(torch.randn(2, D) / D**0.5)
        self.proj_out = nn.Linear(D, p * p * o)
        self._tables = {}

    def init_like_training_start(self):
        """Zero the linears the official code zero-initialises and the adaLN/output projections
        (adaLN-zero), so every block starts as the identity."""
        for blk in self.transformer_blocks:
            for m in [blk.linear_1_visual, blk.linear_2]:
                nn.init.zeros_(m.weight), nn.init.zeros_(m.bias)
        for m in [self.adaln_single.linear, self.proj_out]:
            nn.init.zeros_(m.weight), nn.init.zeros_(m.bias)

    def tables(self, frames, rows, cols, device):
        key = (frames, rows, cols)
        if key not in self._tables:
            grid = Grid(frames, rows, cols, tuple(self.cfg["compress_ratios"]))
            pe = positional_embedding(frames, rows, cols, self.dim).to(device)
            self._tables[key] = (grid, pe, grid.shift_mask().to(device))
        return self._tables[key]

    def forward(self, x, t, y, ymask, full=False):
        """x (B, C, H, W) or (B, C, F, H, W); t (B,) in [0, 1000]; y (B, L, caption_channels);
        ymask (B, L) of 0/1. Returns the velocity in x's shape (the trained half of the
        output), or with `full` every output channel, as the official fixtures hold them."""
        video = x.dim() == 5
        if not video:
            x = x[:, :, None]
        b, c, nf, H, W = x.shape
        p = self.cfg["patch_size"]
        grid, pe, swmask = self.tables(nf, H // p, W // p, x.device)
        frames = x.transpose(1, 2).reshape(b * nf, c, H, W)
        tok = self.pos_embed.proj(frames).flatten(2).transpose(1, 2)  # (B*F, rows*cols, D)
        tok = tok.reshape(b, nf * grid.rows * grid.cols, self.dim) + pe  # raster (B, N, D)
        h = grid.to_windows(tok.reshape(b, nf, grid.rows, grid.cols, self.dim))
        te = self.adaln_single.emb.timestep_embedder
        temb = te.linear_2(F.silu(te.linear_1(timestep_features(round_bf16(t)))))
        t6 = self.adaln_single.linear(F.silu(temb)).view(b, 6, self.dim)
        cp = self.caption_projection
        y = cp.linear_2(F.gelu(cp.linear_1(y), approximate="tanh"))
        ybias = ((1.0 - ymask) * -10000.0)[:, None, None, :]
        swmask = swmask.repeat(b, 1, 1)[:, None]
        for blk in self.transformer_blocks:
            h = blk(h, t6, y, ybias, grid, swmask)
        shift, scale = (self.scale_shift_table[None] + temb[:, None]).unbind(1)
        sc = lambda m: m[:, None, None, None]  # noqa: E731
        o = layer_norm(grid.to_grid(h), self.eps) * (1 + sc(scale)) + sc(shift)
        o = self.proj_out(o)  # (B, F, rows, cols, p*p*out): (p, q, c), c fastest
        oc = self.cfg["out_channels"]
        o = o.view(b, nf, grid.rows, grid.cols, p, p, oc).permute(0, 6, 1, 2, 4, 3, 5)
        o = o.reshape(b, oc, nf, H, W)[:, : oc if full else c]
        return o if video else o[:, :, 0]


# ---------------------------------------------------------------------------------------------
# T5 v1.1 encoder (HF key names)


def t5_bucket(rel, num_buckets, max_distance):
    """HF T5 `_relative_position_bucket`, bidirectional."""
    num_buckets //= 2
    ret = (rel > 0).long() * num_buckets
    n = rel.abs()
    max_exact = num_buckets // 2
    large = max_exact + (
        torch.log(n.float().clamp(min=1) / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).long()
    large = large.clamp(max=num_buckets - 1)
    return ret + torch.where(n < max_exact, n, large)


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class T5Layer(nn.Module):
    def __init__(self, cfg, has_bias):
        super().__init__()
        d, inner, ff, eps = (
            cfg["d_model"],
            cfg["num_heads"] * cfg["d_kv"],
            cfg["d_ff"],
            cfg["layer_norm_epsilon"],
        )
        att = nn.Module()
        att.layer_norm = RMSNorm(d, eps)
        att.SelfAttention = nn.Module()
        sa = att.SelfAttention
        sa.q, sa.k, sa.v = (nn.Linear(d, inner, bias=False) for _ in range(3))
        sa.o = nn.Linear(inner, d, bias=False)
        nn.init.normal_(sa.q.weight, std=(d * cfg["d_kv"]) ** -0.5)
        for m in [sa.k, sa.v]:
            nn.init.normal_(m.weight, std=d**-0.5)
        nn.init.normal_(sa.o.weight, std=inner**-0.5)
        if has_bias:
            sa.relative_attention_bias = nn.Embedding(
                cfg["relative_attention_num_buckets"], cfg["num_heads"]
            )
        mlp = nn.Module()
        mlp.layer_norm = RMSNorm(d, eps)
        mlp.DenseReluDense = nn.Module()
        dr = mlp.DenseReluDense
        dr.wi_0, dr.wi_1 = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
        dr.wo = nn.Linear(ff, d, bias=False)
        self.layer = nn.ModuleList([att, mlp])
        self.heads, self.dkv = cfg["num_heads"], cfg["d_kv"]

    def forward(self, x, bias):
        att, mlp = self.layer
        b, n, _ = x.shape
        hx = att.layer_norm(x)
        sa = att.SelfAttention
        split = lambda t: t.view(b, n, self.heads, self.dkv).transpose(1, 2)  # noqa: E731
        q, k, v = split(sa.q(hx)), split(sa.k(hx)), split(sa.v(hx))
        w = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)  # T5: no 1/sqrt(d) scaling
        x = x + sa.o((w @ v).transpose(1, 2).reshape(b, n, -1))
        dr = mlp.DenseReluDense
        hx = mlp.layer_norm(x)
        return x + dr.wo(F.gelu(dr.wi_0(hx), approximate="tanh") * dr.wi_1(hx))


class T5Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg["vocab_size"], cfg["d_model"])
        self.encoder = nn.Module()
        self.encoder.block = nn.ModuleList(
            T5Layer(cfg, i == 0) for i in range(cfg["num_layers"])
        )
        self.encoder.final_layer_norm = RMSNorm(cfg["d_model"], cfg["layer_norm_epsilon"])

    def forward(self, ids, mask):
        n = ids.shape[1]
        pos = torch.arange(n, device=ids.device)
        bucket = t5_bucket(
            pos[None, :] - pos[:, None],
            self.cfg["relative_attention_num_buckets"],
            self.cfg["relative_attention_max_distance"],
        )
        rel = self.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
        bias = rel(bucket).permute(2, 0, 1)[None] + ((1.0 - mask) * -1e9)[:, None, None, :]
        x = self.shared(ids)
        for blk in self.encoder.block:
            x = blk(x, bias)
        return self.encoder.final_layer_norm(x)


# ---------------------------------------------------------------------------------------------
# The engine's sampler (src/pipeline/sampler.rs): rectified flow, CFG, Euler.


def shift_ratio(height, width, base_resolution, scale):
    return math.sqrt(height * width / base_resolution) * scale


def schedule(steps, height, width, base_resolution, scale):
    """[(t', t' rounded to bf16, dt)]: t_i = (1 - i/N) 1000, shifted by r."""
    r = np.float32(shift_ratio(height, width, base_resolution, scale))
    ts = []
    for i in range(steps):
        tau = np.float32(1.0 - i / steps)
        ts.append(np.float32(r * tau / (np.float32(1.0) + (r - np.float32(1.0)) * tau) * 1000.0))
    out = []
    for i, t in enumerate(ts):
        nxt = ts[i + 1] if i + 1 < steps else np.float32(0.0)
        out.append((float(t), float(round_bf16(torch.tensor(t))), float((t - nxt) / 1000.0)))
    return out


@torch.no_grad()
def sample(model, noise, y, ymask, y_un, ymask_un, steps, cfg_scale, base_resolution, scale=1.0):
    """Euler over the schedule from `noise` (B, C, H, W) or (B, C, F, H, W); cond and uncond in
    one batch. Fewer than 17 frames add nothing to the timestep shift (sampler.rs)."""
    x = noise.clone()
    b, (H, W) = x.shape[0], x.shape[-2:]
    yy, mm = torch.cat([y, y_un]), torch.cat([ymask, ymask_un])
    for _, tm, dt in schedule(steps, H, W, base_resolution, scale):
        v = model(torch.cat([x, x]), torch.full((2 * b,), tm), yy, mm)
        c, u = v[:b], v[b:]
        x = x + (u + cfg_scale * (c - u)) * dt
    return x
