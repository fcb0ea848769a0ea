"""The same PT-DiT forward in this engine and in PyTorch on the same CPU cores.

    python tools/bench_torch.py [--ptdit target/release/ptdit] [--threads 2]
    python tools/bench_torch.py --device cuda --configs 256x4x64,1152x28x128   # on a GPU

For each config (a fixture-sized one and a larger one: the released block structure with
heads of 64, patch 2, 8x8 windows, CFG batch 2, text 32, random weights) it times PyTorch's
forward (fp32, no grad, the project's PT-DiT port in tools/train/ptdit_torch.py, which the
agreement test ties to the engine) and runs `ptdit bench forward --json` with the same
config, then prints both and the ratio. Needs torch; not part of the test suite.
"""

import argparse
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


def torch_tokens_per_s(width, layers, latent, device, min_secs=3.0):
    cfg = {
        "num_attention_heads": width // 64, "attention_head_dim": 64, "in_channels": 4,
        "out_channels": 8, "num_layers": layers, "patch_size": 2, "caption_channels": width,
        "norm_eps": 1e-6, "compress_ratios": [1, 8, 8],
    }
    torch.manual_seed(0)
    m = PTDiT(cfg).eval().to(device)
    x = torch.randn(2, 4, latent, latent, device=device)
    t = torch.full((2,), 500.0, device=device)
    y = torch.randn(2, 32, width, device=device)
    mask = torch.ones(2, 32, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        m(x, t, y, mask)  # warm-up
        sync()
        n, start = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - start < min_secs:
            m(x, t, y, mask)
            n += 1
        sync()
    sec = (time.perf_counter() - start) / n
    return 2 * (latent // 2) ** 2 / sec


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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"PyTorch {torch.__version__}, {where}")
    for c in args.configs.split(","):
        width, layers, latent = (int(v) for v in c.split("x"))
        pt = torch_tokens_per_s(width, layers, latent, device)
        eng, adapter = engine_tokens_per_s(args.ptdit, width, layers, latent)
        tokens = (latent // 2) ** 2
        print(f"width {width}, {layers} layers, {tokens} tokens x 2: engine {eng:.0f} tokens/s "
              f"({adapter}), PyTorch {pt:.0f} tokens/s, engine / PyTorch {eng / pt:.2f}x")


if __name__ == "__main__":
    main()
