//! Runs a graph on the GPU.
//!
//! Compiling does all the work that does not depend on the data, once: the memory plan, one
//! buffer per slab, every dispatch's pipeline and bind group, and every dispatch's parameters in
//! a single uniform buffer (bound with dynamic offsets). A run is then one command encoder, one
//! compute pass and one submission. WebGPU cannot replay command buffers, so this pre-resolved
//! list is the cheapest thing to record again.

use std::collections::HashMap;

use super::param_buffers::ParamBuffers;
use super::planner::{self, MemoryPlan};
use super::{Graph, Source, TensorId};
use crate::error::{Error, Result};
use crate::gpu::{readback, GpuContext};
use crate::kernel::Tuning;
use crate::kernel::{Dispatch, EncodeCx, Kernel, TensorArg};
use crate::tensor::{DType, HostTensor, TensorDesc};

#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Binding limit to plan for instead of the device's (tests use a tiny one to prove that
    /// every op splits its work correctly).
    pub max_binding_bytes: Option<u64>,
    /// Kernel variants to use instead of the context's (tests run every variant).
    pub tuning: Option<Tuning>,
}

struct Step {
    pipeline: usize,
    bind_group: wgpu::BindGroup,
    uniform_offset: u32,
    groups: [u32; 3],
    /// In a skippable region: the byte offset of its workgroup counts in `indirect`.
    indirect: Option<u64>,
}

crate::param_block! {
    /// The parameters of `skip_args.wgsl`, which writes a skippable region's workgroup counts.
    struct SkipArgsParams {
        n: u32,
        off_flag: u32,
        off_real: u32,
        off_out: u32,
    }
}

/// A graph compiled for one device: buffers allocated, pipelines and bind groups resolved.
pub struct Executable {
    ctx: GpuContext,
    names: HashMap<String, TensorId>,
    descs: Vec<TensorDesc>,
    sources: Vec<Source>,
    outputs: Vec<bool>,
    buffers: Vec<wgpu::Buffer>,
    buffer_of: Vec<usize>,
    pipelines: Vec<wgpu::ComputePipeline>,
    steps: Vec<Step>,
    /// (from buffer, into buffer, bytes), copied after the pass.
    carries: Vec<(usize, usize, u64)>,
    /// The workgroup counts of skippable regions' dispatches, written on the device each run.
    indirect: Option<wgpu::Buffer>,
    _uniforms: wgpu::Buffer,
    pub memory: MemoryPlan,
    /// Number of dispatches one run records.
    pub dispatches: usize,
    /// The op each dispatch belongs to (for profiles).
    pub dispatch_ops: Vec<&'static str>,
    /// The profile label ([`crate::kernel::Op::label`]) of each dispatch's node.
    pub dispatch_labels: Vec<String>,
}

impl Executable {
    /// Compiles `graph` for `ctx`. Errors name the op that cannot run on this device.
    pub async fn new(ctx: &GpuContext, graph: &Graph) -> Result<Self> {
        Self::with_options(ctx, graph, &ExecOptions::default()).await
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(ctx: &GpuContext, graph: &Graph) -> Result<Self> {
        pollster::block_on(Self::new(ctx, graph))
    }

    pub async fn with_options(ctx: &GpuContext, graph: &Graph, opts: &ExecOptions) -> Result<Self> {
        Self::compile(ctx, graph, opts, None).await
    }

    /// Compiles `graph` binding its params to `params`, which must hold every one of them with
    /// the graph's shape and dtype; nothing is uploaded.
    pub async fn with_params(
        ctx: &GpuContext,
        graph: &Graph,
        opts: &ExecOptions,
        params: &ParamBuffers,
    ) -> Result<Self> {
        Self::compile(ctx, graph, opts, Some(params)).await
    }

    async fn compile(
        ctx: &GpuContext,
        graph: &Graph,
        opts: &ExecOptions,
        params: Option<&ParamBuffers>,
    ) -> Result<Self> {
        ctx.check_alive()?;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut kernels = Vec::new();
        let built = Self::build(ctx, graph, opts, params, &mut kernels);
        let oom_err = oom.pop().await;
        let val_err = scope.pop().await;
        if built.is_err() || oom_err.is_some() || val_err.is_some() {
            ctx.forget_pipelines(&kernels);
        }
        let exe = built?;
        if let Some(e) = oom_err.or(val_err) {
            return Err(Error::Gpu {
                during: "compiling the graph".into(),
                detail: e.to_string(),
            });
        }
        ctx.take_errors("compiling the graph")?;
        Ok(exe)
    }

    fn build(
        ctx: &GpuContext,
        graph: &Graph,
        opts: &ExecOptions,
        params: Option<&ParamBuffers>,
        kernels: &mut Vec<String>,
    ) -> Result<Self> {
        let dev = &ctx.device;
        let limits = dev.limits();
        let limit = opts
            .max_binding_bytes
            .unwrap_or(u64::MAX)
            .min(limits.max_storage_buffer_binding_size);
        let align = limits.min_storage_buffer_offset_alignment as u64;
        if !ctx.has_f16() {
            if let Some(t) = graph.tensors.iter().find(|t| t.desc.dtype == DType::F16) {
                return Err(Error::Limit {
                    op: "graph",
                    detail: format!(
                        "`{}` is f16 but this device has no shader-f16; build the model in f32",
                        t.name
                    ),
                });
            }
        }
        let memory = planner::plan(graph);

        // Buffers: one per slab, one per fixed or output tensor.
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let mut buffers = Vec::new();
        let make = |size: u64, label: &str| -> Result<wgpu::Buffer> {
            if size > limits.max_buffer_size {
                return Err(Error::Limit {
                    op: "memory plan",
                    detail: format!(
                        "`{label}` needs a buffer of {size} bytes; this device allows at most {}",
                        limits.max_buffer_size
                    ),
                });
            }
            Ok(dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            }))
        };
        // Everything this graph allocates, checked at once before the first buffer: the slabs,
        // the tensors with buffers of their own, and the staging copies of its constants.
        let own = |t: &(usize, &super::TensorInfo)| {
            memory.slab_of[t.0].is_none()
                && !matches!(t.1.source, Source::View(_))
                && !(matches!(t.1.source, Source::Param) && params.is_some())
        };
        let fixed: u64 = graph
            .tensors
            .iter()
            .enumerate()
            .filter(own)
            .map(|(_, t)| planner::align(t.desc.bytes()))
            .sum();
        let constants: u64 = graph
            .tensors
            .iter()
            .filter(|t| matches!(t.source, Source::Constant(_)))
            .map(|t| t.desc.bytes())
            .sum();
        let total = memory.slabs.iter().sum::<u64>() + fixed + constants;
        ctx.reserve(&format!("a graph of {} ops", graph.nodes.len()), total)?;
        for (i, size) in memory.slabs.iter().enumerate() {
            buffers.push(make(*size, &format!("slab {i}"))?);
        }
        let mut buffer_of = Vec::with_capacity(graph.tensors.len());
        let mut unbound = Vec::new();
        for (i, t) in graph.tensors.iter().enumerate() {
            match (memory.slab_of[i], &t.source, params) {
                (Some(s), _, _) => buffer_of.push(s),
                (None, Source::View(r), _) => buffer_of.push(buffer_of[r.0]),
                (None, Source::Param, Some(p)) => {
                    match p.get(&t.name) {
                        Some(b) if b.desc == t.desc => buffers.push(b.buffer.clone()),
                        Some(b) => unbound.push(format!(
                            "`{}` is {:?} {} on the device but the graph reads {:?} {}",
                            t.name, b.desc.dtype, b.desc.shape, t.desc.dtype, t.desc.shape
                        )),
                        None => unbound.push(format!("`{}` is not on the device", t.name)),
                    }
                    buffer_of.push(buffers.len().saturating_sub(1));
                }
                (None, _, _) => {
                    buffers.push(make(planner::align(t.desc.bytes()), &t.name)?);
                    buffer_of.push(buffers.len() - 1);
                }
            }
        }
        if !unbound.is_empty() {
            return Err(Error::Model(format!(
                "the weights on the device do not fit this graph:\n  {}",
                unbound.join("\n  ")
            )));
        }
        for (i, t) in graph.tensors.iter().enumerate() {
            if let Source::Constant(v) = &t.source {
                ctx.queue
                    .write_buffer(&buffers[buffer_of[i]], 0, &v.gpu_bytes(t.desc.dtype));
            }
        }

        // Dispatches of every op.
        let max_groups = limits.max_compute_workgroups_per_dimension;
        let tuning = opts.tuning.unwrap_or_else(|| ctx.tuning());
        let coop = ctx.coop();
        let region_of_node = graph.region_of_nodes()?;
        let mut dispatches: Vec<Dispatch> = Vec::new();
        let mut dispatch_ops = Vec::new();
        let mut dispatch_labels = Vec::new();
        let mut dispatch_region = Vec::new();
        for ((node, label), region) in graph.nodes.iter().zip(graph.labels()).zip(&region_of_node) {
            let float = graph.tensors[node.output.0].desc.dtype;
            let mut cx = EncodeCx::new(
                node.op.name(),
                limit,
                align,
                max_groups,
                float,
                tuning,
                coop,
            );

            let arg = |t: &TensorId| TensorArg {
                id: *t,
                desc: graph.tensors[t.0].desc.clone(),
            };
            let ins: Vec<TensorArg> = node.inputs.iter().map(arg).collect();
            node.op.encode(&mut cx, &ins, &arg(&node.output))?;
            dispatch_ops.extend(std::iter::repeat_n(node.op.name(), cx.out.len()));
            dispatch_labels.extend(std::iter::repeat_n(label, cx.out.len()));
            dispatch_region.extend(std::iter::repeat_n(*region, cx.out.len()));
            dispatches.append(&mut cx.out);
        }
        let skips = SkipPlan::new(graph, &dispatches, &dispatch_region);
        let indirect = match skips.real.is_empty() {
            true => None,
            false => {
                let (real, live) = skips.buffers(ctx);
                let first = graph.tensors.len();
                buffers.extend([real, live.clone()]);
                buffer_of.extend([buffers.len() - 2, buffers.len() - 1]);
                let limit = limits.max_storage_buffer_binding_size;
                let mut gates = Vec::new();
                for gate in &skips.gates {
                    let mut cx = EncodeCx::new(
                        "skip_args",
                        limit,
                        align,
                        max_groups,
                        DType::F32,
                        tuning,
                        coop,
                    );
                    let flag = TensorArg {
                        id: gate.flag,
                        desc: graph.tensors[gate.flag.0].desc.clone(),
                    };
                    let args = |i: usize| TensorArg {
                        id: TensorId(first + i),
                        desc: TensorDesc::new([skips.real.len()], DType::U32),
                    };
                    let params = SkipArgsParams {
                        n: gate.words.len() as u32,
                        off_flag: cx.bind(&flag, 0, 1)?,
                        off_real: cx.bind(&args(0), gate.words.start, gate.words.len())?,
                        off_out: cx.bind(&args(1), gate.words.start, gate.words.len())?,
                    };
                    let kernel = Kernel::new("skip_args").read("flag").read("real");
                    cx.dispatch(kernel, &params, cx.grid(gate.words.len().div_ceil(64)))?;
                    gates.push((gate.before, cx.out));
                }
                // Each region's gate goes before its first dispatch (from the back, so the
                // earlier positions stay valid).
                for (before, mut d) in gates.into_iter().rev() {
                    let n = d.len();
                    let tail = dispatches.split_off(before);
                    dispatches.append(&mut d);
                    dispatches.extend(tail);
                    dispatch_ops.splice(before..before, std::iter::repeat_n("skip_args", n));
                    dispatch_labels.splice(
                        before..before,
                        std::iter::repeat_n("skip_args".to_string(), n),
                    );
                    dispatch_region.splice(before..before, std::iter::repeat_n(None, n));
                }
                Some(live)
            }
        };
        let mut indirect_offsets = skips.offsets.into_iter();

        // Parameters of every dispatch in one uniform buffer.
        let ualign = limits.min_uniform_buffer_offset_alignment as usize;
        let mut arena: Vec<u8> = Vec::new();
        let mut offsets = Vec::with_capacity(dispatches.len());
        for d in &dispatches {
            offsets.push(arena.len());
            arena.extend_from_slice(bytemuck::cast_slice(&d.params));
            let padded = arena.len().div_ceil(ualign).max(1) * ualign;
            arena.resize(padded, 0);
        }
        if arena.is_empty() {
            arena.resize(ualign, 0);
        }
        let uniforms = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: arena.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue.write_buffer(&uniforms, 0, &arena);

        let mut pipelines = Vec::new();
        let mut pipeline_index: HashMap<String, usize> = HashMap::new();
        let mut layouts = Vec::new();
        let mut steps = Vec::with_capacity(dispatches.len());
        for (d, off) in dispatches.iter().zip(offsets) {
            let key = d.kernel.key();
            let pi = match pipeline_index.get(&key) {
                Some(i) => *i,
                None => {
                    kernels.push(key.clone());
                    let p = ctx.pipeline(&d.kernel)?;
                    pipelines.push(p.pipeline);
                    layouts.push(p.layout);
                    pipeline_index.insert(key, pipelines.len() - 1);
                    pipelines.len() - 1
                }
            };
            let params_size = (d.params.len().max(1) * 4).div_ceil(16) as u64 * 16;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniforms,
                    offset: 0,
                    size: wgpu::BufferSize::new(params_size),
                }),
            }];
            for (i, b) in d.bindings.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &buffers[buffer_of[b.tensor.0]],
                        offset: b.offset,
                        size: wgpu::BufferSize::new(b.size),
                    }),
                });
            }
            let bind_group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layouts[pi],
                entries: &entries,
            });
            steps.push(Step {
                pipeline: pi,
                bind_group,
                uniform_offset: off as u32,
                groups: d.groups,
                indirect: None,
            });
        }
        for (s, region) in steps.iter_mut().zip(&dispatch_region) {
            if region.is_some() {
                s.indirect = indirect_offsets.next();
            }
        }

        Ok(Executable {
            ctx: ctx.clone(),
            names: graph
                .tensors()
                .map(|(id, t)| (t.name.clone(), id))
                .collect(),
            descs: graph.tensors.iter().map(|t| t.desc.clone()).collect(),
            sources: graph.tensors.iter().map(|t| t.source.clone()).collect(),
            outputs: graph.tensors.iter().map(|t| t.is_output).collect(),
            dispatches: steps.len(),
            dispatch_ops,
            dispatch_labels,
            carries: graph
                .carries
                .iter()
                .map(|(f, i)| {
                    (
                        buffer_of[f.0],
                        buffer_of[i.0],
                        graph.tensors[f.0].desc.padded_bytes(),
                    )
                })
                .collect(),
            buffers,
            buffer_of,
            pipelines,
            steps,
            indirect,
            _uniforms: uniforms,
            memory,
        })
    }

    fn lookup(&self, name: &str) -> Result<TensorId> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| Error::Graph(format!("no tensor named `{name}`")))
    }

    /// Writes every feed of `graph` (the graph this was compiled from) with normal noise of
    /// `std` drawn from `seed`: inputs for timing runs, where the values do not matter but zeros
    /// would (they can run faster than real data).
    pub fn write_random(&self, graph: &Graph, seed: u64, std: f32) -> Result<()> {
        let mut rng = crate::rng::Rng::new(seed);
        for info in graph.feeds() {
            let n = info.desc.shape.numel();
            let value = HostTensor::f32(info.desc.shape.clone(), rng.normals(n, std));
            self.write(&info.name, &value)?;
        }
        Ok(())
    }

    /// Uploads an input or a param. Shapes, dtypes and finiteness are checked; f32 data is
    /// converted for f16 tensors.
    pub fn write(&self, name: &str, value: &HostTensor) -> Result<()> {
        let id = self.lookup(name)?;
        let desc = &self.descs[id.0];
        super::validate_feed(name, desc, &self.sources[id.0], value)?;
        self.ctx.queue.write_buffer(
            &self.buffers[self.buffer_of[id.0]],
            0,
            &value.gpu_bytes(desc.dtype),
        );
        Ok(())
    }

    /// Records the whole graph into one command encoder and submits it.
    pub fn run(&self) -> Result<()> {
        self.ctx.check_alive()?;
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        self.record(&mut enc);
        self.ctx.queue.submit([enc.finish()]);
        Ok(())
    }

    /// Records the graph's dispatches (and its carries) into a caller's encoder, for hosts that
    /// batch their own work.
    pub fn record(&self, enc: &mut wgpu::CommandEncoder) {
        self.record_range(enc, 0..self.steps.len());
    }

    /// Records dispatches `range` of one run (the carries with the last one), so a run can be
    /// spread over several submissions, e.g. a slice per frame of a host's render loop. Buffers
    /// persist between submissions, so the slices in order are the same as one run.
    pub fn record_range(&self, enc: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>) {
        let end = range.end.min(self.steps.len());
        let range = range.start.min(end)..end;
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("ptdit"),
                timestamp_writes: None,
            });
            let mut current = usize::MAX;
            for s in &self.steps[range.clone()] {
                if s.pipeline != current {
                    pass.set_pipeline(&self.pipelines[s.pipeline]);
                    current = s.pipeline;
                }
                pass.set_bind_group(0, &s.bind_group, &[s.uniform_offset]);
                self.dispatch(&mut pass, s);
            }
        }
        if end == self.steps.len() {
            self.record_carries(enc);
        }
    }

    /// The copies that carry outputs into next run's inputs, after a run's last dispatch.
    fn record_carries(&self, enc: &mut wgpu::CommandEncoder) {
        for (from, into, bytes) in &self.carries {
            enc.copy_buffer_to_buffer(&self.buffers[*from], 0, &self.buffers[*into], 0, *bytes);
        }
    }

    /// Records one whole run with each dispatch in its own compute pass, writing GPU timestamps
    /// at the pass's start and end into `queries` (2·i and 2·i + 1 for dispatch i), for
    /// profiles on adapters with `timestamp-query`. The set needs 2 · `dispatches` entries.
    pub fn record_timed(&self, enc: &mut wgpu::CommandEncoder, queries: &wgpu::QuerySet) {
        for (i, s) in self.steps.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("ptdit timed"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: queries,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            pass.set_pipeline(&self.pipelines[s.pipeline]);
            pass.set_bind_group(0, &s.bind_group, &[s.uniform_offset]);
            self.dispatch(&mut pass, s);
        }
        self.record_carries(enc);
    }

    /// A step's dispatch: direct, or in a skippable region with the counts its gate wrote.
    fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, s: &Step) {
        match (s.indirect, &self.indirect) {
            (Some(offset), Some(args)) => pass.dispatch_workgroups_indirect(args, offset),
            _ => pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]),
        }
    }

    /// The buffer holding an input or param (whole, from offset 0), for kernels outside the
    /// graph that read it, such as writing the latents into a host's texture.
    pub fn buffer(&self, name: &str) -> Result<&wgpu::Buffer> {
        let id = self.lookup(name)?;
        if !matches!(self.sources[id.0], Source::Input | Source::Param) {
            return Err(Error::Graph(format!(
                "`{name}` is not an input or a param: its buffer is shared with other tensors"
            )));
        }
        Ok(&self.buffers[self.buffer_of[id.0]])
    }

    /// Reads a tensor back. Only outputs, inputs and params can be read: other intermediates
    /// share memory and are overwritten during the run.
    pub async fn read(&self, name: &str) -> Result<HostTensor> {
        let id = self.lookup(name)?;
        if matches!(self.sources[id.0], Source::Op(_) | Source::View(_)) && !self.outputs[id.0] {
            return Err(Error::Graph(format!(
                "`{name}` is an intermediate whose memory is reused; mark it as an output to read it"
            )));
        }
        let desc = &self.descs[id.0];
        let buffer = &self.buffers[self.buffer_of[id.0]];
        let what = format!("`{name}`");
        let bytes = readback::read_buffer(&self.ctx, buffer, desc.padded_bytes(), &what).await?;
        Ok(HostTensor::from_gpu_bytes(desc, &bytes))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_blocking(&self, name: &str) -> Result<HostTensor> {
        pollster::block_on(self.read(name))
    }

    /// Waits until all submitted work is done (native; the browser resolves reads instead).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<()> {
        self.ctx.wait("the last run")
    }

    /// The shape and dtype of a named tensor.
    pub fn descriptor(&self, name: &str) -> Option<&TensorDesc> {
        self.names.get(name).map(|id| &self.descs[id.0])
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }
}

/// Where skippable regions' dispatches find their workgroup counts: one `[x, y, z]` per
/// dispatch in a region, in order, and a gate per region that writes them before it runs.
struct SkipPlan {
    /// The real counts, flattened.
    real: Vec<u32>,
    /// Byte offset of each region dispatch's counts, in dispatch order.
    offsets: Vec<u64>,
    gates: Vec<Gate>,
}

struct Gate {
    /// The index (in the dispatches without gates) of the region's first dispatch.
    before: usize,
    flag: TensorId,
    /// The region's words in `real`.
    words: std::ops::Range<usize>,
}

impl SkipPlan {
    fn new(graph: &Graph, dispatches: &[Dispatch], region: &[Option<usize>]) -> Self {
        let mut plan = SkipPlan {
            real: Vec::new(),
            offsets: Vec::new(),
            gates: Vec::new(),
        };
        let mut current = None;
        for (i, (d, r)) in dispatches.iter().zip(region).enumerate() {
            let Some(r) = *r else { continue };
            if current != Some(r) {
                current = Some(r);
                let start = plan.real.len();
                plan.gates.push(Gate {
                    before: i,
                    flag: graph.skippable[r].flag,
                    words: start..start,
                });
            }
            plan.offsets.push(plan.real.len() as u64 * 4);
            plan.real.extend_from_slice(&d.groups);
            if let Some(g) = plan.gates.last_mut() {
                g.words.end = plan.real.len();
            }
        }
        plan
    }

    /// The real counts (uploaded now) and the buffer the gates write and dispatches read.
    fn buffers(&self, ctx: &GpuContext) -> (wgpu::Buffer, wgpu::Buffer) {
        let bytes = planner::align(self.real.len() as u64 * 4);
        let make = |label, usage| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let real = make("skippable counts", U::STORAGE | U::COPY_DST);
        ctx.queue
            .write_buffer(&real, 0, bytemuck::cast_slice(&self.real));
        let live = make("skippable dispatches", U::STORAGE | U::INDIRECT);
        (real, live)
    }
}
