// The adaLN vectors (`#include common/adaln`), shared by modulate, the MODULATE LayerNorm, gate
// and the matmul's GATE epilogue: the vector of chunk (m, t) for channel c of batch item b is
//   mods[b, m, c] + table[t, c].
// The includer's Params has `ada: AdaParams` (ops/adaln.rs), and the Rust op reads `mods` and
// `table`.

@group(0) @binding({{B_MODS}}) var<storage, read> mods: array<{{T}}>;
@group(0) @binding({{B_TABLE}}) var<storage, read> table: array<{{T}}>;

// The batch item of row `row` of the dispatch.
fn ada_item(row: u32) -> u32 {
    return (p.ada.row0 + row) / p.ada.rows_per_item;
}

fn ada_vector(b: u32, m: u32, t: u32, c: u32) -> f32 {
    return f32(mods[p.ada.off_mod + (b * p.ada.chunks + m) * p.ada.width + c])
        + f32(table[p.ada.off_table + t * p.ada.width + c]);
}

// `v * (1 + scale) + shift`.
fn ada_modulate(v: f32, b: u32, c: u32) -> f32 {
    let shift = ada_vector(b, p.ada.shift_m, p.ada.shift_t, c);
    let scale = ada_vector(b, p.ada.scale_m, p.ada.scale_t, c);
    return v * (1.0 + scale) + shift;
}

fn ada_gate(b: u32, c: u32) -> f32 {
    return ada_vector(b, p.ada.gate_m, p.ada.gate_t, c);
}
