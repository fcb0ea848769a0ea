"""Generating and showing samples for the evaluation scripts: the engine's frames of each caption
(an animated PNG read back), a sheet of them with their captions, and a model directory whose
sampler is shifted otherwise."""

import json
import os
import subprocess
import tempfile

import numpy as np
from PIL import Image, ImageDraw


def shifted_model(model_dir, shift, tmp):
    """A copy of the model directory (weights linked) whose sampler shifts by `shift`."""
    out = os.path.join(tmp, "model")
    os.makedirs(out)
    for name in os.listdir(model_dir):
        os.symlink(os.path.abspath(os.path.join(model_dir, name)), os.path.join(out, name))
    os.remove(os.path.join(out, "scheduler"))
    os.makedirs(os.path.join(out, "scheduler"))
    with open(os.path.join(model_dir, "scheduler", "scheduler_config.json")) as f:
        sched = json.load(f)
    sched["transform_scale"] = shift
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched, f)
    return out


def engine_frames(ptdit, model, prompts, seed, steps, suffix="", cfg=0.0):
    """(n, F, H, W, 3) uint8: `ptdit generate` of each prompt (seed + i), read back from the
    animated PNG it wrote, or from PATH's `suffix` sibling (`.turntable` for multi-view).
    `steps` and `cfg` of 0 leave the model's defaults."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(prompts):
            path = os.path.join(tmp, f"{i}.png")
            cmd = [ptdit, "generate", "--model", model, "--prompt", p, "--seed", str(seed + i),
                   "--upscale", "1", "--out", path]
            if steps:
                cmd += ["--steps", str(steps)]
            if cfg:
                cmd += ["--cfg", str(cfg)]
            subprocess.run(cmd, check=True, capture_output=True)
            im = Image.open(os.path.join(tmp, f"{i}{suffix}.png"))
            frames = []
            for k in range(getattr(im, "n_frames", 1)):
                im.seek(k)
                frames.append(np.asarray(im.convert("RGB")))
            out.append(np.stack(frames))
    return np.stack(out)


def sheet(samples, prompts, path, cols, scale=3):
    """Each sample's frames in a row with its caption underneath, `cols` samples a row."""
    n, f, h, w, _ = samples.shape
    cw, ch = f * w * scale + 8, h * scale + 16
    canvas = Image.new("RGB", (cols * cw, ((n + cols - 1) // cols) * ch), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (s, p) in enumerate(zip(samples, prompts)):
        x, y = (i % cols) * cw + 4, (i // cols) * ch
        row = np.concatenate(list(s), axis=1)
        canvas.paste(Image.fromarray(row).resize((f * w * scale, h * scale), Image.NEAREST), (x, y))
        draw.text((x, y + h * scale + 2), p, fill="black")
    canvas.save(path)
