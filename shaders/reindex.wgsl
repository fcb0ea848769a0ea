// Gather by index arithmetic: out[o] = x[in_index(o)]. The output's coordinates (up to 12
// axes) each map to one input axis (a permutation), optionally rolled: along an input axis of
// size n rolled by s, output coordinate c reads input coordinate (c + n - s) % n, which is
// torch.roll(x, s). Permute, roll, window partition and patchify are all this one kernel.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T_IN}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

fn at(a: array<vec4<u32>, 3>, i: u32) -> u32 {
    return a[i / 4u][i % 4u];
}

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    if (i >= p.n) {
        return;
    }
    var rest = p.start + i;
    var src = 0u;
    for (var a = p.rank; a > 0u; a -= 1u) {
        let n = at(p.dims, a - 1u);
        let c = rest % n;
        rest = rest / n;
        let s = at(p.shifts, a - 1u);
        src += ((c + n - s) % n) * at(p.strides, a - 1u);
    }
    out[p.off_out + i] = {{T}}(x[p.off_x + src]);
}
