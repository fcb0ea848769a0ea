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
    /// `shaders/matmul_wide.wgsl`: 128×128 blocks per workgroup, 8×8 per invocation, K slices
    /// shared through workgroup memory with the next slice loaded during the current one's
    /// arithmetic. For real GPUs on large products; a product with fewer than
    /// [`Tuning::wide_min_blocks`] such blocks runs the `tiled` kernel, whose 4× as many
    /// workgroups keep more of the GPU busy.
    Wide,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 4] = [
        MatmulKernel::Registers,
        MatmulKernel::Tiled,
        MatmulKernel::Rows,
        MatmulKernel::Wide,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Rows => "rows",
            MatmulKernel::Wide => "wide",
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
            MatmulKernel::Wide => ("matmul_wide", [128, 128]),
        }
    }

    /// The kernel that runs a product of `batch` × `m` × `n` outputs under `tuning`: itself,
    /// except `wide` on a product with too few 128×128 blocks, which runs `tiled`.
    pub fn for_product(self, tuning: &Tuning, batch: usize, m: usize, n: usize) -> MatmulKernel {
        let blocks = batch * m.div_ceil(128) * n.div_ceil(128);
        if self == MatmulKernel::Wide && blocks < tuning.wide_min_blocks {
            MatmulKernel::Tiled
        } else {
            self
        }
    }
}

/// The fewest 128×128 blocks for which the `wide` matmul kernel is used (see
/// [`Tuning::wide_min_blocks`]).
pub const WIDE_MIN_BLOCKS: usize = 128;

/// The two attention kernels: the same function, keys and values read two ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttentionKernel {
    /// `shaders/attention.wgsl`: an invocation per query, 64 queries per workgroup sharing
    /// key and value tiles through workgroup memory, the query and accumulator in registers
    /// (`attention_loops.wgsl` for heads over 128 wide). Made for real GPUs.
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

    /// The shader file for heads `head_dim` wide: the tiled kernel keeps a head's query and
    /// accumulator in registers up to 128 wide, and walks wider heads (the VAE's 512, which
    /// would only spill) with loops over arrays.
    pub fn shader(self, head_dim: usize) -> &'static str {
        match self {
            AttentionKernel::Tiled if head_dim > 128 => "attention_loops",
            AttentionKernel::Tiled => "attention",
            AttentionKernel::Rows => "attention_rows",
        }
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
    /// The fewest 128×128 blocks of C a product needs to run the `wide` matmul kernel: below
    /// it, the `tiled` kernel's smaller blocks give a large GPU enough workgroups to fill it.
    /// [`WIDE_MIN_BLOCKS`] unless a test or benchmark wants the wide kernel on any product.
    pub wide_min_blocks: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            matmul: MatmulKernel::default(),
            attention: AttentionKernel::default(),
            fuse_gelu: false,
            wide_min_blocks: WIDE_MIN_BLOCKS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_runs_only_products_with_enough_blocks() {
        let t = Tuning {
            matmul: MatmulKernel::Wide,
            ..Tuning::default()
        };
        let wide = MatmulKernel::Wide;
        // 2 × 16 × 4 = 128 blocks of 128×128 (the last row and column of blocks partial).
        assert_eq!(wide.for_product(&t, 2, 2000, 500), MatmulKernel::Wide);
        assert_eq!(wide.for_product(&t, 1, 2000, 500), MatmulKernel::Tiled);
        assert_eq!(wide.for_product(&t, 1, 8192, 255), MatmulKernel::Wide);
        assert_eq!(wide.for_product(&t, 1, 8191, 128), MatmulKernel::Tiled);
        let always = Tuning {
            wide_min_blocks: 0,
            ..t
        };
        assert_eq!(wide.for_product(&always, 1, 1, 1), MatmulKernel::Wide);
        for k in [
            MatmulKernel::Registers,
            MatmulKernel::Tiled,
            MatmulKernel::Rows,
        ] {
            assert_eq!(k.for_product(&t, 1, 1, 1), k);
        }
    }
}
