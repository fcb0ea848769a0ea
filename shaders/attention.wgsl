// Multi-head attention with an online softmax: memory never grows with queries x keys.
//
// Sequence z has queries i < LQ and keys j < LK. Rows hold all heads side by side
// ((..., H * DH), as a Linear produces them), so no head transpose is ever materialised.
// One invocation owns one query row of one head; the workgroup's 64 queries share tiles of KT
// keys and values in workgroup memory. Per tile: scores, the tile's max, one rescale of the
// running sum and accumulator, then the weighted values.
//
// BIAS: an additive bias (bias_seqs, 1 or LQ, LK), read for sequence (z0 + z) % bias_seqs
//       (a text padding mask per batch item, or a Swin mask per window).
// HEAD_BIAS: a bias per head (H, LQ, LK), shared by all sequences (T5's relative positions).
// VEC4: DH is a multiple of 4: queries, accumulators and the key/value tiles are held as vec4s
//       (a quarter of the loop trips and index arithmetic; 16-byte workgroup loads).
// MAP:  rows are gathered through an index map: token i of sequence z lives at row
//       map[z * LQ + i] (self-attention, LQ == LK), and its output goes back to that row. This
//       is how shifted windows are attended without rolling the hidden state.

struct Params {
    lq: u32,
    lk: u32,
    heads: u32,
    z0: u32,
    ld_q: u32,
    ld_k: u32,
    ld_v: u32,
    ld_o: u32,
    off_q: u32,
    off_k: u32,
    off_v: u32,
    off_o: u32,
    off_bias: u32,
    bias_seqs: u32,
    bias_per_q: u32,
    off_map: u32,
    map_base: u32,
    i0: u32,
    nq: u32,
    scale: f32,
    off_head_bias: u32,
}

const DH: u32 = {{DH}}u;
const KT: u32 = {{KT}}u;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qb: array<{{T}}>;
@group(0) @binding(2) var<storage, read> kb: array<{{T}}>;
@group(0) @binding(3) var<storage, read> vb: array<{{T}}>;
#if BIAS
@group(0) @binding({{B_BIAS}}) var<storage, read> bias: array<{{T}}>;
#endif
#if HEAD_BIAS
@group(0) @binding({{B_HEAD_BIAS}}) var<storage, read> hbias: array<{{T}}>;
#endif
#if MAP
@group(0) @binding({{B_MAP}}) var<storage, read> rowmap: array<u32>;
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

var<workgroup> ks: array<VT, KT * DV>;
var<workgroup> vs: array<VT, KT * DV>;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.z;
    let h = wid.y;
    let i = p.i0 + wid.x * WG + lid;
    let live = i < p.i0 + p.nq;
    let hc = h * DH;

    var q: array<VT, DV>;
    var acc: array<VT, DV>;
    var m = -3.402823e38;
    var l = 0.0;
    var qr = 0u;
    if (live) {
        qr = q_row(z, i);
        let base = p.off_q + qr * p.ld_q + hc;
        for (var d = 0u; d < DV; d += 1u) {
            q[d] = load_q(base + d * VW) * p.scale;
            acc[d] = VT(0.0);
        }
    }
#if HEAD_BIAS
    let hrow = p.off_head_bias + (h * p.lq + i) * p.lk;
#endif
#if BIAS
    let bz = (p.z0 + z) % p.bias_seqs;
    let brow = p.off_bias + (bz * select(1u, p.lq, p.bias_per_q == 1u) + select(0u, i, p.bias_per_q == 1u)) * p.lk;
#endif

    for (var t0 = 0u; t0 < p.lk; t0 += KT) {
        let nk = min(KT, p.lk - t0);
        for (var e = lid; e < nk * DV; e += WG) {
            let j = e / DV;
            let d = (e - j * DV) * VW;
            let kr = k_row(z, t0 + j);
            ks[e] = load_k(p.off_k + kr * p.ld_k + hc + d);
            vs[e] = load_v(p.off_v + kr * p.ld_v + hc + d);
        }
        workgroupBarrier();
        if (live) {
            var sc: array<f32, KT>;
            var tmax = -3.402823e38;
            for (var j = 0u; j < nk; j += 1u) {
                var s = 0.0;
                let kbase = j * DV;
                for (var d = 0u; d < DV; d += 1u) {
                    s += dotv(q[d], ks[kbase + d]);
                }
#if BIAS
                s += f32(bias[brow + t0 + j]);
#endif
#if HEAD_BIAS
                s += f32(hbias[hrow + t0 + j]);
#endif
                sc[j] = s;
                tmax = max(tmax, s);
            }
            let mnew = max(m, tmax);
            let corr = exp(m - mnew);
            l *= corr;
            for (var d = 0u; d < DV; d += 1u) {
                acc[d] *= corr;
            }
            for (var j = 0u; j < nk; j += 1u) {
                let pj = exp(sc[j] - mnew);
                l += pj;
                let vbase = j * DV;
                for (var d = 0u; d < DV; d += 1u) {
                    acc[d] += pj * vs[vbase + d];
                }
            }
            m = mnew;
        }
        workgroupBarrier();
    }

    if (live) {
        let inv = 1.0 / l;
        let base = p.off_o + qr * p.ld_o + hc;
        for (var d = 0u; d < DV; d += 1u) {
            store_o(base + d * VW, acc[d] * inv);
        }
    }
}
