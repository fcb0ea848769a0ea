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
