// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]), the variant for products with few
// rows on real GPUs: the proxy tokens' projections (32 rows at the benchmark's size), adaLN's
// one row per batch item.
//
// Same operands, parameters and bindings as registers.wgsl. The block kernels give such a product a
// handful of workgroups, each walking all of K in a chain of dependent steps: on an H100 a
// 32x256x256 product ran at 0.1 TFLOP/s that way. Here K is split instead: 8 invocations share
// each 4 outputs of a row, each taking every 8th vector of K, so a product of R rows and N
// columns runs R * N * 2 invocations with K / 32 steps each; the 8 partial sums meet in
// workgroup memory. A workgroup owns 4 rows and 32 columns of C.
// Parameters, bindings, the bounded loads and the store (bias, GELU, gate, residual) are in
// io.wgsl.

const KSPLIT: u32 = 8u; // invocations sharing one row's 4 outputs

#include matmul/io

var<workgroup> part: array<vec4<f32>, 256>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let kq = li % KSPLIT;
    let o = li / KSPLIT; // this invocation's 4 outputs: row o / 8, columns (o % 8) * 4 ..
    let m = wid.y * 4u + o / 8u;
    let n0 = wid.x * 32u + (o % 8u) * 4u;
    let ab = p.off_a + wid.z * p.a_batch;
    let wb = p.off_w + wid.z * p.w_batch;
    let arow = ab + min(m, p.m - 1u) * p.k;
    let w0 = wb + min(n0, p.n - 1u) * p.k;
    let w1 = wb + min(n0 + 1u, p.n - 1u) * p.k;
    let w2 = wb + min(n0 + 2u, p.n - 1u) * p.k;
    let w3 = wb + min(n0 + 3u, p.n - 1u) * p.k;
    // Neighbouring invocations read neighbouring vectors of the same rows.
    var acc = vec4<f32>(0.0);
    for (var k = kq * 4u; k < p.k; k += KSPLIT * 4u) {
        let x = load4_a(arow + k, k);
        acc += vec4<f32>(
            dot(x, load4_w(w0 + k, k)),
            dot(x, load4_w(w1 + k, k)),
            dot(x, load4_w(w2 + k, k)),
            dot(x, load4_w(w3 + k, k)));
    }
    part[li] = acc;
    workgroupBarrier();
    if (kq == 0u) {
        var sum = part[li];
        for (var q = 1u; q < KSPLIT; q += 1u) {
            sum += part[li + q];
        }
        store_row(wid.z, m, n0, sum + bias4(n0));
    }
}
