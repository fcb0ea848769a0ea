// Multi-head attention with an online softmax, as tiled.wgsl computes it, laid out for
// software GPUs (llvmpipe, SwiftShader), which run a workgroup's invocations as the lanes of CPU
// SIMD registers and load memory lane by lane.
//
// There, what costs is the number of scalar loads per multiply-add, not arithmetic: every load
// from a storage buffer is a bounds check and a branch, and workgroup memory read inside a loop
// is gathered lane by lane even when every lane reads the same word. The tiled kernel does one
// multiply-add per key or value word it reads. Here an invocation owns R = 8 queries, keys and
// values are read straight from their buffers at addresses that depend on the workgroup alone
// (one load and a broadcast), KJ = 4 at a time, and each word read serves all R queries: eight
// multiply-adds per load, no workgroup memory and no barriers.
//
// Every loop has a constant trip count except the walk over keys. llvmpipe unrolls only part of
// them: the rest index the arrays below at run time, and it gathers those from the stack lane
// by lane. Written out as separate variables (`#unroll`, as tiled.wgsl does), 64-wide heads
// ran 1.5x faster over 4096 keys, but the first `bench profile` (no shader cache) took 454 s
// against 57 s, as llvmpipe compiled the straight-line code, and the 16-key proxy
// cross-attention ran 20 % slower: not worth it. With R = 4 (16 invocations on 64 queries),
// written out the same way, 4096 keys ran no faster (`bench payoff` at 64x64: time ratio 0.416,
// where this kernel gives 0.40-0.42) and the rows op tests took 212 s to compile against 43.
// A workgroup is 8 invocations (one 256-bit SIMD register) on 64 queries, as in the tiled
// kernel, so both dispatch alike. Queries past the end compute on a clamped copy of the last
// one and store nothing; keys past the end repeat the last key with weight 0. All lanes stay
// active, which keeps the key and value loads uniform.

#include attention/io

const WG: u32 = 8u;
const R: u32 = 8u;
const KJ: u32 = 4u;
const NEG: f32 = -3.402823e38;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.z;
    let h = wid.y;
    let hc = h * DH;
    let end = p.i0 + p.nq;
    let first = p.i0 + wid.x * (WG * R) + lid;

    var q: array<VT, R * DV>;
    var acc: array<VT, R * DV>;
    var m: array<f32, R>;
    var l: array<f32, R>;
    var qr: array<u32, R>;
#if BIAS
    var brow: array<u32, R>;
#endif
#if HEAD_BIAS
    var hrow: array<u32, R>;
#endif
    for (var r = 0u; r < R; r += 1u) {
        let qi = min(first + r * WG, end - 1u);
        qr[r] = q_row(z, qi);
#if BIAS
        brow[r] = bias_row(z, qi);
#endif
#if HEAD_BIAS
        hrow[r] = head_bias_row(h, qi);
#endif
        let base = p.off_q + qr[r] * p.ld_q + hc;
        for (var d = 0u; d < DV; d += 1u) {
            q[r * DV + d] = load_q(base + d * VW) * p.scale;
            acc[r * DV + d] = VT(0.0);
        }
        m[r] = NEG;
        l[r] = 0.0;
    }
    let last = p.lk - 1u;
    for (var t0 = 0u; t0 < p.lk; t0 += KJ) {
        var kr: array<u32, KJ>;
        var vr: array<u32, KJ>;
        for (var j = 0u; j < KJ; j += 1u) {
            let row = k_row(z, min(t0 + j, last));
            kr[j] = p.off_k + row * p.ld_k + hc;
            vr[j] = p.off_v + row * p.ld_v + hc;
        }
        // Scores, then (in place) weights, of query r for key t0 + j at s[r * KJ + j]. Zeroed
        // explicitly: WGSL zeroes a `var` in a loop body on every trip, but Chromium on
        // SwiftShader kept the last trip's values (the browser op tests caught it).
        var s: array<f32, R * KJ>;
        for (var e = 0u; e < R * KJ; e += 1u) {
            s[e] = 0.0;
        }
        for (var d = 0u; d < DV; d += 1u) {
            var kv: array<VT, KJ>;
            for (var j = 0u; j < KJ; j += 1u) {
                kv[j] = load_k(kr[j] + d * VW);
            }
            for (var r = 0u; r < R; r += 1u) {
                for (var j = 0u; j < KJ; j += 1u) {
                    s[r * KJ + j] += dotv(q[r * DV + d], kv[j]);
                }
            }
        }
        var corr: array<f32, R>;
        for (var r = 0u; r < R; r += 1u) {
            var mx = m[r];
            for (var j = 0u; j < KJ; j += 1u) {
                let key = min(t0 + j, last);
                var sv = s[r * KJ + j];
#if BIAS
                sv += f32(bias[brow[r] + key]);
#endif
#if HEAD_BIAS
                sv += f32(hbias[hrow[r] + key]);
#endif
                sv = select(NEG, sv, t0 + j <= last);
                s[r * KJ + j] = sv;
                mx = max(mx, sv);
            }
            corr[r] = exp(m[r] - mx);
            var sum = l[r] * corr[r];
            for (var j = 0u; j < KJ; j += 1u) {
                let w = select(0.0, exp(s[r * KJ + j] - mx), t0 + j <= last);
                s[r * KJ + j] = w;
                sum += w;
            }
            l[r] = sum;
            m[r] = mx;
        }
        for (var d = 0u; d < DV; d += 1u) {
            var vv: array<VT, KJ>;
            for (var j = 0u; j < KJ; j += 1u) {
                vv[j] = load_v(vr[j] + d * VW);
            }
            for (var r = 0u; r < R; r += 1u) {
                var a = acc[r * DV + d] * corr[r];
                for (var j = 0u; j < KJ; j += 1u) {
                    a += s[r * KJ + j] * vv[j];
                }
                acc[r * DV + d] = a;
            }
        }
    }
    for (var r = 0u; r < R; r += 1u) {
        if (first + r * WG < end) {
            let inv = 1.0 / l[r];
            let base = p.off_o + qr[r] * p.ld_o + hc;
            for (var d = 0u; d < DV; d += 1u) {
                store_o(base + d * VW, acc[r * DV + d] * inv);
            }
        }
    }
}
