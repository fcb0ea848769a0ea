// out[i] = f(x[i]) for the activations the models use.
// INPLACE: out[i] = f(out[i]), one binding (a matmul's output when its GELU is not fused).

@group(0) @binding(0) var<uniform> p: Params;
#if !INPLACE
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
#endif
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/activations

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.n) {
        return;
    }
#if INPLACE
    out[p.off_out + i] = {{T}}({{FN}}(f32(out[p.off_out + i])));
#else
    out[p.off_out + i] = {{T}}({{FN}}(f32(x[p.off_x + i])));
#endif
}
