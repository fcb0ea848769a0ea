//! Prompt → token ids, as the released pipeline does it: PixArt/DeepFloyd's `clean_caption`
//! applied twice, then the T5 tokenizer (from the model's `tokenizer.json`, through HF's
//! `tokenizers` crate) without special tokens, truncated to `max_len − 1`, EOS appended, padded
//! to `max_len` with the attention mask. The empty prompt is the unconditional input.

use crate::error::{Error, LoadError, Result};
use crate::formats::sentencepiece;
use crate::pipeline::clean::{clean_prompt, MAX_PROMPT_CHARS};

/// The released pipeline's text length.
pub const MAX_LEN: usize = 200;

/// Token ids and their mask, `max_len` each.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub mask: Vec<f32>,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    eos: u32,
    pad: u32,
}

fn bad(format: &'static str, detail: String) -> Error {
    Error::load(LoadError::BadFile { format, detail })
}

impl Tokenizer {
    /// Loads `tokenizer.json`; EOS is `</s>` and padding `<pad>` (T5's ids 1 and 0).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| e.in_file(path.display()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        // Syntax and duplicate keys first (found by `tests/native/fuzz.rs`): `tokenizers`
        // panics on some syntax errors, and of a duplicated key it may read the copy that the
        // checks below do not see.
        serde_json::from_slice::<NoDuplicateKeys>(bytes)
            .map_err(|e| bad("tokenizer.json", e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad("tokenizer.json", e.to_string()))?;
        // A Precompiled normaliser's map is read by `spm_precompiled` without bounds checks:
        // it is walked first, as for `spiece.model`.
        if let Some(n) = json.get("normalizer") {
            check_charsmaps(n)?;
        }
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| bad("tokenizer.json", e.to_string()))?;
        Self::with_inner(inner)
    }

    /// Loads a tokenizer directory: `tokenizer.json`, or else SentencePiece's `spiece.model`
    /// (what the T5 tokenizers of the released pipeline ship).
    pub fn from_dir(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_file(json);
        }
        let spm = dir.join("spiece.model");
        let bytes = std::fs::read(&spm).map_err(|e| Error::io(&spm, e))?;
        Self::from_spiece(&bytes).map_err(|e| e.in_file(spm.display()))
    }

    /// Builds the tokenizer HF's converter makes from a SentencePiece model: Unigram over the
    /// model's pieces, its precompiled normalisation map followed by collapsing runs of spaces,
    /// and `▁` prepended to every word.
    pub fn from_spiece(bytes: &[u8]) -> Result<Self> {
        use tokenizers::normalizers::replace::ReplacePattern;
        use tokenizers::normalizers::{NormalizerWrapper, Precompiled, Replace, Sequence};
        use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
        let m = sentencepiece::parse(bytes)?;
        let bad = |e: String| bad("SentencePiece model", e);
        let unk = m
            .pieces
            .iter()
            .position(|p| p.kind == sentencepiece::UNKNOWN);
        let vocab = m
            .pieces
            .iter()
            .map(|p| (p.piece.clone(), p.score as f64))
            .collect();
        let model = tokenizers::models::unigram::Unigram::from(vocab, unk, m.byte_fallback)
            .map_err(|e| bad(e.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        let mut norms: Vec<NormalizerWrapper> = Vec::new();
        if !m.charsmap.is_empty() {
            sentencepiece::check_charsmap(&m.charsmap)?;
            norms.push(
                Precompiled::from(&m.charsmap)
                    .map_err(|e| bad(e.to_string()))?
                    .into(),
            );
        }
        norms.push(
            Replace::new(ReplacePattern::Regex(" {2,}".into()), " ")
                .map_err(|e| bad(e.to_string()))?
                .into(),
        );
        inner.with_normalizer(Some(NormalizerWrapper::Sequence(Sequence::new(norms))));
        inner.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        Self::with_inner(inner)
    }

    fn with_inner(inner: tokenizers::Tokenizer) -> Result<Self> {
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| bad("tokenizer", format!("it has no `{t}` token")))
        };
        let (eos, pad) = (id("</s>")?, id("<pad>")?);
        Ok(Tokenizer { inner, eos, pad })
    }

    /// Cleans and tokenizes `prompt` into `max_len` ids with EOS and padding.
    pub fn encode(&self, prompt: &str, max_len: usize) -> Result<Tokens> {
        if max_len == 0 {
            return Err(Error::Input("the text length must be positive".into()));
        }
        let chars = prompt.chars().count();
        if chars > MAX_PROMPT_CHARS {
            return Err(Error::Input(format!(
                "the prompt is {chars} characters; at most {MAX_PROMPT_CHARS} are taken (the text \
                 encoder reads {} tokens)",
                max_len - 1
            )));
        }
        let text = clean_prompt(prompt);
        let enc = self
            .inner
            .encode(text.as_str(), false)
            .map_err(|e| Error::Input(format!("cannot tokenize the prompt: {e}")))?;
        let mut ids: Vec<u32> = enc.get_ids().iter().copied().take(max_len - 1).collect();
        ids.push(self.eos);
        let mut mask = vec![1.0; ids.len()];
        ids.resize(max_len, self.pad);
        mask.resize(max_len, 0.0);
        Ok(Tokens { ids, mask })
    }
}

/// A Unigram tokenizer in Hugging Face's JSON format with a handful of pieces (ids 0 to 20),
/// for models with random weights: the tests' tiny model and `ptdit random-model`.
pub fn toy_tokenizer_json() -> String {
    let pieces = [
        "▁a", "▁red", "▁apple", "▁cat", "▁on", "▁mat", "▁", "a", "e", "p", "l", "r", "d", "c", "t",
        "o", "n", "m",
    ];
    let mut vocab = vec![
        r#"["<pad>", 0.0]"#.to_string(),
        r#"["</s>", 0.0]"#.to_string(),
        r#"["<unk>", 0.0]"#.to_string(),
    ];
    vocab.extend(
        pieces
            .iter()
            .enumerate()
            .map(|(i, p)| format!(r#"["{p}", {}]"#, -1.0 - i as f32 * 0.1)),
    );
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}},
        "post_processor": null, "decoder": null,
        "model": {{"type": "Unigram", "unk_id": 2, "vocab": [{}], "byte_fallback": false}}}}"#,
        vocab.join(", ")
    )
}

/// Any JSON value whose objects have no key twice (deserializing it checks that, and nothing
/// more).
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<NoDuplicateKeys>()?;
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{key}` appears twice"
                )));
            }
        }
        Ok(self)
    }
}

/// Checks every `precompiled_charsmap` (base64) inside a normaliser's JSON.
fn check_charsmaps(v: &serde_json::Value) -> Result<()> {
    match v {
        serde_json::Value::Object(m) => {
            let precompiled = m.get("type").and_then(|t| t.as_str()) == Some("Precompiled");
            if precompiled && !m.get("precompiled_charsmap").is_some_and(|c| c.is_string()) {
                // `tokenizers` panics on a Precompiled normaliser without its map.
                return Err(bad(
                    "tokenizer.json",
                    "a Precompiled normalizer without a precompiled_charsmap string".into(),
                ));
            }
            if let Some(map) = m.get("precompiled_charsmap") {
                let text = map.as_str().unwrap_or_default();
                let bytes = base64::decode(text).map_err(|e| {
                    bad(
                        "tokenizer.json",
                        format!("precompiled_charsmap is not base64: {e}"),
                    )
                })?;
                sentencepiece::check_charsmap(&bytes).map_err(|e| e.in_file("tokenizer.json"))?;
            }
            m.values().try_for_each(check_charsmaps)
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(check_charsmaps),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The toy tokenizer with a Precompiled normaliser whose map is `map`.
    fn with_charsmap(map: &[u8]) -> Vec<u8> {
        let norm = format!(
            r#""normalizer": {{"type": "Precompiled", "precompiled_charsmap": "{}"}}"#,
            base64::encode(map)
        );
        toy_tokenizer_json()
            .replace(r#""normalizer": null"#, &norm)
            .into_bytes()
    }

    #[test]
    fn duplicate_keys_in_tokenizer_json_are_refused() {
        let json = toy_tokenizer_json().replace(
            r#""normalizer": null"#,
            r#""normalizer": null, "normalizer": {"type": "Lowercase"}"#,
        );
        let e = Tokenizer::from_bytes(json.as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("the key `normalizer` appears twice"), "{e}");
    }

    #[test]
    fn a_crafted_charsmap_in_tokenizer_json_is_refused() {
        // "a" → "c".
        let mut map = sentencepiece::one_rule_charsmap(b'c');
        let t = Tokenizer::from_bytes(&with_charsmap(&map)).unwrap();
        // "a" is normalised to "c" before the pieces: "▁a" is no longer found.
        assert_ne!(t.encode("a", 4).unwrap().ids[0], 3);
        map[4..8].copy_from_slice(&(1000u32 << 10).to_le_bytes());
        let e = Tokenizer::from_bytes(&with_charsmap(&map))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("precompiled_charsmap: a trie state's children lie outside"),
            "{e}"
        );
    }
}
