//! Latents → pixels with the CausalVAE decoder, tiled as the released pipeline tiles it.
//!
//! Latents larger than a tile (64 latents = 512 px, released) are cut into tiles every 56
//! latents, each decoded on its own (GroupNorm statistics and attention are per tile), then
//! blended into its upper and left neighbours with linear ramps over 64 px, in place (so later
//! tiles blend with already blended ones), cropped to 448 px and joined — exactly
//! `CausalVAE.tiled_decode2d`. Latents that fit one tile are decoded whole; the official code
//! crashes there (it never assigns its result). Decoder graphs are compiled once per tile shape.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::graph::{ExecOptions, Executable};
use crate::model::upload::DeviceWeights;
use crate::model::vae::{self, VaeConfig};
use crate::tensor::{DType, HostTensor};

/// Tiling of the released config: tiles of 512 px (64 latents), overlap factor 0.125.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tiling {
    /// Tile size in latents.
    pub latent_tile: usize,
    pub overlap: f32,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling {
            latent_tile: 64,
            overlap: 0.125,
        }
    }
}

/// A `(C, T, H, W)` block of decoded pixels (batch item 0).
#[derive(Clone, Debug, Default)]
struct Block {
    c: usize,
    t: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Block {
    fn idx(&self, c: usize, t: usize, y: usize, x: usize) -> usize {
        ((c * self.t + t) * self.h + y) * self.w + x
    }
}

/// `b[.., y, :] = a[.., a.h − e + y, :]·(1 − y/e) + b[.., y, :]·(y/e)` for `y < e`.
fn blend_v(a: &Block, b: &mut Block, extent: usize) {
    let e = extent.min(a.h).min(b.h);
    for c in 0..b.c {
        for t in 0..b.t {
            for y in 0..e {
                let f = y as f32 / e as f32;
                for x in 0..b.w.min(a.w) {
                    let av = a.data[a.idx(c, t, a.h - e + y, x)];
                    let i = b.idx(c, t, y, x);
                    b.data[i] = av * (1.0 - f) + b.data[i] * f;
                }
            }
        }
    }
}

/// The same along W.
fn blend_h(a: &Block, b: &mut Block, extent: usize) {
    let e = extent.min(a.w).min(b.w);
    for c in 0..b.c {
        for t in 0..b.t {
            for y in 0..b.h.min(a.h) {
                for x in 0..e {
                    let f = x as f32 / e as f32;
                    let av = a.data[a.idx(c, t, y, a.w - e + x)];
                    let i = b.idx(c, t, y, x);
                    b.data[i] = av * (1.0 - f) + b.data[i] * f;
                }
            }
        }
    }
}

/// The decoder over weights on the device (shared, not copied), compiling a graph per latent
/// shape it meets.
pub struct Decoder {
    ctx: GpuContext,
    config: VaeConfig,
    weights: DeviceWeights,
    compiled: HashMap<[usize; 5], Executable>,
    pub tiling: Tiling,
    /// Storage type of weights and activations (pixels come back as f32 either way).
    float: DType,
}

impl Decoder {
    /// `weights` as [`vae::wanted`] describes them for `float`.
    pub fn new(
        ctx: &GpuContext,
        config: VaeConfig,
        weights: DeviceWeights,
        float: DType,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Decoder {
            ctx: ctx.clone(),
            config,
            weights,
            compiled: HashMap::new(),
            tiling: Tiling::default(),
            float,
        })
    }

    async fn decode_whole(&mut self, latents: &HostTensor) -> Result<HostTensor> {
        let shape: [usize; 5] = latents.shape.dims().try_into().map_err(|_| {
            Error::Input(format!("latents {} must be (B, C, T, H, W)", latents.shape))
        })?;
        if !self.compiled.contains_key(&shape) {
            let graph = vae::build_as(&self.config, shape, false, self.float)?;
            let exe = Executable::with_params(
                &self.ctx,
                &graph,
                &ExecOptions::default(),
                &self.weights.params,
            )
            .await
            .map_err(|e| e.for_work(format!("the VAE decoder (latents {shape:?})")))?;
            self.compiled.insert(shape, exe);
        }
        let exe = &self.compiled[&shape];
        exe.write(vae::io::LATENTS, latents)?;
        exe.run()?;
        exe.read(vae::io::SAMPLE).await
    }

    /// Decodes `(1, C, T, H, W)` latents to `(1, 3, T', 8H, 8W)` pixels in [−1, 1] (unclamped).
    pub async fn decode(&mut self, latents: &HostTensor) -> Result<HostTensor> {
        let d = latents.shape.dims().to_vec();
        if d.len() != 5 || d[0] != 1 {
            return Err(Error::Input(format!(
                "latents {} must be (1, C, T, H, W)",
                latents.shape
            )));
        }
        let tile = self.tiling.latent_tile.max(1);
        if d[3] <= tile && d[4] <= tile {
            return self.decode_whole(latents).await;
        }
        let f = self.config.spatial_factor();
        let stride = ((tile as f32 * (1.0 - self.tiling.overlap)) as usize).max(1);
        let sample_tile = tile * f;
        let extent = (sample_tile as f32 * self.tiling.overlap) as usize;
        let limit = sample_tile - extent;
        let (c, t, h, w) = (d[1], d[2], d[3], d[4]);
        let mut rows: Vec<Vec<Block>> = Vec::new();
        for i in (0..h).step_by(stride) {
            let mut row = Vec::new();
            for j in (0..w).step_by(stride) {
                let (th, tw) = ((i + tile).min(h) - i, (j + tile).min(w) - j);
                let mut data = Vec::with_capacity(c * t * th * tw);
                for cc in 0..c {
                    for tt in 0..t {
                        for y in i..i + th {
                            let start = ((cc * t + tt) * h + y) * w + j;
                            data.extend_from_slice(&latents.as_f32()[start..start + tw]);
                        }
                    }
                }
                let out = self
                    .decode_whole(&HostTensor::f32([1, c, t, th, tw], data))
                    .await?;
                let o = out.shape.dims();
                row.push(Block {
                    c: o[1],
                    t: o[2],
                    h: o[3],
                    w: o[4],
                    data: out.into_f32(),
                });
            }
            rows.push(row);
        }
        // Blend in place with the upper, then the left neighbour, as the official code does.
        for i in 0..rows.len() {
            for j in 0..rows[i].len() {
                let mut tile_px = std::mem::take(&mut rows[i][j]);
                if i > 0 {
                    blend_v(&rows[i - 1][j], &mut tile_px, extent);
                }
                if j > 0 {
                    blend_h(&rows[i][j - 1], &mut tile_px, extent);
                }
                rows[i][j] = tile_px;
            }
        }
        // Crop each tile to `limit` and join.
        let (oh, ow) = (h * f, w * f);
        let (oc, ot) = (rows[0][0].c, rows[0][0].t);
        let mut out = vec![0f32; oc * ot * oh * ow];
        let mut y0 = 0;
        for row in &rows {
            let mut x0 = 0;
            let rh = row[0].h.min(limit);
            for b in row {
                let rw = b.w.min(limit);
                for cc in 0..oc {
                    for tt in 0..ot {
                        for y in 0..rh.min(oh - y0) {
                            for x in 0..rw.min(ow - x0) {
                                out[((cc * ot + tt) * oh + y0 + y) * ow + x0 + x] =
                                    b.data[b.idx(cc, tt, y, x)];
                            }
                        }
                    }
                }
                x0 += rw;
            }
            y0 += rh;
        }
        Ok(HostTensor::f32([1, oc, ot, oh, ow], out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blending_ramps_linearly_from_the_neighbour() {
        let a = Block {
            c: 1,
            t: 1,
            h: 4,
            w: 2,
            data: vec![8.0; 8],
        };
        let mut b = Block {
            c: 1,
            t: 1,
            h: 4,
            w: 2,
            data: vec![0.0; 8],
        };
        blend_v(&a, &mut b, 4);
        assert_eq!(b.data, vec![8.0, 8.0, 6.0, 6.0, 4.0, 4.0, 2.0, 2.0]);
        let mut c = Block {
            c: 1,
            t: 1,
            h: 1,
            w: 4,
            data: vec![4.0; 4],
        };
        let l = Block {
            c: 1,
            t: 1,
            h: 1,
            w: 2,
            data: vec![0.0; 2],
        };
        blend_h(&l, &mut c, 4); // the extent shrinks to the narrower tile
        assert_eq!(c.data, vec![0.0, 2.0, 4.0, 4.0]);
    }
}
