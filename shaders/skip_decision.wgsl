// The step cache's decision, on the GPU so the denoising loop never waits on a readback
// (`ops::skip_decision` holds the rule and its CPU twin). One workgroup adds up the partial
// sums of `change.wgsl`, then invocation 0 applies the rule:
//   rel  = sum |r - ref| / sum |ref|   (no reference yet: the blocks run)
//   acc  = rel (+ the last acc when accumulating)
//   skip = not forced, a reference, fewer than max_run skips in a row, acc < threshold
// and writes the new state, whose element 0 is the flag the skipped dispatches read, and, for a
// skip with extrapolation, alpha = steps since the last run / steps between the last two runs.

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_SUMS}}) var<storage, read> sums: array<f32>;
@group(0) @binding({{B_STATE}}) var<storage, read> state: array<f32>;
@group(0) @binding({{B_CONTROL}}) var<storage, read> control: array<f32>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<f32>;

#include common/reduce

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var d = 0.0;
    var m = 0.0;
    for (var s = lid; s < p.slices; s += WG) {
        d += sums[p.off_sums + 2u * s];
        m += sums[p.off_sums + 2u * s + 1u];
    }
    let sd = reduce_sum(d, lid);
    let sm = reduce_sum(m, lid);
    if (lid != 0u) {
        return;
    }
    let st = p.off_state;
    let c = p.off_control;
    let threshold = control[c];
    let forced = control[c + 1u] != 0.0;
    let max_run = control[c + 2u];
    let accumulate = control[c + 3u] != 0.0;
    let has_ref = sm > 0.0;
    var rel = -1.0;
    var acc = 0.0;
    if (has_ref) {
        rel = sd / sm;
        acc = rel;
        if (accumulate) {
            acc += state[st + 2u];
        }
    }
    let extrapolate = control[c + 4u] != 0.0;
    let run = state[st + 3u];
    let skip = !forced && has_ref && run < max_run && acc < threshold;
    let o = p.off_out;
    var alpha = 0.0;
    if (skip) {
        let since = state[st + 7u] + 1.0;
        let gap = state[st + 8u];
        if (extrapolate && gap > 0.0) {
            alpha = since / gap;
        }
        out[o] = 1.0;
        out[o + 1u] = select(0.0, 1.0, accumulate);
        out[o + 2u] = acc;
        out[o + 3u] = run + 1.0;
        out[o + 4u] = state[st + 4u] + 1.0;
        out[o + 7u] = since;
        out[o + 8u] = gap;
    } else {
        out[o] = 0.0;
        out[o + 1u] = 1.0;
        out[o + 2u] = 0.0;
        out[o + 3u] = 0.0;
        out[o + 4u] = state[st + 4u];
        out[o + 7u] = 0.0;
        // The first step has no run before it.
        out[o + 8u] = select(0.0, state[st + 7u] + 1.0, state[st + 6u] > 0.0);
    }
    out[o + 5u] = rel;
    out[o + 6u] = state[st + 6u] + 1.0;
    out[o + 9u] = alpha;
    out[o + 10u] = 0.0;
    out[o + 11u] = 0.0;
}
