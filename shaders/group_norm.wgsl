// GroupNorm with affine weight and bias over (B, C, T, H, W): statistics per batch item and
// group of C/G channels over all their frames and pixels (one contiguous block), two passes
// (mean, then squared deviations), biased variance. SILU applies SiLU to the result, as every
// GroupNorm of CausalVAE's ResNet blocks and output is followed by one.

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
@group(0) @binding({{B_GAMMA}}) var<storage, read> gamma: array<{{T}}>;
@group(0) @binding({{B_BETA}}) var<storage, read> beta: array<{{T}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/reduce

#include common/index

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let blk = group_index(wid, nwg);
    if (blk >= p.blocks) {
        return;
    }
    let n = p.per_channel * p.channels_per_group;
    let base = p.off_x + blk * n;
    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        s += f32(x[base + i]);
    }
    let mean = reduce_sum(s, lid) / f32(n);
    var v = 0.0;
    for (var i = lid; i < n; i += WG) {
        let d = f32(x[base + i]) - mean;
        v += d * d;
    }
    let rstd = inverseSqrt(reduce_sum(v, lid) / f32(n) + p.eps);
    let g = (p.block0 + blk) % p.groups;
    let ob = p.off_out + blk * n;
    for (var i = lid; i < n; i += WG) {
        let c = g * p.channels_per_group + i / p.per_channel;
        var y = (f32(x[base + i]) - mean) * rstd * f32(gamma[p.off_w + c]) + f32(beta[p.off_b + c]);
#if SILU
        y = y / (1.0 + exp(-y));
#endif
        out[ob + i] = {{T}}(y);
    }
}
