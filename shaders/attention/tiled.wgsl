// Multi-head attention with an online softmax: memory never grows with queries x keys.
//
// One invocation owns one query row of one head; the workgroup's 64 queries share tiles of KT
// keys and values in workgroup memory, which saves re-reading them from memory: made for real
// GPUs. The query row and its accumulator live in registers, as NV separate variables: the
// preprocessor unrolls every walk over them (naga does not unroll loops, and a GPU compiler keeps
// a per-invocation array in registers only when it can resolve each index; the same kernel with
// arrays, loops.wgsl, ran at 0.8 TFLOP/s on an H100). Keys are taken 4 at a time: four
// scores, one max, one rescale of the accumulator, then the four weighted values.
//
// For heads up to 128 wide (NV vectors of VW); wider ones (the VAE's 512) run loops.wgsl,
// whose arrays would spill here anyway. KT is a multiple of 4.

#include attention/io
#include attention/tiles

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.z;
    let h = wid.y;
    let i = p.i0 + wid.x * WG + lid;
    let live = i < p.i0 + p.nq;
    let hc = h * DH;

    var qr = 0u;
    if (live) {
        qr = q_row(z, i);
    }
    let qbase = p.off_q + qr * p.ld_q + hc;
#unroll d NV
    var q{{d}} = VT(0.0);
    var acc{{d}} = VT(0.0);
#endunroll
    if (live) {
#unroll d NV
        q{{d}} = load_q(qbase + {{d}}u * VW) * p.scale;
#endunroll
    }
    var m = -3.402823e38;
    var l = 0.0;
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
            for (var j = 0u; j < nk; j += 4u) {
                // Keys past nk score nothing and weigh 0; their tile slots hold stale values.
                var s = vec4<f32>(-3.402823e38);
#unroll c 4
                if (j + {{c}}u < nk) {
                    let kb = (j + {{c}}u) * DV;
                    var sc = 0.0;
#unroll d NV
                    sc += dotv(q{{d}}, ks[kb + {{d}}u]);
#endunroll
#if BIAS
                    sc += f32(bias[brow + t0 + j + {{c}}u]);
#endif
#if HEAD_BIAS
                    sc += f32(hbias[hrow + t0 + j + {{c}}u]);
#endif
                    s[{{c}}] = sc;
                }
#endunroll
                let mnew = max(m, max(max(s.x, s.y), max(s.z, s.w)));
                let corr = exp(m - mnew);
                let valid = vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(nk);
                let pw = select(vec4<f32>(0.0), exp(s - mnew), valid);
                l = l * corr + pw.x + pw.y + pw.z + pw.w;
                let vb = j * DV;
#unroll d NV
                acc{{d}} = acc{{d}} * corr + pw.x * vs[vb + {{d}}u] + pw.y * vs[vb + DV + {{d}}u]
                    + pw.z * vs[vb + 2u * DV + {{d}}u] + pw.w * vs[vb + 3u * DV + {{d}}u];
#endunroll
                m = mnew;
            }
        }
        workgroupBarrier();
    }

    if (live) {
        let inv = 1.0 / l;
        let base = p.off_o + qr * p.ld_o + hc;
#unroll d NV
        store_o(base + {{d}}u * VW, acc{{d}} * inv);
#endunroll
    }
}
