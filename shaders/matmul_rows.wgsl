// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]), as matmul.wgsl computes it, laid
// out for software GPUs (llvmpipe, SwiftShader), which run a workgroup's invocations as the lanes
// of CPU SIMD registers and load storage buffers lane by lane.
//
// A workgroup owns 8 columns of C and its 32 invocations 4 rows each (128 rows). W's addresses
// then depend on the workgroup alone: every lane reads the same W words, which the compiler
// turns into one load and a broadcast instead of a gather. Each lane's 4x8 block does 128
// multiply-adds per 4 gathered A vectors, twice the 4x4 kernel's. There is no early return,
// so all lanes stay active (a partly masked workgroup loses the uniform loads): rows and
// columns past the edge are clamped on load and skipped on store.

#include matmul_io

// Everything is spelled out in scalars (no arrays indexed by a loop counter): a software GPU's
// compiler keeps such arrays in memory, which costs more than this kernel saves.
@compute @workgroup_size(32, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wid.x * 8u;
    let m0 = (wid.y * 32u + lid) * 4u;
    let ab = p.off_a + wid.z * p.a_batch;
    let wb = p.off_w + wid.z * p.w_batch;
    let a0 = ab + min(m0, p.m - 1u) * p.k;
    let a1 = ab + min(m0 + 1u, p.m - 1u) * p.k;
    let a2 = ab + min(m0 + 2u, p.m - 1u) * p.k;
    let a3 = ab + min(m0 + 3u, p.m - 1u) * p.k;
    let w0 = wb + min(n0, p.n - 1u) * p.k;
    let w1 = wb + min(n0 + 1u, p.n - 1u) * p.k;
    let w2 = wb + min(n0 + 2u, p.n - 1u) * p.k;
    let w3 = wb + min(n0 + 3u, p.n - 1u) * p.k;
    let w4 = wb + min(n0 + 4u, p.n - 1u) * p.k;
    let w5 = wb + min(n0 + 5u, p.n - 1u) * p.k;
    let w6 = wb + min(n0 + 6u, p.n - 1u) * p.k;
    let w7 = wb + min(n0 + 7u, p.n - 1u) * p.k;

    // cR_H: row R, columns 4H..4H+3.
    var c0_0 = vec4<f32>(0.0);
    var c0_1 = vec4<f32>(0.0);
    var c1_0 = vec4<f32>(0.0);
    var c1_1 = vec4<f32>(0.0);
    var c2_0 = vec4<f32>(0.0);
    var c2_1 = vec4<f32>(0.0);
    var c3_0 = vec4<f32>(0.0);
    var c3_1 = vec4<f32>(0.0);
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
        let y0 = load_w(w0 + kk);
        let y1 = load_w(w1 + kk);
        let y2 = load_w(w2 + kk);
        let y3 = load_w(w3 + kk);
        let y4 = load_w(w4 + kk);
        let y5 = load_w(w5 + kk);
        let y6 = load_w(w6 + kk);
        let y7 = load_w(w7 + kk);
        let x0 = load_a(a0 + kk);
        c0_0 += vec4<f32>(dot(x0, y0), dot(x0, y1), dot(x0, y2), dot(x0, y3));
        c0_1 += vec4<f32>(dot(x0, y4), dot(x0, y5), dot(x0, y6), dot(x0, y7));
        let x1 = load_a(a1 + kk);
        c1_0 += vec4<f32>(dot(x1, y0), dot(x1, y1), dot(x1, y2), dot(x1, y3));
        c1_1 += vec4<f32>(dot(x1, y4), dot(x1, y5), dot(x1, y6), dot(x1, y7));
        let x2 = load_a(a2 + kk);
        c2_0 += vec4<f32>(dot(x2, y0), dot(x2, y1), dot(x2, y2), dot(x2, y3));
        c2_1 += vec4<f32>(dot(x2, y4), dot(x2, y5), dot(x2, y6), dot(x2, y7));
        let x3 = load_a(a3 + kk);
        c3_0 += vec4<f32>(dot(x3, y0), dot(x3, y1), dot(x3, y2), dot(x3, y3));
        c3_1 += vec4<f32>(dot(x3, y4), dot(x3, y5), dot(x3, y6), dot(x3, y7));
    }
#if VEC4
#else
    for (var kk = k4; kk < p.k; kk += 1u) {
        let y0 = vec4<f32>(f32(w[w0 + kk]), f32(w[w1 + kk]), f32(w[w2 + kk]), f32(w[w3 + kk]));
        let y1 = vec4<f32>(f32(w[w4 + kk]), f32(w[w5 + kk]), f32(w[w6 + kk]), f32(w[w7 + kk]));
        let x0 = f32(a[a0 + kk]);
        let x1 = f32(a[a1 + kk]);
        let x2 = f32(a[a2 + kk]);
        let x3 = f32(a[a3 + kk]);
        c0_0 += x0 * y0;
        c0_1 += x0 * y1;
        c1_0 += x1 * y0;
        c1_1 += x1 * y1;
        c2_0 += x2 * y0;
        c2_1 += x2 * y1;
        c3_0 += x3 * y0;
        c3_1 += x3 * y1;
    }
#endif

    store_block(wid.z, m0, n0, array<vec4<f32>, 4>(c0_0, c1_0, c2_0, c3_0));
    store_block(wid.z, m0, n0 + 4u, array<vec4<f32>, 4>(c0_1, c1_1, c2_1, c3_1));
}
