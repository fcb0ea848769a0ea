// out[i] = a[i] OP b[(start + i) % nb]: elementwise with the right side repeated, which covers
// same-shape operands, a row vector over a matrix, and a per-position table over a batch.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_A}}) var<storage, read> a: array<{{T}}>;
@group(0) @binding({{B_B}}) var<storage, read> b: array<{{T}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.n) {
        return;
    }
    let x = f32(a[p.off_a + i]);
    let y = f32(b[p.off_b + (p.start + i) % p.nb]);
    out[p.off_out + i] = {{T}}(x {{OP}} y);
}
