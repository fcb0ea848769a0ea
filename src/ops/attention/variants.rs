//! The attention's kernel variants: which shader runs a head of a given width, and the rule
//! that takes wide heads off the register kernels. The device's choice ([`AttentionKernel`],
//! in [`crate::kernel::Tuning`]) comes from the autotuner.

use crate::kernel::AttentionKernel;

/// The widest head whose query row and accumulator the kernels hold in registers (`rows`,
/// `tiled`); wider heads (the VAE's one 512-wide head) would only spill, and run
/// `attention/loops`. Measured with `ptdit bench profile` on the VAE and PT-DiT heads.
pub const REGISTER_HEAD_MAX: usize = 128;

impl AttentionKernel {
    /// The kernel that runs heads `head_dim` wide when this one is chosen: `rows` holds 8
    /// queries' rows per invocation in registers, and past `REGISTER_HEAD_MAX` they would only
    /// spill, so `tiled` (then `attention/loops`, see [`Self::shader`]) runs them.
    pub fn for_head(self, head_dim: usize) -> AttentionKernel {
        match self {
            AttentionKernel::Rows if head_dim > REGISTER_HEAD_MAX => AttentionKernel::Tiled,
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
}
