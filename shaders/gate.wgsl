// Gated residual: out = x + gate * y (RESIDUAL) or out = gate * y, where for the batch b that
// row r belongs to, gate = mods[b, GATE_M] + table[GATE_T].

struct Params {
    rows: u32,
    d: u32,
    row0: u32,
    rows_per_batch: u32,
    mod_chunks: u32,
    gate_m: u32,
    gate_t: u32,
    off_y: u32,
    off_mod: u32,
    off_table: u32,
    off_x: u32,
    off_out: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<{{T}}>;
@group(0) @binding(2) var<storage, read> mods: array<{{T}}>;
@group(0) @binding(3) var<storage, read> table: array<{{T}}>;
#if RESIDUAL
@group(0) @binding(4) var<storage, read> x: array<{{T}}>;
@group(0) @binding(5) var<storage, read_write> out: array<{{T}}>;
#else
@group(0) @binding(4) var<storage, read_write> out: array<{{T}}>;
#endif

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
    let g = f32(mods[p.off_mod + (b * p.mod_chunks + p.gate_m) * p.d + c])
        + f32(table[p.off_table + p.gate_t * p.d + c]);
    var v = g * f32(y[p.off_y + i]);
#if RESIDUAL
    v += f32(x[p.off_x + i]);
#endif
    out[p.off_out + i] = {{T}}(v);
}
