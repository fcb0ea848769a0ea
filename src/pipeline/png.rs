//! PNG output: one frame as a PNG, several as an animated PNG (8 frames per second), with the
//! settings that made it as text chunks (`ptdit info FILE.png` reads them back, `ptdit generate
//! --from FILE.png` repeats the generation).

use super::generate::Frame;
use crate::error::{Error, LoadError, Result};

/// Longest text a settings chunk may hold when read back (a prompt is at most 16,384 chars).
const MAX_TEXT_BYTES: usize = 256 * 1024;

pub fn encode(frames: &[Frame]) -> Result<Vec<u8>> {
    encode_with_text(frames, &[])
}

/// Encodes `frames` with `text` as iTXt chunks (UTF-8, uncompressed), one per key, before the
/// image data so that a reader finds them without decoding it. Keys are 1–79 Latin-1 bytes.
pub fn encode_with_text(frames: &[Frame], text: &[(String, String)]) -> Result<Vec<u8>> {
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
        for (key, value) in text {
            enc.add_itxt_chunk(key.clone(), value.clone())
                .map_err(err)?;
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

/// The text chunks of a PNG (tEXt, zTXt and iTXt, in file order), read from its header without
/// decoding the image. Compressed text is inflated up to a bound, so a crafted file cannot make
/// it allocate more.
pub fn read_text(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let bad = |detail: String| {
        Error::load(LoadError::BadFile {
            format: "PNG",
            detail,
        })
    };
    let limits = png::Limits {
        bytes: 4 * MAX_TEXT_BYTES,
    };
    let decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    let reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let info = reader.info();
    let mut out = Vec::new();
    for c in &info.uncompressed_latin1_text {
        out.push((c.keyword.clone(), c.text.clone()));
    }
    // Compressed text (zTXt, and iTXt that may be) is inflated only up to the bound first.
    let inflated = |keyword: &str, r: std::result::Result<String, png::DecodingError>| {
        r.map(|text| (keyword.to_string(), text))
            .map_err(|e| bad(format!("text chunk `{keyword}`: {e}")))
    };
    for c in &info.compressed_latin1_text {
        let mut c = c.clone();
        let text = c
            .decompress_text_with_limit(MAX_TEXT_BYTES)
            .and_then(|()| c.get_text());
        out.push(inflated(&c.keyword, text)?);
    }
    for c in &info.utf8_text {
        let mut c = c.clone();
        let text = c
            .decompress_text_with_limit(MAX_TEXT_BYTES)
            .and_then(|()| c.get_text());
        out.push(inflated(&c.keyword, text)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_round_trip_with_any_unicode() {
        let frame = Frame {
            width: 2,
            height: 1,
            rgb: vec![0, 10, 20, 30, 40, 250],
        };
        let text = vec![
            (
                "prompt".to_string(),
                "un café ☕, \"quoted\"\nand a newline".to_string(),
            ),
            ("seed".to_string(), "18446744073709551615".to_string()),
        ];
        let bytes = encode_with_text(&[frame.clone(), frame], &text).unwrap();
        assert_eq!(read_text(&bytes).unwrap(), text);
        assert!(
            read_text(&bytes[..20]).is_err(),
            "a truncated header is refused"
        );
        assert!(read_text(b"not a png").is_err());
    }
}
