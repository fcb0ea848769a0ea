//! What a request may ask for, checked before anything is allocated. Every size computed from
//! user input (arguments, configs) goes through [`product`], so an absurd request is an error
//! naming it, never an overflow, an abort on allocation or a run of hours.

use crate::error::{Error, Result};

/// The most denoising steps a request may take: the sampler's training timesteps (the
/// released 1000). More would only repeat timesteps the model was trained on.
pub const MAX_STEPS: usize = 1000;

/// The longest side of a written image, after upscaling, in pixels (what image viewers and
/// GPU textures take).
pub const MAX_IMAGE_SIDE: usize = 16_384;

/// The most frames a request may ask for: 32 latent frames of the CausalVAE (4·32 + 1), longer
/// than any video model of this family makes.
pub const MAX_FRAMES: usize = 129;

/// `factors` multiplied, or an error saying that `what` is too large.
pub fn product(what: &str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| Error::Input(format!("{what} is too large ({factors:?} overflows)")))
}

/// A count in `1..=max`, or an error naming it (`what`) and why the bound is what it is.
fn count(n: usize, max: usize, what: &str, why: &str) -> Result<()> {
    match n {
        0 => Err(Error::Input(format!("{what} must be at least 1"))),
        n if n > max => Err(Error::Input(format!(
            "{n} {what}: at most {max} are taken{why}"
        ))),
        _ => Ok(()),
    }
}

/// Steps must be in `1..=limit`.
pub fn check_steps(steps: usize, limit: usize) -> Result<()> {
    count(steps, limit, "steps", " (the sampler's training timesteps)")
}

/// Frames must be in `1..=MAX_FRAMES` (the model's windows are checked with the size).
pub fn check_frames(frames: usize) -> Result<()> {
    count(frames, MAX_FRAMES, "frames", "")
}

/// Guidance must be a finite number.
pub fn check_cfg(cfg: f32) -> Result<()> {
    match cfg.is_finite() {
        true => Ok(()),
        false => Err(Error::Input(format!(
            "guidance {cfg} must be a finite number"
        ))),
    }
}

/// The size of a `width × height` image enlarged `factor` times, if it is within
/// [`MAX_IMAGE_SIDE`].
pub fn upscaled(width: usize, height: usize, factor: usize) -> Result<(usize, usize)> {
    if factor == 0 {
        return Err(Error::Input("the upscale factor must be at least 1".into()));
    }
    let side = |n: usize| n.checked_mul(factor).filter(|&s| s <= MAX_IMAGE_SIDE);
    match (side(width), side(height)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(Error::Input(format!(
            "a {width}×{height} image upscaled {factor}× would exceed {MAX_IMAGE_SIDE} px a side"
        ))),
    }
}

/// The smallest factor that makes both sides at least `min_side` pixels.
pub fn factor_for(width: usize, height: usize, min_side: usize) -> usize {
    min_side.div_ceil(width.min(height).max(1)).max(1)
}

/// A tensor of `bytes` must fit one buffer of the device (`max_buffer_size`).
pub fn check_buffer(what: &str, bytes: usize, max_buffer_size: u64) -> Result<()> {
    if bytes as u64 > max_buffer_size {
        return Err(Error::Limit {
            op: "request",
            detail: format!(
                "{what} needs {} MiB; this device's largest buffer is {} MiB: ask for a \
                 smaller size or fewer frames",
                bytes >> 20,
                max_buffer_size >> 20
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_input_never_overflow() {
        assert_eq!(product("x", &[3, 4, 5]).unwrap(), 60);
        let e = product("the latent", &[usize::MAX, 2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("the latent is too large"), "{e}");
        assert!(upscaled(32, 32, usize::MAX / 4).is_err());
        assert!(upscaled(32, 32, 1_000_000).is_err());
        assert_eq!(upscaled(32, 32, 4).unwrap(), (128, 128));
        assert!(upscaled(32, 32, 0).is_err());
        assert!(check_steps(0, MAX_STEPS).is_err());
        assert!(check_steps(usize::MAX, MAX_STEPS).is_err());
        assert!(check_steps(30, MAX_STEPS).is_ok());
        assert!(check_frames(1_000_000_000).is_err());
        assert!(check_frames(5).is_ok());
        assert!(check_cfg(f32::NAN).is_err());
        assert!(check_cfg(-7.0).is_ok());
        assert!(check_buffer("it", 1 << 30, 1 << 28).is_err());
    }
}
