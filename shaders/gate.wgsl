// Gated residual: out = x + gate * y (RESIDUAL) or out = gate * y, the gate being the adaLN
// vector of the batch item that row r belongs to (common/adaln.wgsl).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_Y}}) var<storage, read> y: array<{{T}}>;
#if RESIDUAL
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
#endif
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/adaln
#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.rows * p.d) {
        return;
    }
    let r = i / p.d;
    let c = i - r * p.d;
    var v = ada_gate(ada_item(r), c) * f32(y[p.off_y + i]);
#if RESIDUAL
    v += f32(x[p.off_x + i]);
#endif
    out[p.off_out + i] = {{T}}(v);
}
