"""Multi-view data for the text-to-multi-view model: simple 3-D objects (one shape, or one shape
on another) rendered from 4 azimuths around them, on white, with captions naming shapes and
colours ("a red cube", "a red cube on a blue sphere"). A small signed-distance ray marcher in
numpy: orthographic camera 25 degrees above the ground, a light fixed to the world (so the four
views are shaded as one object is), drawn at 2x and box-filtered down.

    python tools/train/shapes.py --sheet /tmp/views.png   # every shape, its 4 views in a row
"""

import argparse
import itertools
import math
import os

import numpy as np
from PIL import Image

SHAPES = ["cube", "sphere", "cylinder", "cone", "torus", "pyramid"]
COLOURS = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.95, 0.8, 0.1),
    "purple": (0.55, 0.2, 0.7),
    "orange": (0.95, 0.5, 0.1),
}
VIEWS = 4
AZIMUTHS = [360.0 * i / VIEWS for i in range(VIEWS)]
ELEVATION = 25.0
YAW = 30.0  # the object's turn about its axis, so a cube shows two faces in every view
LIGHT = np.array([0.5, 0.8, 0.35]) / np.linalg.norm([0.5, 0.8, 0.35])


def sdf(shape, p):
    """Signed distance of unit-sized `shape` at the origin to points p (..., 3), y up."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    if shape == "sphere":
        return np.linalg.norm(p, axis=-1) - 0.5
    if shape == "cube":
        q = np.abs(p) - 0.4
        return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(-1), 0)
    if shape == "cylinder":
        d = np.stack([np.hypot(x, z) - 0.4, np.abs(y) - 0.45], -1)
        return np.linalg.norm(np.maximum(d, 0), axis=-1) + np.minimum(d.max(-1), 0)
    if shape == "cone":
        # apex at y = 0.5, base radius 0.5 at y = -0.5
        r = np.hypot(x, z)
        h = np.clip(0.5 - y, 0, 1.0)
        side = (r - 0.5 * h) * (1 / math.sqrt(1 + 0.25))
        return np.maximum(side, np.maximum(-0.5 - y, y - 0.5))
    if shape == "torus":
        q = np.stack([np.hypot(x, z) - 0.36, y], -1)
        return np.linalg.norm(q, axis=-1) - 0.16
    if shape == "pyramid":
        # square base 0.9 wide at y = -0.45, apex at y = 0.45; a cone in the max-norm
        m = np.maximum(np.abs(x), np.abs(z))
        h = np.clip(0.45 - y, 0, 0.9)
        side = (m - 0.5 * h) * (1 / math.sqrt(1 + 0.25))
        return np.maximum(side, np.maximum(-0.45 - y, y - 0.45))
    raise ValueError(shape)


def scene(parts):
    """parts: [(shape, rgb, offset (3,), scale)] -> f(p) giving (distance, part index)."""

    c, s_ = math.cos(math.radians(YAW)), math.sin(math.radians(YAW))
    rot = np.array([[c, 0, -s_], [0, 1, 0], [s_, 0, c]])

    def f(p):
        p = p @ rot.T
        ds = [sdf(s, (p - np.asarray(o)) / k) * k for s, _, o, k in parts]
        ds = np.stack(ds)
        return ds.min(0), ds.argmin(0)

    return f


def layout(obj):
    """An object spec (("cube", "red"),) or (top, bottom) -> scene parts, centred."""
    if len(obj) == 1:
        (s, c), = obj
        return [(s, COLOURS[c], (0, 0, 0), 1.0)]
    (ts, tc), (bs, bc) = obj
    return [(ts, COLOURS[tc], (0, 0.3, 0), 0.6), (bs, COLOURS[bc], (0, -0.3, 0), 0.6)]


def render(obj, azimuth, size=32, supersample=2):
    """One view, (3, size, size) uint8."""
    n = size * supersample
    f = scene(layout(obj))
    az, el = math.radians(azimuth), math.radians(ELEVATION)
    fwd = -np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
    right = np.cross(fwd, [0, 1, 0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    u = (np.arange(n) + 0.5) / n * 1.8 - 0.9
    gx, gy = np.meshgrid(u, -u)
    origin = -fwd * 3 + gx[..., None] * right + gy[..., None] * up
    t = np.zeros((n, n))
    hit = np.zeros((n, n), bool)
    for _ in range(80):
        d, _ = f(origin + t[..., None] * fwd)
        hit |= d < 1e-3
        t = np.where(hit, t, t + d)
    p = origin + t[..., None] * fwd
    _, part = f(p)
    e = 1e-3
    grad = np.stack([f(p + e * ax)[0] - f(p - e * ax)[0] for ax in np.eye(3)], -1)
    normal = grad / (np.linalg.norm(grad, axis=-1, keepdims=True) + 1e-9)
    shade = 0.35 + 0.65 * np.clip((normal * LIGHT).sum(-1), 0, 1)
    rgb = np.stack([np.asarray(c) for _, c, _, _ in layout(obj)])[part]
    img = np.where(hit[..., None], rgb * shade[..., None], 1.0)
    img = img.reshape(size, supersample, size, supersample, 3).mean((1, 3))
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)


def views(obj, size=32):
    """The object's VIEWS views, (VIEWS, 3, size, size) uint8."""
    return np.stack([render(obj, a, size) for a in AZIMUTHS])


def caption(obj):
    names = [("an " if c[0] in "aeiou" else "a ") + f"{c} {s}" for s, c in obj]
    return " on ".join(names)


def objects(pairs=True):
    """Every single object, then (with `pairs`) every top-on-bottom pair of different shapes."""
    singles = [((s, c),) for s in SHAPES for c in COLOURS]
    if not pairs:
        return singles
    two = [(a[0], b[0]) for a, b in itertools.permutations(singles, 2) if a[0][0] != b[0][0]]
    return singles + two


def build(cache, size=32):
    """Every object's views and caption: views (N, VIEWS, 3, size, size) uint8, captions.
    Cached as views{size}.npz."""
    npz = os.path.join(cache, f"views{size}.npz")
    if os.path.isfile(npz):
        d = np.load(npz, allow_pickle=False)
        return {k: d[k] for k in d.files}
    objs = objects()
    d = {"views": np.stack([views(o, size) for o in objs]),
         "captions": np.array([caption(o) for o in objs])}
    os.makedirs(cache, exist_ok=True)
    np.savez_compressed(npz, **d)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sheet", default="/tmp/views.png")
    args = ap.parse_args()
    objs = [((s, c),) for s, c in zip(SHAPES, COLOURS)]
    objs += [(("cube", "red"), ("sphere", "blue")), (("cone", "yellow"), ("torus", "green"))]
    rows = np.stack([views(o) for o in objs])  # (n, V, 3, h, w)
    n, v, _, h, w = rows.shape
    grid = rows.transpose(0, 3, 1, 4, 2).reshape(n * h, v * w, 3)
    Image.fromarray(grid).resize((v * w * 3, n * h * 3), Image.NEAREST).save(args.sheet)
    print(f"wrote {args.sheet}: " + "; ".join(caption(o) for o in objs))


if __name__ == "__main__":
    main()
