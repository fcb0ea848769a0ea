//! Weights onto the device, by official key, into [`ParamBuffers`] that every compiled graph of
//! a component then binds.
//!
//! Two ways in, one set of checks: a map already in host memory ([`upload_host`]), or
//! safetensors files pushed in pieces of any size as they arrive from a network or a disk
//! ([`Upload::push`]). A streamed file is never whole in memory: each piece is converted to the
//! graph's dtype and written where its tensor lives, so a multi-GB checkpoint needs a few MiB
//! of host memory. A file's header is read before its data, so unexpected keys and wrong
//! shapes fail before the download does; missing keys are known once every file has ended.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::host_table::{HostForm, HostTable, TableBuilder};
use crate::error::{Error, LoadError, Result};
use crate::formats::safetensors::{self, Dtype, Entry, Piece, Stream};
use crate::gpu::GpuContext;
use crate::graph::{Graph, ParamBuffers};
use crate::tensor::{DType, HostTensor, TensorDesc};

/// What one component reads, by key.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    /// The checkpoint's tensors that go to the device, as the device stores them.
    pub device: BTreeMap<String, TensorDesc>,
    /// Those of [`Wanted::device`] that are parts of a stacked param (a fused projection).
    pub stacked: BTreeMap<String, StackedPart>,
    /// Tables the host reads itself (T5's token table and its bucket table), with the shape
    /// each must have and how it is kept.
    pub host: Vec<(String, Vec<usize>, HostForm)>,
    /// Other names of a key (a tied copy, e.g. T5's `encoder.embed_tokens.weight` for
    /// `shared.weight`): stored under the key; a second copy is skipped.
    pub aliases: Vec<(String, String)>,
    /// Keys in checkpoints that nothing reads (a buffer the engine recomputes).
    pub ignore: Vec<String>,
    /// Prefixes of keys that nothing reads (the VAE's encoder).
    pub skip_prefixes: Vec<String>,
}

/// Where a checkpoint tensor goes in a stacked param.
#[derive(Clone, Debug)]
pub struct StackedPart {
    /// The param's name and description.
    pub param: String,
    pub desc: TensorDesc,
    /// Where the part starts, in elements.
    pub offset: usize,
}

impl Wanted {
    /// Every checkpoint tensor `graph`'s params are made of, at the dtype it reads them.
    pub fn graph(graph: &Graph) -> Self {
        let mut w = Wanted::default();
        for t in graph.checkpoint_tensors() {
            let param = graph.info(t.param);
            if param.name != t.key {
                let part = StackedPart {
                    param: param.name.clone(),
                    desc: param.desc.clone(),
                    offset: t.offset,
                };
                w.stacked.insert(t.key.clone(), part);
            }
            w.device.insert(t.key, t.desc);
        }
        w
    }

    /// The param checkpoint tensor `key` (described by `desc`) goes to: its name, description
    /// and the element the tensor starts at.
    fn param_of(&self, key: &str, desc: &TensorDesc) -> (String, TensorDesc, usize) {
        match self.stacked.get(key) {
            Some(p) => (p.param.clone(), p.desc.clone(), p.offset),
            None => (key.to_string(), desc.clone(), 0),
        }
    }

    /// The device params, by name, with their descriptions (a stacked one once).
    pub fn params(&self) -> BTreeMap<String, TensorDesc> {
        (self.device.iter())
            .map(|(k, d)| {
                let (name, desc, _) = self.param_of(k, d);
                (name, desc)
            })
            .collect()
    }

    fn canonical<'a>(&'a self, key: &'a str) -> &'a str {
        let key = key.strip_prefix("module.").unwrap_or(key);
        self.aliases
            .iter()
            .find(|(alias, _)| alias == key)
            .map_or(key, |(_, k)| k.as_str())
    }

    fn unused(&self, key: &str) -> bool {
        self.ignore.iter().any(|k| k == key)
            || self.skip_prefixes.iter().any(|p| key.starts_with(p))
    }
}

/// A component's weights once on the device.
#[derive(Clone, Debug, Default)]
pub struct DeviceWeights {
    pub params: ParamBuffers,
    /// The [`Wanted::host`] tensors that were present.
    pub host: HashMap<String, HostTable>,
}

impl DeviceWeights {
    pub fn host(&self, key: &str) -> Result<&HostTable> {
        self.host
            .get(key)
            .ok_or_else(|| Error::load(LoadError::missing(key)))
    }

    /// Checks that these weights are what `wanted` describes (a model streamed at one dtype
    /// and used at another is refused here, not as garbage later).
    pub fn check(&self, wanted: &Wanted) -> Result<()> {
        let (mut missing, mut wrong) = (Vec::new(), Vec::new());
        for (k, d) in &wanted.params() {
            match self.params.get(k) {
                None => missing.push(k.clone()),
                Some(p) if &p.desc != d => wrong.push(format!(
                    "`{k}` is {:?} {} on the device, {:?} {} is needed",
                    p.desc.dtype, p.desc.shape, d.dtype, d.shape
                )),
                Some(_) => {}
            }
        }
        super::weights::mismatch_report(missing, Vec::new(), wrong)
    }
}

/// Uploads a host map. Missing, unexpected and wrong-shaped keys are reported together, before
/// anything is uploaded; non-finite values are refused.
pub fn upload_host(
    ctx: &GpuContext,
    wanted: Wanted,
    tensors: &HashMap<String, HostTensor>,
) -> Result<DeviceWeights> {
    let mut up = Upload::new(ctx, wanted);
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    let mut slots = Vec::new();
    let mut problems = Problems::default();
    let given: HashSet<&str> = keys.iter().map(|k| up.wanted.canonical(k)).collect();
    problems.missing = up
        .wanted
        .device
        .keys()
        .filter(|k| !given.contains(k.as_str()))
        .cloned()
        .collect();
    for k in keys {
        let t = &tensors[k];
        match up.begin(k, t.shape.dims(), Dtype::F32) {
            Ok(slot) => slots.push((slot, t)),
            Err(p) => problems.add(p),
        }
    }
    problems.check()?;
    for (mut slot, t) in slots {
        up.write(&mut slot, bytemuck::cast_slice(t.as_f32()), true)?;
    }
    up.finish()
}

/// Why a tensor was refused.
enum Problem {
    Unexpected(String),
    Wrong(String),
}

/// Everything wrong with a set of weights, reported at once.
#[derive(Default)]
struct Problems {
    missing: Vec<String>,
    unexpected: Vec<String>,
    wrong: Vec<String>,
}

impl Problems {
    fn add(&mut self, p: Problem) {
        match p {
            Problem::Unexpected(k) => self.unexpected.push(k),
            Problem::Wrong(m) => self.wrong.push(m),
        }
    }

    fn check(self) -> Result<()> {
        super::weights::mismatch_report(self.missing, self.unexpected, self.wrong)
    }
}

/// How a file tensor's bytes become a device param's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Decoded to f32, then stored as the param's type: converted to f16 or bf16, or quantized
    /// block by block (a float checkpoint loaded into a q8/q4 component).
    Convert,
    /// Already in the param's packed format (written by `ptdit quantize`): its values, as is.
    Values,
    /// The f16 scales of a q8/q4 param (`{key}_scale`), as is, after its values.
    Scales,
}

/// Where one tensor's bytes go.
enum Target {
    Device {
        /// The checkpoint's key (for messages).
        key: String,
        /// The param's name: the key, or a stacked param the tensor is part of.
        param: String,
        dtype: DType,
        /// Elements of the tensor done (bytes for [`Form::Values`] and [`Form::Scales`]).
        written: u64,
        form: Form,
        /// Elements of the param (where a q8/q4 param's scales start).
        numel: usize,
        /// The param's element where the tensor starts (0 unless it is a stacked part).
        first: usize,
    },
    Host {
        key: String,
        table: TableBuilder,
    },
    Skip,
}

impl Target {
    fn key(&self) -> &str {
        match self {
            Target::Device { key, .. } | Target::Host { key, .. } => key,
            Target::Skip => "",
        }
    }
}

/// One tensor's bytes in a file and the converted-so-far state.
struct Slot {
    src: Dtype,
    /// Elements converted so far.
    done: usize,
    /// Bytes of whole elements not yet converted (and at most a partial element).
    pending: Vec<u8>,
    target: Target,
}

/// A safetensors file on its way in: its reader, and once the header is read, where each of its
/// tensors goes.
#[derive(Default)]
struct InFile {
    stream: Stream,
    slots: Vec<Slot>,
}

/// Pieces are converted once this many bytes are pending (whole elements only).
const FLUSH_BYTES: usize = 4 << 20;
/// Natively, queued writes are submitted and waited for every this many bytes, so staging
/// memory stays bounded however large the file.
const SYNC_BYTES: u64 = 256 << 20;

/// Streams one component's safetensors files onto the device.
pub struct Upload {
    ctx: GpuContext,
    wanted: Wanted,
    out: DeviceWeights,
    seen: HashSet<String>,
    /// q8/q4 params whose values came packed: their `{key}_scale` must come too.
    packed_values: HashSet<String>,
    /// q8/q4 params whose `{key}_scale` came.
    scales: HashSet<String>,
    files: HashMap<String, InFile>,
    ended: HashSet<String>,
    unsynced: u64,
}

impl Upload {
    pub fn new(ctx: &GpuContext, wanted: Wanted) -> Self {
        Upload {
            ctx: ctx.clone(),
            wanted,
            out: DeviceWeights::default(),
            seen: HashSet::new(),
            packed_values: HashSet::new(),
            scales: HashSet::new(),
            files: HashMap::new(),
            ended: HashSet::new(),
            unsynced: 0,
        }
    }

    /// Bytes of the device buffers made so far.
    pub fn device_bytes(&self) -> u64 {
        self.out.params.bytes()
    }

    /// The next piece of file `file` (any size, in order). Errors name the file.
    pub fn push(&mut self, file: &str, bytes: &[u8]) -> Result<()> {
        self.push_inner(file, bytes).map_err(|e| e.in_file(file))
    }

    fn push_inner(&mut self, file: &str, bytes: &[u8]) -> Result<()> {
        if self.ended.contains(file) {
            return Err(Error::load(LoadError::Truncated(
                "more bytes after the file ended".into(),
            )));
        }
        let mut f = self.files.remove(file).unwrap_or_default();
        let InFile { stream, slots } = &mut f;
        stream.push(bytes, |piece| match piece {
            Piece::Header(entries) => {
                *slots = self.header(entries)?;
                Ok(())
            }
            Piece::Data { index, bytes, last } => match slots.get_mut(index) {
                Some(slot) => self.write(slot, bytes, last),
                None => Err(Error::Graph(format!("upload: no slot for tensor {index}"))),
            },
        })?;
        self.files.insert(file.to_string(), f);
        Ok(())
    }

    /// A file's header has arrived: every tensor's slot is decided and its buffer made now, so
    /// unexpected keys and wrong shapes fail before the data arrives.
    fn header(&mut self, entries: &[Entry]) -> Result<Vec<Slot>> {
        let mut slots = Vec::with_capacity(entries.len());
        let mut problems = Problems::default();
        for e in entries {
            match self.begin(&e.key, &e.shape, e.dtype) {
                Ok(slot) => slots.push(slot),
                Err(p) => problems.add(p),
            }
        }
        problems.check()?;
        Ok(slots)
    }

    /// Decides where tensor `key` goes (and makes its buffer).
    fn begin(
        &mut self,
        key: &str,
        shape: &[usize],
        src: Dtype,
    ) -> std::result::Result<Slot, Problem> {
        let key = self.wanted.canonical(key).to_string();
        let slot = |target| Slot {
            src,
            done: 0,
            pending: Vec::new(),
            target,
        };
        let float_like = matches!(
            src,
            Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::I64 | Dtype::I32
        );
        let scaled = |d: &TensorDesc| matches!(d.dtype, DType::Q8 | DType::Q4);
        // `{key}_scale` of a q8/q4 param: its scales, stored after its values.
        let scales_of = key
            .strip_suffix(crate::formats::quantized::SCALE_SUFFIX)
            .and_then(|k| self.wanted.device.get_key_value(k))
            .filter(|(_, d)| scaled(d))
            .map(|(k, d)| (k.clone(), d.clone()));
        if let Some((base, desc)) = scales_of {
            let expect = crate::formats::quantized::scale_shape(desc.shape.dims());
            let found = crate::tensor::Shape(shape.to_vec());
            if !self.scales.insert(base.clone()) {
                return Err(Problem::Wrong(format!("{key}: appears twice")));
            }
            if src != Dtype::F16 || found != expect {
                return Err(Problem::Wrong(format!(
                    "{key}: the scales of {} weight `{base}` {} must be F16 {expect}, found \
                     {src:?} {found}",
                    desc.dtype.name(),
                    desc.shape
                )));
            }
            let (param, whole, first) = self.wanted.param_of(&base, &desc);
            self.param_buffer(&param, &whole)?;
            return Ok(slot(Target::Device {
                key: base,
                param,
                dtype: desc.dtype,
                written: 0,
                form: Form::Scales,
                numel: whole.shape.numel(),
                first,
            }));
        }
        if let Some(desc) = self.wanted.device.get(&key).cloned() {
            if !self.seen.insert(key.clone()) {
                return Err(Problem::Wrong(format!("{key}: appears twice")));
            }
            let found = crate::tensor::Shape(shape.to_vec());
            // A tensor already in the param's packed format, and the shape it has on disk.
            let packed = match (desc.dtype, src) {
                (DType::BF16, Dtype::BF16) => Some(desc.shape.clone()),
                (DType::Q8, Dtype::I8) | (DType::Q4, Dtype::U8) => Some(
                    crate::formats::quantized::values_shape(desc.dtype, desc.shape.dims()),
                ),
                _ => None,
            };
            let form = match (&packed, src) {
                (Some(_), _) => Form::Values,
                (None, Dtype::I8 | Dtype::U8) => {
                    return Err(Problem::Wrong(format!(
                        "{key}: quantized ({src:?}) in the file, but this component stores it as \
                         {} (only the Linear weights of a component whose config.json has a \
                         `quantization` block are quantized, and only those whose rows hold \
                         whole blocks of {})",
                        desc.dtype.name(),
                        crate::quant::BLOCK
                    )))
                }
                (None, _) if float_like => Form::Convert,
                (None, _) => {
                    return Err(Problem::Wrong(format!(
                        "{key}: dtype {src:?}; expected f32, f16, bf16 or an integer type"
                    )))
                }
            };
            let expect = packed.unwrap_or_else(|| desc.shape.clone());
            if expect != found {
                return Err(Problem::Wrong(format!(
                    "{key}: expected {expect}, found {found}"
                )));
            }
            if form == Form::Values && scaled(&desc) {
                self.packed_values.insert(key.clone());
            }
            let (param, whole, first) = self.wanted.param_of(&key, &desc);
            self.param_buffer(&param, &whole)?;
            return Ok(slot(Target::Device {
                key,
                param,
                dtype: desc.dtype,
                written: 0,
                form,
                numel: whole.shape.numel(),
                first,
            }));
        }
        if let Some((_, expect, form)) = self.wanted.host.iter().find(|(k, ..)| *k == key) {
            if shape != expect.as_slice() {
                return Err(Problem::Wrong(format!(
                    "{key}: expected {}, found {}",
                    crate::tensor::Shape(expect.clone()),
                    crate::tensor::Shape(shape.to_vec())
                )));
            }
            if !self.seen.insert(key.clone()) {
                // A tied copy under another name: the same values.
                return Ok(slot(Target::Skip));
            }
            if !float_like {
                return Err(Problem::Wrong(format!(
                    "{key}: dtype {src:?}; expected a float or integer type"
                )));
            }
            let table = TableBuilder::new(shape, src == Dtype::BF16, *form);
            return Ok(slot(Target::Host { key, table }));
        }
        if self.wanted.unused(&key) {
            return Ok(slot(Target::Skip));
        }
        Err(Problem::Unexpected(key))
    }

    /// The device buffer of param `key` (made on its first tensor: a q8/q4 param's values and
    /// scales come as two).
    fn param_buffer(&mut self, key: &str, desc: &TensorDesc) -> std::result::Result<(), Problem> {
        if self.out.params.get(key).is_none() {
            self.out
                .params
                .create(&self.ctx, key, desc.clone())
                .map_err(|e| Problem::Wrong(e.to_string()))?;
        }
        Ok(())
    }

    /// Converts and writes a slot's next bytes; `last` flushes everything (the tensor ends).
    fn write(&mut self, slot: &mut Slot, bytes: &[u8], last: bool) -> Result<()> {
        if matches!(slot.target, Target::Skip) {
            return Ok(());
        }
        let size = (slot.src.bitsize() / 8).max(1);
        // Convert in groups whose output fills whole 4-byte words, as buffer writes need, except
        // for the tensor's tail, which is padded: 4 elements (f16, bf16), two q8/q4 blocks (their
        // two f16 scales make a word), or 4 bytes of data written as is.
        let group = match &slot.target {
            Target::Device {
                form: Form::Convert,
                dtype: DType::Q8 | DType::Q4,
                ..
            } => 2 * crate::quant::BLOCK * size,
            Target::Device {
                form: Form::Values | Form::Scales,
                ..
            } => 4,
            _ => 4 * size,
        };
        let whole = |n: usize| if last { n } else { n / group * group };
        let direct = slot.pending.is_empty() && (last || bytes.len() >= FLUSH_BYTES);
        let chunk: std::borrow::Cow<[u8]> = if direct {
            let n = whole(bytes.len());
            slot.pending.extend_from_slice(&bytes[n..]);
            std::borrow::Cow::Borrowed(&bytes[..n])
        } else {
            slot.pending.extend_from_slice(bytes);
            if !last && slot.pending.len() < FLUSH_BYTES {
                return Ok(());
            }
            let n = whole(slot.pending.len());
            let rest = slot.pending.split_off(n);
            std::borrow::Cow::Owned(std::mem::replace(&mut slot.pending, rest))
        };
        if last && !chunk.len().is_multiple_of(size) {
            return Err(Error::load(LoadError::Truncated(
                "a tensor ends inside an element".into(),
            )));
        }
        if let Target::Device {
            param,
            dtype,
            written,
            form: form @ (Form::Values | Form::Scales),
            numel,
            first,
            ..
        } = &mut slot.target
        {
            // Packed data, as `ptdit quantize` wrote it: to its place in the param's buffer (a
            // stacked part's values and scales each after those of the parts before it, which
            // fill whole words: `graph::stackable`).
            let base = match form {
                Form::Scales => {
                    crate::quant::values_bytes(*dtype, *numel)
                        + 2 * (*first / crate::quant::BLOCK) as u64
                }
                _ => (*first as u64 * dtype.bits() as u64) / 8,
            };
            let at = base + *written;
            *written += chunk.len() as u64;
            let param = param.clone();
            self.write_param(&param, at, chunk.into_owned())?;
            return self.maybe_sync();
        }
        let values = safetensors::decode(slot.src, &chunk).ok_or_else(|| {
            Error::load(LoadError::Dtype {
                key: slot.target.key().to_string(),
                dtype: format!("{:?}", slot.src),
                expected: safetensors::READABLE,
            })
        })?;
        let first = slot.done;
        slot.done += values.len();
        match &mut slot.target {
            Target::Skip => {}
            Target::Host { key, table } => {
                check_values(key, &values, first, DType::F32)?;
                table.push(&values);
            }
            Target::Device {
                key,
                param,
                dtype,
                written,
                numel,
                first: start,
                ..
            } => {
                check_values(key, &values, first, *dtype)?;
                let key = param.clone();
                let at = *start + *written as usize;
                *written += values.len() as u64;
                match *dtype {
                    DType::Q8 | DType::Q4 => {
                        // Quantized on the way: the values and the scales of these blocks,
                        // each to its region.
                        let (mut q, mut scales) = (Vec::new(), Vec::new());
                        crate::quant::quantize_into(*dtype, &values, &mut q, &mut scales);
                        let q_at = (at * dtype.bits() / 8) as u64;
                        let s_at = crate::quant::values_bytes(*dtype, *numel)
                            + 2 * (at / crate::quant::BLOCK) as u64;
                        self.write_param(&key, q_at, q)?;
                        self.write_param(&key, s_at, scales)?;
                    }
                    d => {
                        let out = HostTensor::f32([values.len()], values)
                            .gpu_bytes(d)
                            .into_owned();
                        self.write_param(&key, (at * d.size()) as u64, out)?;
                    }
                }
            }
        }
        if last {
            if let Target::Host { key, table } = std::mem::replace(&mut slot.target, Target::Skip) {
                self.out.host.insert(key, table.finish());
            }
        }
        self.maybe_sync()
    }

    /// Queues `bytes` (padded to whole words) for param `key` at byte `at`.
    fn write_param(&mut self, key: &str, at: u64, mut bytes: Vec<u8>) -> Result<()> {
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        if bytes.is_empty() {
            return Ok(());
        }
        let param = self
            .out
            .params
            .get(key)
            .ok_or_else(|| Error::Model(format!("internal: no buffer for `{key}`")))?;
        self.ctx.queue.write_buffer(&param.buffer, at, &bytes);
        self.unsynced += bytes.len() as u64;
        Ok(())
    }

    fn maybe_sync(&mut self) -> Result<()> {
        if self.unsynced >= SYNC_BYTES {
            self.sync()?;
        }
        Ok(())
    }

    /// Hands queued writes to the device (natively, waits for them, freeing their staging).
    fn sync(&mut self) -> Result<()> {
        self.unsynced = 0;
        self.ctx.queue.submit([]);
        #[cfg(not(target_arch = "wasm32"))]
        return self.ctx.wait("uploading weights");
        #[cfg(target_arch = "wasm32")]
        self.ctx.take_errors("uploading weights")
    }

    /// File `file` has no more bytes: it must have been complete.
    pub fn end(&mut self, file: &str) -> Result<()> {
        let r = match self.files.remove(file) {
            None => Err(safetensors::empty()),
            Some(f) => f.stream.end(),
        };
        self.ended.insert(file.to_string());
        r.map_err(|e| e.in_file(file))
    }

    /// Every file has ended: checks that every param arrived, and returns the weights.
    pub fn finish(mut self) -> Result<DeviceWeights> {
        if let Some(f) = self.files.keys().next() {
            let never = LoadError::Truncated("the file never ended".into());
            return Err(Error::load_in(f, never));
        }
        let suffix = crate::formats::quantized::SCALE_SUFFIX;
        let mut missing: Vec<String> = (self.wanted.device.keys())
            .filter(|k| !self.seen.contains(*k))
            .cloned()
            .collect();
        missing
            .extend((self.packed_values.difference(&self.scales)).map(|k| format!("{k}{suffix}")));
        let wrong = (self.scales.difference(&self.packed_values))
            .filter(|k| self.seen.contains(*k))
            .map(|k| {
                format!("{k}{suffix}: scales for `{k}`, whose values are not quantized in the file")
            })
            .collect();
        Problems {
            missing,
            wrong,
            ..Problems::default()
        }
        .check()?;
        self.sync()?;
        Ok(self.out)
    }
}

/// NaN, infinities, and values f16 cannot hold are refused with the key and element.
fn check_values(key: &str, values: &[f32], first: usize, dtype: DType) -> Result<()> {
    let limit = crate::quant::max_magnitude(dtype);
    match values.iter().position(|x| x.is_nan() || x.abs() > limit) {
        None => Ok(()),
        Some(i) => Err(Error::load(LoadError::Value {
            key: key.to_string(),
            index: first + i,
            value: values[i],
            storage: format!("{dtype:?}"),
        })),
    }
}
