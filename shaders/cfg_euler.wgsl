// One rectified-flow Euler step with classifier-free guidance, on the GPU so a denoising loop
// reads nothing back. The batch is [cond (B), uncond (B)]:
//   v = pred_uncond + cfg * (pred_cond - pred_uncond)   (first C of the model's C_OUT channels)
//   x' = x + v * dt, written to both halves, ready to be the next step's input.
// step = [dt, cfg] lives in a buffer because it changes every step.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_PRED}}) var<storage, read> pred: array<{{T}}>;
@group(0) @binding({{B_X}}) var<storage, read> x: array<{{T}}>;
@group(0) @binding({{B_STEP}}) var<storage, read> step: array<{{T}}>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<{{T}}>;

#include common/index

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 256u);
    let per_item = p.c * p.spatial;
    if (i >= p.half * per_item) {
        return;
    }
    let b = i / per_item;
    let r = i - b * per_item;
    let pc = p.off_pred + b * p.c_out * p.spatial + r;
    let pu = pc + p.half * p.c_out * p.spatial;
    let dt = f32(step[p.off_step]);
    let cfg = f32(step[p.off_step + 1u]);
    let v = f32(pred[pu]) + cfg * (f32(pred[pc]) - f32(pred[pu]));
    let xn = {{T}}(f32(x[p.off_x + i]) + v * dt);
    out[p.off_out + i] = xn;
    out[p.off_out + i + p.half * per_item] = xn;
}
