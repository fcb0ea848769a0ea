// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]), as registers.wgsl computes it, laid
// out for software GPUs (llvmpipe, SwiftShader), which run a workgroup's invocations as the lanes
// of CPU SIMD registers and load storage buffers lane by lane.
//
// A workgroup owns 8 columns of C and its 32 invocations 4 rows each (128 rows). W's addresses
// then depend on the workgroup alone: every lane reads the same W words, which the compiler
// turns into one load and a broadcast instead of a gather. Each lane's 4x8 block does 128
// multiply-adds per 4 gathered A vectors, twice the 4x4 kernel's. There is no early return,
// so all lanes stay active (a partly masked workgroup loses the uniform loads): rows and
// columns past the edge are clamped on load and skipped on store.
//
// The A gathers are what is left to pay: in llvmpipe (Mesa 25.0.7) each is a loop over lanes,
// with a bounds compare, a branch, a load and a blend per component. Building each lane's A
// vector from 8 workgroup-uniform loads and selects instead (8 lanes a workgroup) ran 512³ at
// 2.8 GFLOP/s against 14.5 for the same workgroup gathering.

#include matmul/io

// Everything is spelled out in scalars (`#unroll`, no arrays indexed by a loop counter): a
// software GPU's compiler keeps such arrays in memory, which costs more than this kernel saves.
@compute @workgroup_size(32, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wid.x * 8u;
    let m0 = (wid.y * 32u + lid) * 4u;
    let ab = p.off_a + wid.z * p.a_batch;
    let wb = p.off_w + wid.z * p.w_batch;
#unroll r 4
    let a{{r}} = ab + min(m0 + {{r}}u, p.m - 1u) * p.k;
#endunroll
#unroll c 8
    let w{{c}} = wb + min(n0 + {{c}}u, p.n - 1u) * p.k;
#endunroll

    // cR_H: row R, columns 4H..4H+3.
#unroll r 4
    var c{{r}}_0 = vec4<f32>(0.0);
    var c{{r}}_1 = vec4<f32>(0.0);
#endunroll
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
#unroll c 8
        let y{{c}} = load_w(w{{c}} + kk);
#endunroll
#unroll r 4
        let x{{r}} = load_a(a{{r}} + kk);
        c{{r}}_0 += vec4<f32>(dot(x{{r}}, y0), dot(x{{r}}, y1), dot(x{{r}}, y2), dot(x{{r}}, y3));
        c{{r}}_1 += vec4<f32>(dot(x{{r}}, y4), dot(x{{r}}, y5), dot(x{{r}}, y6), dot(x{{r}}, y7));
#endunroll
    }
#if VEC4
#else
    for (var kk = k4; kk < p.k; kk += 1u) {
        let y0 = vec4<f32>(w_at(w0 + kk), w_at(w1 + kk), w_at(w2 + kk), w_at(w3 + kk));
        let y1 = vec4<f32>(w_at(w4 + kk), w_at(w5 + kk), w_at(w6 + kk), w_at(w7 + kk));
#unroll r 4
        let x{{r}} = f32(a[a{{r}} + kk]);
        c{{r}}_0 += x{{r}} * y0;
        c{{r}}_1 += x{{r}} * y1;
#endunroll
    }
#endif

    store_block(wid.z, m0, n0, array<vec4<f32>, 4>(c0_0, c1_0, c2_0, c3_0));
    store_block(wid.z, m0, n0 + 4u, array<vec4<f32>, 4>(c0_1, c1_1, c2_1, c3_1));
}
