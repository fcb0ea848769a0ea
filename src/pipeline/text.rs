//! Prompt → token ids, as the released pipeline does it: PixArt/DeepFloyd's `clean_caption`
//! applied twice, then the T5 tokenizer (from the model's `tokenizer.json`, through HF's
//! `tokenizers` crate) without special tokens, truncated to `max_len − 1`, EOS appended, padded
//! to `max_len` with the attention mask. The empty prompt is the unconditional input.

use std::sync::OnceLock;

use fancy_regex::Regex;

use crate::error::{Error, LoadError, Result};
use crate::formats::sentencepiece;

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

/// The official cleaning: `clean_caption` twice, then strip (PixArt-α / DeepFloyd IF, as in
/// `mindspeed_mm/data/data_utils/utils.py`). `ftfy.fix_text` (mojibake repair) is not
/// reproduced; it leaves well-formed text unchanged.
pub fn clean_prompt(prompt: &str) -> String {
    clean_caption(&clean_caption(prompt)).trim().to_string()
}

struct Rules {
    before_html: Vec<(Regex, &'static str)>,
    after_html: Vec<(Regex, &'static str)>,
    dash_underscore: Regex,
    after_basic: Vec<(Regex, &'static str)>,
}

fn re(p: &str) -> Regex {
    // The patterns are constants of this file; a typo is caught by the tests.
    Regex::new(p).unwrap_or_else(|e| panic!("bad built-in pattern {p}: {e}"))
}

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| {
        let url = r"\b((?:{}:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))";
        Rules {
            before_html: vec![
                (re("<person>"), "person"),
                (re(&url.replace("{}", "https?")), ""),
                (re(&url.replace("{}", "www")), ""),
            ],
            after_html: vec![
                (re(r"@[\w\d]+\b"), ""),
                (re(r"[\x{31c0}-\x{31ef}]+"), ""),
                (re(r"[\x{31f0}-\x{31ff}]+"), ""),
                (re(r"[\x{3200}-\x{32ff}]+"), ""),
                (re(r"[\x{3300}-\x{33ff}]+"), ""),
                (re(r"[\x{3400}-\x{4dbf}]+"), ""),
                (re(r"[\x{4dc0}-\x{4dff}]+"), ""),
                (re(r"[\x{4e00}-\x{9fff}]+"), ""),
                (re(r"[\x{002D}\x{058A}\x{05BE}\x{1400}\x{1806}\x{2010}-\x{2015}\x{2E17}\x{2E1A}\x{2E3A}\x{2E3B}\x{2E40}\x{301C}\x{3030}\x{30A0}\x{FE31}\x{FE32}\x{FE58}\x{FE63}\x{FF0D}]+"), "-"),
                (re("[`´«»“”¨]"), "\""),
                (re("[‘’]"), "'"),
                (re(r"&quot;?"), ""),
                (re(r"&amp"), ""),
                (re(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"), " "),
                (re(r"\d:\d\d\s+$"), ""),
                (re(r"\\n"), " "),
                (re(r"#\d{1,3}\b"), ""),
                (re(r"#\d{5,}\b"), ""),
                (re(r"\b\d{6,}\b"), ""),
                (re(r"[\S]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)"), ""),
                (re(r#"["']{2,}"#), "\""),
                (re(r"[\.]{2,}"), " "),
                (re(r"[#®•©™&@·º½¾¿¡§~\)\(\]\[\}\{\|\\/\*]{1,}"), " "),
                (re(r"\s+\.\s+"), " "),
            ],
            dash_underscore: re(r"(?:\-|\_)"),
            after_basic: vec![
                (re(r"\b[a-zA-Z]{1,3}\d{3,15}\b"), ""),
                (re(r"\b[a-zA-Z]+\d+[a-zA-Z]+\b"), ""),
                (re(r"\b\d+[a-zA-Z]+\d+\b"), ""),
                (re(r"(worldwide\s+)?(free\s+)?shipping"), ""),
                (re(r"(free\s)?download(\sfree)?"), ""),
                (re(r"\bclick\b\s(?:for|on)\s\w+"), ""),
                (re(r"\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp4)(\simage[s]?)?"), ""),
                (re(r"\bpage\s+\d+\b"), ""),
                (re(r"\b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b"), " "),
                (re(r"\b\d+\.?\d*[xх×]\d+\.?\d*\b"), ""),
                (re(r"\b\s+\:\s+"), ": "),
                (re(r"(\D[,\./])\b"), "$1 "),
                (re(r"\s+"), " "),
                (re(r#"^["']([\w\W]+)["']$"#), "$1"),
                (re(r"^['_,\-:;]"), ""),
                (re(r"['_,\-:\-\+]$"), ""),
                (re(r"^\.\S+$"), ""),
            ],
        }
    })
}

fn apply(text: String, rules: &[(Regex, &str)]) -> String {
    rules
        .iter()
        .fold(text, |t, (r, with)| r.replace_all(&t, *with).into_owned())
}

/// Python's `urllib.parse.unquote_plus`: `+` is a space, `%XX` a UTF-8 byte.
fn unquote_plus(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 2;
                }
                None => out.push(b'%'),
            },

            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// BeautifulSoup's `.text` for a caption: tags dropped, entities decoded.
fn html_text(s: &str) -> String {
    static TAG: OnceLock<Regex> = OnceLock::new();
    let tag = TAG.get_or_init(|| re(r"<[^<>]*>"));
    html_escape::decode_html_entities(&tag.replace_all(s, "")).into_owned()
}

fn clean_caption(caption: &str) -> String {
    let r = rules();
    let mut c = unquote_plus(caption).trim().to_lowercase();
    c = apply(c, &r.before_html);
    c = html_text(&c);
    c = apply(c, &r.after_html);
    if r.dash_underscore.find_iter(&c).count() > 3 {
        c = r.dash_underscore.replace_all(&c, " ").into_owned();
    }
    // basic_clean: html.unescape twice, strip.
    c = html_escape::decode_html_entities(&html_escape::decode_html_entities(&c))
        .trim()
        .to_string();
    c = apply(c, &r.after_basic);
    c.trim().to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_changes_what_the_official_code_changes() {
        assert_eq!(clean_prompt("  A Red APPLE  "), "a red apple");
        assert_eq!(
            clean_prompt("a cat https://example.com/x.png on a mat"),
            "a cat on a mat"
        );
        assert_eq!(clean_prompt("<b>bold</b> text"), "bold text");
        assert_eq!(clean_prompt("hello @someone world"), "hello world");
        assert_eq!(clean_prompt("a+red+apple"), "a red apple");
        assert_eq!(clean_prompt("“quoted” words"), "\"quoted\" words");
        assert_eq!(clean_prompt("this-is-my-cute-cat"), "this is my cute cat");
        assert_eq!(
            clean_prompt("a photo, high quality"),
            "a photo, high quality"
        );
        assert_eq!(clean_prompt(""), "");
    }
}
