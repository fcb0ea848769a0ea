//! Which kernel variant each tunable op uses on this device. The autotuner
//! ([`crate::autotune`]) measures the variants and sets these; until then (and in tests that do
//! not ask for a variant) the defaults hold.

/// The matmul kernels: they compute the same function with different memory strategies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// `shaders/matmul.wgsl`: each invocation a 4×4 block from registers, no workgroup memory
    /// and no barriers. The fastest on software GPUs (lavapipe, SwiftShader).
    #[default]
    Registers,
    /// `shaders/matmul_tiled.wgsl`: 64×64 blocks per workgroup, K slices shared through
    /// workgroup memory. Made for real GPUs, where operand reuse matters more than barriers.
    Tiled,
    /// `shaders/matmul_rows.wgsl`: a workgroup on 128 rows and 8 columns of C, each
    /// invocation a 4×8 block from registers. Every lane reads the same W words, which a
    /// software GPU loads once and broadcasts instead of gathering lane by lane.
    Rows,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 3] = [
        MatmulKernel::Registers,
        MatmulKernel::Tiled,
        MatmulKernel::Rows,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Rows => "rows",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The shader file and the block of C one workgroup covers: (rows, columns).
    pub fn shader(self) -> (&'static str, [usize; 2]) {
        match self {
            MatmulKernel::Registers => ("matmul", [32, 32]),
            MatmulKernel::Tiled => ("matmul_tiled", [64, 64]),
            MatmulKernel::Rows => ("matmul_rows", [128, 8]),
        }
    }
}

/// The two attention kernels: the same function, keys and values read two ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttentionKernel {
    /// `shaders/attention.wgsl`: an invocation per query, 64 queries per workgroup sharing
    /// key and value tiles through workgroup memory. Made for real GPUs.
    #[default]
    Tiled,
    /// `shaders/attention_rows.wgsl`: 8 queries per invocation, keys and values read from
    /// their buffers at workgroup-uniform addresses, each word serving all 8; no workgroup
    /// memory, no barriers. For software GPUs, which load lane by lane.
    Rows,
}

impl AttentionKernel {
    pub const ALL: [AttentionKernel; 2] = [AttentionKernel::Tiled, AttentionKernel::Rows];

    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::Tiled => "tiled",
            AttentionKernel::Rows => "rows",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The shader file.
    pub fn shader(self) -> &'static str {
        match self {
            AttentionKernel::Tiled => "attention",
            AttentionKernel::Rows => "attention_rows",
        }
    }
}

/// The kernel choices of one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tuning {
    pub matmul: MatmulKernel,
    pub attention: AttentionKernel,
    /// GELU inside the matmul's epilogue (one dispatch, one pass fewer) rather than a second
    /// in-place dispatch. Which is faster depends on the adapter's shader compiler (a longer
    /// kernel can compile worse on a software GPU), so the autotuner times both; off until then.
    pub fuse_gelu: bool,
}
