// The flat index of an invocation in a 1-D grid that `EncodeCx::grid` split over x and y to
// respect the per-dimension workgroup limit (`#include common/index`).
fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * wg + lid;
}

// The flat index of a workgroup in such a grid (kernels with one workgroup per row or block).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
