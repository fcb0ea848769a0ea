// Causal 3-D convolution, NCTHW, stride 1 (CausalVAE's CausalConv3d):
//   out[b, o, t, y, x] = bias[o] + sum_{i, dt, dy, dx} w[o, i, dt, dy, dx]
//                        * in[b, i, max(t + dt - (KT - 1), 0), y + dy - PH, x + dx - PW]
// Time is padded by repeating the first frame KT-1 times in front (causal); height and width
// by zeros. Each invocation computes 4 output channels of one pixel, so every input value it
// loads is used 4 times.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
@group(0) @binding({{B_WT}}) var<storage, read> wt: array<{{T}}>;
@group(0) @binding({{B_BIAS}}) var<storage, read> bias: array<{{T}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let plane = p.t * p.h * p.w;
    let pix = gid.x;
    if (pix >= plane) {
        return;
    }
    let o0 = gid.y * 4u;
    let b = gid.z;
    let tt = pix / (p.h * p.w);
    let yy = (pix / p.w) % p.h;
    let xx = pix % p.w;
    let ksz = p.kt * p.kh * p.kw;
    let wstride = p.cin * ksz;
    var o = array<u32, 4>(min(o0, p.cout - 1u), min(o0 + 1u, p.cout - 1u), min(o0 + 2u, p.cout - 1u), min(o0 + 3u, p.cout - 1u));
    var acc = vec4<f32>(f32(bias[p.off_b + o[0]]), f32(bias[p.off_b + o[1]]), f32(bias[p.off_b + o[2]]), f32(bias[p.off_b + o[3]]));
    let xb = p.off_x + b * p.x_batch;
    for (var i = 0u; i < p.cin; i += 1u) {
        for (var dt = 0u; dt < p.kt; dt += 1u) {
            let st = max(i32(tt + dt) - i32(p.kt - 1u), 0);
            let frame = xb + (i * p.t + u32(st)) * p.h * p.w;
            for (var dy = 0u; dy < p.kh; dy += 1u) {
                let sy = i32(yy + dy) - i32(p.ph);
                if (sy < 0 || sy >= i32(p.h)) {
                    continue;
                }
                for (var dx = 0u; dx < p.kw; dx += 1u) {
                    let sx = i32(xx + dx) - i32(p.pw);
                    if (sx < 0 || sx >= i32(p.w)) {
                        continue;
                    }
                    let v = f32(x[frame + u32(sy) * p.w + u32(sx)]);
                    let k = p.off_w + i * ksz + (dt * p.kh + dy) * p.kw + dx;
                    acc += v * vec4<f32>(f32(wt[k + o[0] * wstride]), f32(wt[k + o[1] * wstride]), f32(wt[k + o[2] * wstride]), f32(wt[k + o[3] * wstride]));
                }
            }
        }
    }
    let ob = p.off_out + b * p.out_batch + pix;
    for (var j = 0u; j < 4u; j += 1u) {
        if (o0 + j < p.cout) {
            out[ob + (o0 + j) * plane] = {{T}}(acc[j]);
        }
    }
}
