//! Matching host tensors (read by [`crate::formats::safetensors`]) to a graph's params under
//! their official keys, every mismatch reported at once.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, LoadError, Result};
use crate::graph::{Graph, Source};
use crate::tensor::HostTensor;

/// Key prefixes of the tensors a golden fixture file carries beside the weights (its inputs,
/// outputs and per-block traces): skipped when the file's weights are loaded.
pub const FIXTURE_PREFIXES: &[&str] = &["input.", "output.", "trace."];

/// Picks the params of `graph` out of `tensors`, by the params' names (a stacked param made of
/// its parts). Every problem is collected into one error: missing keys, unexpected keys (other
/// than `ignore`d ones and anything with a prefix in `skip_prefixes`, e.g. fixtures'
/// `input.`/`output.`), wrong shapes, non-finite values.
pub fn select_params(
    graph: &Graph,
    tensors: &HashMap<String, HostTensor>,
    ignore: &[&str],
    skip_prefixes: &[&str],
) -> Result<HashMap<String, HostTensor>> {
    let wanted: BTreeMap<String, _> = (graph.checkpoint_tensors().into_iter())
        .map(|t| (t.key, t.desc.shape))
        .collect();
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
    let mut params = HashMap::new();
    for (id, info) in graph.tensors() {
        if matches!(info.source, Source::Param) {
            let value = match graph.stack_value(id, &out) {
                Some(v) => v?,
                None => out.remove(&info.name).ok_or_else(|| {
                    Error::Model(format!("internal: `{}` was not picked", info.name))
                })?,
            };
            params.insert(info.name.clone(), value);
        }
    }
    Ok(params)
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
    Err(Error::load(LoadError::Mismatch {
        missing,
        unexpected,
        wrong,
    }))
}
