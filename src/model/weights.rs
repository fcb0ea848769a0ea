//! Reading tensors from safetensors files: weights in f32, f16 or bf16 (converted to f32 with
//! `half`), integer masks and ids, under their official keys (an optional `module.` prefix, as
//! distributed-training checkpoints carry, is removed).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::graph::{Graph, Source};
use crate::tensor::HostTensor;

/// Key prefixes of the tensors a golden fixture file carries beside the weights (its inputs,
/// outputs and per-block traces): skipped when the file's weights are loaded.
pub const FIXTURE_PREFIXES: &[&str] = &["input.", "output.", "trace."];

/// Tensors of a safetensors file by key, plus its metadata.
#[derive(Debug, Default)]
pub struct TensorFile {
    pub tensors: HashMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Model(format!("not a valid safetensors file ({e})")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Model(format!("not a valid safetensors file ({e})")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let t = match decode(view.dtype(), view.data()) {
                Some(v) => HostTensor::f32(shape, v),
                None => {
                    return Err(Error::Model(format!(
                    "tensor `{name}` has dtype {:?}; expected f32, f16, bf16 or an integer type",
                    view.dtype()
                )))
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
            .ok_or_else(|| Error::Model("the file has no `config` metadata".into()))
    }

    pub fn get(&self, key: &str) -> Result<&HostTensor> {
        self.tensors
            .get(key)
            .ok_or_else(|| Error::Model(format!("missing tensor `{key}`")))
    }
}

/// Little-endian values of `dtype` as f32 (integers too: masks and ids), or `None` for a dtype
/// the engine does not read. Trailing bytes of a partial element are ignored.
pub(crate) fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
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

/// Picks the params of `graph` out of `tensors`. Every problem is collected into one error:
/// missing keys, unexpected keys (other than `ignore`d ones and anything with a prefix in
/// `skip_prefixes`, e.g. fixtures' `input.`/`output.`), wrong shapes, non-finite values.
pub fn select_params(
    graph: &Graph,
    tensors: &HashMap<String, HostTensor>,
    ignore: &[&str],
    skip_prefixes: &[&str],
) -> Result<HashMap<String, HostTensor>> {
    let mut wanted = BTreeMap::new();
    for (_, info) in graph.tensors() {
        if matches!(info.source, Source::Param) {
            wanted.insert(info.name.clone(), info.desc.shape.clone());
        }
    }
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut out = HashMap::new();
    for (key, shape) in &wanted {
        match tensors.get(key) {
            None => missing.push(key.clone()),
            Some(t) if &t.shape != shape => {
                wrong.push(format!("{key}: expected {shape}, found {}", t.shape))
            }
            Some(t) => {
                if let Some(i) = t.as_f32().iter().position(|v| !v.is_finite()) {
                    wrong.push(format!("{key}: non-finite value at element {i}"));
                }
                out.insert(key.clone(), t.clone());
            }
        }
    }
    let mut unexpected: Vec<&String> = tensors
        .keys()
        .filter(|k| {
            !wanted.contains_key(*k)
                && !ignore.contains(&k.as_str())
                && !skip_prefixes.iter().any(|p| k.starts_with(p))
        })
        .collect();
    unexpected.sort();
    mismatch_report(missing, unexpected.into_iter().cloned().collect(), wrong)?;
    Ok(out)
}

/// One error listing every missing key, unexpected key and wrong shape or value (or `Ok` when
/// there are none).
pub(crate) fn mismatch_report(
    missing: Vec<String>,
    unexpected: Vec<String>,
    wrong: Vec<String>,
) -> Result<()> {
    if missing.is_empty() && wrong.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut msg = String::from("the weights do not match the model:");
    let mut list = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            msg.push_str(&format!("\n  {title} ({}):", items.len()));
            for i in items {
                msg.push_str(&format!("\n    {i}"));
            }
        }
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("wrong shapes or values", wrong);
    Err(Error::Model(msg))
}
