#!/usr/bin/env bash
# The engine's layers, bottom up (ARCHITECTURE.md): a module may use the ones below it, never
# one above. Fails naming each import that crosses a layer upwards. CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

# layer directory (or file) : the crate modules it must not use
rules=(
    "src/kernel:gpu graph ops nn model pipeline autotune embed formats cli web"
    "src/gpu:graph ops nn model pipeline autotune embed formats cli web"
    "src/graph:ops nn model pipeline autotune embed formats cli web"
    "src/formats:kernel gpu graph ops nn model pipeline autotune embed cli web"
    "src/ops:nn model pipeline autotune embed formats cli web"
    "src/nn:model pipeline autotune embed formats cli web"
    "src/model:pipeline embed cli web"
    "src/pipeline:embed cli web"
)
bad=0
for rule in "${rules[@]}"; do
    dir=${rule%%:*}
    for m in ${rule#*:}; do
        # Comments (doc links included) name other layers freely; code may not.
        if hits=$(grep -rnE "crate::$m(::|\b)" "$dir" --include='*.rs' | grep -vE '^[^:]+:[0-9]+:\s*//'); then
            printf '%s must not use crate::%s:\n%s\n' "$dir" "$m" "$hits"
            bad=1
        fi
    done
done
[ "$bad" = 0 ] && echo "layers: no module uses one above it"
exit "$bad"
