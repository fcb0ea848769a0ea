//! The engine's intermediate representation: tensors (shape, dtype) and the ops between them.
//!
//! A [`Graph`] is built with methods named after the ops (`g.matmul(..)`, `g.layer_norm(..)`,
//! defined next to each op in `crate::ops`). Shapes are checked as the graph is built, so a
//! mistake is reported with the op and the shapes, not as garbage at run time. The same graph
//! runs on the GPU ([`Executable`]) or on the CPU reference ([`cpu::run`]).

pub mod cpu;
mod executor;
pub(crate) mod param_buffers;
pub mod planner;
mod stacked;

pub use executor::{ExecOptions, Executable};
pub use param_buffers::{ParamBuffer, ParamBuffers};
pub use planner::MemoryPlan;
pub use stacked::{stackable, CheckpointTensor};

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::kernel::Op;
pub use crate::tensor::TensorId;
use crate::tensor::{DType, HostTensor, Shape, TensorDesc};

/// Where a tensor's data comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Written by the caller before each run (latents, timesteps, text embeddings).
    Input,
    /// Written once by the caller (weights).
    Param,
    /// Known when the graph is built (positional embeddings, masks, index maps).
    Constant(HostTensor),
    /// Computed by the op of this index in [`Graph::nodes`].
    Op(usize),
    /// Another shape of the same memory (a free reshape).
    View(TensorId),
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub desc: TensorDesc,
    pub source: Source,
    /// Outputs keep their memory after the run so they can be read back.
    pub is_output: bool,
}

#[derive(Debug)]
pub struct Node {
    pub op: Box<dyn Op>,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

/// Ops `nodes` run only when element 0 of `flag` is 0 (the executor dispatches them
/// indirectly, with workgroup counts a small kernel writes from the flag); what they compute is
/// read after them only through `selects`, which take the other value when they were skipped.
#[derive(Clone, Debug)]
pub struct Skippable {
    pub nodes: std::ops::Range<usize>,
    pub flag: TensorId,
    /// The nodes of the `select`s that read the region's results.
    pub selects: Vec<usize>,
}

/// A graph of ops in execution order (every op's inputs exist before it is added).
#[derive(Debug, Default)]
pub struct Graph {
    pub(crate) tensors: Vec<TensorInfo>,
    pub(crate) nodes: Vec<Node>,
    names: HashMap<String, TensorId>,
    /// (from, into): after each run, `from`'s value becomes input `into`'s.
    pub(crate) carries: Vec<(TensorId, TensorId)>,
    /// Runs of ops that a flag computed on the device can skip ([`Graph::skippable`]).
    pub(crate) skippable: Vec<Skippable>,
    /// The float type of params and constants (and of the inputs a model declares with it).
    float: Option<DType>,
    /// How the component's Linear weights are stored when not as `float` (bf16, q8, q4).
    linear_storage: Option<DType>,
    /// Params a checkpoint stores as several tensors: their (key, shape), stacked along the
    /// first dimension ([`Graph::param_stacked`]).
    pub(crate) stacked: HashMap<TensorId, Vec<(String, Shape)>>,
    /// Projections that read one input are built as separate Linears, not fused.
    projections_apart: bool,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// A graph whose params and float constants are stored as `float` (f32 or f16).
    pub fn with_float(float: DType) -> Self {
        Graph {
            float: Some(float),
            ..Self::default()
        }
    }

    /// The float type of params and constants: f32 unless the graph was made with another.
    pub fn float(&self) -> DType {
        self.float.unwrap_or(DType::F32)
    }

    /// Stores the Linear weights declared from now on as `storage` (a packed format, or `None`
    /// for the float type); see [`crate::nn::Linear::new`].
    pub fn set_linear_storage(&mut self, storage: Option<DType>) {
        self.linear_storage = storage;
    }

    /// How Linear weights are stored when not as the float type.
    pub fn linear_storage(&self) -> Option<DType> {
        self.linear_storage
    }

    /// Builds attention projections that read one input as separate Linears from now on
    /// (`nn::Fuse`): the same result, one matmul each; the baseline `ptdit bench forward`
    /// times the fused ones against.
    pub fn keep_projections_apart(&mut self, apart: bool) {
        self.projections_apart = apart;
    }

    /// Whether attention projections are kept apart ([`Graph::keep_projections_apart`]).
    pub fn projections_apart(&self) -> bool {
        self.projections_apart
    }

    /// A description of the graph's float type.
    pub fn float_desc(&self, shape: impl Into<Shape>) -> TensorDesc {
        TensorDesc::new(shape, self.float())
    }

    fn add_tensor(&mut self, name: String, desc: TensorDesc, source: Source) -> Result<TensorId> {
        if desc.shape.dims().contains(&0) {
            return Err(Error::Graph(format!(
                "tensor `{name}` has an empty shape {}",
                desc.shape
            )));
        }
        if self.names.contains_key(&name) {
            return Err(Error::Graph(format!("two tensors are named `{name}`")));
        }
        let id = TensorId(self.tensors.len());
        self.names.insert(name.clone(), id);
        self.tensors.push(TensorInfo {
            name,
            desc,
            source,
            is_output: false,
        });
        Ok(id)
    }

    /// A tensor the caller writes before each run.
    pub fn input(&mut self, name: &str, desc: TensorDesc) -> Result<TensorId> {
        self.add_tensor(name.to_string(), desc, Source::Input)
    }

    /// A weight of the graph's float type, written once after the graph is compiled.
    pub fn param(&mut self, name: &str, shape: impl Into<Shape>) -> Result<TensorId> {
        let desc = self.float_desc(shape);
        self.add_tensor(name.to_string(), desc, Source::Param)
    }

    /// A weight stored as `dtype` (the float type, or a packed format a matmul unpacks).
    pub fn param_as(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        dtype: DType,
    ) -> Result<TensorId> {
        self.add_tensor(
            name.to_string(),
            TensorDesc::new(shape, dtype),
            Source::Param,
        )
    }

    /// A tensor whose value is known now (float data takes the graph's float type); uploaded
    /// when the graph is compiled.
    pub fn constant(&mut self, name: &str, value: HostTensor) -> Result<TensorId> {
        let mut desc = value.desc();
        if desc.dtype.is_float() {
            desc.dtype = self.float();
        }
        self.add_tensor(name.to_string(), desc, Source::Constant(value))
    }

    /// The same data with another shape of the same element count; no copy.
    pub fn reshape(&mut self, x: TensorId, shape: impl Into<Shape>) -> Result<TensorId> {
        let shape = shape.into();
        let from = &self.tensors[x.0].desc;
        if shape.numel() != from.shape.numel() {
            return Err(Error::shape(
                "reshape",
                format!("{} cannot be viewed as {shape}", from.shape),
            ));
        }
        let desc = TensorDesc {
            shape,
            dtype: from.dtype,
        };
        let name = format!("view#{}", self.tensors.len());
        self.add_tensor(name, desc, Source::View(self.root(x)))
    }

    /// The tensor that owns the memory `t` is a view of (`t` itself if it is not a view).
    pub fn root(&self, t: TensorId) -> TensorId {
        match self.tensors[t.0].source {
            Source::View(r) => r,
            _ => t,
        }
    }

    /// Keeps `t` after the run under `name`, so it can be read back.
    pub fn output(&mut self, t: TensorId, name: &str) -> Result<()> {
        let old = self.tensors[t.0].name.clone();
        if old != name {
            if self.names.contains_key(name) {
                return Err(Error::Graph(format!("two tensors are named `{name}`")));
            }
            self.names.remove(&old);
            self.names.insert(name.to_string(), t);
            self.tensors[t.0].name = name.to_string();
        }
        self.tensors[t.0].is_output = true;
        let root = self.root(t);
        self.tensors[root.0].is_output = true;
        Ok(())
    }

    /// After every run, copy `from` (made an output) into the input `into`, on the GPU: state
    /// such as the latents of a denoising loop stays on the device between runs.
    pub fn carry(&mut self, from: TensorId, into: TensorId) -> Result<()> {
        let (f, i) = (&self.tensors[from.0], &self.tensors[into.0]);
        if !matches!(i.source, Source::Input) || f.desc != i.desc {
            return Err(Error::Graph(format!(
                "cannot carry `{}` {} into `{}` {}: the target must be an input of the same shape",
                f.name, f.desc.shape, i.name, i.desc.shape
            )));
        }
        let name = f.name.clone();
        self.output(from, &name)?;
        self.carries.push((from, into));
        Ok(())
    }

    pub fn carries(&self) -> &[(TensorId, TensorId)] {
        &self.carries
    }

    /// Makes the ops added since node `start` skippable: they run only when element 0 of the
    /// f32 tensor `flag` (computed before them) is 0. Each `(inside, otherwise)` of `results`
    /// becomes `flag ? otherwise : inside`, returned in order; nothing else may read what the
    /// skipped ops compute (checked when the graph is compiled or run). The decision needs no
    /// readback: a step records the same commands whether it skips or not.
    pub fn skippable(
        &mut self,
        start: usize,
        flag: TensorId,
        results: &[(TensorId, TensorId)],
    ) -> Result<Vec<TensorId>> {
        let end = self.nodes.len();
        let after_last = self.skippable.last().map_or(0, |r| r.nodes.end);
        let flag_desc = &self.tensors[flag.0].desc;
        let flag_ok = flag_desc.dtype == DType::F32
            && match self.tensors[self.root(flag).0].source {
                Source::Op(i) => i < start,
                Source::Input | Source::Constant(_) => true,
                _ => false,
            };
        let inside = |g: &Graph, t: TensorId| matches!(g.tensors[g.root(t).0].source, Source::Op(i) if (start..end).contains(&i));
        if start >= end || start < after_last || !flag_ok {
            return Err(Error::Graph(format!(
                "a skippable region needs ops after node {start} (there are {end}), no overlap \
                 with the last region (ending at {after_last}), and an f32 flag computed before it"
            )));
        }
        if let Some((i, o)) = results
            .iter()
            .find(|(i, o)| !inside(self, *i) || inside(self, *o))
        {
            return Err(Error::Graph(format!(
                "a skippable region's result `{}` must be computed inside it and its \
                 replacement `{}` outside",
                self.tensors[i.0].name, self.tensors[o.0].name
            )));
        }
        self.skippable.push(Skippable {
            nodes: start..end,
            flag,
            selects: Vec::new(),
        });
        let mut out = Vec::new();
        for (i, o) in results {
            let node = self.nodes.len();
            out.push(self.select(flag, 0, *o, *i)?);
            if let Some(r) = self.skippable.last_mut() {
                r.selects.push(node);
            }
        }
        Ok(out)
    }

    pub fn skippable_regions(&self) -> &[Skippable] {
        &self.skippable
    }

    /// The region each node belongs to, after checking that only a region's selects read what
    /// it computes and that none of it is an output.
    pub(crate) fn region_of_nodes(&self) -> Result<Vec<Option<usize>>> {
        let mut region = vec![None; self.nodes.len()];
        for (r, s) in self.skippable.iter().enumerate() {
            for n in s.nodes.clone() {
                region[n] = Some(r);
            }
        }
        let made_in = |t: TensorId| match self.tensors[self.root(t).0].source {
            Source::Op(i) => region[i],
            _ => None,
        };
        for (n, node) in self.nodes.iter().enumerate() {
            for t in &node.inputs {
                match made_in(*t) {
                    Some(r) if region[n] != Some(r) && !self.skippable[r].selects.contains(&n) => {
                        return Err(Error::Graph(format!(
                            "`{}` is computed in a skippable region but read after it by a {} \
                             that is not the region's select",
                            self.tensors[t.0].name,
                            node.op.name()
                        )))
                    }
                    _ => {}
                }
            }
        }
        if let Some(t) = self
            .tensors
            .iter()
            .enumerate()
            .find(|(i, t)| t.is_output && made_in(TensorId(*i)).is_some())
        {
            return Err(Error::Graph(format!(
                "`{}` is an output but is computed in a skippable region",
                t.1.name
            )));
        }
        Ok(region)
    }

    /// Adds an op; its output shape is inferred and checked now.
    pub fn push(&mut self, op: impl Op + 'static, inputs: &[TensorId]) -> Result<TensorId> {
        let descs: Vec<&TensorDesc> = inputs.iter().map(|t| &self.tensors[t.0].desc).collect();
        let desc = op.infer(&descs)?;
        let name = format!("{}#{}", op.name(), self.nodes.len());
        let id = self.add_tensor(name, desc, Source::Op(self.nodes.len()))?;
        self.nodes.push(Node {
            op: Box::new(op),
            inputs: inputs.to_vec(),
            output: id,
        });
        Ok(id)
    }

    pub fn desc(&self, t: TensorId) -> &TensorDesc {
        &self.tensors[t.0].desc
    }
    pub fn shape(&self, t: TensorId) -> &Shape {
        &self.tensors[t.0].desc.shape
    }
    pub fn info(&self, t: TensorId) -> &TensorInfo {
        &self.tensors[t.0]
    }
    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.names.get(name).copied()
    }
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn tensors(&self) -> impl Iterator<Item = (TensorId, &TensorInfo)> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (TensorId(i), t))
    }
    /// The tensors the caller must write (inputs and params), with their descriptions.
    pub fn feeds(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors
            .iter()
            .filter(|t| matches!(t.source, Source::Input | Source::Param))
    }

    /// Floating-point operations of one run (2 per multiply-add), as the ops count them.
    pub fn flops(&self) -> u64 {
        self.flops_by_op().iter().map(|(_, f)| f).sum()
    }

    /// Each node's profile label ([`Op::label`]), in execution order.
    pub fn labels(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| {
                let ins: Vec<&TensorDesc> = n.inputs.iter().map(|t| self.desc(*t)).collect();
                n.op.label(&ins, self.desc(n.output))
            })
            .collect()
    }

    /// FLOPs summed per profile label, in order of first appearance.
    pub fn flops_by_label(&self) -> Vec<(String, u64)> {
        self.flops_by(|_, label| label)
    }

    /// FLOPs of one run per op kind, in order of first appearance.
    pub fn flops_by_op(&self) -> Vec<(&'static str, u64)> {
        self.flops_by(|n, _| n.op.name())
    }

    /// Each node's FLOPs summed under `key(node, its label)`, keys in order of first appearance.
    fn flops_by<K: PartialEq>(&self, key: impl Fn(&Node, String) -> K) -> Vec<(K, u64)> {
        let mut out: Vec<(K, u64)> = Vec::new();
        for (n, label) in self.nodes.iter().zip(self.labels()) {
            let ins: Vec<&TensorDesc> = n.inputs.iter().map(|t| self.desc(*t)).collect();
            let f = n.op.flops(&ins, self.desc(n.output));
            let k = key(n, label);
            match out.iter_mut().find(|(e, _)| *e == k) {
                Some(e) => e.1 += f,
                None => out.push((k, f)),
            }
        }
        out
    }

    pub(crate) fn check_feed(&self, name: &str, value: &HostTensor) -> Result<TensorId> {
        let id = self
            .find(name)
            .ok_or_else(|| Error::Graph(format!("no tensor named `{name}`")))?;
        let info = &self.tensors[id.0];
        validate_feed(name, &info.desc, &info.source, value)?;
        Ok(id)
    }
}

/// Checks a value written to a tensor: it must be an input or a param, of its shape and kind,
/// and finite (and within f16's range for an f16 tensor).
pub(crate) fn validate_feed(
    name: &str,
    desc: &TensorDesc,
    source: &Source,
    value: &HostTensor,
) -> Result<()> {
    if !matches!(source, Source::Input | Source::Param) {
        return Err(Error::Graph(format!(
            "`{name}` is not an input or a param; it cannot be written"
        )));
    }
    if !value.fits(desc) {
        return Err(Error::Graph(format!(
            "`{name}` expects {:?} {} but got {:?} {}",
            desc.dtype,
            desc.shape,
            value.desc().dtype,
            value.shape
        )));
    }
    if desc.dtype.is_float() || desc.dtype.is_packed() {
        let limit = crate::quant::max_magnitude(desc.dtype);
        if let Some(i) = value
            .as_f32()
            .iter()
            .position(|x| x.is_nan() || x.abs() > limit)
        {
            let v = value.as_f32()[i];
            return Err(Error::Input(if v.is_finite() {
                format!(
                    "`{name}` holds {v} at element {i}, beyond the range of {}",
                    desc.dtype.name()
                )
            } else {
                format!("`{name}` holds a non-finite value ({v}) at element {i}")
            }));
        }
    }
    Ok(())
}
