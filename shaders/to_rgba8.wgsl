// Latents or pixels (f32, channel-major: x[c][t][h][w], batch item 0) to packed RGBA8 texels for
// a host's texture: frame z to layer z (z < layers: a video's frames as an array texture), rows
// `pitch` words apart (copy_buffer_to_texture wants 256-byte rows), layers `out_h` rows apart. Each output pixel takes its nearest source pixel (`scale` output pixels per source
// pixel); channels 0..2 map [-1, 1] to bytes as the pipeline's PNG does: (x + 1) / 2 * 255,
// rounded. Missing channels are 0, alpha is opaque.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_X}}) var<storage, read> x: array<f32>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<u32>;

fn byte(v: f32) -> u32 {
    return u32(clamp((clamp(v, -1.0, 1.0) + 1.0) * 0.5 * 255.0 + 0.5, 0.0, 255.0));
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    if (g.x >= p.out_w || g.y >= p.out_h || g.z >= p.layers) {
        return;
    }
    let sx = min(g.x / p.scale, p.w - 1u);
    let sy = min(g.y / p.scale, p.h - 1u);
    var texel = 255u << 24u;
    for (var c = 0u; c < min(p.c, 3u); c++) {
        texel = texel | (byte(x[(c * p.t + g.z) * p.h * p.w + sy * p.w + sx]) << (8u * c));
    }
    out[(g.z * p.out_h + g.y) * p.pitch + g.x] = texel;
}
