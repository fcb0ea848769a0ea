#!/usr/bin/env bash
# Builds the npm package of the engine into web/pkg/ and packs it as target/ptdit-VERSION.tgz:
# the ES module and wasm from wasm-bindgen (--target web), its TypeScript declarations (the
# whole JS API, typed in src/web.rs), package.json and the package's README (web/package/).
#   web/package.sh [--dev]
# --dev uses the dev-profile wasm that web/build.sh --dev and the wasm32 tests build (CI);
# the default is release. Not published: tests/npm installs the tarball and bundles an app.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = "--dev" ]; then
    profile=dev
fi
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
cargo rustc --profile "$profile" --locked --target wasm32-unknown-unknown --lib --crate-type cdylib
out=web/pkg
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" "target/wasm32-unknown-unknown/$([ "$profile" = dev ] && echo debug || echo release)/ptdit.wasm"
cp web/package/README.md "$out/"
sed "s/@VERSION@/$version/" web/package/package.json > "$out/package.json"
mkdir -p target
(cd "$out" && npm pack --silent --pack-destination ../../target >/dev/null)
echo "packed target/ptdit-$version.tgz"
