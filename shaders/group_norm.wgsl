// GroupNorm with affine weight and bias over (B, C, T, H, W): statistics per batch item and
// group of C/G channels over all their frames and pixels (one contiguous block), two passes
// (mean, then squared deviations), biased variance. SILU applies SiLU to the result, as every
// GroupNorm of CausalVAE's ResNet blocks and output is followed by one.

struct Params {
    blocks: u32,
    groups: u32,
    per_channel: u32,
    channels_per_group: u32,
    eps: f32,
    block0: u32,
    off_x: u32,
    off_w: u32,
    off_b: u32,
    off_out: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> gamma: array<{{T}}>;
@group(0) @binding(3) var<storage, read> beta: array<{{T}}>;
@group(0) @binding(4) var<storage, read_write> out: array<{{T}}>;

#include reduce

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let blk = wid.x + wid.y * nwg.x;
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
