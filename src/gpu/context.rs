//! The WebGPU device the engine runs on: created by us, or borrowed from a host (a game).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::kernel::{CoopShape, Kernel, Tuning};

use super::memory::{host_memory_left, Headroom};

/// A compiled kernel and the layout of its bind group.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Where the device came from. A borrowed device belongs to the host: we never destroy it and
/// never replace its callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    Owned,
    Borrowed,
}

/// The adapter and device facts a user (and `ptdit info`) wants to see.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    /// The cooperative-matrix shape the engine uses here, if any.
    pub coop: Option<CoopShape>,
}

/// A device + queue and what the engine may use on it.
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub report: AdapterReport,
    pub ownership: Ownership,
    lost: Arc<Mutex<Option<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
    pipelines: Arc<Mutex<HashMap<String, Pipeline>>>,
    tuning: Arc<Mutex<Tuning>>,
    memory_budget: Arc<Mutex<Option<u64>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.report.name)
            .field("backend", &self.report.backend)
            .field("ownership", &self.ownership)
            .finish()
    }
}

impl GpuContext {
    /// Creates a device on the best adapter. `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and
    /// `WGPU_POWER_PREF` select another one (native only).
    pub async fn new() -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
        #[cfg(not(target_arch = "wasm32"))]
        let adapter = wgpu::util::initialize_adapter_from_env_or_default(&instance, None).await;
        #[cfg(target_arch = "wasm32")]
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await;
        let adapter = adapter.map_err(|e| Error::NoAdapter(e.to_string()))?;
        Self::from_adapter(&adapter).await
    }

    /// Blocking version of [`GpuContext::new`] for native programs and tests.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        pollster::block_on(Self::new())
    }

    /// Creates a device on a given adapter, asking for everything the adapter offers that the
    /// engine can use (its best limits, `shader-f16`, timestamp queries) and requiring nothing.
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY;
        let coop = coop_shape(adapter);
        let mut required_features = adapter.features() & wanted;
        if coop.is_some() {
            required_features |= COOP_FEATURES;
        }
        let mut desc = wgpu::DeviceDescriptor {
            label: Some("ptdit"),
            required_features,
            required_limits: adapter.limits(),
            ..Default::default()
        };
        if coop.is_some() {
            // SAFETY: `ExperimentalFeatures::enabled` is `unsafe` because wgpu's experimental
            // APIs may hold bugs with undefined behaviour that otherwise safe calls can reach;
            // the caller acknowledges that and agrees to report them. What it opens here is
            // one thing, cooperative-matrix operations, and only one kernel uses them
            // (`shaders/matmul/coop.wgsl`), whose every load and store addresses workgroup
            // arrays at offsets bounded by constants (checked by naga's validation as for any
            // shader). The risk left is a wgpu or driver bug, which the op tests would show as
            // wrong results on the device (`tests/ops.rs` runs every case through `coop`
            // wherever it is enabled); `PTDIT_COOP=0` keeps the feature off.
            desc.experimental_features = unsafe { wgpu::ExperimentalFeatures::enabled() };
        }
        let (device, queue) = adapter
            .request_device(&desc)
            .await
            .map_err(|e| Error::Device {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = flag.lock() {
                *slot = Some(match message.is_empty() {
                    true => format!("{reason:?}"),
                    false => format!("{reason:?}: {message}"),
                });
            }
        });
        // wgpu's default handler panics; on our own device, errors are kept and returned by the
        // next call that checks them.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        // The device was created with COOP_FEATURES wherever `coop` is set: it has them.
        let mut report = report(&info, &device);
        report.coop = coop;
        Ok(GpuContext {
            report,
            device,
            queue,
            ownership: Ownership::Owned,
            lost,
            errors,
            pipelines: Default::default(),
            tuning: Default::default(),
            memory_budget: Arc::new(Mutex::new(budget_from_env())),
        })
    }

    /// Wraps a host's device and queue (a game engine's). The engine uses what the device was
    /// created with and never destroys it or replaces its callbacks. `info` names the adapter
    /// in reports when the host has it.
    pub fn borrowed(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: Option<&wgpu::AdapterInfo>,
    ) -> Self {
        let report = match info {
            Some(i) => report(i, &device),
            None => AdapterReport {
                name: "host device".into(),
                backend: "host".into(),
                device_type: "unknown".into(),
                driver: String::new(),
                features: device.features(),
                limits: device.limits(),
                coop: None,
            },
        };
        GpuContext {
            report,
            device,
            queue,
            ownership: Ownership::Borrowed,
            lost: Arc::new(Mutex::new(None)),
            errors: Default::default(),
            pipelines: Default::default(),
            tuning: Default::default(),
            memory_budget: Arc::new(Mutex::new(budget_from_env())),
        }
    }

    /// The kernel variants graphs compiled from now on use (shared by clones of this context).
    pub fn tuning(&self) -> Tuning {
        self.tuning.lock().map(|t| *t).unwrap_or_default()
    }

    /// Sets the kernel variants for graphs compiled from now on (the autotuner does this).
    pub fn set_tuning(&self, t: Tuning) {
        if let Ok(mut slot) = self.tuning.lock() {
            *slot = t;
        }
    }

    /// Bytes of device memory that the device's buffers hold now (the engine's and wgpu's own
    /// staging alike), as wgpu's counters see the allocations; `None` where the backend keeps
    /// no count (the browser's WebGPU) or reports none yet. `ptdit generate --stats` and the
    /// planner test read it.
    pub fn buffer_bytes(&self) -> Option<u64> {
        let n = self.device.get_internal_counters().hal.buffer_memory.read();
        (n > 0).then_some(n as u64)
    }

    /// Caps the memory the device's buffers may hold in all, the engine's and, on a lent
    /// device, the host's (`None`: no cap; a CPU adapter is still held to the host memory
    /// left). Checked before each allocation of the engine's; shared by clones.
    pub fn set_memory_budget(&self, bytes: Option<u64>) {
        if let Ok(mut slot) = self.memory_budget.lock() {
            *slot = bytes;
        }
    }

    /// What may still be allocated, and why (module `memory`); `None` when nothing is known.
    pub fn memory_headroom(&self) -> Option<Headroom> {
        let cap = self.memory_budget.lock().ok().and_then(|b| *b);
        if let Some(cap) = cap {
            // The browser keeps no count of buffer bytes: there the cap bounds each request.
            let used = self.buffer_bytes().unwrap_or(0);
            return Some(Headroom {
                left: cap.saturating_sub(used),
                source: format!("the memory budget of {} ({} held now)", mib(cap), mib(used)),
            });
        }
        if self.report.device_type == format!("{:?}", wgpu::DeviceType::Cpu) {
            return host_memory_left();
        }
        None
    }

    /// Fails with [`Error::OutOfMemory`] when allocating `bytes` more would go past the
    /// headroom, before anything is allocated. `what` names the allocation.
    pub fn reserve(&self, what: &str, bytes: u64) -> Result<()> {
        match self.memory_headroom() {
            Some(h) if bytes > h.left => Err(Error::OutOfMemory {
                what: what.to_string(),
                needed: mib(bytes),
                left: mib(h.left),
                by: h.source,
            }),
            _ => Ok(()),
        }
    }

    /// The cooperative-matrix shape the device runs `coop` with, where it has one (see
    /// [`CoopShape`]); always `None` on a host's device, whose adapter's shapes are not known.
    pub fn coop(&self) -> Option<CoopShape> {
        self.report.coop
    }

    /// True when `shader-f16` is enabled on the device.
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Largest byte range one storage binding may cover on this device.
    pub fn max_binding_bytes(&self) -> u64 {
        self.device.limits().max_storage_buffer_binding_size
    }

    /// Blocks until all submitted work is done, then returns the first error it left (native;
    /// the browser cannot block and resolves reads instead). `during` names the work.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self, during: &str) -> Result<()> {
        self.poll_until_idle(during)?;
        self.take_errors(during)
    }

    /// The blocking poll under `wait` and `finished` (native): returns once the queue is empty,
    /// having run the callbacks of the work that finished.
    #[cfg(not(target_arch = "wasm32"))]
    fn poll_until_idle(&self, during: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                during: format!("waiting for {during}"),
                detail: e.to_string(),
            })
    }

    /// Resolves once all work submitted so far is done, then returns the first error it left:
    /// the way to time GPU work on both targets (the browser cannot block) without reading a
    /// result back, whose transfer can cost more than the work. `during` names the work.
    pub async fn finished(&self, during: &str) -> Result<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.poll_until_idle(during)?;
        rx.await
            .map_err(|_| Error::DeviceLost(format!("waiting for {during} was cancelled")))?;
        self.take_errors(during)
    }

    /// Returns the first GPU error recorded since the last check (own devices only; a host's
    /// device reports through the host's handler).
    pub fn take_errors(&self, during: &str) -> Result<()> {
        self.check_alive()?;
        let errs = match self.errors.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        };
        match errs.into_iter().next() {
            Some(detail) => Err(Error::Gpu {
                during: during.to_string(),
                detail,
            }),
            None => Ok(()),
        }
    }

    /// The compiled pipeline of a kernel variant, built once per device and shared by every
    /// graph compiled on it.
    pub fn pipeline(&self, kernel: &Kernel) -> Result<Pipeline> {
        let key = kernel.key();
        if let Ok(cache) = self.pipelines.lock() {
            if let Some(p) = cache.get(&key) {
                return Ok(p.clone());
            }
        }
        let wgsl = kernel.wgsl().map_err(|e| Error::Gpu {
            during: format!("preparing shader {key}"),
            detail: e,
        })?;
        crate::kernel::wgsl::dump(kernel, &wgsl);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&key),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            });
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        }];
        let reads = kernel.read_count();
        for i in 0..=reads {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: i < reads,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&key),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&key),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&key),
                layout: Some(&pl),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let p = Pipeline { pipeline, layout };
        if let Ok(mut cache) = self.pipelines.lock() {
            cache.insert(key, p.clone());
        }
        Ok(p)
    }

    /// How many kernel variants have been compiled on this device so far.
    pub fn compiled_kernels(&self) -> usize {
        self.pipelines.lock().map_or(0, |c| c.len())
    }

    /// Drops cached pipelines (after a failed compile, so a broken one is not reused).
    pub(crate) fn forget_pipelines(&self, keys: &[String]) {
        if let Ok(mut cache) = self.pipelines.lock() {
            for k in keys {
                cache.remove(k);
            }
        }
    }

    /// For a host that lends its device ([`GpuContext::borrowed`]) and owns its callbacks:
    /// call the returned function from the device's lost callback, and the engine's every later
    /// call fails with [`Error::DeviceLost`] instead of recording work that will never run. It
    /// holds no reference to the device, so the callback makes no cycle that keeps it alive.
    pub fn loss_reporter(&self) -> impl Fn(String) + Send + 'static {
        let lost = self.lost.clone();
        move |reason| {
            if let Ok(mut slot) = lost.lock() {
                slot.get_or_insert(reason);
            }
        }
    }

    /// Fails with [`Error::DeviceLost`] once the device is gone, so callers stop early with a
    /// clear message instead of recording work that will never run.
    pub fn check_alive(&self) -> Result<()> {
        match self.lost.lock() {
            Ok(slot) => match slot.as_ref() {
                Some(reason) => Err(Error::DeviceLost(reason.clone())),
                None => Ok(()),
            },
            Err(_) => Ok(()),
        }
    }
}

/// `PTDIT_MEMORY_BUDGET` (native): a cap such as `2G` on the engine's device memory.
fn budget_from_env() -> Option<u64> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let v = std::env::var("PTDIT_MEMORY_BUDGET").ok()?;
        let bytes = super::memory::parse_size(&v);
        if bytes.is_none() {
            eprintln!("warning: PTDIT_MEMORY_BUDGET={v:?} is not a size such as 2G; ignored");
        }
        bytes
    }
    #[cfg(target_arch = "wasm32")]
    {
        None
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn report(info: &wgpu::AdapterInfo, device: &wgpu::Device) -> AdapterReport {
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        features: device.features(),
        limits: device.limits(),
        coop: None,
    }
}

/// What `coop` needs from a device besides a shape: f16 in shaders, the subgroup builtins that
/// say which fragment a subgroup owns, and the cooperative matrices themselves.
const COOP_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

/// The cooperative-matrix shape for `coop` on this adapter: square fragments of 16 (preferred:
/// a quarter of the loads per multiply-add) or 8, f16 operands and f32 sums, on an adapter with
/// [`COOP_FEATURES`] and one subgroup size (the kernel's workgroup is four subgroups, sized when
/// it is compiled). `None` when any is missing or `PTDIT_COOP=0` (native).
fn coop_shape(adapter: &wgpu::Adapter) -> Option<CoopShape> {
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var("PTDIT_COOP").is_ok_and(|v| v == "0") {
        return None;
    }
    if !adapter.features().contains(COOP_FEATURES) {
        return None;
    }
    let info = adapter.get_info();
    let subgroup = info.subgroup_max_size;
    let limits = adapter.limits();
    let workgroup = 4 * subgroup; // shaders/matmul/coop.wgsl's WG: a power of two up to 512
    if info.subgroup_min_size != subgroup
        || !subgroup.is_power_of_two()
        || !(4..=128).contains(&subgroup)
        || workgroup > limits.max_compute_invocations_per_workgroup
        || workgroup > limits.max_compute_workgroup_size_x
    {
        return None;
    }
    let props = adapter.cooperative_matrix_properties();
    [16, 8].into_iter().find_map(|edge| {
        props
            .iter()
            .any(|p| {
                p.m_size == edge
                    && p.n_size == edge
                    && p.k_size == edge
                    && p.ab_type == wgpu::CooperativeScalarType::F16
                    && p.cr_type == wgpu::CooperativeScalarType::F32
            })
            .then_some(CoopShape { edge, subgroup })
    })
}
