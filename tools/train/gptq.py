"""Calibrated quantization (GPTQ) into the engine's own q4/q8 format: the same files as
`ptdit quantize`, with each packed Linear's integers chosen to keep the layer's output, not its
weights, close to the float model's.

    python tools/train/gptq.py --model assets/emoji --out DIR [--format q4] [--images 512]

`ptdit quantize MODEL DIR` decides which tensors are packed and writes the configs; this script
then replaces every packed weight's values and scales. For each Linear it gathers H = sum of
x x^T over the layer's inputs in the float model (the PyTorch port, tools/train/ptdit_torch.py)
on what it sees at inference: training images whose names `evaluate.py` does not score,
noised to a uniform time, each with its caption and with the empty one (the two halves of
guidance), seed 0. Then, column by column along K, it rounds the weights to the format and
spreads each column's rounding error over the columns not yet rounded, in proportion to H's
inverse (Frantar et al., "GPTQ", 2022). A block's scale is the format's plain one (q4: the
value of largest magnitude onto -8; q8: max |x| / 127), taken from the block's weights as they
stand when the block is reached, so the files are read exactly as before: only which integers
they hold changes. For image models trained on the emoji data (`tools/train/data.py`).

The result loads with `ptdit generate --model DIR` and scores with
`python tools/train/evaluate.py --model DIR` (docs/quantization.md has the figures).
"""

import argparse
import json
import os
import random
import subprocess

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import data
import evaluate
import fixture

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BLOCK = 32


def calibration_items(ds, n, seed):
    """`n` training images (indices) whose names evaluate.py's fixed 64 captions leave out."""
    scored = set(evaluate.fixed_captions(ds, 64))
    pool = [i for i, x in enumerate(ds["names"]) if str(x) not in scored]
    return random.Random(seed).sample(pool, min(n, len(pool)))


def hessians(model_dir, ds, items, seed, batch=64):
    """Every nn.Linear's sum of x x^T, by module name, over the inputs the float model sees at
    inference: for each calibration image, a noisy version at a uniform time with its caption
    and the same with the empty caption (the two halves of classifier-free guidance)."""
    dit, t5, _, _ = fixture.load(model_dir)
    sums = {}

    def hook(name):
        def f(_module, inputs, _output):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sums[name] = sums.get(name, 0) + x.T @ x
        return f

    handles = []
    for prefix, model in [("transformer", dit), ("text_encoder", t5)]:
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear):
                handles.append(m.register_forward_hook(hook(f"{prefix}/{name}")))
    g = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(data.to_unit(ds["images"][items]))
    ids, lens = torch.from_numpy(ds["ids"][items]), torch.from_numpy(ds["lens"][items])
    empty_ids, empty_len = torch.from_numpy(ds["empty_ids"]), int(ds["empty_len"][0])
    length = ids.shape[-1]
    with torch.no_grad():
        for at in range(0, len(items), batch):
            x0 = images[at:at + batch]
            b = x0.shape[0]
            variant = torch.randint(0, ids.shape[1], (b,), generator=g)
            tok = torch.cat([ids[at:at + b][torch.arange(b), variant], empty_ids[None].expand(b, -1)])
            ln = torch.cat([lens[at:at + b][torch.arange(b), variant], torch.full((b,), empty_len)])
            mask = (torch.arange(length)[None] < ln[:, None]).float()
            t = torch.rand(b, generator=g)
            noise = torch.randn(x0.shape, generator=g)
            xt = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * noise
            dit(torch.cat([xt, xt]), torch.cat([t, t]) * 1000.0, t5(tok.long(), mask), mask)
    for h in handles:
        h.remove()
    return sums


def block_scale(fmt, w):
    """The format's scale of each row's block `w` (N, 32), rounded to f16 as the file holds it."""
    if fmt == "q8":
        d = w.abs().amax(1) / 127.0
    else:
        idx = w.abs().argmax(1, keepdim=True)
        d = w.gather(1, idx)[:, 0] / -8.0
    return d.to(torch.float16).to(torch.float64)


def quantize(fmt, w, d):
    """Integers (as the file stores them: q8 signed, q4 offset by 8) and the values they hold,
    for a column `w` (N,) with scales `d` (N,), or a block (N, 32) with `d` (N, 1)."""
    safe = torch.where(d == 0, torch.ones_like(d), d)
    if fmt == "q8":
        q = torch.clamp(torch.round(w / safe), -127, 127)
        q = torch.where(d == 0, torch.zeros_like(q), q)
        return q, q * d
    q = torch.clamp(torch.round(w / safe) + 8, 0, 15)
    q = torch.where(d == 0, torch.full_like(q, 8), q)
    return q, (q - 8) * d


def round_to_nearest(fmt, w):
    """The values `ptdit quantize` stores for `w` (N, K): each block rounded with its scale."""
    blocks = [w[:, b:b + BLOCK] for b in range(0, w.shape[1], BLOCK)]
    return torch.cat([quantize(fmt, x, block_scale(fmt, x)[:, None])[1] for x in blocks], 1)


def gptq(fmt, weight, h, damp):
    """GPTQ of `weight` (N, K) against `h` (K, K): the integers (N, K), scales (N, K/32) and
    the values they hold (N, K)."""
    w = weight.double().clone()
    n, k = w.shape
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    # The upper Cholesky factor of H^-1: row i holds how column i's error spreads to later ones.
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros(n, k, dtype=torch.float64)
    held = torch.zeros(n, k, dtype=torch.float64)
    scales = torch.zeros(n, k // BLOCK, dtype=torch.float64)
    for i in range(k):
        if i % BLOCK == 0:
            scales[:, i // BLOCK] = block_scale(fmt, w[:, i:i + BLOCK])
        d = scales[:, i // BLOCK]
        q[:, i], held[:, i] = quantize(fmt, w[:, i], d)
        err = (w[:, i] - held[:, i]) / hinv[i, i]
        w[:, i + 1:] -= err[:, None] * hinv[i, i + 1:][None, :]
    return q, scales, held


def file_values(fmt, q):
    """The integers as the file's tensor: q8 I8 (N, K); q4 U8 (N, K/2), first in the low nibble."""
    if fmt == "q8":
        return q.to(torch.int8)
    q = q.to(torch.uint8)
    return q[:, 0::2] | (q[:, 1::2] << 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "emoji"))
    ap.add_argument("--out", required=True, help="the directory to write (new or empty)")
    ap.add_argument("--format", choices=["q4", "q8"], default="q4")
    ap.add_argument("--images", type=int, default=512, help="calibration images (and captions)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--damp", type=float, default=0.01, help="added to H's diagonal, x its mean")
    ap.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    subprocess.run([args.ptdit, "quantize", args.model, args.out, "--transformer", args.format,
                    "--text-encoder", args.format], check=True)
    ds = data.build(args.cache, 32, args.ptdit, os.path.join(args.cache, "tokenizer"), 32)
    items = calibration_items(ds, args.images, args.seed)
    sums = hessians(args.model, ds, items, args.seed)
    report = {"format": args.format, "images": len(items), "seed": args.seed,
              "damp": args.damp, "layers": 0, "weight_rms_error": {}, "output_rms_error": {}}
    for comp in ["transformer", "text_encoder"]:
        path = os.path.join(args.out, comp, "model.safetensors")
        with safe_open(path, "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        float_path = os.path.join(args.model, comp, "model.safetensors")
        with safe_open(float_path, "pt") as f:
            floats = {k: f.get_tensor(k) for k in f.keys()}
        num = {"rtn_w": 0.0, "gptq_w": 0.0, "rtn_o": 0.0, "gptq_o": 0.0, "w": 0.0, "o": 0.0}
        for key in [k for k in tensors if k + "_scale" in tensors]:
            module = key.removesuffix(".weight")
            h = sums.get(f"{comp}/{module}")
            if h is None:
                raise SystemExit(f"{comp}/{key}: no calibration inputs (not an nn.Linear of the port)")
            w = floats[key].double()
            q, scales, held = gptq(args.format, w, h, args.damp)
            tensors[key] = file_values(args.format, q)
            tensors[key + "_scale"] = scales.to(torch.float16)
            rtn = round_to_nearest(args.format, w)  # for the report
            out_err = lambda e: float(torch.einsum("nk,kl,nl->", e, h, e))  # noqa: E731
            num["w"] += float((w ** 2).sum())
            num["rtn_w"] += float(((rtn - w) ** 2).sum())
            num["gptq_w"] += float(((held - w) ** 2).sum())
            num["o"] += out_err(w)
            num["rtn_o"] += out_err(rtn - w)
            num["gptq_o"] += out_err(held - w)
            report["layers"] += 1
        save_file(tensors, path, metadata=meta)
        report["weight_rms_error"][comp] = {
            "round_to_nearest": (num["rtn_w"] / num["w"]) ** 0.5,
            "gptq": (num["gptq_w"] / num["w"]) ** 0.5}
        report["output_rms_error"][comp] = {
            "round_to_nearest": (num["rtn_o"] / num["o"]) ** 0.5,
            "gptq": (num["gptq_o"] / num["o"]) ** 0.5}
    # Beside the directory, not in it: a model directory holds its components alone.
    with open(args.out.rstrip("/") + ".gptq.json", "w") as f:
        json.dump(report | {"calibration": [str(ds["names"][i]) for i in items]}, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
