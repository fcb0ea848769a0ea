"""Video clips for the text-to-video model: an emoji from the image data set moving over white,
captioned with its name and the motion ("rocket moving up"). Each motion is a path of position,
scale and angle over the clip; the evaluation (evaluate_video.py) measures the same three things
in generated frames, so a clip's caption is checkable from its pixels alone.

    python tools/train/clips.py --sheet docs/video-clips.png   # one clip per motion, as a sheet
"""

import argparse
import math
import os

import numpy as np
from PIL import Image

import data

# The motions and how a caption names them.
MOTIONS = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "spin": "spinning",
    "grow": "growing",
    "shrink": "shrinking",
    "bounce": "bouncing",
}

# The emoji the video model knows: distinct shapes and colours, so a frame's nearest training
# emoji is a fair test of whether the name was kept.
EMOJI = [
    "rocket", "red apple", "cat face", "ghost", "sunflower", "fire", "penguin", "snowman",
    "grinning face", "heavy black heart", "sun with face", "soccer ball", "butterfly", "fish",
    "bird", "dog face", "pile of poo", "birthday cake", "rainbow", "christmas tree",
    "thumbs up sign", "banana", "four leaf clover", "hamburger",
]

FRAMES = 6
SPRITE = 16  # the emoji's edge in pixels at scale 1, on a 32 px frame


def path(motion, frames, jitter):
    """[(cx, cy, scale, angle in degrees)] per frame, in units of the frame's edge (0..1).
    `jitter` (dx, dy, phase) in [-1, 1] moves the path a little, so clips of one caption
    differ."""
    dx, dy, ph = jitter
    out = []
    for i in range(frames):
        u = i / (frames - 1)
        cx, cy, s, a = 0.5 + 0.06 * dx, 0.5 + 0.06 * dy, 1.0, 0.0
        if motion == "left":
            cx = 0.72 - 0.44 * u
        elif motion == "right":
            cx = 0.28 + 0.44 * u
        elif motion == "up":
            cy = 0.72 - 0.44 * u
        elif motion == "down":
            cy = 0.28 + 0.44 * u
        elif motion == "spin":
            a = (30 * ph + 300 * u)  # counter-clockwise, most of a turn
        elif motion == "grow":
            s = 0.55 + 0.9 * u
        elif motion == "shrink":
            s = 1.45 - 0.9 * u
        elif motion == "bounce":
            # down to the floor and back up, twice
            cy = 0.3 + 0.42 * abs(math.sin(math.pi * 2 * u))
        out.append((cx, cy, s, a))
    return out


def render(sprite, motion, frames=FRAMES, size=32, jitter=(0.0, 0.0, 0.0)):
    """One clip, (frames, 3, size, size) uint8: `sprite` (an RGBA PIL image) on white."""
    hi = size * 4  # drawn at 4x and box-filtered down, as the image data set is
    out = []
    for cx, cy, s, a in path(motion, frames, jitter):
        edge = max(1, round(SPRITE * 4 * s))
        im = sprite.resize((edge, edge), Image.LANCZOS)
        if a:
            im = im.rotate(a, resample=Image.BICUBIC, expand=True)
        canvas = Image.new("RGBA", (hi, hi), (255, 255, 255, 255))
        x, y = round(cx * hi - im.width / 2), round(cy * hi - im.height / 2)
        canvas.alpha_composite(im, (x, y)) if x >= 0 and y >= 0 else canvas.paste(im, (x, y), im)
        frame = canvas.convert("RGB").resize((size, size), Image.BOX)
        out.append(np.asarray(frame, dtype=np.uint8).transpose(2, 0, 1))
    return np.stack(out)


def sprites(cache):
    """{name: [RGBA images, one per style]} for EMOJI, from the data set's packages."""
    modules = data.install(cache)
    found = {}
    for style, p, name, tone in data.entries(modules):
        if name in EMOJI and not tone:
            found.setdefault(name, []).append(Image.open(p).convert("RGBA"))
    missing = [n for n in EMOJI if n not in found]
    assert not missing, f"emoji not in the data set: {missing}"
    return found


def caption(name, motion):
    return f"{name} {MOTIONS[motion]}"


def build(cache, variants=6, size=32, seed=0):
    """Every (emoji, style, motion) in `variants` jittered clips: clips (N, F, 3, size, size)
    uint8 and their captions. Cached as clips{size}.npz."""
    npz = os.path.join(cache, f"clips{size}.npz")
    if os.path.isfile(npz):
        d = np.load(npz, allow_pickle=False)
        return {k: d[k] for k in d.files}
    rng = np.random.default_rng(seed)
    clips, caps, names, motions = [], [], [], []
    for name, ims in sprites(cache).items():
        for im in ims:
            for m in MOTIONS:
                for _ in range(variants):
                    clips.append(render(im, m, size=size, jitter=tuple(rng.uniform(-1, 1, 3))))
                    caps.append(caption(name, m))
                    names.append(name)
                    motions.append(m)
    d = {"clips": np.stack(clips), "captions": np.array(caps), "names": np.array(names),
         "motions": np.array(motions)}
    np.savez_compressed(npz, **d)
    return d


def sheet(clips, path_out):
    """Clips as rows of frames, 2x enlarged: a PNG."""
    n, f, _, h, w = clips.shape
    grid = clips.transpose(0, 3, 1, 4, 2).reshape(n * h, f * w, 3)
    Image.fromarray(grid).resize((f * w * 2, n * h * 2), Image.NEAREST).save(path_out)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), ".cache"))
    ap.add_argument("--sheet", default="/tmp/video-clips.png")
    args = ap.parse_args()
    sp = sprites(args.cache)
    rows = [render(sp["rocket"][0], m) for m in MOTIONS]
    sheet(np.stack(rows), args.sheet)
    print(f"wrote {args.sheet}: rocket, one row per motion: {', '.join(MOTIONS.values())}")


if __name__ == "__main__":
    main()
