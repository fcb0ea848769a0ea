// Multi-head attention with an online softmax, the tiled kernel (tiled.wgsl) written with
// loops over arrays, for heads over 128 wide (the VAE's one 512-wide head): there the query and
// accumulator cannot stay in registers whichever way they are written, and unrolling them would
// only lengthen the shader.
//
// One invocation owns one query row of one head; the workgroup's 64 queries share tiles of KT
// keys and values in workgroup memory. Per tile: scores, the tile's max, one rescale of the
// running sum and accumulator, then the weighted values.

#include attention/io
#include attention/tiles

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
    let hrow = head_bias_row(h, i);
#endif
#if BIAS
    let brow = bias_row(z, i);
#endif

    for (var t0 = 0u; t0 < p.lk; t0 += KT) {
        let nk = min(KT, p.lk - t0);
        load_tile(z, t0, nk, hc, lid);
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
