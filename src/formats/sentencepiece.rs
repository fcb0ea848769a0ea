//! The parts of SentencePiece's `ModelProto` a Unigram tokenizer needs, read straight from the
//! protobuf wire format (no code generation, nothing else of the file is interpreted).

use crate::error::{Error, LoadError, Result};

/// The piece type of the unknown token.
pub const UNKNOWN: u64 = 2;

pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: u64,
}

pub struct Model {
    pub pieces: Vec<Piece>,
    pub charsmap: Vec<u8>,
    pub byte_fallback: bool,
}

fn bad(what: &str) -> Error {
    Error::load(LoadError::BadFile {
        format: "SentencePiece model",
        detail: what.into(),
    })
}

/// (field, wire type, value bytes or varint) of each field of one message.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    fn varint(b: &mut &[u8]) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or_else(|| bad("truncated varint"))?;
            *b = rest;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut b)?),
            1 => {
                b = b.get(8..).ok_or_else(|| bad("truncated fixed64"))?;
                continue;
            }
            2 => {
                let n = varint(&mut b)? as usize;
                let v = b.get(..n).ok_or_else(|| bad("truncated field"))?;
                b = &b[n..];
                Field::Bytes(v)
            }
            5 => {
                let v: [u8; 4] = b
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| bad("truncated fixed32"))?;
                b = &b[4..];
                Field::Fixed32(v)
            }
            _ => return Err(bad("unknown wire type: not a SentencePiece model")),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

pub fn parse(bytes: &[u8]) -> Result<Model> {
    let mut m = Model {
        pieces: Vec::new(),
        charsmap: Vec::new(),
        byte_fallback: false,
    };
    for (f, v) in fields(bytes)? {
        match (f, v) {
            (1, Field::Bytes(p)) => {
                let mut piece = Piece {
                    piece: String::new(),
                    score: 0.0,
                    kind: 1,
                };
                for (pf, pv) in fields(p)? {
                    match (pf, pv) {
                        (1, Field::Bytes(s)) => {
                            piece.piece = String::from_utf8_lossy(s).into_owned()
                        }
                        (2, Field::Fixed32(x)) => piece.score = f32::from_le_bytes(x),
                        (3, Field::Varint(t)) => piece.kind = t,
                        _ => {}
                    }
                }
                m.pieces.push(piece);
            }
            (2, Field::Bytes(t)) => {
                for (tf, tv) in fields(t)? {
                    if let (35, Field::Varint(v)) = (tf, tv) {
                        m.byte_fallback = v != 0;
                    }
                }
            }
            (3, Field::Bytes(n)) => {
                for (nf, nv) in fields(n)? {
                    if let (2, Field::Bytes(c)) = (nf, nv) {
                        m.charsmap = c.to_vec();
                    }
                }
            }
            _ => {}
        }
    }
    if m.pieces.is_empty() {
        return Err(bad("no pieces: not a SentencePiece model"));
    }
    Ok(m)
}

/// Checks a precompiled normalisation map (`NormalizerSpec.precompiled_charsmap`: a u32 trie
/// size, a darts-clone double array, then NUL-separated replacement strings) before the
/// `spm_precompiled` crate reads it: that crate indexes the array and the strings without
/// bounds checks, so a crafted map panics at the first prompt. A valid array is made of
/// 256-unit blocks, so every state the lookup can reach has all its children inside the array;
/// this walks every reachable state and refuses a map where one lies outside, or where a
/// replacement starts outside the strings or inside a character.
pub fn check_charsmap(map: &[u8]) -> Result<()> {
    let bad = |why: &str| bad(&format!("precompiled_charsmap: {why}"));
    let size = map
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("shorter than its 4-byte header"))?;
    let trie = map
        .get(4..4 + size)
        .filter(|_| size % 4 == 0 && size > 0)
        .ok_or_else(|| bad("the trie size disagrees with the data"))?;
    let units: Vec<usize> = trie
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let strings = std::str::from_utf8(&map[4 + size..])
        .map_err(|_| bad("the replacement strings are not UTF-8"))?;
    // darts-clone's unit fields, as the lookup decodes them.
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let label = |u: usize| u & ((1 << 31) | 0xFF);
    let offset = |u: usize| (u >> 10) << ((u & (1 << 9)) >> 6);
    let n = units.len();
    let mut seen = vec![false; n];
    let mut todo = vec![offset(units[0])];
    while let Some(p) = todo.pop() {
        if p | 0xFF >= n {
            return Err(bad("a trie state's children lie outside the array"));
        }
        if std::mem::replace(&mut seen[p], true) {
            continue;
        }
        for c in 1..=255usize {
            let u = units[p ^ c];
            if label(u) != c {
                continue;
            }
            let next = (p ^ c) ^ offset(u);
            if has_leaf(u) {
                let at = *units
                    .get(next)
                    .ok_or_else(|| bad("a leaf lies outside the array"))?;
                let start = at & ((1 << 31) - 1);
                if !strings.is_char_boundary(start) {
                    return Err(bad("a replacement starts outside the strings"));
                }
            }
            todo.push(next);
        }
    }
    Ok(())
}

/// The smallest valid map: one rule, "a" → `to` (for tests and fuzzing seeds). The root's offset is 256 (bit 9 clear: the
/// offset is the unit >> 10), so "a" is unit 256 ^ 97 = 353: label 97, the leaf bit, offset 0,
/// so the leaf is read from unit 353 itself, whose low 31 bits (353) index the strings.
pub fn one_rule_charsmap(to: u8) -> Vec<u8> {
    let mut units = vec![0u32; 512];
    units[0] = 256 << 10;
    units[256 ^ b'a' as usize] = b'a' as u32 | 1 << 8;
    let mut map = (units.len() as u32 * 4).to_le_bytes().to_vec();
    map.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    map.extend(std::iter::repeat_n(b'x', 353));
    map.extend_from_slice(&[to, 0]);
    map
}

#[cfg(test)]
mod tests {
    use super::{check_charsmap, one_rule_charsmap};

    fn one_rule() -> Vec<u8> {
        one_rule_charsmap(b'b')
    }

    #[test]
    fn crafted_charsmaps_are_refused_and_a_valid_one_taken() {
        let good = one_rule();
        check_charsmap(&good).unwrap();
        let p = tokenizers::normalizers::Precompiled::from(&good).unwrap();
        assert_eq!(p.normalize_string("a"), "b");
        for (map, says) in [
            (vec![], "header"),
            (vec![1, 0], "header"),
            (vec![0xff, 0xff, 0xff, 0xff, 1, 2], "trie size"),
            (good[..600].to_vec(), "trie size"),
            (
                {
                    let mut m = good.clone();
                    m[4..8].copy_from_slice(&(1000u32 << 10).to_le_bytes());
                    m
                },
                "outside the array",
            ),
            (
                {
                    let mut m = good.clone();
                    m.truncate(4 + 2048 + 10);
                    m
                },
                "outside the strings",
            ),
            (
                {
                    let mut m = good.clone();
                    m.push(0xff);
                    m
                },
                "not UTF-8",
            ),
        ] {
            let e = check_charsmap(&map).unwrap_err().to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
