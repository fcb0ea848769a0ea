// Normalisation over the last dimension, one workgroup per row.
// LayerNorm (no affine): two passes over the row (mean, then the mean of squared deviations)
// rather than E[x²]-E[x]², which loses precision when |mean| is large against the spread.
// RMS: T5's norm, x / sqrt(mean(x²) + eps), no mean subtracted.
// WEIGHT: multiply by a per-channel weight (T5's norms have one).
// MODULATE: then adaLN's `y * (1 + scale) + shift` for the batch item of the row (adaln.wgsl,
//   as the modulate op; PT-DiT normalises only to modulate): one pass over the hidden state and
//   one dispatch fewer per norm.

const WG: u32 = {{WG}}u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
#if WEIGHT
@group(0) @binding({{B_WEIGHT}}) var<storage, read> weight: array<{{T}}>;
#endif
#if MODULATE
#include common/adaln
#endif
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/reduce

#include common/index

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = p.off_x + row * p.d;
#if RMS
    let mean = 0.0;
#else
    var s = 0.0;
    for (var c = lid; c < p.d; c += WG) {
        s += f32(x[base + c]);
    }
    let mean = reduce_sum(s, lid) / f32(p.d);
#endif
    var v = 0.0;
    for (var c = lid; c < p.d; c += WG) {
        let dx = f32(x[base + c]) - mean;
        v += dx * dx;
    }
    let rstd = inverseSqrt(reduce_sum(v, lid) / f32(p.d) + p.eps);
    let ob = p.off_out + row * p.d;
#if MODULATE
    let b = ada_item(row);
#endif
    for (var c = lid; c < p.d; c += WG) {
        var y = (f32(x[base + c]) - mean) * rstd;
#if WEIGHT
        y *= f32(weight[p.off_w + c]);
#endif
#if MODULATE
        y = ada_modulate(y, b, c);
#endif
        out[ob + c] = {{T}}(y);
    }
}
