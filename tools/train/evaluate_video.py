"""Measures a text-to-video model: for fixed captions "<emoji> <motion>" (seeded), generate the
clip with the engine and
- find the motion in its frames: track the non-white centroid, the non-white area (scale) and
  the rotation against the first frame (the best of 24 angles), and take the motion whose clean
  clip (clips.py, no jitter, the same emoji) has the nearest track: right if it is the
  caption's;
- find each frame's nearest training frame by pixel distance: right if it shows the caption's
  emoji.
Chance is 1/8 for the motion and 1/24 for the emoji. Prints how often each motion came out
right, and writes a sample sheet.

    python tools/train/evaluate_video.py --model assets/emoji-video [--captions 48]

--torch samples with the PyTorch model instead (the same weights and sampler; the engine's
agreement test holds them together, but the noise differs, so the figures are of the same
distribution, not the same clips): a 48-caption pass in about 2 minutes on 2 cores against the
engine's 17 on llvmpipe, for screening sampler settings. --shift S sets the sampler's timestep
shift (the scheduler config's `transform_scale`) for either.
"""

import argparse
import os
import tempfile

import numpy as np
from PIL import Image

import clips
import samples

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ANGLES = np.arange(0, 360, 15)


def fixed_captions(n):
    """(emoji, motion) pairs: every emoji in turn, the motions cycling, so each motion and each
    emoji appear about equally."""
    motions = list(clips.MOTIONS)
    return [(clips.EMOJI[i % len(clips.EMOJI)], motions[(i * 3) % len(motions)]) for i in range(n)]


def track(clip):
    """(F, 4): centroid x and y (0..1), log area and rotation (degrees) of each frame against
    the first, for a clip (F, H, W, 3) uint8."""
    f, h, w, _ = clip.shape
    ys, xs = np.mgrid[0:h, 0:w]
    first = Image.fromarray(clip[0])
    rows = []
    for k in range(f):
        ink = (255 - clip[k].min(-1).astype(np.float32)) / 255  # 0 on white
        m = ink.sum() + 1e-6
        cx, cy = (xs * ink).sum() / m / w, (ys * ink).sum() / m / h
        if k == 0:
            c0 = (cx * w, cy * h)
            angle = 0.0
        else:
            # rotate frame 0 about its centroid onto this frame's centroid, best angle wins
            best = None
            for a in ANGLES:
                r = first.rotate(a, resample=Image.BILINEAR, center=c0, fillcolor=(255, 255, 255),
                                 translate=(cx * w - c0[0], cy * h - c0[1]))
                d = ((np.asarray(r, np.float32) - clip[k]) ** 2).mean()
                if best is None or d < best[0]:
                    best = (d, a)
            angle = float(best[1])
        rows.append((cx, cy, np.log(m), angle))
    return np.array(rows)


def features(t):
    """A track as one vector: moves and log-scale change from the first frame, and the rotation
    as a point on the circle (so 345 degrees is near 0)."""
    a = np.radians(t[:, 3])
    return np.concatenate([
        (t[:, 0] - t[0, 0]) * 4, (t[:, 1] - t[0, 1]) * 4, t[:, 2] - t[0, 2],
        np.cos(a) - 1, np.sin(a),
    ])


def classify(clip, templates):
    """The motion whose template track is nearest the clip's."""
    f = features(track(clip))
    d = {m: float(((f - features(track(t))) ** 2).sum()) for m, t in templates.items()}
    return min(d, key=d.get)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "emoji-video"))
    ap.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    ap.add_argument("--captions", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=0, help="0: the model's default")
    ap.add_argument("--cfg", type=float, default=0, help="guidance scale; 0: the model's default")
    ap.add_argument("--shift", type=float, default=0,
                    help="the sampler's timestep shift; 0: the model's (transform_scale)")
    ap.add_argument("--torch", action="store_true", help="sample with PyTorch, not the engine")
    ap.add_argument("--sheet", default="/tmp/video-samples.png")
    args = ap.parse_args()
    pairs = fixed_captions(args.captions)
    prompts = [clips.caption(e, m) for e, m in pairs]
    if args.torch:
        import torch

        import fixture
        torch.set_num_threads(2)
        gen = fixture.sample_pixels(args.model, args.ptdit, prompts, args.seed,
                                    args.steps or None, args.cfg or None, args.shift or None)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model = samples.shifted_model(args.model, args.shift, tmp) if args.shift else args.model
            gen = samples.engine_frames(args.ptdit, model, prompts, args.seed, args.steps,
                                        cfg=args.cfg)

    sprites = clips.sprites(args.cache)
    bank = clips.build(args.cache)
    train = bank["clips"].transpose(0, 1, 3, 4, 2).reshape(-1, 32 * 32 * 3).astype(np.float32)
    train_names = np.repeat(bank["names"], bank["clips"].shape[1])
    name_hits, frames = 0, 0
    per_motion = {m: [0, 0] for m in clips.MOTIONS}
    for (emoji, motion), c in zip(pairs, gen):
        templates = {m: clips.render(sprites[emoji][0], m).transpose(0, 2, 3, 1)
                     for m in clips.MOTIONS}
        per_motion[motion][0] += classify(c, templates) == motion
        per_motion[motion][1] += 1
        x = c.reshape(len(c), -1).astype(np.float32)
        d = (x ** 2).sum(1)[:, None] - 2 * x @ train.T + (train ** 2).sum(1)[None]
        name_hits += int((train_names[d.argmin(1)] == emoji).sum())
        frames += len(c)
    n = len(pairs)
    motion_ok = sum(r for r, _ in per_motion.values())
    print(f"motion right: {motion_ok}/{n} ({motion_ok / n:.1%}, chance 12.5%); emoji kept: "
          f"{name_hits}/{frames} frames ({name_hits / frames:.1%}, chance "
          f"{1 / len(clips.EMOJI):.1%}) ({'pytorch' if args.torch else 'engine'}, seed "
          f"{args.seed}{f', shift {args.shift:g}' if args.shift else ''})")
    print("right by motion: " + ", ".join(f"{m} {r}/{t}" for m, (r, t) in per_motion.items()))
    # every third caption, so the sheet stays small (16 of the 48 by default)
    samples.sheet(gen[::3], prompts[::3], args.sheet, cols=2)
    print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
