// What the matmul kernels share (`#include matmul/io`): their parameters, bindings, the
// register kernels' loads and the store of a 4x4 block of C, so they differ only in how they
// compute it.
//
// VEC4: K is a multiple of 4 and every offset is 16-byte aligned: the operands are bound as
// vec4 arrays.
// BIAS: bias[n] is added to the result.
// GELU: the result (bias included) goes through GELU(tanh) before it is stored, which saves the
// activation a pass over the MLP's widest tensor.
// GATE: the result is multiplied by the adaLN gate of the batch item of its row
// (common/adaln.wgsl; PT-DiT's gate) before the residual is added: `h + gate * Linear(x)` in
// one pass.
// RESIDUAL: a tensor of C's shape is added before the store (`h + Linear(x)`), which saves the
// residual add its own pass.
// W_PACKED: W is stored in a packed weight format (src/quant.rs) and read as u32 words, unpacked
// to f32 as it is loaded (no unpacked copy exists): W_BF16 (two values a word), W_Q8 (four int8
// a word) or W_Q4 (eight nibbles a word, offset 8); W_SCALED (q8, q4): `ws` holds one f16 scale
// per block of 32 values, two a word, the bound rows' first at `p.off_ws`. K is a multiple of 32
// for q8 and q4, so every 4-value load starts on a multiple of 4 and inside one block.
// F16MATH (f16 storage, `tiled` and `wide` only): the workgroup-memory slices hold f16 and the
// products of one K slice are summed in f16, then added to f32 accumulators; the epilogue
// (bias, GELU, gate, residual) stays f32.

#include common/activations

// The type the workgroup-memory kernels multiply in.
#if F16MATH
alias MT = f16;
#else
alias MT = f32;
#endif

@group(0) @binding(0) var<uniform> p: Params;
#if VEC4
@group(0) @binding({{B_A}}) var<storage, read> a: array<vec4<{{T}}>>;
#else
@group(0) @binding({{B_A}}) var<storage, read> a: array<{{T}}>;
#endif
#if W_PACKED
@group(0) @binding({{B_W}}) var<storage, read> w: array<u32>;
#else
#if VEC4
@group(0) @binding({{B_W}}) var<storage, read> w: array<vec4<{{T}}>>;
#else
@group(0) @binding({{B_W}}) var<storage, read> w: array<{{T}}>;
#endif
#endif
#if W_SCALED
@group(0) @binding({{B_WS}}) var<storage, read> ws: array<u32>;
#endif
#if BIAS
@group(0) @binding({{B_BIAS}}) var<storage, read> bias: array<{{T}}>;
#endif
#if GATE
#include common/adaln
#endif
#if RESIDUAL
@group(0) @binding({{B_RES}}) var<storage, read> res: array<{{T}}>;
#endif
@group(0) @binding({{B_OUT}}) var<storage, read_write> c: array<{{T}}>;

// Four consecutive k of a row from element index i, unchecked (the register kernels stop at the
// last whole vector and do K's tail element by element; the tiled kernel has bounded loads).
#if VEC4
fn load_a(i: u32) -> vec4<f32> { return vec4<f32>(a[i / 4u]); }
#else
fn load_a(i: u32) -> vec4<f32> { return vec4<f32>(f32(a[i]), f32(a[i + 1u]), f32(a[i + 2u]), f32(a[i + 3u])); }
#endif

#if W_SCALED
// The scale of W's element i: its block's, counted from the bound rows' first element.
fn w_scale(i: u32) -> f32 {
    let s = (i - p.off_w) / 32u + p.off_ws;
    return unpack2x16float(ws[s / 2u])[s % 2u];
}
#endif

#if W_PACKED
// W's element i, unpacked.
fn w_at(i: u32) -> f32 {
#if W_BF16
    return bitcast<f32>(((w[i / 2u] >> ((i % 2u) * 16u)) & 0xffffu) << 16u);
#endif
#if W_Q8
    return f32(extractBits(bitcast<i32>(w[i / 4u]), (i % 4u) * 8u, 8u)) * w_scale(i);
#endif
#if W_Q4
    return f32(i32(extractBits(w[i / 8u], (i % 8u) * 4u, 4u)) - 8) * w_scale(i);
#endif
}

// Elements i..i+4 of W (i a multiple of 4 for q8 and q4: one word, one scale).
fn load_w(i: u32) -> vec4<f32> {
#if W_Q8
    let q = bitcast<i32>(w[i / 4u]);
    let v = vec4<i32>(extractBits(q, 0u, 8u), extractBits(q, 8u, 8u), extractBits(q, 16u, 8u), extractBits(q, 24u, 8u));
    return vec4<f32>(v) * w_scale(i);
#else
#if W_Q4
    let q = w[i / 8u] >> ((i % 8u) * 4u);
    let v = vec4<u32>(q & 15u, (q >> 4u) & 15u, (q >> 8u) & 15u, (q >> 12u) & 15u);
    return (vec4<f32>(v) - 8.0) * w_scale(i);
#else
    return vec4<f32>(w_at(i), w_at(i + 1u), w_at(i + 2u), w_at(i + 3u));
#endif
#endif
}
#else
fn w_at(i: u32) -> f32 {
#if VEC4
    return f32(w[i / 4u][i % 4u]);
#else
    return f32(w[i]);
#endif
}

#if VEC4
fn load_w(i: u32) -> vec4<f32> { return vec4<f32>(w[i / 4u]); }
#else
fn load_w(i: u32) -> vec4<f32> { return vec4<f32>(f32(w[i]), f32(w[i + 1u]), f32(w[i + 2u]), f32(w[i + 3u])); }
#endif
#endif

// The workgroup-memory kernels' bounded loads: four consecutive k of one row starting at element
// index i (k0 = the k of i), zero past K, in the type they multiply in.
fn load4_a(i: u32, k0: u32) -> vec4<MT> {
#if VEC4
    if (k0 >= p.k) { return vec4<MT>(0.0); }
    return vec4<MT>(a[i / 4u]);
#else
    var v = vec4<MT>(0.0);
    for (var q = 0u; q < 4u; q += 1u) {
        if (k0 + q < p.k) { v[q] = MT(a[i + q]); }
    }
    return v;
#endif
}

fn load4_w(i: u32, k0: u32) -> vec4<MT> {
#if W_SCALED
    // K is a multiple of 32: the four are all inside the row or all past it.
    if (k0 >= p.k) { return vec4<MT>(0.0); }
    return vec4<MT>(load_w(i));
#else
#if VEC4
    if (k0 >= p.k) { return vec4<MT>(0.0); }
    return vec4<MT>(load_w(i));
#else
    var v = vec4<MT>(0.0);
    for (var q = 0u; q < 4u; q += 1u) {
        if (k0 + q < p.k) { v[q] = MT(w_at(i + q)); }
    }
    return v;
#endif
#endif
}

// Stores rows m0..m0+4, columns n0..n0+4 of batch item z (row i in acc[i]): bias, GELU and
// residual applied; rows and columns past the edge are skipped. The rows are stored one call
// each, so that no index into `acc` depends on a loop counter: a GPU compiler keeps an array
// in registers only when it can resolve every index.
fn store_block(z: u32, m0: u32, n0: u32, acc: array<vec4<f32>, 4>) {
    let b = bias4(n0);
    store_row(z, m0, n0, acc[0] + b);
    store_row(z, m0 + 1u, n0, acc[1] + b);
    store_row(z, m0 + 2u, n0, acc[2] + b);
    store_row(z, m0 + 3u, n0, acc[3] + b);
}

// bias[n0..n0+4] (clamped at the edge; zero without BIAS).
fn bias4(n0: u32) -> vec4<f32> {
#if BIAS
    return vec4<f32>(vec4<{{T}}>(
        bias[p.off_bias + min(n0, p.n - 1u)],
        bias[p.off_bias + min(n0 + 1u, p.n - 1u)],
        bias[p.off_bias + min(n0 + 2u, p.n - 1u)],
        bias[p.off_bias + min(n0 + 3u, p.n - 1u)]));
#else
    return vec4<f32>(0.0);
#endif
}

// Row m, columns n0..n0+4 of batch item z (bias already added).
fn store_row(z: u32, m: u32, n0: u32, r: vec4<f32>) {
    if (m >= p.m) { return; }
    let base = p.off_c + z * p.c_batch + m * p.ldc + n0;
#if GATE
    let item = ada_item(z * p.m + m);
#endif
    for (var j = 0u; j < 4u; j += 1u) {
        if (n0 + j < p.n) {
#if GELU
            var v = gelu_tanh(r[j]);
#else
            var v = r[j];
#endif
#if GATE
            v *= ada_gate(item, p.col0 + n0 + j);
#endif
#if RESIDUAL
            // The residual has C's layout and is bound over C's range.
            v += f32(res[p.off_res + base + j - p.off_c]);
#endif
            c[base + j] = {{T}}(v);
        }
    }
}
