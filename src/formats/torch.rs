//! PyTorch checkpoints (`.pt`, `.pth`, `.ckpt`, `.bin`: a zip with a pickle and raw storages),
//! read without executing the pickle (`ptdit convert` writes them as safetensors).
//!
//! The state dict is unwrapped from `{"model": …}` or `{"state_dict": …}` (as the official
//! loader does), a `module.` prefix is removed, and every tensor keeps its dtype (bf16 stays
//! bf16). Non-tensor entries (step counters, optimizer settings) are skipped and counted.

use std::collections::BTreeMap;
use std::io::Read;

pub use super::pickle::StorageType;
use super::pickle::{TensorRef, Value};

use crate::error::{Error, LoadError, Result};

/// A tensor read from a checkpoint: dtype, shape and little-endian contiguous bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub dtype: StorageType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// What a checkpoint held.
#[derive(Debug, Default)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, RawTensor>,
    /// Entries that were not tensors (kept out of the safetensors file).
    pub skipped: Vec<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::load(LoadError::BadFile {
        format: "PyTorch checkpoint",
        detail: msg.into(),
    })
}

/// Reads a PyTorch zip checkpoint.
pub fn read_checkpoint(bytes: &[u8]) -> Result<Checkpoint> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        bad(format!(
            "not a PyTorch zip checkpoint ({e}); legacy (pre-1.6) pickles are not supported"
        ))
    })?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|s| s.ok().map(|s| s.into_owned()))
        .collect();

    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| bad("no data.pkl inside the archive"))?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| bad(format!("missing `{name}` ({e})")))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)
            .map_err(|e| bad(format!("reading `{name}`: {e}")))?;
        Ok(v)
    };
    let root = super::pickle::parse(&read(&pkl)?)?;
    let dict = unwrap_state_dict(root)?;
    let mut ck = Checkpoint::default();
    let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in dict {
        let key = match k {
            Value::Str(s) => s,
            other => return Err(bad(format!("a state-dict key is not a string: {other:?}"))),
        };
        let key = key.strip_prefix("module.").unwrap_or(&key).to_string();
        match v {
            Value::Tensor(t) => {
                if !storages.contains_key(&t.storage) {
                    let data = read(&format!("{prefix}data/{}", t.storage))?;
                    storages.insert(t.storage.clone(), data);
                }
                let raw = materialise(&t, &storages[&t.storage])
                    .map_err(|e| bad(format!("`{key}`: {e}")))?;
                ck.tensors.insert(key, raw);
            }
            _ => ck.skipped.push(key),
        }
    }
    Ok(ck)
}

/// `{"model": sd}` or `{"state_dict": sd}` → sd (the official loader's order), else the dict.
fn unwrap_state_dict(root: Value) -> Result<Vec<(Value, Value)>> {
    let d = match root {
        Value::Dict(d) => d,
        other => {
            return Err(bad(format!(
                "the pickle holds {}, not a state dict",
                kind(&other)
            )))
        }
    };
    for wrapper in ["model", "state_dict"] {
        if let Some((_, Value::Dict(inner))) =
            d.iter().find(|(k, _)| *k == Value::Str(wrapper.into()))
        {
            return Ok(inner.clone());
        }
    }
    Ok(d)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Tensor(_) => "a single tensor",
        _ => "a value",
    }
}

/// Copies a (possibly strided) view out of its storage into contiguous bytes.
fn materialise(t: &TensorRef, storage: &[u8]) -> std::result::Result<RawTensor, String> {
    let es = t.dtype.size();
    let n: usize = t.shape.iter().product();
    if t.shape.len() != t.stride.len() {
        return Err("shape and stride differ in length".into());
    }
    let max_index = t.offset
        + t.shape
            .iter()
            .zip(&t.stride)
            .map(|(d, s)| d.saturating_sub(1) * s)
            .sum::<usize>();
    if n > 0 && (max_index + 1) * es > storage.len() {
        return Err(format!("reads past its storage ({} bytes)", storage.len()));
    }
    let mut data = Vec::with_capacity(n * es);
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..n {
        let off = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        data.extend_from_slice(&storage[off * es..(off + 1) * es]);
        for a in (0..idx.len()).rev() {
            idx[a] += 1;
            if idx[a] < t.shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Ok(RawTensor {
        dtype: t.dtype,
        shape: t.shape.clone(),
        data,
    })
}
