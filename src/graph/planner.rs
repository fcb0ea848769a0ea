//! Memory planning: intermediates whose lifetimes do not overlap share a buffer ("slab").
//!
//! A tensor lives from the op that produces it to the last op that reads it. Walking the ops in
//! order, each new intermediate takes the smallest free slab that holds it (growing the largest
//! free one if none does, since a buffer is only created once the plan is final), and slabs come
//! back to the free list after the last read. An op's output is placed before its inputs are
//! released, so no op ever reads and writes the same memory. Inputs, params, constants and
//! outputs keep their own buffers. The plan needs no device: it answers "how much memory will
//! this model take" from shapes alone.

use super::{Graph, Source};

/// Buffers are sized in multiples of this (also a valid storage offset alignment).
pub const SLAB_ALIGN: u64 = 256;

#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// Slab index of each tensor that is a planned intermediate.
    pub slab_of: Vec<Option<usize>>,
    /// Size of each slab in bytes.
    pub slabs: Vec<u64>,
    /// Inputs, params and constants.
    pub fixed_bytes: u64,
    /// Outputs (kept after the run).
    pub output_bytes: u64,
    /// All slabs together: the memory intermediates take with sharing.
    pub intermediate_bytes: u64,
    /// What intermediates would take with a buffer each.
    pub unshared_bytes: u64,
}

impl MemoryPlan {
    /// Device memory of the whole graph: fixed + outputs + slabs.
    pub fn peak_bytes(&self) -> u64 {
        self.fixed_bytes + self.output_bytes + self.intermediate_bytes
    }
}

pub fn align(bytes: u64) -> u64 {
    bytes.max(16).div_ceil(SLAB_ALIGN) * SLAB_ALIGN
}

pub fn plan(graph: &Graph) -> MemoryPlan {
    let n = graph.tensors.len();
    let mut last_use: Vec<Option<usize>> = vec![None; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        for t in &node.inputs {
            last_use[graph.root(*t).0] = Some(i);
        }
    }
    let mut p = MemoryPlan {
        slab_of: vec![None; n],
        ..Default::default()
    };
    for t in &graph.tensors {
        let bytes = align(t.desc.bytes());
        match t.source {
            Source::Op(_) if t.is_output => p.output_bytes += bytes,
            Source::Op(_) => p.unshared_bytes += bytes,
            Source::View(_) => {}
            _ => p.fixed_bytes += bytes,
        }
    }
    let mut free: Vec<usize> = Vec::new();
    let mut release_at: Vec<Vec<usize>> = vec![Vec::new(); graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = node.output.0;
        let info = &graph.tensors[out];
        if !info.is_output {
            let need = align(info.desc.bytes());
            let fit = free
                .iter()
                .enumerate()
                .filter(|(_, s)| p.slabs[**s] >= need)
                .min_by_key(|(_, s)| p.slabs[**s])
                .map(|(k, _)| k);
            let slab = match fit {
                Some(k) => free.swap_remove(k),
                None => match free
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, s)| p.slabs[**s])
                    .map(|(k, _)| k)
                {
                    Some(k) => {
                        let s = free.swap_remove(k);
                        p.slabs[s] = need;
                        s
                    }
                    None => {
                        p.slabs.push(need);
                        p.slabs.len() - 1
                    }
                },
            };
            p.slab_of[out] = Some(slab);
            // A tensor nobody reads dies with the op that makes it.
            let end = last_use[out].unwrap_or(i);
            release_at[end].push(slab);
        }
        free.append(&mut release_at[i]);
    }
    for (i, t) in graph.tensors.iter().enumerate() {
        if let Source::View(r) = t.source {
            p.slab_of[i] = p.slab_of[r.0];
        }
    }
    p.intermediate_bytes = p.slabs.iter().sum();
    p
}
