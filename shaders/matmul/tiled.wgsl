// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]), the workgroup-memory variant.
//
// Same operands, parameters and bindings as registers.wgsl; the autotuner picks one of the two per
// adapter. A workgroup of 16x16 invocations owns a 64x64 block of C and walks K in slices of
// 16: each slice of A and W is read from memory once per workgroup (instead of once per
// invocation), stored k-major in workgroup memory so that an invocation reads its four rows and
// four columns as two vec4s. Real GPUs reward the reuse; software GPUs pay for the barriers.
// Rows and columns past the edge are clamped on load and masked on store; k past K reads zero.
// Parameters, bindings and the store (bias, GELU, gate, residual) are in io.wgsl.

const BT: u32 = 64u; // block edge (rows of A, rows of W)
const KS: u32 = 16u; // K slice

#include matmul/io

// k-major slices: as_[k * BT + row].
var<workgroup> as_: array<vec4<MT>, 256>;
var<workgroup> ws_: array<vec4<MT>, 256>;

// Scalar view of the k-major slices: element (k, r) lives in vec4 (k * BT + r) / 4.
fn put(slice: u32, k: u32, r: u32, v: MT) {
    let e = k * BT + r;
    if (slice == 0u) { as_[e / 4u][e % 4u] = v; } else { ws_[e / 4u][e % 4u] = v; }
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let bm = wid.y * BT;
    let bn = wid.x * BT;
    let ab = p.off_a + wid.z * p.a_batch;
    let wb = p.off_w + wid.z * p.w_batch;
    // Loading: invocation li brings 4 k of row li / 4 of each slice (64 rows x 16 k).
    let lr = li / 4u;
    let lk = (li % 4u) * 4u;
    let arow = ab + min(bm + lr, p.m - 1u) * p.k;
    let wrow = wb + min(bn + lr, p.n - 1u) * p.k;

    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k0 = 0u; k0 < p.k; k0 += KS) {
        let va = load4_a(arow + k0 + lk, k0 + lk);
        let vw = load4_w(wrow + k0 + lk, k0 + lk);
        for (var q = 0u; q < 4u; q += 1u) {
            put(0u, lk + q, lr, va[q]);
            put(1u, lk + q, lr, vw[q]);
        }
        workgroupBarrier();
#if F16MATH
        // This slice's products, summed in f16 (16 terms) before they join the f32 sums.
        var s = array<vec4<f16>, 4>(vec4<f16>(0.0), vec4<f16>(0.0), vec4<f16>(0.0), vec4<f16>(0.0));
#endif
        for (var kk = 0u; kk < KS; kk += 1u) {
            let x = as_[(kk * BT) / 4u + lid.y];
            let y = ws_[(kk * BT) / 4u + lid.x];
#if F16MATH
            s[0] += x[0] * y;
            s[1] += x[1] * y;
            s[2] += x[2] * y;
            s[3] += x[3] * y;
#else
            acc[0] += x[0] * y;
            acc[1] += x[1] * y;
            acc[2] += x[2] * y;
            acc[3] += x[3] * y;
#endif
        }
#if F16MATH
        acc[0] += vec4<f32>(s[0]);
        acc[1] += vec4<f32>(s[1]);
        acc[2] += vec4<f32>(s[2]);
        acc[3] += vec4<f32>(s[3]);
#endif
        workgroupBarrier();
    }

    let n0 = bn + lid.x * 4u;
    let m0 = bm + lid.y * 4u;
    store_block(wid.z, m0, n0, acc);
}
