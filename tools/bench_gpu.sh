#!/usr/bin/env bash
# The whole `ptdit bench` suite on one adapter, as JSON: for a lent or new GPU, where the
# one-thread CPU baselines would only cost time. Every document goes into one file (a JSON
# document per benchmark, each after a `== name` line) so a short-lived machine hands back
# a single artifact; the text summary of each goes to stdout.
#
#     tools/bench_gpu.sh [path/to/ptdit] [out-dir]
set -u
bin=${1:-target/release/ptdit}
out=${2:-bench-out}
mkdir -p "$out"
all="$out/bench.json"
: >"$all"
bench() {
    local name=$1
    shift
    echo "== $name: ptdit bench $*" | tee -a "$all"
    local t0=$SECONDS
    timeout 300 "$bin" bench "$@" --json >>"$all" 2>"$out/stderr.txt"
    local rc=$?
    echo "   rc=$rc in $((SECONDS - t0)) s" | tee -a "$all"
    [ $rc -eq 0 ] || tail -5 "$out/stderr.txt"
}
bench matmul-512 matmul --size 512 --no-cpu
# 4096³, then the products of the `forward` model (width 256: 2048 tokens, the proxy tokens'
# 32 rows) and of the released XL at 1024² (8192 tokens of width 1152, its MLP's 4608).
bench matmul-4096 matmul --size 4096 --no-cpu --shapes \
    2048x256x256,2048x256x1024,2048x1024x256,32x256x256,8192x1152x1152,8192x1152x4608,8192x4608x1152
# Packed weights (bf16, q8, q4) against f32 weights, kernel by kernel, on the released shapes:
# T5-XXL's FFN (200 tokens × 4096 → 10240) and the XL's MLP at 1024².
bench matmul-packed matmul --size 1024 --no-cpu --packed --shapes 200x4096x10240,8192x1152x4608
bench profile profile
bench forward forward --no-cpu
bench forward-xl forward --no-cpu --width 1152 --layers 28 --latent 64
bench payoff payoff --grids 32,64,128
# One image of the released pipeline at 1024², 30 steps (random weights drawn on the host and
# streamed in: about a minute a choice before the timed phases): f32 T5 with f16 PT-DiT, then
# the smallest choice.
bench pipeline pipeline --side 1024 --steps 30 --filter "f32 T5 + f16,--preset small"
# The figures alone, one line each, for a quick read.
python3 - "$all" <<'PY' || true
import json, re, sys
text = open(sys.argv[1]).read()
for block in re.split(r"^== .*$", text, flags=re.M)[1:]:
    body = block.strip().rsplit("\n", 1)[0]
    try:
        doc = json.loads(body)
    except ValueError:
        continue
    for f in doc["figures"]:
        base = f.get("baseline")
        print(f"{f['name']:<60} {f['value']:12.2f} {f['unit']}" + (f"   vs {base['name']}: {base['value']:.2f}" if base else ""))
PY
