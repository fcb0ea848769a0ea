// C[b, m, n] = sum_k A[b, m, k] * W[b or 0, n, k] (+ bias[n]) on cooperative matrices (tensor
// cores): f16 operands, f32 sums. f16 graphs only (src/ops/matmul/variants.rs).
//
// Same operands, parameters and bindings as the other variants. A workgroup of four subgroups
// ({{SG}} invocations each) owns a 64x64 block of C and walks K in slices of 32: the whole
// workgroup loads each slice of A and W once (bounded as in io.wgsl, packed weights unpacked)
// into workgroup memory as f16, then each subgroup multiplies its 32x32 quarter as FR x FR
// fragments of {{CM}}x{{CM}}, its sums held in FR x FR accumulator fragments.
//
// The fragments are opaque (which invocation holds which element is the driver's business), so
// the epilogue goes through workgroup memory: each accumulator is stored to a per-subgroup
// scratch tile, and the subgroup's invocations apply the bias, GELU, gate and residual to it
// as the other variants do (store_row in io.wgsl). Every cooperative operation is in
// workgroup-uniform control flow: loops run a constant number of times and only addresses
// depend on the subgroup.

enable wgpu_cooperative_matrix;

const BT: u32 = 64u; // block edge (rows of A, rows of W)
const KS: u32 = 32u; // K slice
const CM: u32 = {{CM}}u; // fragment edge
const FR: u32 = {{FR}}u; // fragments along a quarter's edge: 32 / CM
const WG: u32 = 4u * {{SG}}u; // invocations
// A slice row's stride in f16: 32 k plus 8 of padding, so that rows start 80 bytes apart (a
// multiple of 16, as fragment loads want) and consecutive rows fall in different banks.
const LDS: u32 = KS + 8u;

#include matmul/io

// Row-major slices: as_[row * LDS + k] (A's rows), ws_[col * LDS + k] (W's rows, C's columns).
var<workgroup> as_: array<f16, 2560>; // BT * LDS
var<workgroup> ws_: array<f16, 2560>;
// One accumulator fragment per subgroup on its way to the epilogue, row-major; zeros at first.
var<workgroup> cs_: array<f32, 4u * CM * CM>;

// Loads the K slice starting at k0 of the block's A rows and W rows: WG invocations, 512 groups
// of four k for each operand (64 rows x 8 groups), so 512 / WG groups each.
fn load_slice(arow0: u32, wrow0: u32, bm: u32, bn: u32, k0: u32, li: u32) {
    for (var it = 0u; it < 512u / WG; it += 1u) {
        let e = it * WG + li;
        let r = e / 8u;
        let kq = (e % 8u) * 4u;
        let k = k0 + kq;
        let va = vec4<f16>(load4_a(arow0 + min(bm + r, p.m - 1u) * p.k + k, k));
        let vw = vec4<f16>(load4_w(wrow0 + min(bn + r, p.n - 1u) * p.k + k, k));
        let o = r * LDS + kq;
        as_[o] = va.x; as_[o + 1u] = va.y; as_[o + 2u] = va.z; as_[o + 3u] = va.w;
        ws_[o] = vw.x; ws_[o + 1u] = vw.y; ws_[o + 2u] = vw.z; ws_[o + 3u] = vw.w;
    }
}

// Applies the epilogue to the fragment in subgroup sg's scratch tile, whose first element is
// C's (m0, n0): each invocation of the subgroup takes rows of four columns in turn.
fn store_fragment(z: u32, sg: u32, lane: u32, m0: u32, n0: u32) {
    let base = sg * CM * CM;
    for (var g = lane; g < CM * CM / 4u; g += {{SG}}u) {
        let r = g / (CM / 4u);
        let c0 = (g % (CM / 4u)) * 4u;
        let o = base + r * CM + c0;
        let v = vec4<f32>(cs_[o], cs_[o + 1u], cs_[o + 2u], cs_[o + 3u]);
        store_row(z, m0 + r, n0 + c0, v + bias4(n0 + c0));
    }
}

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let bm = wid.y * BT;
    let bn = wid.x * BT;
    let ab = p.off_a + wid.z * p.a_batch;
    let wb = p.off_w + wid.z * p.w_batch;
    // This subgroup's quarter of the block.
    let qm = (sg / 2u) * 32u;
    let qn = (sg % 2u) * 32u;

    for (var i = li; i < 4u * CM * CM; i += WG) {
        cs_[i] = 0.0;
    }
    workgroupBarrier();
#unroll i FR
#unroll j FR
    var c{{i}}{{j}} = coopLoadT<coop_mat{{CM}}x{{CM}}<f32, C>>(&cs_[0], CM);
#endunroll
#endunroll

    for (var k0 = 0u; k0 < p.k; k0 += KS) {
        workgroupBarrier();
        load_slice(ab, wb, bm, bn, k0, li);
        workgroupBarrier();
        for (var kk = 0u; kk < KS; kk += CM) {
            // A's fragments are row-major in as_; B = Wᵀ is column-major in ws_.
#unroll i FR
            let a{{i}} = coopLoadT<coop_mat{{CM}}x{{CM}}<f16, A>>(&as_[(qm + {{i}}u * CM) * LDS + kk], LDS);
#endunroll
#unroll j FR
            let b{{j}} = coopLoad<coop_mat{{CM}}x{{CM}}<f16, B>>(&ws_[(qn + {{j}}u * CM) * LDS + kk], LDS);
#endunroll
#unroll i FR
#unroll j FR
            c{{i}}{{j}} = coopMultiplyAdd(a{{i}}, b{{j}}, c{{i}}{{j}});
#endunroll
#endunroll
        }
    }

#unroll i FR
#unroll j FR
    workgroupBarrier();
    coopStoreT(c{{i}}{{j}}, &cs_[sg * CM * CM], CM);
    workgroupBarrier();
    store_fragment(wid.z, sg, lane, bm + qm + {{i}}u * CM, bn + qn + {{j}}u * CM);
#endunroll
#endunroll
}
