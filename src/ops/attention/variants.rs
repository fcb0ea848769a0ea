//! The attention's kernel variants: which shader runs a head of a given width, the rules that
//! take wide heads off the register kernels and keep `coop` to f16 graphs on devices that have
//! it, and the blocking of `coop`. The device's choice ([`AttentionKernel`], in
//! [`crate::kernel::Tuning`]) comes from the autotuner.

use crate::kernel::{AttentionKernel, CoopShape, Tuning};
use crate::tensor::DType;

/// The widest head whose query row and accumulator the kernels hold in registers (`rows`,
/// `tiled`); wider heads (the VAE's one 512-wide head) would only spill, and run
/// `attention/loops`. Measured with `ptdit bench profile` on the VAE and PT-DiT heads.
pub const REGISTER_HEAD_MAX: usize = 128;

/// WebGPU's default workgroup memory (`maxComputeWorkgroupStorageSize`), which the engine does
/// not ask to raise: `coop`'s tiles are sized to fit it.
pub const WORKGROUP_BYTES: usize = 16 << 10;

/// How `coop` blocks its work, in fragments of the device's edge: `fq` fragments of queries
/// per workgroup, `fk` of keys per tile, `fd` across the head (its width padded up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopBlock {
    pub fq: usize,
    pub fk: usize,
    pub fd: usize,
}

impl CoopBlock {
    /// Two fragments of queries (the output and query fragments a subgroup holds grow with
    /// them), and the most keys per tile, up to 32, whose tiles fit [`WORKGROUP_BYTES`].
    pub fn new(shape: CoopShape, head_dim: usize) -> CoopBlock {
        let cm = shape.edge as usize;
        let fd = head_dim.div_ceil(cm);
        let mut fk = (32 / cm).max(1);
        loop {
            let b = CoopBlock { fq: 2, fk, fd };
            if fk == 1 || b.workgroup_bytes(cm) <= WORKGROUP_BYTES {
                return b;
            }
            fk /= 2;
        }
    }

    /// Queries per workgroup.
    pub fn queries(&self, shape: CoopShape) -> usize {
        self.fq * shape.edge as usize
    }

    /// The workgroup memory `shaders/attention/coop.wgsl` declares for this block: key and
    /// value tiles (f16, rows of the padded head + 8), scores (f32, rows of the tile + 4),
    /// probabilities (f16, rows of the tile + 8) and two f32 statistics per query.
    pub fn workgroup_bytes(&self, cm: usize) -> usize {
        let (bq, bk, dp) = (self.fq * cm, self.fk * cm, self.fd * cm);
        2 * bk * (dp + 8) * 2 + bq * (bk + 4) * 4 + bq * (bk + 8) * 2 + 2 * bq * 4
    }
}

impl AttentionKernel {
    /// The device's kernel for a graph of float type `float`: `coop` for f16 graphs where the
    /// device has cooperative matrices and the tuning asks for them (`Tuning::coop_attention`,
    /// or `coop` as the kernel); elsewhere the tuning's kernel, with `tiled` standing in for
    /// `coop`. Then [`Self::for_head`] (which keeps `coop` to heads up to `REGISTER_HEAD_MAX`).
    pub fn for_graph(
        tuning: &Tuning,
        float: DType,
        coop: Option<CoopShape>,
        head_dim: usize,
    ) -> AttentionKernel {
        let asked = tuning.coop_attention || tuning.attention == AttentionKernel::Coop;
        let kernel = match tuning.attention {
            _ if asked && float == DType::F16 && coop.is_some() => AttentionKernel::Coop,
            AttentionKernel::Coop => AttentionKernel::Tiled,
            k => k,
        };
        kernel.for_head(head_dim)
    }

    /// The kernel that runs heads `head_dim` wide when this one is chosen: `rows` holds 8
    /// queries' rows per invocation in registers and `coop` a block's query and output
    /// fragments, and past `REGISTER_HEAD_MAX` they would only spill, so `tiled` (then
    /// `attention/loops`, see [`Self::shader`]) runs them.
    pub fn for_head(self, head_dim: usize) -> AttentionKernel {
        match self {
            AttentionKernel::Rows | AttentionKernel::Coop if head_dim > REGISTER_HEAD_MAX => {
                AttentionKernel::Tiled
            }
            k => k,
        }
    }

    /// The shader file for heads `head_dim` wide: the tiled kernel keeps a head's query and
    /// accumulator in registers up to `REGISTER_HEAD_MAX`, and walks wider heads with loops
    /// over arrays.
    pub fn shader(self, head_dim: usize) -> &'static str {
        match self {
            AttentionKernel::Tiled if head_dim > REGISTER_HEAD_MAX => "attention/loops",
            AttentionKernel::Tiled => "attention/tiled",
            AttentionKernel::Rows => "attention/rows",
            AttentionKernel::Coop => "attention/coop",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_heads_over_128_wide_run_the_loop_kernel() {
        use AttentionKernel::*;
        assert_eq!(Rows.for_head(128).shader(128), "attention/rows");
        assert_eq!(Tiled.for_head(128).shader(128), "attention/tiled");
        for k in AttentionKernel::ALL {
            assert_eq!(k.for_head(129), Tiled);
            assert_eq!(k.for_head(512).shader(512), "attention/loops");
        }
    }

    #[test]
    fn coop_runs_only_f16_graphs_on_devices_that_have_it() {
        use AttentionKernel::*;
        let shape = Some(CoopShape {
            edge: 16,
            subgroup: 32,
        });
        let asked = Tuning {
            attention: Rows,
            coop_attention: true,
            ..Tuning::default()
        };
        assert_eq!(
            AttentionKernel::for_graph(&asked, DType::F16, shape, 72),
            Coop
        );
        assert_eq!(
            AttentionKernel::for_graph(&asked, DType::F32, shape, 72),
            Rows
        );
        assert_eq!(
            AttentionKernel::for_graph(&asked, DType::F16, None, 72),
            Rows
        );
        assert_eq!(
            AttentionKernel::for_graph(&asked, DType::F16, shape, 512),
            Tiled
        );
        let forced = Tuning {
            attention: Coop,
            ..Tuning::default()
        };
        assert_eq!(
            AttentionKernel::for_graph(&forced, DType::F16, shape, 128),
            Coop
        );
        assert_eq!(
            AttentionKernel::for_graph(&forced, DType::F32, shape, 64),
            Tiled
        );
        assert_eq!(
            AttentionKernel::for_graph(&forced, DType::F16, None, 64),
            Tiled
        );
        assert_eq!(
            AttentionKernel::for_graph(&forced, DType::F16, shape, 160).shader(160),
            "attention/loops"
        );
    }

    #[test]
    fn coop_tiles_fit_webgpus_default_workgroup_memory() {
        for (edge, subgroup) in [(8, 8), (16, 32), (16, 64)] {
            let shape = CoopShape { edge, subgroup };
            for head_dim in [1, 5, 8, 64, 72, 80, 96, 127, 128] {
                let b = CoopBlock::new(shape, head_dim);
                assert!(
                    b.fd * edge as usize >= head_dim && (b.fd - 1) * (edge as usize) < head_dim
                );
                assert!(
                    b.workgroup_bytes(edge as usize) <= WORKGROUP_BYTES,
                    "{edge}x{edge}, head {head_dim}: {b:?}"
                );
                assert!(b.fk * edge as usize <= 32);
            }
        }
        // The released head (72) on 16x16 fragments: 16 keys a tile (32 would need 18.3 KiB).
        let xl = CoopBlock::new(
            CoopShape {
                edge: 16,
                subgroup: 32,
            },
            72,
        );
        assert_eq!((xl.fq, xl.fk, xl.fd), (2, 1, 5));
    }
}
