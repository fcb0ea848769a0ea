"""The same PT-DiT forward in this engine and in PyTorch on the same CPU cores.

    python tools/bench_torch.py [--ptdit target/release/ptdit] [--threads 2]
    python tools/bench_torch.py --device cuda --configs 256x4x64,1152x28x128   # on a GPU
    python tools/bench_torch.py --device cuda --released 1024 [--steps 30]     # released XL

For each config (a fixture-sized one and a larger one: the released block structure with
heads of 64, patch 2, 8x8 windows, CFG batch 2, text 32, random weights) it times PyTorch's
forward (fp32, no grad, the project's PT-DiT port in tools/train/ptdit_torch.py, which the
agreement test ties to the engine) and runs `ptdit bench forward --json` with the same
config, then prints both and the ratio. Needs torch; not part of the test suite.

With --released SIDE, the released PT-DiT/XL's denoising step at SIDE x SIDE pixels (CFG batch
2, text 200 tokens of 4096 channels, random weights) in PyTorch fp32 (TF32 off) and in bf16
(autocast: the Linears, convolutions and scaled_dot_product_attention in bf16, as PyTorch
users run it), against `ptdit bench pipeline --side SIDE` (f32 and f16 PT-DiT) on the same
machine: step seconds and the denoising time of --steps steps.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "train"))
from ptdit_torch import PTDiT  # noqa: E402

CONFIGS = [(128, 2, 32), (256, 4, 64)]  # (width, layers, latent side)


def forward_s(cfg, latent, text_len, device, bf16=False, min_secs=3.0):
    """Seconds per forward of a random-weight PT-DiT of `cfg` on [cond, uncond] (batch 2), after
    a warm-up; in bf16 autocast when asked."""
    torch.manual_seed(0)
    m = PTDiT(cfg).eval().to(device)
    x = torch.randn(2, 4, latent, latent, device=device)
    t = torch.full((2,), 500.0, device=device)
    y = torch.randn(2, text_len, cfg["caption_channels"], device=device)
    mask = torch.ones(2, text_len, device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad(), amp:
        m(x, t, y, mask)  # warm-up
        sync()
        n, start = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - start < min_secs:
            m(x, t, y, mask)
            n += 1
        sync()
    return (time.perf_counter() - start) / n


def torch_tokens_per_s(width, layers, latent, device):
    cfg = {
        "num_attention_heads": width // 64, "attention_head_dim": 64, "in_channels": 4,
        "out_channels": 8, "num_layers": layers, "patch_size": 2, "caption_channels": width,
        "norm_eps": 1e-6, "compress_ratios": [1, 8, 8],
    }
    return 2 * (latent // 2) ** 2 / forward_s(cfg, latent, 32, device)


XL = {
    "num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8,
    "num_layers": 28, "patch_size": 2, "caption_channels": 4096, "norm_eps": 1e-6,
    "compress_ratios": [1, 8, 8],
}


def torch_xl_step_s(side, device, bf16, text_len=200):
    """Seconds per denoising step of the released XL (one forward on [cond, uncond])."""
    return forward_s(XL, side // 8, text_len, device, bf16)


def engine_xl_step_s(ptdit, side, steps):
    """`ptdit bench pipeline`'s median step for f32 and f16 PT-DiT (T5 f32): {choice: s}."""
    r = subprocess.run(
        [ptdit, "bench", "pipeline", "--json", "--side", str(side), "--steps", str(steps),
         "--filter", "f32 T5 + f32 PT-DiT,f32 T5 + f16 PT-DiT"],
        capture_output=True, text=True, check=True,
    )
    doc = json.loads(r.stdout)
    out = {}
    for f in doc["figures"]:
        name = f["name"]
        if name.endswith(": denoising step (median)"):
            choice = name.split(", ", 1)[1].rsplit(":", 1)[0]
            out[choice] = f["value"]
    return out, doc["adapter"]["name"]


def released(args, device):
    for side in (int(s) for s in args.released.split(",")):
        if side % 128:
            sys.exit(f"--released {side}: the side must be a multiple of 128 px")
        fp32 = torch_xl_step_s(side, device, bf16=False)
        bf16 = torch_xl_step_s(side, device, bf16=True)
        tokens = (side // 16) ** 2
        print(f"released XL at {side}x{side} ({tokens} tokens x 2 for CFG), {args.steps} steps:")
        print(f"  PyTorch fp32 {fp32:.4f} s/step ({fp32 * args.steps:.2f} s), "
              f"bf16 {bf16:.4f} s/step ({bf16 * args.steps:.2f} s)")
        if args.no_engine:
            continue
        eng, adapter = engine_xl_step_s(args.ptdit, side, args.steps)
        for choice, s in eng.items():
            print(f"  engine, {choice}: {s:.4f} s/step ({s * args.steps:.2f} s) on {adapter}; "
                  f"speed against PyTorch fp32 {fp32 / s:.2f}x, bf16 {bf16 / s:.2f}x")


def engine_tokens_per_s(ptdit, width, layers, latent):
    r = subprocess.run(
        [ptdit, "bench", "forward", "--json", "--width", str(width), "--layers", str(layers),
         "--latent", str(latent), "--no-cpu"],
        capture_output=True, text=True, check=True,
    )
    doc = json.loads(r.stdout)
    return doc["figures"][0]["value"], doc["adapter"]["name"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    root = os.path.dirname(HERE)
    ap.add_argument("--ptdit", default=os.path.join(root, "target", "release", "ptdit"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="where PyTorch runs (cpu or cuda; fp32, no TF32)")
    ap.add_argument("--configs", default=",".join(f"{w}x{n}x{s}" for w, n, s in CONFIGS),
                    help="WIDTHxLAYERSxLATENT, comma-separated")
    ap.add_argument("--released", default="",
                    help="SIDE[,SIDE]: the released XL's step at these pixel sides instead")
    ap.add_argument("--steps", type=int, default=30, help="with --released: steps a generation")
    ap.add_argument("--no-engine", action="store_true", help="with --released: PyTorch alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"PyTorch {torch.__version__}, {where}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if args.released:
        return released(args, device)
    for c in args.configs.split(","):
        width, layers, latent = (int(v) for v in c.split("x"))
        pt = torch_tokens_per_s(width, layers, latent, device)
        eng, adapter = engine_tokens_per_s(args.ptdit, width, layers, latent)
        tokens = (latent // 2) ** 2
        print(f"width {width}, {layers} layers, {tokens} tokens x 2: engine {eng:.0f} tokens/s "
              f"({adapter}), PyTorch {pt:.0f} tokens/s, engine / PyTorch {eng / pt:.2f}x")


if __name__ == "__main__":
    main()
