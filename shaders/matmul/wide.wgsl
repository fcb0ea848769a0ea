// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]), the large-block variant for
// real GPUs on large products.
//
// Same operands, parameters and bindings as registers.wgsl. A workgroup of 256 invocations owns a
// 128x128 block of C and walks K in slices of 8 shared through workgroup memory; each invocation
// owns an 8x8 block, as four 4x4 quarters 64 rows and 64 columns apart, so that a warp's reads of
// a slice row are contiguous vec4s. Against the 64x64 `tiled` kernel (4x4 per invocation) every
// vec4 read from workgroup memory feeds twice the multiply-adds and every operand word read from
// memory serves twice the rows or columns. The next slice is loaded into registers while the
// current one is multiplied, so the memory latency hides behind arithmetic.
//
// The price is four times fewer workgroups: a product with few 128x128 blocks leaves a large GPU
// idle, so the engine uses this kernel only on products with enough of them (MatmulKernel::Wide).
// Rows and columns past the edge are clamped on load and masked on store; k past K reads zero.
// Parameters, bindings, the bounded loads and the store (bias, GELU, gate, residual) are in
// io.wgsl.

const BT: u32 = 128u; // block edge (rows of A, rows of W)
const KS: u32 = 8u; // K slice: two slices of 8 x 132 floats stay under WebGPU's 16 KiB default
// A slice row's stride in vec4s: 128 rows plus 4 of padding, so that the transposing stores of
// a warp (16 rows, two runs of four k) land in 32 distinct banks.
const LD4: u32 = 33u;

#include matmul/io

// k-major slices: row r of k lives in vec4 k * LD4 + r / 4, component r % 4.
var<workgroup> as_: array<vec4<MT>, 264>;
var<workgroup> ws_: array<vec4<MT>, 264>;

// Every index below into an array or vector is a constant or depends on the invocation alone:
// a real GPU's compiler keeps a function-local array in registers only when it can resolve
// each index, and naga's loops are not unrolled for it (the same kernel with `c[i] += x[i] * y`
// in a four-step loop ran 8x slower on an H100 than this one).

// Invocation li brings k (li % 2) * 4 .. +4 of row li / 2 of each slice (128 rows x 8 k).
fn put(k4: u32, r: u32, va: vec4<MT>, vw: vec4<MT>) {
    let e = k4 * LD4 + r / 4u;
    let q = r % 4u;
    as_[e][q] = va.x;
    as_[e + LD4][q] = va.y;
    as_[e + 2u * LD4][q] = va.z;
    as_[e + 3u * LD4][q] = va.w;
    ws_[e][q] = vw.x;
    ws_[e + LD4][q] = vw.y;
    ws_[e + 2u * LD4][q] = vw.z;
    ws_[e + 3u * LD4][q] = vw.w;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let bm = wid.y * BT;
    let bn = wid.x * BT;
    let ab = p.off_a + wid.z * p.a_batch;
    let wb = p.off_w + wid.z * p.w_batch;
    let lr = li / 2u;
    let lk = (li % 2u) * 4u;
    let arow = ab + min(bm + lr, p.m - 1u) * p.k;
    let wrow = wb + min(bn + lr, p.n - 1u) * p.k;
    // This invocation's quarters: rows ty*4 (+64), columns tx*4 (+64) of the block; cRC is the
    // quarter in row half R and column half C, one vec4 (4 columns) per row.
    let tx = li % 16u;
    let ty = li / 16u;
    var c00_0 = vec4<f32>(0.0); var c00_1 = vec4<f32>(0.0); var c00_2 = vec4<f32>(0.0); var c00_3 = vec4<f32>(0.0);
    var c01_0 = vec4<f32>(0.0); var c01_1 = vec4<f32>(0.0); var c01_2 = vec4<f32>(0.0); var c01_3 = vec4<f32>(0.0);
    var c10_0 = vec4<f32>(0.0); var c10_1 = vec4<f32>(0.0); var c10_2 = vec4<f32>(0.0); var c10_3 = vec4<f32>(0.0);
    var c11_0 = vec4<f32>(0.0); var c11_1 = vec4<f32>(0.0); var c11_2 = vec4<f32>(0.0); var c11_3 = vec4<f32>(0.0);

    var va = load4_a(arow + lk, lk);
    var vw = load4_w(wrow + lk, lk);
    for (var k0 = 0u; k0 < p.k; k0 += KS) {
        put(lk, lr, va, vw);
        workgroupBarrier();
        let kn = k0 + KS + lk;
        va = load4_a(arow + kn, kn);
        vw = load4_w(wrow + kn, kn);
#if F16MATH
        // This slice's products, summed in f16 (8 terms) before they join the f32 sums.
#unroll q 16
        var s{{q}} = vec4<f16>(0.0);
#endunroll
#endif
        for (var kk = 0u; kk < KS; kk += 1u) {
            let x0 = as_[kk * LD4 + ty];
            let x1 = as_[kk * LD4 + 16u + ty];
            let y0 = ws_[kk * LD4 + tx];
            let y1 = ws_[kk * LD4 + 16u + tx];
#if F16MATH
            s0 += x0.x * y0; s1 += x0.y * y0; s2 += x0.z * y0; s3 += x0.w * y0;
            s4 += x0.x * y1; s5 += x0.y * y1; s6 += x0.z * y1; s7 += x0.w * y1;
            s8 += x1.x * y0; s9 += x1.y * y0; s10 += x1.z * y0; s11 += x1.w * y0;
            s12 += x1.x * y1; s13 += x1.y * y1; s14 += x1.z * y1; s15 += x1.w * y1;
#else
            c00_0 += x0.x * y0; c00_1 += x0.y * y0; c00_2 += x0.z * y0; c00_3 += x0.w * y0;
            c01_0 += x0.x * y1; c01_1 += x0.y * y1; c01_2 += x0.z * y1; c01_3 += x0.w * y1;
            c10_0 += x1.x * y0; c10_1 += x1.y * y0; c10_2 += x1.z * y0; c10_3 += x1.w * y0;
            c11_0 += x1.x * y1; c11_1 += x1.y * y1; c11_2 += x1.z * y1; c11_3 += x1.w * y1;
#endif
        }
#if F16MATH
        c00_0 += vec4<f32>(s0); c00_1 += vec4<f32>(s1); c00_2 += vec4<f32>(s2); c00_3 += vec4<f32>(s3);
        c01_0 += vec4<f32>(s4); c01_1 += vec4<f32>(s5); c01_2 += vec4<f32>(s6); c01_3 += vec4<f32>(s7);
        c10_0 += vec4<f32>(s8); c10_1 += vec4<f32>(s9); c10_2 += vec4<f32>(s10); c10_3 += vec4<f32>(s11);
        c11_0 += vec4<f32>(s12); c11_1 += vec4<f32>(s13); c11_2 += vec4<f32>(s14); c11_3 += vec4<f32>(s15);
#endif
        workgroupBarrier();
    }

    let m0 = bm + ty * 4u;
    let n0 = bn + tx * 4u;
    store_block(wid.z, m0, n0, array(c00_0, c00_1, c00_2, c00_3));
    store_block(wid.z, m0, n0 + 64u, array(c01_0, c01_1, c01_2, c01_3));
    store_block(wid.z, m0 + 64u, n0, array(c10_0, c10_1, c10_2, c10_3));
    store_block(wid.z, m0 + 64u, n0 + 64u, array(c11_0, c11_1, c11_2, c11_3));
}
