//! The small tensors PT-DiT derives from sizes and inputs rather than from weights, computed on
//! the host in f64 as the official numpy/torch code does: the 3-D sin-cos positional embedding,
//! the timestep frequencies, the text padding bias, the Swin mask and the shifted-window row
//! map. All are laid out window-major (spec §2.1) so the GPU never permutes the hidden state.

use super::config::Grid;
use crate::tensor::HostTensor;

/// `E(d, pos)`: `[sin(pos·ω_k), cos(pos·ω_k)]` with `ω_k = 10000^(-k/(d/2))`, `k < d/2`.
fn sincos(d: usize, pos: f64, out: &mut [f32]) {
    let half = d / 2;
    for k in 0..half {
        let omega = 1.0 / 10000f64.powf(k as f64 / half as f64);
        out[k] = (pos * omega).sin() as f32;
        out[half + k] = (pos * omega).cos() as f32;
    }
}

/// The positional embedding of every token, window-major: `(tokens, D)` (spec §2.3).
///
/// `pe = [temporal E(D/4, t), E_a(3D/8), E_b(3D/8)]` where, for the token's raster index `n`
/// within its frame, `E_a` encodes `n mod rows` and `E_b` encodes `n div rows`. On a square grid
/// that is (column, row); on other grids it is the official code's literal (quirky) order.
pub fn positional_embedding(grid: &Grid, dim: usize) -> HostTensor {
    let (dt, ds) = (dim / 4, 3 * dim / 8);
    let mut pe = vec![0f32; grid.tokens() * dim];
    for f in 0..grid.frames {
        for h in 0..grid.rows {
            for w in 0..grid.cols {
                let n = h * grid.cols + w;
                let row = &mut pe[grid.row_of(f, h, w) * dim..][..dim];
                sincos(dt, f as f64, &mut row[..dt]);
                sincos(ds, (n % grid.rows) as f64, &mut row[dt..dt + ds]);
                sincos(ds, (n / grid.rows) as f64, &mut row[dt + ds..]);
            }
        }
    }
    HostTensor::f32([grid.tokens(), dim], pe)
}

/// Rounds to the nearest bf16 value (ties to even), as `timestep.to(bfloat16)` does.
pub fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Sinusoidal timestep features `[cos(t·f_k), sin(t·f_k)]`, `f_k = exp(-ln(10000)·k/half)`
/// (diffusers `Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)`), `(B, 2·half)`.
/// Computed on the host: WGSL leaves sin/cos precision unspecified for arguments as large as a
/// timestep (up to 1000 radians).
pub fn timestep_features(t: &[f32], channels: usize) -> HostTensor {
    let half = channels / 2;
    let mut out = vec![0f32; t.len() * channels];
    for (b, tv) in t.iter().enumerate() {
        for k in 0..half {
            let f = (-(10000f32.ln()) * k as f32 / half as f32).exp();
            let a = *tv * f;
            out[b * channels + k] = a.cos();
            out[b * channels + half + k] = a.sin();
        }
    }
    HostTensor::f32([t.len(), channels], out)
}

/// Text padding bias `(B, 1, L)`: 0 where the mask keeps a token, −10000 where it is padding.
pub fn text_bias(mask: &[f32], batch: usize) -> HostTensor {
    let l = mask.len() / batch.max(1);
    let v = mask.iter().map(|m| (1.0 - m) * -10000.0).collect();
    HostTensor::f32([batch, 1, l], v)
}

/// Region of a coordinate along one axis of the shifted grid (spec §2.6): `[0, n−w)`,
/// `[n−w, n−s)`, `[n−s, n)`; with no shift the whole axis is one region.
fn region(pos: usize, n: usize, w: usize) -> usize {
    let s = w / 2;
    if s == 0 || pos + w < n {
        0
    } else if pos < n - s {
        1
    } else {
        2
    }
}

/// The Swin mask of shifted-window attention, one per window: `(P, S, S)`, 0 where two tokens
/// of a shifted window come from the same region of the rolled grid, −10000 elsewhere.
pub fn shift_window_mask(grid: &Grid) -> HostTensor {
    let [wf, wh, ww] = grid.window;
    let [nf, nh, nw] = grid.windows_per_axis();
    let s = grid.window_tokens();
    let mut mask = vec![0f32; grid.windows() * s * s];
    let mut labels = vec![0usize; s];
    for pf in 0..nf {
        for ph in 0..nh {
            for pw in 0..nw {
                let p = (pf * nh + ph) * nw + pw;
                for x in 0..wf {
                    for y in 0..wh {
                        for z in 0..ww {
                            let rf = region(pf * wf + x, grid.frames, wf);
                            let rh = region(ph * wh + y, grid.rows, wh);
                            let rw = region(pw * ww + z, grid.cols, ww);
                            labels[(x * wh + y) * ww + z] = rf * 9 + rh * 3 + rw;
                        }
                    }
                }
                for i in 0..s {
                    for j in 0..s {
                        if labels[i] != labels[j] {
                            mask[(p * s + i) * s + j] = -10000.0;
                        }
                    }
                }
            }
        }
    }
    HostTensor::f32([grid.windows(), s, s], mask)
}

/// Where each token of each shifted window lives in the window-major hidden state: slot
/// `(p·S + i)` of batch item `b` maps to the row of the token that `torch.roll(grid, −shift)`
/// puts there, for every batch item `(B·P·S,)`. Attending through this map is the roll, the
/// attention and the roll back, without moving the hidden state.
pub fn shift_window_map(grid: &Grid, batch: usize) -> HostTensor {
    let [wf, wh, ww] = grid.window;
    let [nf, nh, nw] = grid.windows_per_axis();
    let (sf, sh, sw) = (wf / 2, wh / 2, ww / 2);
    let per_batch = grid.tokens();
    let mut map = vec![0u32; batch * per_batch];
    for pf in 0..nf {
        for ph in 0..nh {
            for pw in 0..nw {
                for x in 0..wf {
                    for y in 0..wh {
                        for z in 0..ww {
                            let (gf, gh, gw) = (pf * wf + x, ph * wh + y, pw * ww + z);
                            let slot = grid.row_of(gf, gh, gw);
                            let src = grid.row_of(
                                (gf + sf) % grid.frames,
                                (gh + sh) % grid.rows,
                                (gw + sw) % grid.cols,
                            );
                            for b in 0..batch {
                                map[b * per_batch + slot] = (b * per_batch + src) as u32;
                            }
                        }
                    }
                }
            }
        }
    }
    HostTensor::u32([batch * per_batch], map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(frames: usize, rows: usize, cols: usize, window: [usize; 3]) -> Grid {
        Grid {
            frames,
            rows,
            cols,
            window,
        }
    }

    #[test]
    fn swin_mask_only_in_the_last_window_row_and_column() {
        let g = grid(1, 16, 12, [1, 4, 4]);
        let m = shift_window_mask(&g);
        let s = 16;
        let [_, nh, nw] = g.windows_per_axis();
        for ph in 0..nh {
            for pw in 0..nw {
                let p = ph * nw + pw;
                let any = m.as_f32()[p * s * s..(p + 1) * s * s]
                    .iter()
                    .any(|v| *v != 0.0);
                assert_eq!(any, ph == nh - 1 || pw == nw - 1, "window ({ph}, {pw})");
            }
        }
    }

    #[test]
    fn shift_map_is_a_permutation_within_each_batch_item() {
        let g = grid(4, 8, 12, [2, 4, 4]);
        let m = shift_window_map(&g, 2);
        let n = g.tokens();
        let mut seen = vec![false; 2 * n];
        for (i, r) in m.as_u32().iter().enumerate() {
            assert_eq!(*r as usize / n, i / n, "stays in its batch item");
            assert!(
                !std::mem::replace(&mut seen[*r as usize], true),
                "row {r} used twice"
            );
        }
    }

    #[test]
    fn shift_map_is_torch_roll_by_minus_half_a_window() {
        // Slot of shifted grid position (f, h, w) reads original position (f+1, h+2, w+2).
        let g = grid(4, 8, 8, [2, 4, 4]);
        let m = shift_window_map(&g, 1);
        let slot = g.row_of(3, 7, 1);
        assert_eq!(m.as_u32()[slot] as usize, g.row_of(0, 1, 3));
    }

    #[test]
    fn image_positional_embedding_temporal_half_is_sin0_cos0() {
        let pe = positional_embedding(&grid(1, 4, 4, [1, 4, 4]), 64);
        let row = &pe.as_f32()[..64];
        assert!(row[..8].iter().all(|v| *v == 0.0) && row[8..16].iter().all(|v| *v == 1.0));
    }

    #[test]
    fn bf16_rounding_of_released_timesteps() {
        // spec §3.4: t' = 983.0509 is seen as 984, 64.5161 as 64.5.
        assert_eq!(round_bf16(983.0509), 984.0);
        assert_eq!(round_bf16(666.6667), 668.0);
        assert_eq!(round_bf16(64.5161), 64.5);
    }
}
