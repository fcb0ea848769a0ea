// adaLN modulation: out = x * (1 + scale) + shift for the batch item that row r belongs to
// (common/adaln.wgsl). Adding the learned table here saves a pass over (B, C, D) per block.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
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
    out[p.off_out + i] = {{T}}(ada_modulate(f32(x[p.off_x + i]), ada_item(r), c));
}
