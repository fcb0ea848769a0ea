// out = x + a + c[k] * (a - b): the step cache's stand-in for skipped blocks, their last
// residual `a` moved on along its last change `a - b` by the factor the decision wrote
// (`skip_decision.wgsl`, state ALPHA). A factor of 0 is exactly `x + a`.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
@group(0) @binding({{B_A}}) var<storage, read> a: array<{{T}}>;
@group(0) @binding({{B_B}}) var<storage, read> b: array<{{T}}>;
@group(0) @binding({{B_COEF}}) var<storage, read> coef: array<f32>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.n) {
        return;
    }
    let c = coef[p.off_coef];
    let av = f32(a[p.off_a + i]);
    var v = f32(x[p.off_x + i]) + av;
    if (c != 0.0) {
        v += c * (av - f32(b[p.off_b + i]));
    }
    out[p.off_out + i] = {{T}}(v);
}
