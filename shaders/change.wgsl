// Partial sums of how far x is from a reference: for each slice of 256 elements,
// out[2s] = sum |x - ref| and out[2s + 1] = sum |ref|. The step cache's decision
// (`skip_decision.wgsl`) adds them up; summing per slice keeps every workgroup's work and every
// binding small, and the f32 sums of 256 terms lose nothing the decision can see.

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T_IN}}>;
@group(0) @binding({{B_REF}}) var<storage, read> r: array<{{T_IN}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<f32>;

#include common/index
#include common/reduce

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let s = group_index(wid, nwg);
    // Every invocation reaches the reductions (they hold barriers); past the end adds 0.
    let i = s * WG + lid;
    var d = 0.0;
    var m = 0.0;
    if (s < p.slices && i < p.n) {
        let v = f32(r[p.off_ref + i]);
        d = abs(f32(x[p.off_x + i]) - v);
        m = abs(v);
    }
    let sd = reduce_sum(d, lid);
    let sm = reduce_sum(m, lid);
    if (lid == 0u && s < p.slices) {
        out[p.off_out + 2u * s] = sd;
        out[p.off_out + 2u * s + 1u] = sm;
    }
}
