// Mean over each window's tokens, optionally several dilated means per window (PT-DiT proxy
// tokens). x is (G, S, D) with the S = WF*WH*WW tokens of a window ordered (f, h, w); output
// (G, K, D) with K = SF*SH*SW proxies ordered (a, b, c). Proxy (a, b, c) averages the tokens
// (i*SF + a, j*SH + b, k*SW + c): a strided, not a contiguous, sub-window.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k_count = p.sf * p.sh * p.sw;
    let idx = flat_index(wid, nwg, lid, 256u);
    if (idx >= p.groups * k_count * p.d) {
        return;
    }
    let c = idx % p.d;
    let gk = idx / p.d;
    let kk = gk % k_count;
    let g = gk / k_count;
    let a = kk / (p.sh * p.sw);
    let b = (kk / p.sw) % p.sh;
    let cc = kk % p.sw;
    let s_count = p.wf * p.wh * p.ww;
    let base = p.off_x + g * s_count * p.d + c;
    var sum = 0.0;
    for (var f = a; f < p.wf; f += p.sf) {
        for (var h = b; h < p.wh; h += p.sh) {
            for (var w = cc; w < p.ww; w += p.sw) {
                sum += f32(x[base + ((f * p.wh + h) * p.ww + w) * p.d]);
            }
        }
    }
    let n = (p.wf / p.sf) * (p.wh / p.sh) * (p.ww / p.sw);
    out[p.off_out + idx] = {{T}}(sum / f32(n));
}
