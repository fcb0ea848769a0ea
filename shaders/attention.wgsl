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

var<workgroup> ks: array<f32, KT * DH>;
var<workgroup> vs: array<f32, KT * DH>;

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

    var q: array<f32, DH>;
    var acc: array<f32, DH>;
    var m = -3.402823e38;
    var l = 0.0;
    var qr = 0u;
    if (live) {
        qr = q_row(z, i);
        let base = p.off_q + qr * p.ld_q + hc;
        for (var d = 0u; d < DH; d += 1u) {
            q[d] = f32(qb[base + d]) * p.scale;
            acc[d] = 0.0;
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
        for (var e = lid; e < nk * DH; e += WG) {
            let j = e / DH;
            let d = e - j * DH;
            let kr = k_row(z, t0 + j);
            ks[e] = f32(kb[p.off_k + kr * p.ld_k + hc + d]);
            vs[e] = f32(vb[p.off_v + kr * p.ld_v + hc + d]);
        }
        workgroupBarrier();
        if (live) {
            var sc: array<f32, KT>;
            var tmax = -3.402823e38;
            for (var j = 0u; j < nk; j += 1u) {
                var s = 0.0;
                let kbase = j * DH;
                for (var d = 0u; d < DH; d += 1u) {
                    s += q[d] * ks[kbase + d];
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
            for (var d = 0u; d < DH; d += 1u) {
                acc[d] *= corr;
            }
            for (var j = 0u; j < nk; j += 1u) {
                let pj = exp(sc[j] - mnew);
                l += pj;
                let vbase = j * DH;
                for (var d = 0u; d < DH; d += 1u) {
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
        for (var d = 0u; d < DH; d += 1u) {
            ob[base + d] = {{T}}(acc[d] * inv);
        }
    }
}
