// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n])
//
// W is stored (out, in) as PyTorch stores a Linear, so both operands are read along k with
// unit stride. Each invocation computes a 4x4 block of C from registers; there is no
// workgroup memory: barriers are very expensive on software GPUs and the two operands are
// already contiguous along k. Rows and columns past the edge are clamped on load and masked
// on store, so any M, N, K work.
// Parameters, bindings, loads and the store (bias, GELU, gate, residual) are in io.wgsl.

#include matmul/io

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    if (n0 >= p.n || m0 >= p.m) {
        return;
    }
    let ab = p.off_a + gid.z * p.a_batch;
    let wb = p.off_w + gid.z * p.w_batch;
#unroll r 4
    let a{{r}} = ab + min(m0 + {{r}}u, p.m - 1u) * p.k;
    let w{{r}} = wb + min(n0 + {{r}}u, p.n - 1u) * p.k;
    var c{{r}} = vec4<f32>(0.0);
#endunroll
    let k4 = p.k & ~3u;
    for (var kk = 0u; kk < k4; kk += 4u) {
#unroll r 4
        let x{{r}} = load_a(a{{r}} + kk);
        let y{{r}} = load_w(w{{r}} + kk);
#endunroll
#unroll r 4
        c{{r}} += vec4<f32>(dot(x{{r}}, y0), dot(x{{r}}, y1), dot(x{{r}}, y2), dot(x{{r}}, y3));
#endunroll
    }
#if VEC4
#else
    for (var kk = k4; kk < p.k; kk += 1u) {
        let y = vec4<f32>(w_at(w0 + kk), w_at(w1 + kk), w_at(w2 + kk), w_at(w3 + kk));
#unroll r 4
        c{{r}} += f32(a[a{{r}} + kk]) * y;
#endunroll
    }
#endif

    store_block(gid.z, m0, n0, array<vec4<f32>, 4>(c0, c1, c2, c3));
}
