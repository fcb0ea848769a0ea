"""The emoji data set: Twemoji and Noto emoji images from the npm packages of emoji-datasource,
with their Unicode names as captions; the word-level tokenizer; and token ids computed by the
engine itself (`ptdit tokenize`), so training sees exactly what the pipeline will feed.

Nothing here is committed: the packages are installed into the cache folder on first use.
"""

import json
import os
import re
import subprocess

import numpy as np
from PIL import Image

# The data version: pinned packages (the image sets change between releases).
PACKAGES = {"emoji-datasource-twitter": "16.0.0", "emoji-datasource-google": "16.0.0"}
STYLES = {"twitter": "twemoji", "google": "noto emoji"}
TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}
SPECIALS = ["<pad>", "</s>", "<unk>"]


def install(cache):
    """npm-installs the pinned packages into `cache` (once)."""
    root = os.path.join(cache, "npm")
    ok = all(
        os.path.isfile(os.path.join(root, "node_modules", p, "emoji.json")) for p in PACKAGES
    )
    if not ok:
        os.makedirs(root, exist_ok=True)
        pkgs = [f"{p}@{v}" for p, v in PACKAGES.items()]
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", root, *pkgs], check=True
        )
    return os.path.join(root, "node_modules")


def entries(modules):
    """[(style, png path, name, tone text or '')] for every image of both sets."""
    out = []
    for pkg in PACKAGES:
        style = pkg.rsplit("-", 1)[1]
        base = os.path.join(modules, pkg)
        with open(os.path.join(base, "emoji.json")) as f:
            table = json.load(f)
        for e in sorted(table, key=lambda e: e["sort_order"]):
            name = (e["name"] or e["short_name"]).lower()
            variants = [("", e)]
            for code, v in sorted((e.get("skin_variations") or {}).items()):
                variants.append((", ".join(TONES[c] for c in code.split("-")), v))
            for tone, v in variants:
                if not v.get(f"has_img_{style}"):
                    continue
                path = os.path.join(base, "img", style, "64", v["image"])
                if os.path.isfile(path):
                    out.append((style, path, name, tone))
    return out


def load_image(path, size):
    """RGBA over white, box-filtered to size x size, as uint8 CHW (what PIL's resize gives, so
    storing it as bytes loses nothing)."""
    im = Image.open(path).convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(bg, im).convert("RGB").resize((size, size), Image.BOX)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def to_unit(images):
    """uint8 images (or the float16 [-1, 1] ones of caches made before) as float32 in [-1, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32)


def captions(name, tone, style):
    """The caption variants of one image: the name alone and with the style; a skin tone
    follows the name after a colon, as in the data set's own naming."""
    full = f"{name}: {tone}" if tone else name
    return [full, f"{full}, {STYLES[style]}"]


def words(text):
    return re.findall(r"\w+|[^\w\s]+", text.lower())


def build_tokenizer(texts, path):
    """A word-level tokenizer (HF tokenizer.json) over every word of the captions; T5's
    special ids: <pad> 0, </s> 1, <unk> 2."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in sorted({w for t in texts for w in words(t)}):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tok.save(path)
    return len(vocab)


def engine_tokens(ptdit, tokenizer_dir, texts, length):
    """Token ids from the engine (`ptdit tokenize`), (n, length) int64, and lengths."""
    r = subprocess.run(
        [ptdit, "tokenize", tokenizer_dir, "--len", str(length)],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(texts), "ptdit tokenize returned a different number of lines"
    ids = np.array([r["ids"] for r in rows], dtype=np.int64)
    lens = np.array([r["len"] for r in rows], dtype=np.int64)
    return ids, lens


def build(cache, size, ptdit, tokenizer_dir, length):
    """Loads (or makes and caches) the data set: images, names and the token ids of every
    caption variant."""
    npz = os.path.join(cache, f"emoji{size}.npz")
    if os.path.isfile(npz):
        d = np.load(npz, allow_pickle=False)
        return {k: d[k] for k in d.files}
    modules = install(cache)
    es = entries(modules)
    images = np.stack([load_image(p, size) for _, p, _, _ in es])
    texts = [c for s, _, n, t in es for c in captions(n, t, s)]
    vocab = build_tokenizer(texts, os.path.join(tokenizer_dir, "tokenizer.json"))
    ids, lens = engine_tokens(ptdit, tokenizer_dir, texts + [""], length)
    data = {
        "images": images,
        "names": np.array([n for _, _, n, _ in es]),
        "tones": np.array([t for _, _, _, t in es]),
        "styles": np.array([s for s, _, _, _ in es]),
        "ids": ids[:-1].reshape(len(es), 2, length),
        "lens": lens[:-1].reshape(len(es), 2),
        "empty_ids": ids[-1],
        "empty_len": lens[-1:],
        "vocab": np.array([vocab]),
    }
    # Compressed bytes (about 10 MB): small enough to carry to a machine without network access.
    np.savez_compressed(npz, **data)
    return data
