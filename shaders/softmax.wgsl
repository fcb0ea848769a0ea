// Softmax over the last dimension, one workgroup per row, max-subtracted for stability.

const WG: u32 = {{WG}}u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
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
    var m = -3.402823e38;
    for (var c = lid; c < p.d; c += WG) {
        m = max(m, f32(x[base + c]));
    }
    m = reduce_max(m, lid);
    var sum = 0.0;
    for (var c = lid; c < p.d; c += WG) {
        sum += exp(f32(x[base + c]) - m);
    }
    let inv = 1.0 / reduce_sum(sum, lid);
    let ob = p.off_out + row * p.d;
    for (var c = lid; c < p.d; c += WG) {
        out[ob + c] = {{T}}(exp(f32(x[base + c]) - m) * inv);
    }
}
