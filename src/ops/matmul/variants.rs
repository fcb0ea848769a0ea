//! The matmul's kernel variants: which shader each is, which block of C its workgroup covers,
//! and the rules that hand a product to a neighbouring variant by its size. The device's
//! choice ([`MatmulKernel`], in [`Tuning`]) comes from the autotuner; the thresholds here were
//! measured with `ptdit bench matmul --shapes M×K×N,…` on each kind of adapter (figures and
//! hardware in docs/performance.md).

use crate::kernel::{CoopShape, MatmulKernel, Tuning};
use crate::tensor::DType;

/// The fewest 128×128 blocks for which the `wide` kernel runs: with fewer, `tiled`'s four
/// times as many workgroups keep more of a real GPU busy (`bench matmul --shapes
/// 2048x256x1024,2048x1024x256` on a real GPU: they tie at this count).
pub const WIDE_MIN_BLOCKS: usize = 128;

/// Products of fewer rows (per batch item) than this run `registers` where the device's kernel
/// is `rows`, whose workgroups own 128 rows each and would idle most of their lanes (`bench
/// matmul --shapes 2x256x1536,32x256x256,256x256x256,256x256x1024` on llvmpipe).
pub const ROWS_MIN_ROWS: usize = 256;

/// Products with fewer 64×64 blocks than this run `split` on real GPUs, which spreads K over
/// invocations where the block kernels would leave the GPU idle (`bench matmul --shapes
/// 2048x256x32,2048x256x256` on a real GPU).
pub const SPLIT_BELOW_BLOCKS: usize = 64;

impl MatmulKernel {
    /// Whether the kernel can multiply in f16 ([`Tuning::f16_math`]): the two that stage K
    /// slices in workgroup memory, whose slices give the f16 sums a short, fixed length.
    pub fn has_f16_math(self) -> bool {
        matches!(self, MatmulKernel::Tiled | MatmulKernel::Wide)
    }

    /// The shader file and the block of C one workgroup covers: (rows, columns).
    pub fn shader(self) -> (&'static str, [usize; 2]) {
        match self {
            MatmulKernel::Registers => ("matmul/registers", [32, 32]),
            MatmulKernel::Tiled => ("matmul/tiled", [64, 64]),
            MatmulKernel::Rows => ("matmul/rows", [128, 8]),
            MatmulKernel::Wide => ("matmul/wide", [128, 128]),
            MatmulKernel::Split => ("matmul/split", [4, 32]),
            MatmulKernel::Coop => ("matmul/coop", [64, 64]),
        }
    }

    /// The device's kernel for a graph of float type `float` before the product's size is
    /// considered: `coop` for f16 graphs where the device has cooperative matrices and the
    /// tuning asks for them (`Tuning::coop`, or `coop` forced as the kernel); elsewhere the
    /// tuning's kernel, with `tiled` (the same block) standing in for `coop`.
    pub fn for_graph(tuning: &Tuning, float: DType, coop: Option<CoopShape>) -> MatmulKernel {
        let asked = tuning.coop || tuning.matmul == MatmulKernel::Coop;
        match tuning.matmul {
            _ if asked && float == DType::F16 && coop.is_some() => MatmulKernel::Coop,
            MatmulKernel::Coop => MatmulKernel::Tiled,
            k => k,
        }
    }

    /// The kernel that runs a product of `batch` × `m` × `n` outputs, chosen as `self` (the
    /// device's kernel): the two block kernels for real GPUs trade places by the product's
    /// size: `wide` needs `WIDE_MIN_BLOCKS` of its 128×128 blocks, and a product with under
    /// `SPLIT_BELOW_BLOCKS` 64×64 blocks runs `split` (from `coop` too, whose blocks are
    /// `tiled`'s; not yet measured on a GPU with cooperative matrices). On software GPUs
    /// `rows` hands products of under `ROWS_MIN_ROWS` rows to `registers`. `per_shape: false`
    /// keeps `self` everywhere.
    pub fn for_product(self, tuning: &Tuning, batch: usize, m: usize, n: usize) -> MatmulKernel {
        let blocks = |edge: usize| batch * m.div_ceil(edge) * n.div_ceil(edge);
        match self {
            _ if !tuning.per_shape => self,
            MatmulKernel::Wide if blocks(128) >= WIDE_MIN_BLOCKS => self,
            MatmulKernel::Wide | MatmulKernel::Tiled | MatmulKernel::Coop
                if blocks(64) < SPLIT_BELOW_BLOCKS =>
            {
                MatmulKernel::Split
            }
            MatmulKernel::Wide => MatmulKernel::Tiled,
            MatmulKernel::Rows if m < ROWS_MIN_ROWS => MatmulKernel::Registers,
            k => k,
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
        assert_eq!(Coop.for_product(&t, 1, 512, 512), Coop);
        assert_eq!(Coop.for_product(&t, 1, 63 * 64, 64), Split);
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
    fn coop_runs_only_f16_graphs_on_devices_that_have_it() {
        use MatmulKernel::*;
        let shape = Some(CoopShape {
            edge: 8,
            subgroup: 8,
        });
        let asked = Tuning {
            matmul: Wide,
            coop: true,
            ..Tuning::default()
        };
        assert_eq!(MatmulKernel::for_graph(&asked, DType::F16, shape), Coop);
        assert_eq!(MatmulKernel::for_graph(&asked, DType::F32, shape), Wide);
        assert_eq!(MatmulKernel::for_graph(&asked, DType::F16, None), Wide);
        let forced = Tuning {
            matmul: Coop,
            ..Tuning::default()
        };
        assert_eq!(MatmulKernel::for_graph(&forced, DType::F16, shape), Coop);
        assert_eq!(MatmulKernel::for_graph(&forced, DType::F32, shape), Tiled);
        assert_eq!(MatmulKernel::for_graph(&forced, DType::F16, None), Tiled);
        let not_asked = Tuning {
            matmul: Rows,
            ..Tuning::default()
        };
        assert_eq!(MatmulKernel::for_graph(&not_asked, DType::F16, shape), Rows);
    }
}
