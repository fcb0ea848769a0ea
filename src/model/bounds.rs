//! The largest value each size in a config may take. A config is input: without bounds, a
//! width of 10^9 or 10^6 layers makes a graph of gigabytes before any weight is read, and a
//! ratio near 2^62 overflows the first product of sizes. The bounds sit far above every model
//! of this family (the released T5-XXL: width 4,096, FFN 10,240, 24 layers; PT-DiT/XL: 28
//! layers of 1,152), and keep every product of sizes a graph computes well inside 64 bits.

use crate::error::{config_error, Result};

/// Widths: model, FFN, heads × head size, channels of text and of a VAE level.
pub const WIDTH: usize = 1 << 16;
/// Layers (blocks) of one model.
pub const LAYERS: usize = 256;
/// Attention heads, and the size of one head.
pub const HEADS: usize = 1024;
/// Token table rows.
pub const VOCAB: usize = 1 << 20;
/// Image channels in and out, latent channels.
pub const CHANNELS: usize = 1024;
/// Patch size, window and proxy ratios, a VAE level's width multiplier.
pub const RATIO: usize = 64;
/// T5's relative-position buckets and their largest distance.
pub const BUCKETS: usize = 1024;
pub const DISTANCE: usize = 1 << 20;
/// VAE levels and residual blocks per level.
pub const LEVELS: usize = 8;
pub const RES_BLOCKS: usize = 64;
/// Tokens of one prompt (the released model reads 200).
pub const TEXT_LEN: usize = 4096;

/// Checks `(name, value, bound)` triples: each value in `1..=bound`, or an error naming the
/// field, its value and the bound, prefixed with `what` ("T5 config").
pub fn check(what: &str, fields: &[(&str, usize, usize)]) -> Result<()> {
    for &(name, value, bound) in fields {
        if value == 0 || value > bound {
            return Err(config_error(format!(
                "{what}: {name} {value} must be between 1 and {bound}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds_name_the_field() {
        let e = super::check(
            "T5 config",
            &[("d_model", 4096, 8192), ("num_layers", 1_000_000, 256)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("T5 config: num_layers 1000000 must be between 1 and 256"),
            "{e}"
        );
        assert!(super::check("x", &[("a", 0, 4)]).is_err());
    }
}
