"""Measures a text-to-multi-view model: for fixed captions (seeded), generate the views with the
engine, find each view's nearest render among every object the data set has, seen from that
view's azimuth (shapes.py), and count
- captions whose views show the caption's shapes and colours (the nearest object of a majority of
  the views is the caption's object);
- captions whose four views agree (every view's nearest object is the same one).
Chance for the first is one in the number of objects. Also writes a sample sheet.

    python tools/train/evaluate_views.py --model assets/emoji-views [--captions 48]
"""

import argparse
import os

import numpy as np

import samples
import shapes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def fixed_captions(n, seed=0):
    """n objects drawn once with a fixed generator: half single objects, half pairs."""
    objs = shapes.objects()
    singles = [o for o in objs if len(o) == 1]
    pairs = [o for o in objs if len(o) == 2]
    rng = np.random.default_rng(seed)
    pick = [singles[i] for i in rng.choice(len(singles), n // 2, replace=False)]
    pick += [pairs[i] for i in rng.choice(len(pairs), n - n // 2, replace=False)]
    return pick


def score(views, objs, bank, bank_objs):
    """Per caption: (right, agree, the nearest object of each view)."""
    results = []
    for v, obj in zip(views, objs):
        nearest = []
        for k in range(v.shape[0]):
            x = v[k].astype(np.float32).transpose(2, 0, 1)[None]
            d = ((bank[:, k].astype(np.float32) - x) ** 2).reshape(len(bank), -1).mean(-1)
            nearest.append(bank_objs[int(d.argmin())])
        votes = sum(n == obj for n in nearest)
        results.append((votes * 2 > len(nearest), len(set(nearest)) == 1, nearest))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "emoji-views"))
    ap.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    ap.add_argument("--captions", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=0, help="0: the model's default")
    ap.add_argument("--cfg", type=float, default=0, help="guidance scale; 0: the model's default")
    ap.add_argument("--sheet", default="/tmp/views-samples.png")
    args = ap.parse_args()
    ds = shapes.build(args.cache)
    bank = ds["views"]
    bank_objs = list(shapes.objects())
    assert len(bank_objs) == len(bank), "the cached renders are of another object list"
    objs = fixed_captions(args.captions)
    prompts = [shapes.caption(o) for o in objs]
    # the side-by-side PNG's turntable sibling has the views as frames
    views = samples.engine_frames(args.ptdit, args.model, prompts, args.seed, args.steps,
                                  ".turntable", cfg=args.cfg)
    res = score(views, objs, bank, bank_objs)
    right = sum(r for r, _, _ in res)
    agree = sum(a for _, a, _ in res)
    n = len(res)
    print(f"shape and colour right: {right}/{n} ({right / n:.1%}); four views agree: "
          f"{agree}/{n} ({agree / n:.1%}); chance {1 / len(bank_objs):.2%} "
          f"(engine, seed {args.seed}, {len(bank_objs)} objects)")
    # every third caption, so the sheet stays small (16 of the 48 by default)
    samples.sheet(views[::3], prompts[::3], args.sheet, cols=4)
    print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
