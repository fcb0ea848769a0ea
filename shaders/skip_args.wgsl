// The workgroup counts of a skippable region's dispatches (`Graph::skippable`): the real ones
// when the flag is 0, zeros when it is set. The region's dispatches are indirect and read these,
// so a skipped step records the same commands and costs near nothing, with no readback.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding({{B_FLAG}}) var<storage, read> flag: array<f32>;
@group(0) @binding({{B_REAL}}) var<storage, read> real: array<u32>;
@group(0) @binding({{B_OUT}}) var<storage, read_write> out: array<u32>;

#include common/index

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid, 64u);
    if (i >= p.n) {
        return;
    }
    if (flag[p.off_flag] != 0.0) {
        out[p.off_out + i] = 0u;
    } else {
        out[p.off_out + i] = real[p.off_real + i];
    }
}
