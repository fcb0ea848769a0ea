// adaLN modulation of one value (`#include adaln`), shared by modulate.wgsl and the MODULATE
// variant of layer_norm.wgsl: `v * (1 + scale) + shift` for channel c of batch item b, where
//   shift = mods[b, shift_m] + table[shift_t],  scale = mods[b, scale_m] + table[scale_t].
// The including kernel declares `p` (with d, mod_chunks, shift_m, scale_m, shift_t, scale_t,
// off_mod, off_table) and the `mods` and `table` bindings.
fn adaln(v: f32, b: u32, c: u32) -> f32 {
    let mb = p.off_mod + b * p.mod_chunks * p.d + c;
    let tb = p.off_table + c;
    let shift = f32(mods[mb + p.shift_m * p.d]) + f32(table[tb + p.shift_t * p.d]);
    let scale = f32(mods[mb + p.scale_m * p.d]) + f32(table[tb + p.scale_t * p.d]);
    return v * (1.0 + scale) + shift;
}
