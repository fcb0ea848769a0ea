#!/usr/bin/env bash
# Builds the static web demo into web/dist/: the engine as wasm + its JS bindings (with the
# default emoji model built in), the page, and another model (web/dist/model/, listed in
# files.json) when one is given.
#   web/build.sh [--dev] [MODEL_DIR]
# --dev builds the wasm in the dev profile, whose compiled dependencies the wasm32 tests share
# (CI uses it: the release build compiled everything once more); the default is release.
# Serve it with any static server, e.g. `python3 -m http.server -d web/dist 8080`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=web/dist
profile=release
if [ "${1:-}" = "--dev" ]; then
    profile=dev
    shift
fi
wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg" ]; then
    echo "needs wasm-bindgen-cli $wbg: cargo install wasm-bindgen-cli --version $wbg" >&2
    exit 1
fi
# A cdylib only for the bundle, so native builds do not link a shared library too.
cargo rustc --profile "$profile" --locked --target wasm32-unknown-unknown --lib --crate-type cdylib
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" "target/wasm32-unknown-unknown/$([ "$profile" = dev ] && echo debug || echo release)/ptdit.wasm"
cp web/index.html web/main.js web/engine.js web/worker.js "$out/"
model=${1:-assets/model}
if [ -d "$model" ]; then
    mkdir -p "$out/model"
    (cd "$model" && find . -type f \( -name '*.json' -o -name '*.safetensors' -o -name 'spiece.model' \) | sed 's|^\./||' | sort) > /tmp/ptdit-files.txt
    while read -r f; do
        mkdir -p "$out/model/$(dirname "$f")"
        cp "$model/$f" "$out/model/$f"
    done < /tmp/ptdit-files.txt
    python3 -c 'import json,sys; print(json.dumps([l.strip() for l in open(sys.argv[1]) if l.strip()]))' /tmp/ptdit-files.txt > "$out/model/files.json"
    echo "model: $model ($(wc -l < /tmp/ptdit-files.txt) files)"
else
    echo "no model directory given: the page uses the engine's built-in emoji model"
fi
echo "built $out"
