// What the two tiled attention kernels share (`#include attention/tiles`, after attention/io):
// their workgroup of 64 queries, the key and value tiles in workgroup memory, and the loading of a
// tile, so they differ only in how a query walks a tile.

const KT: u32 = {{KT}}u;
const WG: u32 = 64u;

var<workgroup> ks: array<VT, KT * DV>;
var<workgroup> vs: array<VT, KT * DV>;

// Keys and values t0 .. t0 + nk of sequence z, head columns hc .., into ks and vs; the
// workgroup's invocations (lid) share the loads. The caller puts a barrier after it.
fn load_tile(z: u32, t0: u32, nk: u32, hc: u32, lid: u32) {
    for (var e = lid; e < nk * DV; e += WG) {
        let j = e / DV;
        let d = (e - j * DV) * VW;
        let kr = k_row(z, t0 + j);
        ks[e] = load_k(p.off_k + kr * p.ld_k + hc + d);
        vs[e] = load_v(p.off_v + kr * p.ld_v + hc + d);
    }
}
