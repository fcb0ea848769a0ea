// out[i] = a[i] OP b[(start + i) % nb]: elementwise with the right side repeated, which covers
// same-shape operands, a row vector over a matrix, and a per-position table over a batch.

struct Params {
    n: u32,
    nb: u32,
    start: u32,
    off_a: u32,
    off_b: u32,
    off_out: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<{{T}}>;
@group(0) @binding(2) var<storage, read> b: array<{{T}}>;
@group(0) @binding(3) var<storage, read_write> out: array<{{T}}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    let x = f32(a[p.off_a + i]);
    let y = f32(b[p.off_b + (p.start + i) % p.nb]);
    out[p.off_out + i] = {{T}}(x {{OP}} y);
}
