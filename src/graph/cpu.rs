//! Runs a graph with every op's plain-Rust reference: the ground truth the GPU is tested
//! against, and the CPU reference forward of whole models.

use std::collections::HashMap;

use super::{Graph, Source, TensorId};
use crate::error::{Error, Result};
use crate::tensor::{HostTensor, TensorDesc};

/// Evaluates `graph` on the CPU. `feeds` gives every input and param by name; returns every
/// output by name.
pub fn run(
    graph: &Graph,
    feeds: &HashMap<String, HostTensor>,
) -> Result<HashMap<String, HostTensor>> {
    let n = graph.tensors.len();
    let mut values: Vec<Option<HostTensor>> = vec![None; n];
    let mut last_use = vec![None; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        for t in &node.inputs {
            last_use[graph.root(*t).0] = Some(i);
        }
    }
    for (i, t) in graph.tensors.iter().enumerate() {
        match &t.source {
            Source::Input | Source::Param => {
                // A stacked param is given whole, or as its checkpoint's parts.
                let stacked = match feeds.get(&t.name) {
                    Some(_) => None,
                    None => graph.stack_value(TensorId(i), feeds).transpose()?,
                };
                let v = match &stacked {
                    Some(v) => v,
                    None => feeds
                        .get(&t.name)
                        .ok_or_else(|| Error::Graph(format!("no value given for `{}`", t.name)))?,
                };
                graph.check_feed(&t.name, v)?;
                values[i] = Some(v.clone().rounded_to(t.desc.dtype));
            }
            Source::Constant(v) => values[i] = Some(v.clone().rounded_to(t.desc.dtype)),
            Source::Op(_) | Source::View(_) => {}
        }
    }
    let region = graph.region_of_nodes()?;
    for (i, node) in graph.nodes.iter().enumerate() {
        let out_desc: &TensorDesc = &graph.tensors[node.output.0].desc;
        let skipped = match region[i] {
            Some(r) => {
                let flag = graph.skippable[r].flag;
                values[graph.root(flag).0]
                    .as_ref()
                    .is_some_and(|v| v.as_f32()[0] != 0.0)
            }
            None => false,
        };
        // A skipped op's output is never read (only the region's selects see it, and they
        // take the other side); zeros stand in for it.
        let out = if skipped {
            HostTensor::zeros(out_desc.shape.clone()).rounded_to(out_desc.dtype)
        } else {
            // Views are the root's data under another shape.
            let ins: Vec<HostTensor> = node
                .inputs
                .iter()
                .map(|t| {
                    let v = values[graph.root(*t).0].as_ref().ok_or_else(|| {
                        Error::Graph(format!(
                            "`{}` read after it was freed",
                            graph.tensors[t.0].name
                        ))
                    })?;
                    let mut v = v.clone();
                    v.shape = graph.tensors[t.0].desc.shape.clone();
                    Ok(v)
                })
                .collect::<Result<_>>()?;
            let refs: Vec<&HostTensor> = ins.iter().collect();
            // Computed in f32 (as the kernels do), stored in the output's type.
            node.op.cpu(&refs, out_desc).rounded_to(out_desc.dtype)
        };
        values[node.output.0] = Some(out);
        // Free what no later op reads, so large reference runs stay within memory.
        for t in &node.inputs {
            let r = graph.root(*t);
            let info = &graph.tensors[r.0];
            if last_use[r.0] == Some(i) && !info.is_output && matches!(info.source, Source::Op(_)) {
                values[r.0] = None;
            }
        }
    }
    let mut out = HashMap::new();
    for (i, t) in graph.tensors.iter().enumerate() {
        if t.is_output {
            if let Some(v) = values[graph.root(TensorId(i)).0].as_ref() {
                let mut v = v.clone();
                v.shape = t.desc.shape.clone();
                out.insert(t.name.clone(), v);
            }
        }
    }
    Ok(out)
}
