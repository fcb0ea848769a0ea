"""Measures the shipped model: for a fixed list of captions from the training set, generate an
image with the engine (`ptdit generate`, or the PyTorch model with --torch), find the nearest
training image by pixel distance, and count how often it carries the caption's emoji name.
Chance is the share of training images with that name. Also writes the README's sample grid.

    python tools/train/evaluate.py [--captions 64] [--grid docs/emoji-samples.png]

--torch samples with the PyTorch model (the same weights and sampler, other noise) to screen
runs; --cfg and --shift override the model's guidance scale and timestep shift for either.
"""

import argparse
import os
import subprocess
import tempfile
import textwrap

import numpy as np
from PIL import Image, ImageDraw

import data
import samples

# PyTorch is needed only for --torch (the engine's score needs numpy and Pillow alone), so it
# and fixture.py are imported there.

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GRID_PROMPTS = [
    "red apple", "grinning face", "thumbs up sign: dark skin tone", "cat face",
    "rocket", "pile of poo", "sunflower", "pizza", "heavy black heart", "fire",
    "penguin", "birthday cake", "ghost", "rainbow", "snowman", "christmas tree",
]


def fixed_captions(ds, n):
    """Every k-th distinct name (no skin tone) in the data set's order: a fixed list."""
    names = [str(x) for x, t in zip(ds["names"], ds["tones"]) if not t]
    uniq = list(dict.fromkeys(names))
    step = max(1, len(uniq) // n)
    return uniq[::step][:n]


def engine_images(ptdit, prompts, seed, steps, model=None, cfg=None):
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(prompts):
            path = os.path.join(tmp, f"{i}.png")
            cmd = [ptdit, "generate", "--prompt", p, "--seed", str(seed + i), "--upscale", "1",
                   "--out", path]
            if steps:
                cmd += ["--steps", str(steps)]
            if cfg is not None:
                cmd += ["--cfg", str(cfg)]
            if model:
                cmd += ["--model", model]
            subprocess.run(cmd, check=True, capture_output=True)
            out.append(np.asarray(Image.open(path).convert("RGB")))
    return np.stack(out)


def grid(images, prompts, path, scale=4):
    """Samples with their prompts underneath, 8 a row."""
    cols, s = 8, images.shape[1] * scale
    rows = (len(images) + cols - 1) // cols
    cell_h = s + 30
    canvas = Image.new("RGB", (cols * (s + 8), rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (im, p) in enumerate(zip(images, prompts)):
        x, y = (i % cols) * (s + 8) + 4, (i // cols) * cell_h
        canvas.paste(Image.fromarray(im).resize((s, s), Image.BILINEAR), (x, y))
        lines = textwrap.wrap(p, 21)
        draw.multiline_text((x, y + s + 2), "\n".join(lines[:2]), fill="black", spacing=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    canvas.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "emoji"))
    ap.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    ap.add_argument("--captions", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=0, help="0: the model's default")
    ap.add_argument("--cfg", type=float, help="guidance scale (default: the model's)")
    ap.add_argument("--shift", type=float, default=0,
                    help="the sampler's timestep shift; 0: the model's (transform_scale)")
    ap.add_argument("--torch", action="store_true", help="sample with PyTorch, not the engine")
    ap.add_argument("--grid", default=os.path.join(ROOT, "docs", "emoji-samples.png"))
    ap.add_argument("--images", help="score DIR/<i>.png (caption i, e.g. from `ptdit bench cache "
                    "--images`) instead of generating")
    ap.add_argument("--write-captions", help="write the fixed captions to FILE, one a line, and stop")
    args = ap.parse_args()
    if args.torch:
        import torch
        torch.set_num_threads(2)
    ds = data.build(args.cache, 32, args.ptdit, os.path.join(args.cache, "tokenizer"), 32)
    prompts = fixed_captions(ds, args.captions)
    if args.write_captions:
        with open(args.write_captions, "w") as f:
            f.write("".join(p + "\n" for p in prompts))
        return

    def make(ps):
        if args.images:
            return np.stack([np.asarray(Image.open(os.path.join(args.images, f"{i}.png")).convert("RGB"))
                             for i in range(len(ps))])
        if args.torch:
            import fixture
            return fixture.sample_pixels(args.model, args.ptdit, ps, args.seed,
                                         args.steps or None, args.cfg, args.shift or None)
        # The built-in weights unless --model names another directory (e.g. one written by
        # `ptdit quantize assets/emoji DIR --transformer q8 --text-encoder q8`).
        model = None if os.path.samefile(args.model, os.path.join(ROOT, "assets", "emoji")) else args.model
        with tempfile.TemporaryDirectory() as tmp:
            if args.shift:
                model = samples.shifted_model(args.model, args.shift, tmp)
            return engine_images(args.ptdit, ps, args.seed, args.steps, model, args.cfg)

    gen = make(prompts).astype(np.float32) / 127.5 - 1.0  # (n, H, W, 3)
    train = data.to_unit(ds["images"]).transpose(0, 2, 3, 1)
    names = np.array([str(x) for x in ds["names"]])
    d = ((gen[:, None] - train[None]) ** 2).reshape(len(gen), len(train), -1).mean(-1)
    nearest = names[d.argmin(1)]
    hits = float(np.mean(nearest == np.array(prompts)))
    chance = float(np.mean([np.mean(names == p) for p in prompts]))
    print(f"nearest-neighbour agreement: {hits:.3f} ({int(round(hits * len(prompts)))}/"
          f"{len(prompts)} captions) against chance {chance:.4f} "
          f"({'engine' if not args.torch else 'pytorch'}, seed {args.seed}"
          f"{'' if args.cfg is None else f', cfg {args.cfg:g}'}"
          f"{f', shift {args.shift:g}' if args.shift else ''})")
    if args.grid and not args.images:
        grid(make(GRID_PROMPTS), GRID_PROMPTS, args.grid)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
