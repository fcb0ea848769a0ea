// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]), the workgroup-memory variant.
//
// Same operands, parameters and bindings as matmul.wgsl; the autotuner picks one of the two per
// adapter. A workgroup of 16x16 invocations owns a 64x64 block of C and walks K in slices of
// 16: each slice of A and W is read from memory once per workgroup (instead of once per
// invocation), stored k-major in workgroup memory so that an invocation reads its four rows and
// four columns as two vec4s. Real GPUs reward the reuse; software GPUs pay for the barriers.
// Rows and columns past the edge are clamped on load and masked on store; k past K reads zero.
//
// VEC4: K is a multiple of 4 and every offset is 16-byte aligned: the operands are bound as
// vec4 arrays.
// GELU: the result (bias included) goes through GELU(tanh) before it is stored, which saves the
// activation a pass over the MLP's widest tensor.
// RESIDUAL: a tensor of C's shape is added before the store (`h + Linear(x)`), which saves the
// residual add its own pass.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    ldc: u32,
    off_a: u32,
    off_w: u32,
    off_bias: u32,
    off_c: u32,
    a_batch: u32,
    w_batch: u32,
    c_batch: u32,
    off_res: u32,
}

const BT: u32 = 64u; // block edge (rows of A, rows of W)
const KS: u32 = 16u; // K slice

#include activations

@group(0) @binding(0) var<uniform> p: Params;
#if VEC4
@group(0) @binding(1) var<storage, read> a: array<vec4<{{T}}>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<{{T}}>>;
#else
@group(0) @binding(1) var<storage, read> a: array<{{T}}>;
@group(0) @binding(2) var<storage, read> w: array<{{T}}>;
#endif
#if BIAS
@group(0) @binding(3) var<storage, read> bias: array<{{T}}>;
#endif
#if RESIDUAL
@group(0) @binding({{B_RES}}) var<storage, read> res: array<{{T}}>;
#endif
@group(0) @binding({{B_OUT}}) var<storage, read_write> c: array<{{T}}>;

// k-major slices: as_[k * BT + row].
var<workgroup> as_: array<vec4<f32>, 256>;
var<workgroup> ws_: array<vec4<f32>, 256>;

// Four consecutive k of one row starting at element index i (k0 = the k of i): zero past K.
fn load4_a(i: u32, k0: u32) -> vec4<f32> {
#if VEC4
    if (k0 >= p.k) { return vec4<f32>(0.0); }
    return vec4<f32>(a[i / 4u]);
#else
    var v = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q += 1u) {
        if (k0 + q < p.k) { v[q] = f32(a[i + q]); }
    }
    return v;
#endif
}

fn load4_w(i: u32, k0: u32) -> vec4<f32> {
#if VEC4
    if (k0 >= p.k) { return vec4<f32>(0.0); }
    return vec4<f32>(w[i / 4u]);
#else
    var v = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q += 1u) {
        if (k0 + q < p.k) { v[q] = f32(w[i + q]); }
    }
    return v;
#endif
}

// Scalar view of the k-major slices: element (k, r) lives in vec4 (k * BT + r) / 4.
fn put(slice: u32, k: u32, r: u32, v: f32) {
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

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i += 1u) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < p.k; k0 += KS) {
        let va = load4_a(arow + k0 + lk, k0 + lk);
        let vw = load4_w(wrow + k0 + lk, k0 + lk);
        for (var q = 0u; q < 4u; q += 1u) {
            put(0u, lk + q, lr, va[q]);
            put(1u, lk + q, lr, vw[q]);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KS; kk += 1u) {
            let x = as_[(kk * BT) / 4u + lid.y];
            let y = ws_[(kk * BT) / 4u + lid.x];
            acc[0] += x[0] * y;
            acc[1] += x[1] * y;
            acc[2] += x[2] * y;
            acc[3] += x[3] * y;
        }
        workgroupBarrier();
    }

    let n0 = bn + lid.x * 4u;
    let m0 = bm + lid.y * 4u;
    var b = vec4<f32>(0.0);
#if BIAS
    b = vec4<f32>(vec4<{{T}}>(
        bias[p.off_bias + min(n0, p.n - 1u)],
        bias[p.off_bias + min(n0 + 1u, p.n - 1u)],
        bias[p.off_bias + min(n0 + 2u, p.n - 1u)],
        bias[p.off_bias + min(n0 + 3u, p.n - 1u)]));
#endif
    let cb = p.off_c + wid.z * p.c_batch;
    for (var i = 0u; i < 4u; i += 1u) {
        let m = m0 + i;
        if (m < p.m) {
            let r = acc[i] + b;
            let base = cb + m * p.ldc + n0;
            for (var j = 0u; j < 4u; j += 1u) {
                if (n0 + j < p.n) {
#if GELU
                    var v = gelu_tanh(r[j]);
#else
                    var v = r[j];
#endif
#if RESIDUAL
                    // The residual has C's layout and is bound over C's range.
                    v += f32(res[p.off_res + base + j - p.off_c]);
#endif
                    c[base + j] = {{T}}(v);
                }
            }
        }
    }
}
