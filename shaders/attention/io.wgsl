// What the attention kernels share (`#include attention/io`): their parameters, bindings, the
// loads and stores of head rows, and where query rows, key rows and bias rows live, so they
// differ only in how they walk the keys.
//
// Sequence z has queries i < LQ and keys j < LK. Rows hold all heads side by side
// ((..., H * DH), as a Linear produces them), so no head transpose is ever materialised.
//
// BIAS: an additive bias (bias_seqs, 1 or LQ, LK), read for sequence (z0 + z) % bias_seqs
//       (a text padding mask per batch item, or a Swin mask per window).
// HEAD_BIAS: a bias per head (H, LQ, LK), shared by all sequences (T5's relative positions).
// VEC4: DH is a multiple of 4: queries, accumulators and keys/values are handled as vec4s
//       (a quarter of the loop trips and index arithmetic).
// MAP:  rows are gathered through an index map: token i of sequence z lives at row
//       map[z * LQ + i] (self-attention, LQ == LK), and its output goes back to that row. This
//       is how shifted windows are attended without rolling the hidden state.

const DH: u32 = {{DH}}u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_QB}}) var<storage, read> qb: array<{{T}}>;
@group(0) @binding({{B_KB}}) var<storage, read> kb: array<{{T}}>;
@group(0) @binding({{B_VB}}) var<storage, read> vb: array<{{T}}>;
#if BIAS
@group(0) @binding({{B_BIAS}}) var<storage, read> bias: array<{{T}}>;
#endif
#if HEAD_BIAS
@group(0) @binding({{B_HBIAS}}) var<storage, read> hbias: array<{{T}}>;
#endif
#if MAP
@group(0) @binding({{B_ROWMAP}}) var<storage, read> rowmap: array<u32>;
#endif
@group(0) @binding({{B_OUT}}) var<storage, read_write> ob: array<{{T}}>;

#if VEC4
alias VT = vec4<f32>;
const VW: u32 = 4u;
fn dotv(a: VT, b: VT) -> f32 { return dot(a, b); }
fn load_q(i: u32) -> VT { return VT(f32(qb[i]), f32(qb[i + 1u]), f32(qb[i + 2u]), f32(qb[i + 3u])); }
fn load_k(i: u32) -> VT { return VT(f32(kb[i]), f32(kb[i + 1u]), f32(kb[i + 2u]), f32(kb[i + 3u])); }
fn load_v(i: u32) -> VT { return VT(f32(vb[i]), f32(vb[i + 1u]), f32(vb[i + 2u]), f32(vb[i + 3u])); }
fn store_o(i: u32, x: VT) {
    ob[i] = {{T}}(x.x);
    ob[i + 1u] = {{T}}(x.y);
    ob[i + 2u] = {{T}}(x.z);
    ob[i + 3u] = {{T}}(x.w);
}
#else
alias VT = f32;
const VW: u32 = 1u;
fn dotv(a: VT, b: VT) -> f32 { return a * b; }
fn load_q(i: u32) -> VT { return f32(qb[i]); }
fn load_k(i: u32) -> VT { return f32(kb[i]); }
fn load_v(i: u32) -> VT { return f32(vb[i]); }
fn store_o(i: u32, x: VT) { ob[i] = {{T}}(x); }
#endif
// Vectors per head row.
const DV: u32 = DH / VW;

// Row (inside the bound range) of query i of local sequence z.
fn q_row(z: u32, i: u32) -> u32 {
#if MAP
    return rowmap[p.off_map + z * p.lq + i] - p.map_base;
#else
    return z * p.nq + i - p.i0;
#endif
}

fn k_row(z: u32, j: u32) -> u32 {
#if MAP
    return rowmap[p.off_map + z * p.lk + j] - p.map_base;
#else
    return z * p.lk + j;
#endif
}

#if BIAS
// Where query i of local sequence z finds its bias row (per sequence, or per query).
fn bias_row(z: u32, i: u32) -> u32 {
    let bz = (p.z0 + z) % p.bias_seqs;
    return p.off_bias + (bz * select(1u, p.lq, p.bias_per_q == 1u) + select(0u, i, p.bias_per_q == 1u)) * p.lk;
}
#endif

#if HEAD_BIAS
// Where query i of head h finds its row of the per-head bias.
fn head_bias_row(h: u32, i: u32) -> u32 {
    return p.off_head_bias + (h * p.lq + i) * p.lk;
}
#endif
