// out[i] = cond[p.off_cond] != 0 ? a[i] : b[i]: one flag picks a whole tensor. The step cache
// uses it to take the cached residual or the freshly computed blocks' output. When the flag
// picks `a`, `b` may hold anything (the dispatches that would have written it were skipped),
// so the branch is an `if`, never arithmetic that would carry a NaN from the unpicked side.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_COND}}) var<storage, read> cond: array<f32>;
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
    if (cond[p.off_cond] != 0.0) {
        out[p.off_out + i] = a[p.off_a + i];
    } else {
        out[p.off_out + i] = b[p.off_b + i];
    }
}
