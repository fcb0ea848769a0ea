//! Which kernel variant each tunable op uses on this device. The autotuner
//! ([`crate::autotune`]) measures the variants and sets these; until then (and in tests that do
//! not ask for a variant) the defaults hold. The variants are named here; the rules that hand a
//! product or a head to a neighbouring variant, and their thresholds, live with their op
//! (`ops/matmul/variants.rs`, `ops/attention/variants.rs`).

/// The matmul kernels: they compute the same function with different memory strategies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// `shaders/matmul/registers.wgsl`: each invocation a 4×4 block from registers, no workgroup memory
    /// and no barriers. The fastest on software GPUs (lavapipe, SwiftShader).
    #[default]
    Registers,
    /// `shaders/matmul/tiled.wgsl`: 64×64 blocks per workgroup, K slices shared through
    /// workgroup memory. Made for real GPUs, where operand reuse matters more than barriers.
    Tiled,
    /// `shaders/matmul/rows.wgsl`: a workgroup on 128 rows and 8 columns of C, each
    /// invocation a 4×8 block from registers. Every lane reads the same W words, which a
    /// software GPU loads once and broadcasts instead of gathering lane by lane.
    Rows,
    /// `shaders/matmul/wide.wgsl`: 128×128 blocks per workgroup, 8×8 per invocation, K slices
    /// shared through workgroup memory with the next slice loaded during the current one's
    /// arithmetic. For real GPUs on large products (see [`MatmulKernel::for_product`]).
    Wide,
    /// `shaders/matmul/split.wgsl`: K split among 8 invocations per 4 outputs, the partial sums
    /// added in workgroup memory. For real GPUs on products with few rows, where the block
    /// kernels leave most of the GPU idle (see [`MatmulKernel::for_product`]).
    Split,
    /// `shaders/matmul/coop.wgsl`: 64×64 blocks on cooperative matrices (tensor cores): K
    /// slices staged in workgroup memory as f16, multiplied by the device's f16 × f16 → f32
    /// fragments ([`CoopShape`]). f16 graphs only, on devices that have the feature; an f32
    /// graph asked for it runs `tiled` (see [`MatmulKernel::for_product`]).
    Coop,
}

/// The cooperative-matrix shape the engine uses on a device: square `edge`² fragments with f16
/// operands and f32 sums, run by subgroups of `subgroup` invocations. `None` on devices without
/// it (every browser, a host's device, most software GPUs); [`crate::gpu::GpuContext::coop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CoopShape {
    /// 8 or 16.
    pub edge: u32,
    /// The subgroup size, which the device does not vary (its minimum equals its maximum).
    pub subgroup: u32,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 6] = [
        MatmulKernel::Registers,
        MatmulKernel::Tiled,
        MatmulKernel::Rows,
        MatmulKernel::Wide,
        MatmulKernel::Split,
        MatmulKernel::Coop,
    ];

    /// Whether the kernel multiplies f32 operands (every one but `coop`, which needs f16).
    pub fn takes_f32(self) -> bool {
        self != MatmulKernel::Coop
    }

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Rows => "rows",
            MatmulKernel::Wide => "wide",
            MatmulKernel::Split => "split",
            MatmulKernel::Coop => "coop",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// The attention kernels: the same function, keys and values read three ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttentionKernel {
    /// `shaders/attention/tiled.wgsl`: an invocation per query, 64 queries per workgroup sharing
    /// key and value tiles through workgroup memory, the query and accumulator in registers
    /// (`attention/loops.wgsl` for heads over 128 wide). Made for real GPUs.
    #[default]
    Tiled,
    /// `shaders/attention/rows.wgsl`: 8 queries per invocation, keys and values read from
    /// their buffers at workgroup-uniform addresses, each word serving all 8; no workgroup
    /// memory, no barriers. For software GPUs, which load lane by lane.
    Rows,
    /// `shaders/attention/coop.wgsl`: Q·Kᵀ and P·V on cooperative matrices (tensor cores), a
    /// subgroup per workgroup, key and value tiles in workgroup memory as f16, two passes over
    /// the keys (see the shader). f16 graphs only, heads up to 128 wide, on devices that have
    /// the feature; elsewhere `tiled` runs (see [`AttentionKernel::for_graph`]).
    Coop,
}

impl AttentionKernel {
    pub const ALL: [AttentionKernel; 3] = [
        AttentionKernel::Tiled,
        AttentionKernel::Rows,
        AttentionKernel::Coop,
    ];

    /// Whether the kernel runs f32 graphs (every one but `coop`, which needs f16).
    pub fn takes_f32(self) -> bool {
        self != AttentionKernel::Coop
    }

    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::Tiled => "tiled",
            AttentionKernel::Rows => "rows",
            AttentionKernel::Coop => "coop",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// The kernel choices of one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuning {
    pub matmul: MatmulKernel,
    pub attention: AttentionKernel,
    /// GELU inside the matmul's epilogue (one dispatch, one pass fewer) rather than a second
    /// in-place dispatch. Which is faster depends on the adapter's shader compiler (a longer
    /// kernel can compile worse on a software GPU), so the autotuner times both; off until then.
    pub fuse_gelu: bool,
    /// Pick the kernel per product shape ([`MatmulKernel::for_product`]). Tests and
    /// benchmarks turn it off to run one kernel on every product.
    pub per_shape: bool,
    /// In f16 graphs, the workgroup-memory matmuls (`tiled`, `wide`; see
    /// [`MatmulKernel::has_f16_math`]) multiply in f16 and sum each K slice in f16 before adding
    /// it to f32 sums. A GPU with packed f16 arithmetic may run twice the multiply-adds; a
    /// software GPU emulates f16 and loses. The autotuner times both on devices with
    /// `shader-f16`; off until then.
    pub f16_math: bool,
    /// In f16 graphs on a device with cooperative matrices, products run `coop` whatever
    /// `matmul` is (which then serves f32 graphs). The autotuner times it against `matmul` on
    /// f16 operands; off until then.
    pub coop: bool,
    /// In f16 graphs on a device with cooperative matrices, attention runs `coop` whatever
    /// `attention` is (which then serves f32 graphs and heads `coop` does not take). Timed by
    /// the autotuner against `attention` on f16 operands; off until then.
    pub coop_attention: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            matmul: MatmulKernel::default(),
            attention: AttentionKernel::default(),
            fuse_gelu: false,
            per_shape: true,
            f16_math: false,
            coop: false,
            coop_attention: false,
        }
    }
}
