//! PyTorch checkpoints (`.pt`, `.pth`, `.ckpt`, `.bin`: a zip with a pickle and raw storages),
//! read without executing the pickle (`ptdit convert` writes them as safetensors).
//!
//! The state dict is unwrapped from `{"model": …}` or `{"state_dict": …}` (as the official
//! loader does) or from the one entry that holds tensors (`ema`, `model_state_dict`), a
//! `module.` prefix is removed (two keys that become one are an error), big-endian storages are
//! swapped, and every tensor keeps its dtype (bf16 stays bf16). Non-tensor entries (step
//! counters, optimizer settings) are skipped and counted.

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
    /// The top-level key the state dict was under (`model`, `ema`, …), if any.
    pub from: Option<String>,
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

/// Reads a PyTorch zip checkpoint; the state dict is found as [`find_state_dict`] says.
pub fn read_checkpoint(bytes: &[u8]) -> Result<Checkpoint> {
    read_checkpoint_at(bytes, None)
}

/// Reads a PyTorch zip checkpoint whose state dict is the entry `key` of the top-level dict
/// (e.g. `ema`), or found as [`find_state_dict`] says when `key` is `None`.
pub fn read_checkpoint_at(bytes: &[u8], key: Option<&str>) -> Result<Checkpoint> {
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
    // torch.save stores its entries uncompressed; a compressed entry may not inflate beyond
    // this (a deflate bomb, or a declared size that is not there, allocates nothing).
    let limit = (bytes.len() as u64).saturating_mul(32).max(1 << 20);
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let f = zip
            .by_name(name)
            .map_err(|e| bad(format!("missing `{name}` ({e})")))?;
        let mut v = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut v)
            .map_err(|e| bad(format!("reading `{name}`: {e}")))?;
        if v.len() as u64 > limit {
            return Err(bad(format!("`{name}` inflates beyond {limit} bytes")));
        }
        Ok(v)
    };
    let big_endian = match names.iter().any(|n| *n == format!("{prefix}byteorder")) {
        false => false,
        true => match read(&format!("{prefix}byteorder"))?.trim_ascii() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(bad(format!(
                    "byteorder `{}` is neither little nor big",
                    String::from_utf8_lossy(other)
                )))
            }
        },
    };
    let root = super::pickle::parse(&read(&pkl)?)?;
    let (from, dict) = find_state_dict(root, key)?;
    let mut ck = Checkpoint {
        from,
        ..Checkpoint::default()
    };
    let mut storages: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in dict {
        let original = match k {
            Value::Str(s) => s,
            other => return Err(bad(format!("a state-dict key is not a string: {other:?}"))),
        };
        let key = original
            .strip_prefix("module.")
            .unwrap_or(&original)
            .to_string();
        if let Some(first) = named.insert(key.clone(), original.clone()) {
            return Err(bad(format!(
                "`{first}` and `{original}` are both `{key}` once `module.` is removed"
            )));
        }
        match v {
            Value::Tensor(t) => {
                if !storages.contains_key(&t.storage) {
                    let data = read(&format!("{prefix}data/{}", t.storage))?;
                    storages.insert(t.storage.clone(), data);
                }
                let raw = materialise(&t, &storages[&t.storage], big_endian)
                    .map_err(|e| bad(format!("`{original}`: {e}")))?;
                ck.tensors.insert(key, raw);
            }
            _ => ck.skipped.push(key),
        }
    }
    if ck.tensors.is_empty() {
        return Err(bad(format!(
            "no tensors in the state dict ({} other entries{})",
            ck.skipped.len(),
            match &ck.from {
                Some(k) => format!(", under `{k}`"),
                None => String::new(),
            }
        )));
    }
    Ok(ck)
}

/// A dict's entries, in order.
pub type Entries = Vec<(Value, Value)>;

fn holds_tensors(d: &[(Value, Value)]) -> bool {
    d.iter().any(|(_, v)| matches!(v, Value::Tensor(_)))
}

/// The state dict of a checkpoint, and the top-level key it was under. With `key`, that entry.
/// Else `{"model": sd}` or `{"state_dict": sd}` (the official loader's order), else the dict
/// itself if it holds tensors, else its one entry that is a dict of tensors (`ema`,
/// `model_state_dict`, …); several such entries are an error that names them.
pub fn find_state_dict(root: Value, key: Option<&str>) -> Result<(Option<String>, Entries)> {
    let d = match root {
        Value::Dict(d) => d,
        other => {
            return Err(bad(format!(
                "the pickle holds {}, not a state dict",
                kind(&other)
            )))
        }
    };
    fn name(k: &Value) -> Option<&str> {
        match k {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }
    let dict_at = |want: &str| {
        d.iter()
            .position(|(k, v)| name(k) == Some(want) && matches!(v, Value::Dict(_)))
    };
    let take = |mut d: Vec<(Value, Value)>, i: usize| match d.swap_remove(i) {
        (Value::Str(k), Value::Dict(inner)) => (Some(k), inner),
        _ => (None, Vec::new()),
    };
    if let Some(want) = key {
        return match dict_at(want) {
            Some(i) => Ok(take(d, i)),
            None => Err(bad(format!(
                "no dict `{want}` at the top level (its entries: {})",
                d.iter()
                    .filter_map(|(k, _)| name(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    if let Some(i) = dict_at("model").or_else(|| dict_at("state_dict")) {
        return Ok(take(d, i));
    }
    if holds_tensors(&d) {
        return Ok((None, d));
    }
    let candidates: Vec<usize> = (0..d.len())
        .filter(|&i| matches!(&d[i].1, Value::Dict(inner) if holds_tensors(inner)))
        .collect();
    match candidates.as_slice() {
        [i] => Ok(take(d, *i)),
        [] => Ok((None, d)),
        several => Err(bad(format!(
            "it holds several state dicts ({}): choose one with --key",
            several
                .iter()
                .filter_map(|&i| name(&d[i].0))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Tensor(_) => "a single tensor",
        _ => "a value",
    }
}

/// Copies a (possibly strided) view out of its storage into contiguous little-endian bytes
/// (swapping each element of a big-endian checkpoint). Every size is checked: a view may not
/// read past its storage nor hold more elements than it (torch.save writes neither).
fn materialise(
    t: &TensorRef,
    storage: &[u8],
    big_endian: bool,
) -> std::result::Result<RawTensor, String> {
    let es = t.dtype.size();
    if t.shape.len() != t.stride.len() {
        return Err("shape and stride differ in length".into());
    }
    let too_big = || format!("its view exceeds its storage ({} bytes)", storage.len());
    let n = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(too_big)?;
    if n == 0 {
        return Ok(RawTensor {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: Vec::new(),
        });
    }
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |a, (&d, &s)| {
            a.checked_add((d - 1).checked_mul(s)?)
        })
        .ok_or_else(too_big)?;
    let end = last.checked_add(1).and_then(|e| e.checked_mul(es));
    let bytes = n.checked_mul(es);
    match (end, bytes) {
        (Some(e), Some(b)) if e <= storage.len() && b <= storage.len() => {}
        _ => return Err(too_big()),
    }
    let mut data = Vec::with_capacity(n * es);
    let mut idx = vec![0usize; t.shape.len()];
    for _ in 0..n {
        // In bounds: every index is below its dim, so off <= last.
        let off = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        let element = &storage[off * es..(off + 1) * es];
        match big_endian {
            true => data.extend(element.iter().rev()),
            false => data.extend_from_slice(element),
        }
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
