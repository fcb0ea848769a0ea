// adaLN modulation: out = x * (1 + scale) + shift for the batch b that row r belongs to (the
// formula is adaln.wgsl's). Adding the learned table here saves a pass over (B, C, D) per block.

struct Params {
    rows: u32,
    d: u32,
    row0: u32,
    rows_per_batch: u32,
    mod_chunks: u32,
    shift_m: u32,
    scale_m: u32,
    shift_t: u32,
    scale_t: u32,
    off_x: u32,
    off_mod: u32,
    off_table: u32,
    off_out: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<{{T}}>;
@group(0) @binding(2) var<storage, read> mods: array<{{T}}>;
@group(0) @binding(3) var<storage, read> table: array<{{T}}>;
@group(0) @binding(4) var<storage, read_write> out: array<{{T}}>;

#include adaln

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.rows * p.d) {
        return;
    }
    let r = i / p.d;
    let c = i - r * p.d;
    let b = (p.row0 + r) / p.rows_per_batch;
    out[p.off_out + i] = {{T}}(adaln(f32(x[p.off_x + i]), b, c));
}
