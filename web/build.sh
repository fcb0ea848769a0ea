#!/usr/bin/env bash
# Builds the static web demo into web/dist/: the engine as wasm + its JS bindings (with the
# default emoji model built in), the page, another image model (web/dist/model/, listed in
# files.json) when one is given, and the video and multi-view models (web/dist/models/).
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
# A model directory's files into $out/DEST, listed in DEST/files.json for the page.
copy_model() {
    local model=$1 dest=$out/$2 list
    list=$(mktemp)
    mkdir -p "$dest"
    (cd "$model" && find . -type f \( -name '*.json' -o -name '*.safetensors' -o -name 'spiece.model' \) | sed 's|^\./||' | sort) > "$list"
    while read -r f; do
        mkdir -p "$dest/$(dirname "$f")"
        cp "$model/$f" "$dest/$f"
    done < "$list"
    python3 -c 'import json,sys; print(json.dumps([l.strip() for l in open(sys.argv[1]) if l.strip()]))' "$list" > "$dest/files.json"
    echo "$2: $model ($(wc -l < "$list") files)"
    rm -f "$list"
}
model=${1:-assets/model}
if [ -d "$model" ]; then
    copy_model "$model" model
else
    echo "no model directory given: the page uses the engine's built-in emoji model"
fi
# The video and multi-view models, downloaded by the page when their task is chosen.
for task in video views; do
    if [ -d "assets/emoji-$task" ]; then
        copy_model "assets/emoji-$task" "models/$task"
    fi
done
echo "built $out"
