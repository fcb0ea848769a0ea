//! The official prompt cleaning (`clean_caption` of PixArt-α / DeepFloyd IF, as in
//! `mindspeed_mm/data/data_utils/utils.py`), in linear time for any prompt.
//!
//! Every pattern but one runs on the `regex` crate, whose matching is linear in the text. The
//! URL pattern ends in a negative lookahead (`(?!@)`), which needs a backtracking engine; on a
//! prompt such as `"a." * 334` that backtracking is quadratic and fancy-regex gives up
//! (`BacktrackLimitExceeded`). [`remove_urls`] finds the same matches as the backtracking engine
//! would, from tables built in one pass (the test `url_matcher_agrees_with_backtracking` holds it
//! to fancy-regex on random text).

use std::sync::OnceLock;

use regex::Regex;

/// The longest prompt taken, in characters. The text encoder reads at most 199 tokens (a few
/// hundred words); a longer prompt is refused rather than cleaned at length.
pub const MAX_PROMPT_CHARS: usize = 16_384;

/// The official cleaning: `clean_caption` twice, then strip. `ftfy.fix_text` (mojibake repair)
/// is not reproduced; it leaves well-formed text unchanged.
pub fn clean_prompt(prompt: &str) -> String {
    clean_caption(&clean_caption(prompt)).trim().to_string()
}

struct Rules {
    after_html: Vec<(Regex, &'static str)>,
    dash_underscore: Regex,
    after_basic: Vec<(Regex, &'static str)>,
    tag: Regex,
}

fn re(p: &str) -> Regex {
    // The patterns are constants of this file; a typo is caught by the tests.
    Regex::new(p).unwrap_or_else(|e| panic!("bad built-in pattern {p}: {e}"))
}

fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| Rules {
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
        tag: re(r"<[^<>]*>"),
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
    let tag = &rules().tag;
    html_escape::decode_html_entities(&tag.replace_all(s, "")).into_owned()
}

fn clean_caption(caption: &str) -> String {
    let r = rules();
    let mut c = unquote_plus(caption).trim().to_lowercase();
    c = c.replace("<person>", "person");
    c = remove_urls(&c, "https?");
    c = remove_urls(&c, "www");
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

const TLDS: [&str; 8] = ["com", "co", "ru", "net", "org", "edu", "gov", "it"];

/// Removes what the official URL pattern matches, where `scheme` is `https?` or `www`:
///
/// ```text
/// \b((?:SCHEME:(?:\/{1,3}|[a-zA-Z0-9%])
///     |[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))
/// ```
///
/// A backtracking engine tries, from each start, the longest host run first and gives back
/// one character at a time; each table below holds, for a position, the answer that search
/// reaches first, so each start costs O(1) after O(n) preparation.
fn remove_urls(text: &str, scheme: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let n = c.len();
    let word: Vec<bool> = c
        .iter()
        .map(|&x| regex_syntax::is_word_character(x))
        .collect();
    let is_word = |i: usize| i < n && word[i];
    let boundary = |i: usize| (i > 0 && is_word(i - 1)) != is_word(i);
    let not_at = |e: usize| e >= n || c[e] != '@';
    // `\b\/?(?!@)` at u: the end it gives (the slash taken first), if any.
    let tail_end = |u: usize| -> Option<usize> {
        if !boundary(u) {
            return None;
        }
        if u < n && c[u] == '/' && not_at(u + 1) {
            return Some(u + 1);
        }
        not_at(u).then_some(u)
    };
    // `[\w/-]*` then the tail, from q: the end of the longest run's first success.
    let path = |i: usize| word[i] || c[i] == '/' || c[i] == '-';
    let mut after_tld = vec![None; n + 1];
    after_tld[n] = tail_end(n);
    for q in (0..n).rev() {
        let here = tail_end(q);
        after_tld[q] = match path(q) {
            true => after_tld[q + 1].or(here),
            false => here,
        };
    }
    // `[.](?:com|co|…)` then the rest, at a dot p: the end of the first TLD that succeeds.
    let tld_at = |p: usize| -> Option<usize> {
        if c[p] != '.' {
            return None;
        }
        TLDS.iter().find_map(|t| {
            let q = p + 1 + t.len();
            let hit = q <= n && c[p + 1..q].iter().copied().eq(t.chars());
            if hit {
                after_tld[q]
            } else {
                None
            }
        })
    };
    // `[a-zA-Z0-9.\-]+` gives back from its longest run: the last dot within it that succeeds.
    let host = |i: usize| c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '-';
    let mut last_dot = vec![None; n + 1];
    for i in (0..n).rev() {
        if host(i) {
            last_dot[i] = last_dot[i + 1].or_else(|| tld_at(i).map(|_| i));
        }
    }
    let scheme_end = |s: usize| -> Option<usize> {
        let rest = |k: usize| c.get(s + k..).unwrap_or(&[]);
        let head = match scheme {
            "https?" => match rest(0) {
                ['h', 't', 't', 'p', 's', ':', ..] => 6,
                ['h', 't', 't', 'p', ':', ..] => 5,
                _ => return None,
            },
            _ => match rest(0) {
                ['w', 'w', 'w', ':', ..] => 4,
                _ => return None,
            },
        };
        let slashes = rest(head).iter().take(3).take_while(|&&x| x == '/').count();
        match rest(head).first() {
            _ if slashes > 0 => Some(s + head + slashes),
            Some(x) if x.is_ascii_alphanumeric() || *x == '%' => Some(s + head + 1),
            _ => None,
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut s = 0;
    while s < n {
        let end = boundary(s)
            .then(|| {
                scheme_end(s).or_else(|| match host(s) && s + 1 < n && host(s + 1) {
                    true => last_dot[s + 1].and_then(tld_at),
                    false => None,
                })
            })
            .flatten();
        match end {
            Some(e) => s = e,
            None => {
                out.push(c[s]);
                s += 1;
            }
        }
    }
    out
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

    /// The official URL pattern, run by a backtracking engine (fancy-regex) with room enough
    /// for the short texts below.
    fn backtracking(text: &str, scheme: &str) -> String {
        let p = r"\b((?:{}:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.\-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))";
        let r = fancy_regex::RegexBuilder::new(&p.replace("{}", scheme))
            .backtrack_limit(100_000_000)
            .build()
            .expect("the official pattern compiles");
        r.replace_all(text, "").into_owned()
    }

    #[test]
    fn url_matcher_agrees_with_backtracking() {
        let alphabet: Vec<char> = "ab.com/@-_ 1:%httpswwé.ruit\u{301}x".chars().collect();
        let mut rng = crate::rng::Rng::new(7);
        let mut pick = |n: usize| (rng.normals(1, 1.0)[0].abs() * 1e4) as usize % n;
        let fixed = [
            "see https://a.com/x, www:b or a.co@ or a.com/@b or x.it/y/ now",
            "mail me at joe.bloggs@example.com or http:%2 or http:/// or www:/ ok",
            "a.b.c.com.ru/p-q_r/ é.com a-.com -.-.net/",
        ];
        for text in fixed
            .iter()
            .map(|s| s.to_string())
            .chain((0..4000).map(|_| {
                let len = pick(24);
                (0..len).map(|_| alphabet[pick(alphabet.len())]).collect()
            }))
        {
            for scheme in ["https?", "www"] {
                assert_eq!(
                    remove_urls(&text, scheme),
                    backtracking(&text, scheme),
                    "{text:?} with {scheme}"
                );
            }
        }
    }

    #[test]
    fn long_hostile_prompts_clean_in_linear_time() {
        // 668 characters of "a." made the backtracking engine give up (a panic).
        for prompt in [
            "a.".repeat(334),
            "a.".repeat(MAX_PROMPT_CHARS / 2),
            "a.com".repeat(MAX_PROMPT_CHARS / 5) + "@",
            "dotted.words.here ".repeat(70),
            "\0\u{fffd}%ff%00".repeat(1000),
        ] {
            let t = std::time::Instant::now();
            let _ = clean_prompt(&prompt);
            assert!(
                t.elapsed().as_secs() < 5,
                "{:.40}… took {:?}",
                prompt,
                t.elapsed()
            );
        }
    }
}
