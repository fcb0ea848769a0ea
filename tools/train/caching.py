"""Measures the step cache (#22) on the built-in model: for each level, the speed of whole
generations against uncached ones (timed in the same run, levels alternated), the PSNR of each
image against the uncached one at the same seed, and evaluate.py's caption score; then writes
the picture grid (a row per level) for docs/caching.md.

    python tools/train/caching.py [--captions 64] [--levels "off;light;medium;heavy"]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GRID_PROMPTS = ["red apple", "grinning face", "rocket", "pizza", "cat face", "sunflower",
                "ghost", "snowman"]


def bench(ptdit, levels, prompts_file, images, steps, seed):
    cmd = [ptdit, "bench", "cache", "--json", "--levels", levels, "--prompts", prompts_file,
           "--images", images, "--steps", str(steps), "--seed", str(seed)]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    with open(images + ".json", "w") as f:  # the raw figures, next to the images
        f.write(text)
    doc = json.loads(text)
    return {f["name"]: f for f in doc["figures"]}, doc["adapter"]


def score(images, captions):
    out = subprocess.run([sys.executable, os.path.join(HERE, "evaluate.py"), "--images", images,
                          "--captions", str(captions), "--grid", ""],
                         check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("nearest-neighbour")][0]
    return int(line.split("(")[1].split("/")[0]), line


def picture_grid(images, levels, n, path, scale=3):
    rows = [[np.asarray(Image.open(os.path.join(images, str(l), f"{i}.png")).convert("RGB"))
             for i in range(n)] for l in range(len(levels))]
    s = rows[0][0].shape[0] * scale
    label_w, top = 70, 34
    canvas = Image.new("RGB", (label_w + n * (s + 4), top + len(levels) * (s + 4)), "white")
    d = ImageDraw.Draw(canvas)
    for i, p in enumerate(GRID_PROMPTS[:n]):
        d.text((label_w + i * (s + 4), 2), p[:14], fill="black")
    for l, name in enumerate(levels):
        d.text((2, top + l * (s + 4) + s // 2 - 6), name, fill="black")
        for i, im in enumerate(rows[l]):
            canvas.paste(Image.fromarray(im).resize((s, s), Image.NEAREST),
                         (label_w + i * (s + 4), top + l * (s + 4)))
    canvas.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    ap.add_argument("--captions", type=int, default=64)
    ap.add_argument("--levels", default="off;light;medium;heavy")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--grid", default=os.path.join(ROOT, "docs", "caching-grid.png"))
    ap.add_argument("--keep", help="keep the images and raw figures in this folder")
    args = ap.parse_args()
    levels = args.levels.split(";")
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            tmp = args.keep
        captions = os.path.join(tmp, "captions.txt")
        subprocess.run([sys.executable, os.path.join(HERE, "evaluate.py"), "--captions",
                        str(args.captions), "--write-captions", captions], check=True)
        figs, adapter = bench(args.ptdit, args.levels, captions, os.path.join(tmp, "eval"),
                              args.steps, args.seed)
        print(f"adapter: {adapter['name']} ({adapter['backend']}); {args.captions} captions, "
              f"{args.steps} steps, seeds {args.seed}..")
        print("| level | s / image | speed-up (median) | steps skipped | PSNR vs off | caption score |")
        print("|---|---|---|---|---|---|")
        for k, name in enumerate(levels):
            t = figs[f"{name}: seconds a generation"]
            hits, _ = score(os.path.join(tmp, "eval", str(k)), args.captions)
            psnr = figs[f"{name}: PSNR against off"]["value"]
            speed = figs[f"{name}: median speed-up"]["value"]
            print(f"| {name} | {t['value']:.2f} | {speed:.2f}x | "
                  f"{figs[f'{name}: skipped steps']['value']:.1f} / {args.steps} | "
                  f"{'identical' if psnr >= 100 else f'{psnr:.1f} dB'} | {hits}/{args.captions} |")
        if args.grid:
            prompts = os.path.join(tmp, "grid.txt")
            with open(prompts, "w") as f:
                f.write("".join(p + "\n" for p in GRID_PROMPTS))
            bench(args.ptdit, args.levels, prompts, os.path.join(tmp, "grid"), args.steps, args.seed)
            picture_grid(os.path.join(tmp, "grid"), levels, len(GRID_PROMPTS), args.grid)
            print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
