#!/usr/bin/env bash
# Trains the image model on a lent GPU in one device call and hands back the model directory as
# one tarball (the device returns at most 8 files) with the training log. The machine has no
# network: the data set travels as the cached, tokenized emoji32.npz and its tokenizer, which
# `python3 tools/train/evaluate.py` (or any train.py run) writes here first.
#
#     run(command="bash tools/train/train_gpu.sh 8 \$OUT --width 128 --layers 6",
#         carry=["tools/train/.cache/emoji32.npz", "tools/train/.cache/tokenizer"], timeout_s=600)
#
# MINUTES sizes the run (train.py --minutes: steps measured over the first 200, recorded in
# training.json); the arguments after OUT go to train.py and override the defaults below (the
# shipped model's shape and batch). Score the result here, on the CPU, with
# `evaluate.py --torch --model DIR` at seeds 1000 and 2000 before the engine's evaluate.py.
set -euo pipefail
minutes=${1:?minutes}
out=$(realpath "${2:?output folder}")
shift 2
cd "$(dirname "$0")"
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
ln -s "$PWD/.cache/emoji32.npz" "$cache/emoji32.npz"
ln -s "$PWD/.cache/tokenizer" "$cache/tokenizer"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi"; } | tee "$out/train.log"
PYTHONUNBUFFERED=1 python3 train.py --task image --minutes "$minutes" --batch 512 --lr 0.001 \
    --seed 0 --size 32 --patch 4 --window 2 --width 128 --layers 6 --text-width 128 \
    --text-layers 2 --text-len 32 --device cuda --cache "$cache" --out "$cache/model" \
    --export-every 100000 "$@" 2>&1 | tee -a "$out/train.log"
tar -C "$cache" -czf "$out/model.tgz" model
echo "wrote $out/model.tgz and $out/train.log"
