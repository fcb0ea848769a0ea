//! safetensors: an 8-byte little-endian header length, a JSON header (each tensor's dtype,
//! shape and byte range, plus optional string metadata), then the tensors' bytes.
//!
//! Three ways to use it: a whole file in memory ([`TensorFile`]), a file arriving in pieces
//! of any size ([`Stream`], so a multi-GB checkpoint is never whole in memory), and writing
//! ([`write()`]). The header is validated before any data is read: ranges must tile the data
//! exactly, and its size is bounded, so a corrupt file cannot make the reader allocate
//! without bound.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub use safetensors::Dtype;
use serde::Deserialize;

use super::torch::{RawTensor, StorageType};
use crate::error::{Error, LoadError, Result};
use crate::tensor::HostTensor;

/// Safetensors' own limit on a header.
pub const MAX_HEADER: u64 = 100_000_000;

fn bad(detail: impl std::fmt::Display) -> Error {
    Error::load(LoadError::BadFile {
        format: "safetensors",
        detail: detail.to_string(),
    })
}

/// Tensors of a safetensors file by key, as f32, plus its metadata.
#[derive(Debug, Default)]
pub struct TensorFile {
    pub tensors: HashMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes).map_err(|e| e.in_file(path.display()))
    }

    /// A whole file: every tensor decoded to f32 (integers too: masks and ids), under its key
    /// with an optional `module.` prefix (distributed-training checkpoints carry one) removed.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(bad)?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(bad)?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let t = match decode(view.dtype(), view.data()) {
                Some(v) => HostTensor::f32(shape, v),
                None => {
                    return Err(Error::load(LoadError::Dtype {
                        key: name,
                        dtype: format!("{:?}", view.dtype()),
                        expected: READABLE,
                    }))
                }
            };
            let key = name.strip_prefix("module.").unwrap_or(&name).to_string();
            tensors.insert(key, t);
        }
        let metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(TensorFile { tensors, metadata })
    }

    /// The `config` metadata (the model's constructor arguments as JSON), as fixtures carry it.
    pub fn config_text(&self) -> Result<&str> {
        self.metadata
            .get("config")
            .map(|s| s.as_str())
            .ok_or_else(|| {
                Error::load(LoadError::Config(
                    "the file has no `config` metadata".into(),
                ))
            })
    }

    pub fn get(&self, key: &str) -> Result<&HostTensor> {
        self.tensors
            .get(key)
            .ok_or_else(|| Error::load(LoadError::missing(key)))
    }
}

/// The dtypes [`decode`] reads.
pub const READABLE: &str = "f32, f16, bf16 or an integer type";

/// Little-endian values of `dtype` as f32 (integers too: masks and ids), or `None` for a dtype
/// the engine does not read. Trailing bytes of a partial element are ignored.
pub fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes_to::<4, _>(data, f32::from_le_bytes),
        Dtype::F16 => bytes_to::<2, _>(data, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => bytes_to::<2, _>(data, |b| half::bf16::from_le_bytes(b).to_f32()),
        Dtype::I64 => bytes_to::<8, _>(data, |b| i64::from_le_bytes(b) as f32),
        Dtype::I32 => bytes_to::<4, _>(data, |b| i32::from_le_bytes(b) as f32),
        _ => return None,
    })
}

fn bytes_to<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            f(b)
        })
        .collect()
}

/// One tensor of a header.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Its bytes, `[start, end)` from the start of the data.
    pub start: u64,
    pub end: u64,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: Dtype,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Parses a header's JSON: the entries in data order, checked to tile the data exactly, and
/// the data's length.
pub fn parse_header(json: &[u8]) -> Result<(Vec<Entry>, u64)> {
    let text = std::str::from_utf8(json).map_err(|_| bad("the header is not UTF-8"))?;
    let mut raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| bad(format!("bad header ({e})")))?;
    raw.remove("__metadata__");
    let mut entries = Vec::with_capacity(raw.len());
    for (key, v) in raw {
        let e: RawEntry = serde_json::from_value(v)
            .map_err(|e| bad(format!("bad header entry for `{key}` ({e})")))?;
        entries.push(Entry {
            key,
            dtype: e.dtype,
            shape: e.shape,
            start: e.data_offsets.0,
            end: e.data_offsets.1,
        });
    }
    entries.sort_by_key(|e| (e.start, e.end));
    let mut at = 0u64;
    for e in &entries {
        let numel = e
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let bytes = numel.and_then(|n| n.checked_mul(e.dtype.bitsize() as u64 / 8));
        if e.start != at || e.end < e.start || Some(e.end - e.start) != bytes {
            return Err(bad(format!(
                "`{}` {:?} {:?} has data at {}..{}, expected {} bytes from {at}",
                e.key,
                e.dtype,
                e.shape,
                e.start,
                e.end,
                bytes.map_or("too many".into(), |b| b.to_string())
            )));
        }
        at = e.end;
    }
    Ok((entries, at))
}

/// What a [`Stream`] has read from the bytes pushed into it.
pub enum Piece<'a> {
    /// The header, parsed and checked (before any data).
    Header(&'a [Entry]),
    /// Bytes of tensor `index` of the header's entries, in order; `last` when they complete
    /// it (a zero-sized tensor gets one empty, last piece).
    Data {
        index: usize,
        bytes: &'a [u8],
        last: bool,
    },
}

/// A safetensors file arriving in pieces of any size.
#[derive(Default)]
pub struct Stream {
    /// The header length and JSON until the header is whole.
    header: Vec<u8>,
    /// Once the header is read: the entries, the data bytes seen, the next entry, the end.
    body: Option<Body>,
}

struct Body {
    entries: Vec<Entry>,
    pos: u64,
    next: usize,
    end: u64,
}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next bytes of the file; `on` sees the header once it is whole, then every tensor's
    /// data as it arrives.
    pub fn push(
        &mut self,
        mut bytes: &[u8],
        mut on: impl FnMut(Piece<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.body.is_none() {
            loop {
                let want = self.header_len()?;
                let have = self.header.len() as u64;
                if have >= want && have >= 8 {
                    break;
                }
                if bytes.is_empty() {
                    return Ok(());
                }
                let take = (want - have).min(bytes.len() as u64) as usize;
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
            }
            let (entries, end) = parse_header(&self.header[8..])?;
            self.header = Vec::new();
            on(Piece::Header(&entries))?;
            let mut body = Body {
                entries,
                pos: 0,
                next: 0,
                end,
            };
            body.skip_empty(&mut on)?;
            self.body = Some(body);
        }
        let Some(body) = self.body.as_mut() else {
            return Ok(());
        };
        while !bytes.is_empty() {
            let Some(e) = body.entries.get(body.next) else {
                return Err(Error::load(LoadError::Truncated(format!(
                    "the file is longer than its header says ({} bytes of tensor data)",
                    body.end
                ))));
            };
            // In u64 before narrowing: a tensor may be larger than wasm32's usize.
            let take = (e.end - body.pos).min(bytes.len() as u64) as usize;
            let last = body.pos + take as u64 == e.end;
            on(Piece::Data {
                index: body.next,
                bytes: &bytes[..take],
                last,
            })?;
            body.pos += take as u64;
            bytes = &bytes[take..];
            if last {
                body.next += 1;
                body.skip_empty(&mut on)?;
            }
        }
        Ok(())
    }

    /// The file has no more bytes: it must have been complete.
    pub fn end(&self) -> Result<()> {
        match &self.body {
            None if self.header.is_empty() => Err(empty()),
            None => Err(Error::load(LoadError::Truncated(format!(
                "the file ends inside its header ({} bytes)",
                self.header.len()
            )))),
            Some(b) if b.pos < b.end => Err(Error::load(LoadError::Truncated(format!(
                "{} of {} bytes of tensor data arrived",
                b.pos, b.end
            )))),
            Some(_) => Ok(()),
        }
    }

    /// Bytes the header needs in all (8 until its length is known).
    fn header_len(&self) -> Result<u64> {
        let Some(len) = self.header.get(..8) else {
            return Ok(8);
        };
        let n = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
        if n > MAX_HEADER {
            return Err(bad(format!(
                "its header claims {n} bytes (at most {MAX_HEADER})"
            )));
        }
        Ok(8 + n)
    }
}

impl Body {
    /// Zero-sized tensors have no bytes to wait for.
    fn skip_empty(&mut self, on: &mut impl FnMut(Piece<'_>) -> Result<()>) -> Result<()> {
        while let Some(e) = self.entries.get(self.next) {
            if e.start != e.end {
                break;
            }
            on(Piece::Data {
                index: self.next,
                bytes: &[],
                last: true,
            })?;
            self.next += 1;
        }
        Ok(())
    }
}

/// A file with no bytes at all.
pub fn empty() -> Error {
    Error::load(LoadError::Truncated("the file is empty".into()))
}

/// Writes tensors as safetensors, each in its own dtype.
pub fn write(tensors: &BTreeMap<String, RawTensor>) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(k, t)| {
            let dt = match t.dtype {
                StorageType::F32 => Dtype::F32,
                StorageType::F16 => Dtype::F16,
                StorageType::BF16 => Dtype::BF16,
                StorageType::F64 => Dtype::F64,
                StorageType::I64 => Dtype::I64,
                StorageType::I32 => Dtype::I32,
                StorageType::I16 => Dtype::I16,
                StorageType::I8 => Dtype::I8,
                StorageType::U8 => Dtype::U8,
                StorageType::Bool => Dtype::BOOL,
            };
            safetensors::tensor::TensorView::new(dt, t.shape.clone(), &t.data)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::Model(format!("checkpoint: `{k}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None)
        .map_err(|e| Error::Model(format!("checkpoint: writing safetensors: {e}")))
}

/// One tensor of a file being written piece by piece: its header entry, the data to follow.
#[derive(Clone, Debug)]
pub struct OutEntry {
    pub key: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

/// The header of a safetensors file whose tensors' data will follow in `entries`' order
/// (length prefix, JSON with `metadata`, padded with spaces to 8 bytes), so a writer can
/// stream the data after it without holding it.
pub fn header_bytes(entries: &[OutEntry], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut json = serde_json::Map::new();
    if !metadata.is_empty() {
        json.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut at = 0u64;
    for e in entries {
        let bytes = e.shape.iter().product::<usize>() as u64 * e.dtype.bitsize() as u64 / 8;
        json.insert(
            e.key.clone(),
            serde_json::json!({
                "dtype": format!("{:?}", e.dtype),
                "shape": e.shape,
                "data_offsets": [at, at + bytes],
            }),
        );
        at += bytes;
    }
    let mut text = serde_json::Value::Object(json).to_string().into_bytes();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out
}
