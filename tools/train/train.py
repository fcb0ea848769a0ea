"""Trains the built-in models: pixel-space PT-DiTs with a small T5 encoder, for three tasks:
`image` (emoji, data.py), `video` (moving emoji, clips.py: windows span 2 frames) and `views`
(3-D objects seen from 4 sides, shapes.py: windows span the 4 views, one latent).

    python tools/train/train.py --steps 12000        # from scratch, or resumes where it stopped
    python tools/train/train.py --minutes 5 --batch 256 --device cuda   # sized to a time budget
    python tools/train/train.py --task video --init assets/emoji --out assets/emoji-video

Checkpoints go to --cache (resumable at any time: kill it and run the same command again); the
exported model (f16 safetensors, configs, tokenizer) goes to --out every --export-every steps and
at the end, with `training.json` recording the seed, the data version, the steps and the time.
"""

import argparse
import collections
import json
import math
import os
import shutil
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import clips
import data
import shapes
from ptdit_torch import PTDiT, T5Encoder, round_bf16

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# Frames per sample and the window's extent in time, per task.
TASKS = {"image": (1, 1), "video": (clips.FRAMES, 2), "views": (shapes.VIEWS, shapes.VIEWS)}
TASK_NAMES = {"image": "text-to-image", "video": "text-to-video", "views": "text-to-multi-view"}


def configs(args, vocab):
    p, size = args.patch, args.size
    win = args.window
    frames, wf = TASKS[args.task]
    transformer = {
        "num_attention_heads": args.width // 32,
        "attention_head_dim": 32,
        "in_channels": 3,
        "out_channels": 6,
        "num_layers": args.layers,
        "patch_size": p,
        "sample_size": size // p,
        "cross_attention_dim": args.width,
        "caption_channels": args.text_width,
        "attention_bias": True,
        "activation_fn": "gelu-approximate",
        "norm_type": "ada_norm_single",
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,
        "compress_ratios": [wf, win, win],
        "proxy_compress_ratios": [wf, win, win],
        "shift_window": True,
    }
    text = {
        "vocab_size": vocab,
        "d_model": args.text_width,
        "d_kv": 32,
        "num_heads": args.text_width // 32,
        "d_ff": 2 * args.text_width,
        "num_layers": args.text_layers,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "dense_act_fn": "gelu_new",
        "layer_norm_epsilon": 1e-6,
    }
    # The released sampler's timestep shift is relative to 512² px; this model's native size is
    # its own base, so the schedule is the plain rectified-flow one at that size.
    scheduler = {
        "num_inference_steps": 30,
        "guidance_scale": 4.0,
        "base_resolution": size * size,
        # Sampled as trained: the same shift of the timesteps towards noise (--t-shift).
        "transform_scale": args.t_shift,
        "sample_size": [size, size],
        # What the weights were trained for: the engine refuses other requests, naming these.
        "task": TASK_NAMES[args.task],
        "num_frames": frames,
    }
    return transformer, text, scheduler


def export(out, models, cfgs, tok_dir, info):
    """The model directory the engine loads, 16-bit weights."""
    (dit, t5), (tcfg, ecfg, scfg) = models, cfgs
    for comp, model, cfg in [("transformer", dit, tcfg), ("text_encoder", t5, ecfg)]:
        d = os.path.join(out, comp)
        os.makedirs(d, exist_ok=True)
        sd = {k: v.detach().to(torch.float16).cpu().contiguous()
              for k, v in model.state_dict().items()}
        save_file(sd, os.path.join(d, "model.safetensors"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    tok = os.path.join(out, "tokenizer")
    os.makedirs(tok, exist_ok=True)
    shutil.copy(os.path.join(tok_dir, "tokenizer.json"), tok)
    with open(os.path.join(tok, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": info["text_len"]}, f, indent=1)
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(scfg, f, indent=1)
    with open(os.path.join(out, "training.json"), "w") as f:
        json.dump(info, f, indent=1)


def tokenizer_dir(args):
    return os.path.join(args.cache, "tokenizer" if args.task == "image" else f"{args.task}-tokenizer")


def load_task(args):
    """The task's samples as uint8 (N, [F,] 3, H, W) "images", with token ids (N, variants,
    L) of their captions from a word-level tokenizer over every caption word, and the empty
    prompt's ids."""
    if args.task == "image":
        return data.build(args.cache, args.size, args.ptdit, tokenizer_dir(args), args.text_len)
    npz = os.path.join(args.cache, f"{args.task}{args.size}-tokens.npz")
    if os.path.isfile(npz):
        d = np.load(npz, allow_pickle=False)
        return {k: d[k] for k in d.files}
    if args.task == "video":
        src = clips.build(args.cache, size=args.size)
        x = src["clips"].transpose(0, 2, 1, 3, 4)  # (N, 3, F, H, W)
    else:
        src = shapes.build(args.cache, size=args.size)
        x = src["views"].transpose(0, 2, 1, 3, 4)
    texts = [str(c) for c in src["captions"]]
    tdir = tokenizer_dir(args)
    vocab = data.build_tokenizer(texts, os.path.join(tdir, "tokenizer.json"))
    ids, lens = data.engine_tokens(args.ptdit, tdir, texts + [""], args.text_len)
    d = {"images": np.ascontiguousarray(x), "captions": np.array(texts),
         "ids": ids[:-1, None], "lens": lens[:-1, None], "empty_ids": ids[-1],
         "empty_len": lens[-1:], "vocab": np.array([vocab])}
    np.savez_compressed(npz, **d)
    return d


def sample_weights(task, ds, pair_share=0.5, balance="none"):
    """How often each sample is drawn, or None for uniformly.

    Image, `balance="name"`: every (emoji name, style) equally often, its skin-tone variants
    sharing its draws. Uniform draws give the 316 names with tone variants (3,750 of the 7,572
    images) half of all training, six times the share of each of the other 1,594 names.

    Multi-view: the 1,080 pairs together are `pair_share` of the draws and the 36 single
    objects the rest; drawn uniformly, singles were 3 % of the batches and came out as blurred
    blobs (evaluate_views.py, sample sheet of the first run)."""
    if task == "image":
        if balance == "none":
            return None
        keys = [(str(a), str(b)) for a, b in zip(ds["names"], ds["styles"])]
        count = collections.Counter(keys)
        w = np.array([1.0 / count[k] for k in keys])
        return (w / w.sum()).astype(np.float32)
    if task != "views":
        return None
    pair = np.array([" on " in str(c) for c in ds["captions"]])
    w = np.where(pair, pair_share / pair.sum(), (1.0 - pair_share) / (~pair).sum())
    return (w / w.sum()).astype(np.float32)


def init_from(model_dir, dit, t5, tok_dir):
    """Starts from a trained model directory (the paper builds its video model from the image
    one): every transformer weight of the same shape, and the text encoder with each word's
    embedding row carried over by the word (the vocabularies differ)."""
    from safetensors.torch import load_file

    sd = load_file(os.path.join(model_dir, "transformer", "model.safetensors"))
    own = dit.state_dict()
    same = {k: v.float() for k, v in sd.items() if k in own and own[k].shape == v.shape}
    dit.load_state_dict(same, strict=False)
    tsd = {k: v.float() for k, v in
           load_file(os.path.join(model_dir, "text_encoder", "model.safetensors")).items()}
    with open(os.path.join(model_dir, "tokenizer", "tokenizer.json")) as f:
        old = json.load(f)["model"]["vocab"]
    with open(os.path.join(tok_dir, "tokenizer.json")) as f:
        new = json.load(f)["model"]["vocab"]
    table = t5.shared.weight.detach().clone()
    carried = 0
    for word, i in new.items():
        if word in old:
            table[i] = tsd["shared.weight"][old[word]]
            carried += 1
    tsd["shared.weight"] = table
    t5.load_state_dict(tsd)
    print(f"initialised from {model_dir}: {len(same)} of {len(own)} transformer tensors, "
          f"{carried} of {len(new)} words")


def lr_at(step, total, base, warmup=300, floor=0.1):
    """Linear warm-up, then a cosine down to `floor` x base at `total` steps: the schedule
    depends on the step count alone, so `--steps N` reproduces a run that --minutes sized."""
    if step < warmup:
        return base * (step + 1) / warmup
    x = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * x)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", choices=list(TASKS), default="image")
    ap.add_argument("--init", default="", help="start from this model directory's weights")
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--minutes", type=float, default=0,
                    help="instead of --steps: as many steps as fit in this many minutes, measured "
                    "over the first 200 steps (training.json records the count)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=32, help="image size in pixels")
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--window", type=int, default=2, help="window edge in tokens")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--text-width", type=int, default=128)
    ap.add_argument("--text-layers", type=int, default=2)
    ap.add_argument("--text-len", type=int, default=32)
    ap.add_argument("--pair-share", type=float, default=0.5,
                    help="views: the share of draws that are two-part objects (the rest single)")
    ap.add_argument("--balance", choices=["none", "name"], default="none",
                    help="image: 'name' draws every emoji name and style equally often, its "
                    "skin-tone variants sharing its draws (default: every image equally often)")
    ap.add_argument("--t-shift", type=float, default=1.0,
                    help="shift the training timesteps towards noise, t' = s t / (1 + (s - 1) t), "
                         "and the sampler's by the same (its transform_scale), as Open-Sora 1.2 "
                         "trains with the sampler's shift")
    ap.add_argument("--drop", type=float, default=0.1, help="caption dropout (CFG)")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    ap.add_argument("--out", default="", help="the model directory to write (default: "
                    "assets/emoji, or assets/emoji-video and assets/emoji-views)")
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--export-every", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", type=int, default=0, help="time N steps and exit")
    args = ap.parse_args()
    if not args.out:
        args.out = os.path.join(ROOT, "assets", "emoji" + ("" if args.task == "image" else f"-{args.task}"))
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        # TF32 matrix products: the weights are shipped in f16, far coarser than TF32's rounding.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    ds = load_task(args)
    images = torch.from_numpy(data.to_unit(ds["images"])).to(dev)
    ids, lens = torch.from_numpy(ds["ids"]).to(dev), torch.from_numpy(ds["lens"]).to(dev)
    weights = sample_weights(args.task, ds, args.pair_share, args.balance)
    weights = None if weights is None else torch.from_numpy(weights).to(dev)
    empty_ids = torch.from_numpy(ds["empty_ids"]).to(dev)
    empty_len = int(ds["empty_len"][0])
    n = len(images)
    cfgs = configs(args, int(ds["vocab"][0]))
    print(f"{n} {args.task} samples, vocabulary {int(ds['vocab'][0])}, unk share "
          f"{float((ids == 2).sum()) / float(lens.sum()):.4f}, device {dev}")

    torch.manual_seed(args.seed)
    dit, t5 = PTDiT(cfgs[0]), T5Encoder(cfgs[1])
    dit.init_like_training_start()
    if args.init:
        init_from(args.init, dit, t5, tokenizer_dir(args))
    dit, t5 = dit.to(dev), t5.to(dev)
    params = list(dit.parameters()) + list(t5.parameters())
    print(f"parameters: transformer {sum(p.numel() for p in dit.parameters()):,}, "
          f"text encoder {sum(p.numel() for p in t5.parameters()):,}")
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.99),
                            fused=dev.type == "cuda")
    ema = [p.detach().clone() for p in params]
    step, elapsed = 0, 0.0
    ck = os.path.join(args.cache, "run" if args.task == "image" else f"run-{args.task}", "ckpt.pt")
    if os.path.isfile(ck) and not args.bench:
        s = torch.load(ck, map_location=dev)
        dit.load_state_dict(s["dit"]), t5.load_state_dict(s["t5"]), opt.load_state_dict(s["opt"])
        ema = s["ema"]
        step, elapsed = s["step"], s["elapsed"]
        args.steps = s.get("total", args.steps)
        torch.set_rng_state(s["rng"].cpu())
        if dev.type == "cuda" and "cuda_rng" in s:
            torch.cuda.set_rng_state(s["cuda_rng"].cpu())
        print(f"resumed at step {step} of {args.steps} ({elapsed / 60:.1f} min so far)")
    sized = step > 0 or not args.minutes

    def save():
        os.makedirs(os.path.dirname(ck), exist_ok=True)
        state = {"dit": dit.state_dict(), "t5": t5.state_dict(), "opt": opt.state_dict(),
                 "ema": ema, "step": step, "total": args.steps, "elapsed": elapsed,
                 "rng": torch.get_rng_state()}
        if dev.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        torch.save(state, ck + ".tmp")
        os.replace(ck + ".tmp", ck)

    def export_ema():
        live = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        info = {"steps": step, "seed": args.seed, "train_minutes": round(elapsed / 60, 1),
                "device": name, "batch": args.batch, "lr": args.lr,
                "lr_schedule": "300 warm-up steps, cosine to 0.1x", "ema": args.ema,
                "t_shift": args.t_shift,
                "caption_dropout": args.drop, "text_len": args.text_len,
                "pair_share": args.pair_share if args.task == "views" else None,
                "balance": args.balance if args.task == "image" else None,
                "data": data.PACKAGES, "task": args.task, "samples": n,
                "init": args.init or None, "torch": torch.__version__,
                "command": "python tools/train/train.py " + " ".join(
                    f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                    if k in ("task", "init", "steps", "batch", "lr", "seed", "pair_share", "balance", "t_shift",
                             "size", "patch",
                             "window", "width",
                             "layers", "text_width", "text_layers", "text_len", "device"))}
        export(args.out, (dit, t5), cfgs, tokenizer_dir(args), info)
        with torch.no_grad():
            for p, l in zip(params, live):
                p.copy_(l)
        print(f"exported step {step} to {args.out}", flush=True)

    arange = torch.arange(args.text_len, device=dev)
    t0, losses = time.time(), []
    while step < args.steps or args.bench:
        if weights is None:
            idx = torch.randint(0, n, (args.batch,), device=dev)
        else:
            idx = torch.multinomial(weights, args.batch, replacement=True)
        variant = torch.randint(0, ids.shape[1], (args.batch,), device=dev)
        tok = ids[idx, variant]
        ln = lens[idx, variant]
        drop = torch.rand(args.batch, device=dev) < args.drop
        tok = torch.where(drop[:, None], empty_ids[None], tok)
        ln = torch.where(drop, empty_len, ln)
        mask = (arange[None] < ln[:, None]).float()
        x0 = images[idx]
        noise = torch.randn_like(x0)
        # logit-normal, as the released RFlow, shifted like the sampler when --t-shift is set
        t = torch.sigmoid(torch.randn(args.batch, device=dev))
        t = args.t_shift * t / (1 + (args.t_shift - 1) * t) * 1000.0
        tt = (t / 1000.0).view(-1, *[1] * (x0.dim() - 1))
        xt = (1 - tt) * x0 + tt * noise
        v = dit(xt, round_bf16(t), t5(tok, mask), mask)
        loss = F.mse_loss(v, x0 - noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        opt.step()
        step += 1
        d = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - d)
        losses.append(loss.detach())
        if step % 50 == 0 or (args.bench and step >= args.bench) or (not sized and step == 200):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            now = time.time()
            elapsed += now - t0
            t0 = now
            if args.bench and step >= args.bench:
                print(f"{elapsed / step:.4f} s/step")
                return
            if not sized and step == 200:
                args.steps = 200 + max(0, int((args.minutes * 60 - elapsed) / (elapsed / 200)))
                sized = True
                print(f"{elapsed / 200:.4f} s/step: {args.steps} steps fit in "
                      f"{args.minutes} min", flush=True)
        if step % 50 == 0:
            print(f"step {step} loss {torch.stack(losses).mean().item():.4f} "
                  f"lr {lr_at(step, args.steps, args.lr):.2e} {elapsed / 60:.1f} min", flush=True)
            losses = []
        if step % args.save_every == 0 or step == args.steps:
            save()
        if step % args.export_every == 0 or step == args.steps:
            export_ema()


if __name__ == "__main__":
    main()
