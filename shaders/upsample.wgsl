// ×2 upsampling of (B, C, T, H, W), one output element per invocation.
// NEAREST: out[t, y, x] = in[t, y/2, x/2] (CausalVAE's SpatialUpsample2x).
// Otherwise trilinear with half-pixel centres (align_corners=False), CausalVAE's
// Spatial2xTime2x3DUpsample: frame 0 is only scaled in H and W; frames 1..T-1 are scaled
// ×2 in T, H and W among themselves, giving 2T - 1 frames.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

// Source index and weight of output o along an axis of n inputs scaled ×2.
struct Tap {
    i0: u32,
    i1: u32,
    w: f32,
}

fn tap(o: u32, n: u32) -> Tap {
    let src = max((f32(o) + 0.5) * 0.5 - 0.5, 0.0);
    let i0 = u32(floor(src));
    return Tap(i0, min(i0 + 1u, n - 1u), src - f32(i0));
}

fn at(plane: u32, t: u32, y: u32, xx: u32) -> f32 {
    return f32(x[p.off_x + (plane * p.t + t) * p.h * p.w + y * p.w + xx]);
}

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    let h2 = 2u * p.h;
    let w2 = 2u * p.w;
    let per_plane = p.t_out * h2 * w2;
    if (i >= p.planes * per_plane) {
        return;
    }
    let plane = i / per_plane;
    let r = i % per_plane;
    let to = r / (h2 * w2);
    let yo = (r / w2) % h2;
    let xo = r % w2;
#if NEAREST
    let v = at(plane, to, yo / 2u, xo / 2u);
#else
    let ty = tap(yo, p.h);
    let tx = tap(xo, p.w);
    // Time: frame 0 maps to itself; output frame 1 + o interpolates input frames 1.. by tap(o).
    var t0 = 0u;
    var t1 = 0u;
    var wt = 0.0;
    if (to > 0u) {
        let tt = tap(to - 1u, p.t - 1u);
        t0 = 1u + tt.i0;
        t1 = 1u + tt.i1;
        wt = tt.w;
    }
    var v = 0.0;
    for (var k = 0u; k < 2u; k += 1u) {
        let tk = select(t0, t1, k == 1u);
        let wk = select(1.0 - wt, wt, k == 1u);
        let a = at(plane, tk, ty.i0, tx.i0) * (1.0 - tx.w) + at(plane, tk, ty.i0, tx.i1) * tx.w;
        let b = at(plane, tk, ty.i1, tx.i0) * (1.0 - tx.w) + at(plane, tk, ty.i1, tx.i1) * tx.w;
        v += wk * (a * (1.0 - ty.w) + b * ty.w);
    }
#endif
    out[p.off_out + i] = {{T}}(v);
}
