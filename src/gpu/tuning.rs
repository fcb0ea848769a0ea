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
    /// arithmetic. For real GPUs on large products (see [`MatmulKernel::for_product`]).
    Wide,
    /// `shaders/matmul_split.wgsl`: K split among 8 invocations per 4 outputs, the partial sums
    /// added in workgroup memory. For real GPUs on products with few rows, where the block
    /// kernels leave most of the GPU idle (see [`MatmulKernel::for_product`]).
    Split,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 5] = [
        MatmulKernel::Registers,
        MatmulKernel::Tiled,
        MatmulKernel::Rows,
        MatmulKernel::Wide,
        MatmulKernel::Split,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Registers => "registers",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::Rows => "rows",
            MatmulKernel::Wide => "wide",
            MatmulKernel::Split => "split",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether the kernel can multiply in f16 ([`Tuning::f16_math`]): the two that stage K
    /// slices in workgroup memory, whose slices give the f16 sums a short, fixed length.
    pub fn has_f16_math(self) -> bool {
        matches!(self, MatmulKernel::Tiled | MatmulKernel::Wide)
    }

    /// The shader file and the block of C one workgroup covers: (rows, columns).
    pub fn shader(self) -> (&'static str, [usize; 2]) {
        match self {
            MatmulKernel::Registers => ("matmul", [32, 32]),
            MatmulKernel::Tiled => ("matmul_tiled", [64, 64]),
            MatmulKernel::Rows => ("matmul_rows", [128, 8]),
            MatmulKernel::Wide => ("matmul_wide", [128, 128]),
            MatmulKernel::Split => ("matmul_split", [4, 32]),
        }
    }

    /// The kernel that runs a product of `batch` × `m` × `n` outputs, chosen as `self` (the
    /// device's kernel): the two block kernels for real GPUs trade places by the product's
    /// size, as measured on an H100. `wide` needs [`WIDE_MIN_BLOCKS`] of its 128×128 blocks
    /// (with fewer, `tiled`'s 4× as many workgroups keep more of the GPU busy), and a product
    /// with under [`SPLIT_BELOW_BLOCKS`] 64×64 blocks runs `split`, which spreads K over
    /// invocations instead. On software GPUs `rows` hands products of under [`ROWS_MIN_ROWS`]
    /// rows to `registers`. `per_shape: false` keeps `self` everywhere.
    pub fn for_product(self, tuning: &Tuning, batch: usize, m: usize, n: usize) -> MatmulKernel {
        let blocks = |edge: usize| batch * m.div_ceil(edge) * n.div_ceil(edge);
        match self {
            _ if !tuning.per_shape => self,
            MatmulKernel::Wide if blocks(128) >= WIDE_MIN_BLOCKS => self,
            MatmulKernel::Wide | MatmulKernel::Tiled if blocks(64) < SPLIT_BELOW_BLOCKS => {
                MatmulKernel::Split
            }
            MatmulKernel::Wide => MatmulKernel::Tiled,
            MatmulKernel::Rows if m < ROWS_MIN_ROWS => MatmulKernel::Registers,
            k => k,
        }
    }
}

/// The fewest 128×128 blocks for which the `wide` matmul kernel runs: on an H100 it tied
/// `tiled` at 128 (2048×256×1024) and lost at 32 (2048×1024×256, 4.4 against 7.7 TFLOP/s).
pub const WIDE_MIN_BLOCKS: usize = 128;

/// Products of fewer rows (per batch item) than this run `registers` where the device's kernel
/// is `rows`, whose workgroups own 128 rows each and idle their other lanes: on llvmpipe
/// 2×256×1536 took 6.1 ms by rows against 0.46 by registers, 32×256×256 2.1 against 0.59,
/// 256×256×256 3.7 against 3.1; from 256×256×1024 on, rows was faster.
pub const ROWS_MIN_ROWS: usize = 256;

/// Products with fewer 64×64 blocks than this run the `split` kernel on real GPUs: on an H100
/// `tiled` ran 2048×256×32 (32 blocks) at 0.9 TFLOP/s against 6.7 for 2048×256×256 (128).
pub const SPLIT_BELOW_BLOCKS: usize = 64;

/// The widest head whose query row and accumulator the attention kernels hold in registers
/// (`rows`, `attention`); wider heads would only spill, and run `attention_loops`.
pub const REGISTER_HEAD_MAX: usize = 128;

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

    /// The kernel that runs heads `head_dim` wide when this one is chosen: `rows` holds 8
    /// queries' rows per invocation in registers, and past 128 wide (the VAE's one 512-wide
    /// head) they would only spill, so `tiled` (then `attention_loops`, see [`Self::shader`])
    /// runs them.
    pub fn for_head(self, head_dim: usize) -> AttentionKernel {
        match self {
            AttentionKernel::Rows if head_dim > REGISTER_HEAD_MAX => AttentionKernel::Tiled,
            k => k,
        }
    }

    /// The shader file for heads `head_dim` wide: the tiled kernel keeps a head's query and
    /// accumulator in registers up to 128 wide, and walks wider heads (the VAE's 512, which
    /// would only spill) with loops over arrays.
    pub fn shader(self, head_dim: usize) -> &'static str {
        match self {
            AttentionKernel::Tiled if head_dim > REGISTER_HEAD_MAX => "attention_loops",
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
    /// Pick the kernel per product shape ([`MatmulKernel::for_product`]). Tests and
    /// benchmarks turn it off to run one kernel on every product.
    pub per_shape: bool,
    /// In f16 graphs, the workgroup-memory matmuls (`tiled`, `wide`; see
    /// [`MatmulKernel::has_f16_math`]) multiply in f16 and sum each K slice in f16 before adding
    /// it to f32 sums. A GPU with packed f16 arithmetic may run twice the multiply-adds; a
    /// software GPU emulates f16 and loses. The autotuner times both on devices with
    /// `shader-f16`; off until then.
    pub f16_math: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            matmul: MatmulKernel::default(),
            attention: AttentionKernel::default(),
            fuse_gelu: false,
            per_shape: true,
            f16_math: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_gpu_kernels_trade_places_by_product_size() {
        use MatmulKernel::*;
        let t = Tuning::default();
        // 2 × 16 × 4 = 128 blocks of 128×128 (the last row and column of blocks partial).
        assert_eq!(Wide.for_product(&t, 2, 2000, 500), Wide);
        assert_eq!(Wide.for_product(&t, 1, 2000, 500), Tiled);
        assert_eq!(Wide.for_product(&t, 1, 8192, 255), Wide);
        assert_eq!(Wide.for_product(&t, 1, 8191, 128), Tiled);
        // 64 blocks of 64×64 keep `tiled`; 63 run `split`, from either block kernel.
        assert_eq!(Tiled.for_product(&t, 1, 512, 512), Tiled);
        assert_eq!(Tiled.for_product(&t, 1, 63 * 64, 64), Split);
        assert_eq!(Wide.for_product(&t, 2, 32, 256), Split);
        // On software GPUs, `rows` needs 256 rows per batch item.
        assert_eq!(Rows.for_product(&t, 8, 255, 4096), Registers);
        assert_eq!(Rows.for_product(&t, 1, 256, 8), Rows);
        for k in [Registers, Split] {
            assert_eq!(k.for_product(&t, 1, 1, 1), k);
        }
        let fixed = Tuning {
            per_shape: false,
            ..t
        };
        for k in MatmulKernel::ALL {
            assert_eq!(k.for_product(&fixed, 1, 1, 1), k);
            assert_eq!(k.for_product(&fixed, 1, 1 << 14, 1 << 14), k);
        }
    }

    #[test]
    fn attention_heads_over_128_wide_run_the_loop_kernel() {
        use AttentionKernel::*;
        assert_eq!(Rows.for_head(128).shader(128), "attention_rows");
        assert_eq!(Tiled.for_head(128).shader(128), "attention");
        for k in AttentionKernel::ALL {
            assert_eq!(k.for_head(129), Tiled);
            assert_eq!(k.for_head(512).shader(512), "attention_loops");
        }
    }
}
