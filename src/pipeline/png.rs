//! PNG output: one frame as a PNG, several as an animated PNG (8 frames per second).

use super::generate::Frame;
use crate::error::{Error, Result};

pub fn encode(frames: &[Frame]) -> Result<Vec<u8>> {
    let first = frames
        .first()
        .ok_or_else(|| Error::Input("no frames to encode".into()))?;
    let err = |e: png::EncodingError| Error::Input(format!("PNG encoding failed: {e}"));
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, first.width as u32, first.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        if frames.len() > 1 {
            enc.set_animated(frames.len() as u32, 0).map_err(err)?;
            enc.set_frame_delay(1, 8).map_err(err)?;
        }
        let mut w = enc.write_header().map_err(err)?;
        for f in frames {
            if f.width != first.width
                || f.height != first.height
                || f.rgb.len() != 3 * f.width * f.height
            {
                return Err(Error::Input("frames differ in size".into()));
            }
            w.write_image_data(&f.rgb).map_err(err)?;
        }
        w.finish().map_err(err)?;
    }
    Ok(out)
}
