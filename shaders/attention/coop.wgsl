// Multi-head attention on cooperative matrices (tensor cores): S = Q·Kᵀ and O = P·V as f16
// fragments with f32 sums. f16 graphs only, heads up to 128 wide (src/ops/attention/variants.rs).
//
// One workgroup is one subgroup ({{SG}} invocations) on BQ queries of one head: their rows,
// scaled and zero-padded to DP columns, are held as FQ x FD fragments for the whole walk over
// the keys, which come BK at a time through workgroup memory.
//
// Two passes over the keys instead of FlashAttention's one: fragments are opaque (which
// invocation holds which element is the driver's business), so the output's rows cannot be
// rescaled in registers when a row's running max grows, and rescaling them through workgroup
// memory would need BQ x DP f32 there (10 KiB at the released head size) on top of the tiles.
// Pass 1 computes the scores and each row's max and sum of exponentials; pass 2 computes them
// again and accumulates the final probabilities times the values: half as many multiply-adds
// again (Q·Kᵀ twice), an exact softmax, and the output never leaves its fragments until it is
// stored. Whether that beats `tiled` is the autotuner's call on each device.
//
// Every cooperative operation is in workgroup-uniform control flow: the loops run a number of
// times set by the parameters, and only the scalar softmax stage branches per invocation.

enable wgpu_cooperative_matrix;

const CM: u32 = {{CM}}u; // fragment edge
const SG: u32 = {{SG}}u; // invocations: one subgroup
const BQ: u32 = {{FQ}}u * CM; // queries per workgroup
const BK: u32 = {{FK}}u * CM; // keys per tile
const DP: u32 = {{FD}}u * CM; // the head's width padded to whole fragments
// Row strides in workgroup memory: multiples of 16 bytes (as fragment loads want), padded so
// that consecutive rows start in different banks.
const LDD: u32 = DP + 8u; // f16 key, value (and query) rows
const LDS: u32 = BK + 4u; // f32 score rows
const LDP: u32 = BK + 8u; // f16 probability rows

#include attention/io

// Keys (first the queries, a fragment's rows at a time) and values, row-major.
var<workgroup> ks: array<f16, BK * LDD>;
var<workgroup> vs: array<f16, BK * LDD>;
// The tile's scores; at the end, one output fragment at a time on its way out.
var<workgroup> ss: array<f32, BQ * LDS>;
// The tile's probabilities (pass 2), the A operand of P·V.
var<workgroup> ps: array<f16, BQ * LDP>;
// Each query row's max score and sum of exponentials: owned by invocation row % SG.
var<workgroup> row_m: array<f32, BQ>;
var<workgroup> row_l: array<f32, BQ>;

// Queries i0 .. i0 + CM of sequence z (the block's rows r0 ..), scaled, into ks's first CM rows;
// rows past the chunk's queries and columns past DH are zeros.
fn stage_queries(z: u32, r0: u32, hc: u32, lane: u32) {
    for (var e = lane; e < CM * DP; e += SG) {
        let r = e / DP;
        let d = e - r * DP;
        let i = r0 + r;
        var x = 0.0;
        if (i < p.i0 + p.nq && d < DH) {
            x = load_q(p.off_q + q_row(z, i) * p.ld_q + hc + d) * p.scale;
        }
        ks[r * LDD + d] = f16(x);
    }
}

// Keys (and, when `values`, values) t0 .. t0 + nk of sequence z into ks (and vs); rows past
// nk and columns past DH are zeros, so they add nothing to any sum.
fn load_keys(z: u32, t0: u32, nk: u32, hc: u32, lane: u32, values: bool) {
    for (var e = lane; e < BK * DP; e += SG) {
        let j = e / DP;
        let d = e - j * DP;
        var kx = 0.0;
        var vx = 0.0;
        if (j < nk && d < DH) {
            let kr = k_row(z, t0 + j);
            kx = load_k(p.off_k + kr * p.ld_k + hc + d);
            if (values) {
                vx = load_v(p.off_v + kr * p.ld_v + hc + d);
            }
        }
        ks[j * LDD + d] = f16(kx);
        if (values) {
            vs[j * LDD + d] = f16(vx);
        }
    }
}

// The score of the tile's row r (query i) and column c (key t0 + c), with the biases added
// as the other kernels add them.
fn score(z: u32, h: u32, i: u32, r: u32, t0: u32, c: u32) -> f32 {
    var s = ss[r * LDS + c];
#if BIAS
    s += f32(bias[bias_row(z, i) + t0 + c]);
#endif
#if HEAD_BIAS
    s += f32(hbias[head_bias_row(h, i) + t0 + c]);
#endif
    return s;
}

// The scalar stages are functions of their own: their loops and branches depend on the
// invocation, and naga's uniformity analysis accepts the cooperative operations after a call
// to them (not after the same loops written inline).

// Pass 1: each live row's max score and sum of exponentials, updated by the tile's scores.
fn row_stats(z: u32, h: u32, q0: u32, t0: u32, nk: u32, lane: u32) {
    for (var r = lane; r < BQ; r += SG) {
        let i = q0 + r;
        if (i < p.i0 + p.nq) {
            var tmax = -3.402823e38;
            for (var c = 0u; c < nk; c += 1u) {
                tmax = max(tmax, score(z, h, i, r, t0, c));
            }
            let m = row_m[r];
            let mnew = max(m, tmax);
            var l = row_l[r] * exp(m - mnew);
            for (var c = 0u; c < nk; c += 1u) {
                l += exp(score(z, h, i, r, t0, c) - mnew);
            }
            row_m[r] = mnew;
            row_l[r] = l;
        }
    }
}

// Pass 2: the tile's final probabilities into ps; keys past nk and rows past the queries
// weigh 0.
fn probabilities(z: u32, h: u32, q0: u32, t0: u32, nk: u32, lane: u32) {
    for (var r = lane; r < BQ; r += SG) {
        let i = q0 + r;
        let live = i < p.i0 + p.nq;
        let m = row_m[r];
        let inv = select(0.0, 1.0 / row_l[r], live);
        for (var c = 0u; c < BK; c += 1u) {
            var pr = 0.0;
            if (live && c < nk) {
                pr = exp(score(z, h, i, r, t0, c) - m) * inv;
            }
            ps[r * LDP + c] = f16(pr);
        }
    }
}

// The output fragment in ss (rows r0 .., head columns c0 ..): its live rows and the head's DH
// columns.
fn store_fragment(z: u32, hc: u32, r0: u32, c0: u32, lane: u32) {
    for (var e = lane; e < CM * CM; e += SG) {
        let r = e / CM;
        let c = c0 + e % CM;
        let i = r0 + r;
        if (i < p.i0 + p.nq && c < DH) {
            ob[p.off_o + q_row(z, i) * p.ld_o + hc + c] = {{T}}(ss[r * LDS + e % CM]);
        }
    }
}

@compute @workgroup_size(SG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let z = wid.z;
    let h = wid.y;
    let hc = h * DH;
    let q0 = p.i0 + wid.x * BQ;

    for (var e = lane; e < BQ * LDS; e += SG) {
        ss[e] = 0.0;
    }
    for (var r = lane; r < BQ; r += SG) {
        row_m[r] = -3.402823e38;
        row_l[r] = 0.0;
    }
    workgroupBarrier();
    let zero = coopLoadT<coop_mat{{CM}}x{{CM}}<f32, C>>(&ss[0], LDS);

    // The block's queries as A fragments, staged a fragment's rows at a time.
#unroll i FQ
    workgroupBarrier();
    stage_queries(z, q0 + {{i}}u * CM, hc, lane);
    workgroupBarrier();
#unroll d FD
    let q{{i}}_{{d}} = coopLoadT<coop_mat{{CM}}x{{CM}}<f16, A>>(&ks[{{d}}u * CM], LDD);
#endunroll
#endunroll
#unroll i FQ
#unroll d FD
    var o{{i}}_{{d}} = zero;
#endunroll
#endunroll

    // Pass 1: each row's max and sum of exponentials. (The passes are two loops, not one loop
    // with a branch on the pass: naga takes a branch on a loop variable for non-uniform control
    // flow, where cooperative operations are refused.)
    for (var t0 = 0u; t0 < p.lk; t0 += BK) {
        let nk = min(BK, p.lk - t0);
        workgroupBarrier();
        load_keys(z, t0, nk, hc, lane, false);
        workgroupBarrier();
#include attention/coop_scores
        workgroupBarrier();
        row_stats(z, h, q0, t0, nk, lane);
    }

    // Pass 2: the final probabilities, and O += P·V (V is row-major in vs).
    for (var t0 = 0u; t0 < p.lk; t0 += BK) {
        let nk = min(BK, p.lk - t0);
        workgroupBarrier();
        load_keys(z, t0, nk, hc, lane, true);
        workgroupBarrier();
#include attention/coop_scores
        workgroupBarrier();
        probabilities(z, h, q0, t0, nk, lane);
        workgroupBarrier();
#unroll i FQ
#unroll j FK
        let p{{i}}_{{j}} = coopLoadT<coop_mat{{CM}}x{{CM}}<f16, A>>(&ps[{{i}}u * CM * LDP + {{j}}u * CM], LDP);
#endunroll
#endunroll
#unroll d FD
#unroll j FK
        let v{{d}}_{{j}} = coopLoadT<coop_mat{{CM}}x{{CM}}<f16, B>>(&vs[{{j}}u * CM * LDD + {{d}}u * CM], LDD);
#unroll i FQ
        o{{i}}_{{d}} = coopMultiplyAdd(p{{i}}_{{j}}, v{{d}}_{{j}}, o{{i}}_{{d}});
#endunroll
#endunroll
#endunroll
    }

    // The output, a fragment at a time through ss: its live rows and the head's DH columns.
#unroll i FQ
#unroll d FD
    workgroupBarrier();
    coopStoreT(o{{i}}_{{d}}, &ss[0], LDS);
    workgroupBarrier();
    store_fragment(z, hc, q0 + {{i}}u * CM, {{d}}u * CM, lane);
#endunroll
#endunroll
}
