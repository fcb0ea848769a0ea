// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n])
//
// W is stored (out, in) as PyTorch stores a Linear, so both operands are read along k with
// unit stride. Each invocation computes a 4x4 block of C from registers; there is no
// workgroup memory: barriers are very expensive on software GPUs and the two operands are
// already contiguous along k. Rows and columns past the edge are clamped on load and masked
// on store, so any M, N, K work.
// Parameters, bindings, loads and the store (bias, GELU, gate, residual) are in matmul_io.wgsl.

#include matmul_io

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    if (n0 >= p.n || m0 >= p.m) {
        return;
    }
    let ab = p.off_a + gid.z * p.a_batch;
    let wb = p.off_w + gid.z * p.w_batch;
    let a0 = ab + min(m0, p.m - 1u) * p.k;
    let a1 = ab + min(m0 + 1u, p.m - 1u) * p.k;
    let a2 = ab + min(m0 + 2u, p.m - 1u) * p.k;
    let a3 = ab + min(m0 + 3u, p.m - 1u) * p.k;
    let w0 = wb + min(n0, p.n - 1u) * p.k;
    let w1 = wb + min(n0 + 1u, p.n - 1u) * p.k;
    let w2 = wb + min(n0 + 2u, p.n - 1u) * p.k;
    let w3 = wb + min(n0 + 3u, p.n - 1u) * p.k;

    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
        let x0 = load_a(a0 + kk);
        let x1 = load_a(a1 + kk);
        let x2 = load_a(a2 + kk);
        let x3 = load_a(a3 + kk);
        let y0 = load_w(w0 + kk);
        let y1 = load_w(w1 + kk);
        let y2 = load_w(w2 + kk);
        let y3 = load_w(w3 + kk);
        c0 += vec4<f32>(dot(x0, y0), dot(x0, y1), dot(x0, y2), dot(x0, y3));
        c1 += vec4<f32>(dot(x1, y0), dot(x1, y1), dot(x1, y2), dot(x1, y3));
        c2 += vec4<f32>(dot(x2, y0), dot(x2, y1), dot(x2, y2), dot(x2, y3));
        c3 += vec4<f32>(dot(x3, y0), dot(x3, y1), dot(x3, y2), dot(x3, y3));
    }
#if VEC4
#else
    for (var kk = k4; kk < p.k; kk += 1u) {
        let y = vec4<f32>(f32(w[w0 + kk]), f32(w[w1 + kk]), f32(w[w2 + kk]), f32(w[w3 + kk]));
        c0 += f32(a[a0 + kk]) * y;
        c1 += f32(a[a1 + kk]) * y;
        c2 += f32(a[a2 + kk]) * y;
        c3 += f32(a[a3 + kk]) * y;
    }
#endif

    store_block(gid.z, m0, n0, array<vec4<f32>, 4>(c0, c1, c2, c3));
}
