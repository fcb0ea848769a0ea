"""An agreement fixture (tests/fixtures/emoji*_agreement.safetensors): the PyTorch model's
whole sampling run for one prompt and one noise, with the shipped (f16-rounded) weights, for the
engine's test to reproduce. A model whose scheduler config declares `num_frames` > 1 (video,
multi-view) gets noise of that many frames.

    python tools/train/fixture.py [--model assets/emoji] [--prompt "red apple"] [--out ...]
"""

import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file

import data
from ptdit_torch import PTDiT, T5Encoder, sample

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROMPT = "red apple"


def load(model_dir):
    """The exported model directory in PyTorch, weights widened from f16 to f32."""
    mods = []
    for comp, cls in [("transformer", PTDiT), ("text_encoder", T5Encoder)]:
        with open(os.path.join(model_dir, comp, "config.json")) as f:
            m = cls(json.load(f))
        sd = load_file(os.path.join(model_dir, comp, "model.safetensors"))
        m.load_state_dict({k: v.float() for k, v in sd.items()})
        mods.append(m.eval())
    with open(os.path.join(model_dir, "scheduler", "scheduler_config.json")) as f:
        sched = json.load(f)
    with open(os.path.join(model_dir, "tokenizer", "tokenizer_config.json")) as f:
        text_len = json.load(f)["model_max_length"]
    return mods[0], mods[1], sched, text_len


def tokens(ptdit, model_dir, prompts, text_len):
    ids, lens = data.engine_tokens(ptdit, os.path.join(model_dir, "tokenizer"), prompts, text_len)
    ids = torch.from_numpy(ids)
    mask = (torch.arange(text_len)[None] < torch.from_numpy(lens)[:, None]).float()
    return ids, mask


@torch.no_grad()
def generate(dit, t5, sched, ids, mask, noise, steps=None, cfg=None):
    """Samples like the engine: prompts in `ids[:-1]`... one uncond row (the empty prompt) last."""
    b = noise.shape[0]
    y = t5(ids, mask)
    yc, mc = y[:b], mask[:b]
    yu, mu = y[b:].expand(b, -1, -1), mask[b:].expand(b, -1)
    return sample(
        dit, noise, yc, mc, yu, mu,
        steps or sched["num_inference_steps"], cfg or sched["guidance_scale"],
        sched["base_resolution"], sched["transform_scale"],
    )


def noise(sched, n, seed):
    """Seeded noise for `n` samples of the model's size: (n, 3, H, W), or (n, 3, F, H, W) when
    its scheduler config declares `num_frames` > 1."""
    size, frames = sched["sample_size"], sched.get("num_frames", 1)
    shape = (n, 3, frames, *size) if frames > 1 else (n, 3, *size)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def sample_pixels(model_dir, ptdit, prompts, seed, steps=None, cfg=None, shift=None):
    """The PyTorch model's samples of `prompts`, all in one batch, as uint8 channels-last:
    (n, H, W, 3), or (n, F, H, W, 3) for frames. `shift` overrides the sampler's
    `transform_scale`; None leaves the model's settings."""
    dit, t5, sched, text_len = load(model_dir)
    if shift:
        sched["transform_scale"] = shift
    ids, mask = tokens(ptdit, model_dir, list(prompts) + [""], text_len)
    x = generate(dit, t5, sched, ids, mask, noise(sched, len(prompts), seed), steps=steps, cfg=cfg)
    x = ((x.clamp(-1, 1) + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    return x.movedim(1, -1).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "emoji"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "emoji_agreement.safetensors"))
    ap.add_argument("--ptdit", default=os.path.join(ROOT, "target", "release", "ptdit"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--prompt", default=PROMPT)
    args = ap.parse_args()
    torch.set_num_threads(2)
    dit, t5, sched, text_len = load(args.model)
    ids, mask = tokens(args.ptdit, args.model, [args.prompt, ""], text_len)
    frames = sched.get("num_frames", 1)
    z = noise(sched, 1, 7)
    x = generate(dit, t5, sched, ids, mask, z, steps=args.steps)
    save_file(
        {"noise": z.contiguous(), "ids": ids.to(torch.int32), "image": x.contiguous()},
        args.out,
        metadata={"prompt": args.prompt, "steps": str(args.steps), "cfg": str(sched["guidance_scale"]),
                  "made_by": "tools/train/fixture.py"},
    )
    print(f"wrote {args.out}: {args.prompt!r}, {frames} frame(s), {args.steps} steps, image std {x.std():.3f}")


if __name__ == "__main__":
    main()
