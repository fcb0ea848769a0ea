//! The settings that made an image, as the PNG's text chunks carry them: written by the CLI, the
//! desktop app and the demo, read by `ptdit info FILE.png`, and repeated by `ptdit generate
//! --from FILE.png` (same settings, same model, same image).

use super::generate::Request;
use crate::error::{Error, Result};
use crate::tensor::DType;

/// The key under which the model is named when it is the built-in one.
pub const BUILT_IN_MODEL: &str = "built-in emoji model";

/// How settings name a model: its directory as given, or [`BUILT_IN_MODEL`] without one.
pub fn model_name(dir: Option<&std::path::Path>) -> String {
    dir.map_or(BUILT_IN_MODEL.to_string(), |d| d.display().to_string())
}

/// One generation's settings. Together with the model's files they determine the image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSettings {
    pub prompt: String,
    pub negative_prompt: String,
    pub seed: u64,
    pub steps: usize,
    pub guidance: f32,
    pub width: usize,
    pub height: usize,
    pub frames: usize,
    /// A model directory as it was given, or [`BUILT_IN_MODEL`].
    pub model: String,
    /// The float type the transformer and the VAE ran in (`f32` or `f16`); how the model's
    /// Linear weights are stored (q8, q4, bf16) is a property of its directory.
    pub float: String,
    /// The step cache level or spec (`off` for none).
    pub cache: String,
    /// The factor the written image was enlarged by.
    pub upscale: usize,
}

const KEYS: [&str; 11] = [
    "prompt",
    "negative prompt",
    "seed",
    "steps",
    "guidance",
    "size",
    "frames",
    "model",
    "float",
    "step cache",
    "upscale",
];

impl ImageSettings {
    /// The settings `req` runs with, on the model named `model` ([`model_name`]) in `float`,
    /// with the step cache as it was given (`cache`) and the written image enlarged `upscale`
    /// times.
    pub fn of(req: &Request, model: String, float: DType, cache: &str, upscale: usize) -> Self {
        ImageSettings {
            prompt: req.prompt.clone(),
            negative_prompt: req.negative_prompt.clone(),
            seed: req.seed,
            steps: req.steps,
            guidance: req.cfg,
            width: req.width,
            height: req.height,
            frames: req.frames,
            model,
            float: float.name().to_string(),
            cache: cache.to_string(),
            upscale,
        }
    }

    /// The PNG text chunks: one per setting, plus `Software` (the engine and its version).
    pub fn to_text(&self) -> Vec<(String, String)> {
        let values = [
            self.prompt.clone(),
            self.negative_prompt.clone(),
            self.seed.to_string(),
            self.steps.to_string(),
            // Rust prints the shortest text that reads back as the same f32.
            self.guidance.to_string(),
            format!("{}x{}", self.width, self.height),
            self.frames.to_string(),
            self.model.clone(),
            self.float.clone(),
            self.cache.clone(),
            self.upscale.to_string(),
        ];
        let mut text: Vec<(String, String)> = KEYS
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        text.push((
            "Software".into(),
            format!("ptdit {}", env!("CARGO_PKG_VERSION")),
        ));
        text
    }

    /// Reads the settings back from a PNG's text chunks; an error names each key that is
    /// missing or does not parse (a PNG from another program has none of them).
    pub fn from_text(text: &[(String, String)]) -> Result<Self> {
        let get = |key: &str| text.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let missing: Vec<&str> = KEYS.iter().copied().filter(|k| get(k).is_none()).collect();
        if !missing.is_empty() {
            return Err(Error::Input(format!(
                "the PNG does not hold the settings of a ptdit generation; missing: {}",
                missing.join(", ")
            )));
        }
        let value = |key: &str| get(key).unwrap_or_default();
        fn parsed<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
            v.trim()
                .parse()
                .map_err(|_| Error::Input(format!("the PNG's `{key}` setting `{v}` is not valid")))
        }
        let size = value("size");
        let (w, h) = size
            .split_once('x')
            .ok_or_else(|| Error::Input(format!("the PNG's `size` setting `{size}` is not WxH")))?;
        let guidance: f32 = parsed("guidance", value("guidance"))?;
        if !guidance.is_finite() {
            return Err(Error::Input(format!(
                "the PNG's `guidance` setting `{guidance}` is not a finite number"
            )));
        }
        Ok(ImageSettings {
            prompt: value("prompt").to_string(),
            negative_prompt: value("negative prompt").to_string(),
            seed: parsed("seed", value("seed"))?,
            steps: parsed("steps", value("steps"))?,
            guidance,
            width: parsed("size", w)?,
            height: parsed("size", h)?,
            frames: parsed("frames", value("frames"))?,
            model: value("model").to_string(),
            float: value("float").to_string(),
            cache: value("step cache").to_string(),
            upscale: parsed("upscale", value("upscale"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> ImageSettings {
        ImageSettings {
            prompt: "red apple, \"glossy\"\nsecond line".into(),
            negative_prompt: "blurry".into(),
            seed: u64::MAX,
            steps: 30,
            guidance: 4.1,
            width: 32,
            height: 48,
            frames: 1,
            model: BUILT_IN_MODEL.into(),
            float: "f32".into(),
            cache: "medium".into(),
            upscale: 4,
        }
    }

    #[test]
    fn settings_round_trip_through_text() {
        let s = example();
        assert_eq!(ImageSettings::from_text(&s.to_text()).unwrap(), s);
    }

    #[test]
    fn missing_and_bad_settings_are_named() {
        let mut text = example().to_text();
        text.retain(|(k, _)| k != "seed" && k != "steps");
        let e = ImageSettings::from_text(&text).unwrap_err().to_string();
        assert!(e.contains("missing: seed, steps"), "{e}");
        let mut text = example().to_text();
        for (k, v) in &mut text {
            if k == "guidance" {
                *v = "NaN".into();
            }
        }
        let e = ImageSettings::from_text(&text).unwrap_err().to_string();
        assert!(e.contains("guidance"), "{e}");
        let mut text = example().to_text();
        text.retain(|(k, _)| k != "size");
        text.push(("size".into(), "32".into()));
        let e = ImageSettings::from_text(&text).unwrap_err().to_string();
        assert!(e.contains("not WxH"), "{e}");
    }
}
