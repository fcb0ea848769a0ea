//! Storage formats of Linear weights other than the graph's float type, on the host: how values
//! are packed into the words the matmul kernels read (`shaders/matmul/io.wgsl`) and unpacked
//! again for the CPU reference. The layout is the same on disk and on the device
//! (`docs/quantization.md`):
//!
//! - `BF16`: two bytes per value, the upper half of its f32 bits (round to nearest even).
//! - `Q8`: per block of [`BLOCK`] consecutive values (a row of K, K a multiple of 32, holds whole
//!   blocks), `d = f16(max|x| / 127)` and `q = round(x / d)` in `[-127, 127]`; value `q · d`.
//! - `Q4`: per block, `d = f16(m / -8)` with `m` the value of largest magnitude, and
//!   `q = round(x / d) + 8` in `[0, 15]` (two per byte, the first in the low nibble); value
//!   `(q - 8) · d`. The block's extreme lands on -8 exactly, so no range is wasted.
//!
//! A tensor of `n` values is its quantized values (padded to a 4-byte word), then, for `Q8` and
//! `Q4`, its `n / 32` f16 scales: one buffer, which a kernel binds twice when it splits the
//! rows.

use crate::tensor::DType;

/// Values per scale in `Q8` and `Q4`.
pub const BLOCK: usize = 32;

/// Bytes of the quantized values of `numel` elements, padded to a whole 4-byte word: where the
/// scales start.
pub fn values_bytes(dtype: DType, numel: usize) -> u64 {
    ((numel as u64 * dtype.bits() as u64).div_ceil(8)).div_ceil(4) * 4
}

/// Blocks (and so scales) of `numel` elements.
pub fn blocks(numel: usize) -> usize {
    numel.div_ceil(BLOCK)
}

/// Bytes of a packed tensor of `numel` elements, scales included.
pub fn packed_bytes(dtype: DType, numel: usize) -> u64 {
    match dtype {
        DType::Q8 | DType::Q4 => values_bytes(dtype, numel) + 2 * blocks(numel) as u64,
        _ => dtype.bytes_for(numel),
    }
}

/// The largest magnitude a format can hold (its f16 scale is finite).
pub fn max_magnitude(dtype: DType) -> f32 {
    match dtype {
        DType::Q8 => 65504.0 * 127.0,
        DType::Q4 => 65504.0 * 8.0,
        DType::F16 => 65504.0,
        _ => f32::MAX,
    }
}

/// The block's scale and its quantized values (`Q8`: signed, `Q4`: offset by 8). A search over
/// smaller scales (clipping the extreme, finer steps for the rest, least squared error) was
/// measured with `ptdit verify --quant` on the fixtures and bought nothing for q8 and mixed
/// results for q4 (PT-DiT better, T5 worse), so the scale is the plain one.
fn quantize_block(dtype: DType, x: &[f32], q: &mut [i32]) -> half::f16 {
    let (d, offset, lo, hi) = match dtype {
        DType::Q8 => {
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            (half::f16::from_f32(amax / 127.0), 0, -127, 127)
        }
        _ => {
            let m = x
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            (half::f16::from_f32(m / -8.0), 8, 0, 15)
        }
    };
    let df = d.to_f32();
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = match df == 0.0 {
            true => offset,
            false => ((v / df).round() as i32 + offset).clamp(lo, hi),
        };
    }
    d
}

/// Appends the quantized values of `x` to `values` and their scales (little-endian f16) to
/// `scales`; `x` holds whole blocks but for a tensor's last piece.
pub fn quantize_into(dtype: DType, x: &[f32], values: &mut Vec<u8>, scales: &mut Vec<u8>) {
    let mut q = [0i32; BLOCK];
    for block in x.chunks(BLOCK) {
        let q = &mut q[..block.len()];
        let d = quantize_block(dtype, block, q);
        scales.extend_from_slice(&d.to_le_bytes());
        match dtype {
            DType::Q8 => values.extend(q.iter().map(|&v| v as i8 as u8)),
            _ => values.extend(
                q.chunks(2)
                    .map(|p| (p[0] as u8) | (p.get(1).map_or(8, |&h| h as u8) << 4)),
            ),
        }
    }
}

/// `x` as bf16 bytes (round to nearest even).
pub fn bf16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect()
}

/// The bytes of `x` stored as `dtype` (a packed format) as a file holds them: the values, then
/// for q8 and q4 the scales, without padding (`formats::quantized` names the two tensors).
pub fn file_bytes(dtype: DType, x: &[f32]) -> Vec<u8> {
    match dtype {
        DType::BF16 => bf16_bytes(x),
        _ => {
            let (mut values, mut scales) = (Vec::new(), Vec::new());
            quantize_into(dtype, x, &mut values, &mut scales);
            values.extend(scales);
            values
        }
    }
}

/// The device bytes of `x` stored as `dtype` (a packed format), padded to whole words.
pub fn pack(dtype: DType, x: &[f32]) -> Vec<u8> {
    let mut out = match dtype {
        DType::BF16 => bf16_bytes(x),
        _ => {
            let (mut values, mut scales) = (Vec::new(), Vec::new());
            quantize_into(dtype, x, &mut values, &mut scales);
            values.resize(values_bytes(dtype, x.len()) as usize, 0);
            values.extend_from_slice(&scales);
            values
        }
    };
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}

/// The `numel` values that the packed `bytes` hold (missing bytes read as zeros).
pub fn unpack(dtype: DType, bytes: &[u8], numel: usize) -> Vec<f32> {
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    match dtype {
        DType::BF16 => (0..numel)
            .map(|i| half::bf16::from_le_bytes([byte(2 * i), byte(2 * i + 1)]).to_f32())
            .collect(),
        _ => {
            let s0 = values_bytes(dtype, numel) as usize;
            let scale = |b: usize| {
                half::f16::from_le_bytes([byte(s0 + 2 * b), byte(s0 + 2 * b + 1)]).to_f32()
            };
            (0..numel)
                .map(|i| {
                    let q = match dtype {
                        DType::Q8 => byte(i) as i8 as i32,
                        _ => ((byte(i / 2) >> (4 * (i % 2))) & 15) as i32 - 8,
                    };
                    q as f32 * scale(i / BLOCK)
                })
                .collect()
        }
    }
}

/// `x` packed as `dtype` and unpacked again: the values a weight of that format holds.
pub fn round_trip(dtype: DType, x: &[f32]) -> Vec<f32> {
    unpack(dtype, &pack(dtype, x), x.len())
}

/// True when a Linear whose rows are `k` long can be stored as `dtype` (the quantized formats
/// need whole blocks in every row).
pub fn fits_rows(dtype: DType, k: usize) -> bool {
    match dtype {
        DType::Q8 | DType::Q4 => k.is_multiple_of(BLOCK),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_keeps_the_block_maximum_and_bounds_the_error() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 64) as f32 - 31.5) / 10.0)
            .collect();
        let y = round_trip(DType::Q8, &x);
        for b in 0..2 {
            let block = &x[b * 32..][..32];
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            // Half a step of the scale, and the scale's own f16 rounding at the extreme.
            let bound = amax / 127.0 * 0.5 + amax * 2f32.powi(-11);
            for i in 0..32 {
                let e = (y[b * 32 + i] - block[i]).abs();
                assert!(e <= bound, "block {b} element {i}: error {e} > {bound}");
            }
        }
    }

    #[test]
    fn q4_maps_the_block_extreme_to_minus_eight_steps() {
        let mut x = vec![0.25f32; 32];
        x[5] = -3.0;
        let bytes = pack(DType::Q4, &x);
        // 16 bytes of nibbles and one f16 scale, padded to a whole word.
        assert_eq!(
            bytes.len() as u64,
            packed_bytes(DType::Q4, 32).div_ceil(4) * 4
        );
        // Element 5 is the high nibble of byte 2: q = 0 (the value -8 · d, d = 3/8).
        assert_eq!(bytes[2] >> 4, 0);
        let y = unpack(DType::Q4, &bytes, 32);
        assert_eq!(y[5], -3.0);
        assert_eq!(
            y[0], 0.375,
            "0.25 rounds to the nearest step, one step of 3/8"
        );
    }

    #[test]
    fn packing_is_idempotent_and_bf16_rounds_to_nearest_even() {
        let x: Vec<f32> = (0..96).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        for d in [DType::BF16, DType::Q8, DType::Q4] {
            let once = round_trip(d, &x);
            assert_eq!(round_trip(d, &once), once, "{d:?}");
        }
        let v = f32::from_bits(0x3f80_8000); // halfway between two bf16 values: to even
        assert_eq!(round_trip(DType::BF16, &[v])[0].to_bits(), 0x3f80_0000);
    }

    #[test]
    fn sizes() {
        assert_eq!(packed_bytes(DType::Q8, 4096 * 32), 4096 * 32 + 4096 * 2);
        assert_eq!(packed_bytes(DType::Q4, 4096 * 32), 4096 * 16 + 4096 * 2);
        assert_eq!(packed_bytes(DType::BF16, 10), 20);
    }
}
