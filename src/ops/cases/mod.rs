//! The op-test table: every op's cases, each named, with its tolerances and the binding limit
//! its split run uses, built in the float type it is asked for. `tests/ops.rs` runs each case
//! against the CPU reference under the device's own kernel choice and under every kernel variant
//! of its family, each × {at the device's limits, under a tiny binding limit, in f16};
//! `ptdit bench ops` times the same list (the idea of ggml's test-backend-ops and its perf
//! mode). An op's case graphs are built in its own module's `cases` (e.g.
//! `ops::softmax::cases`); adding an op adds its lines to [`TABLE`].
//!
//! Shapes are awkward on purpose: sizes that are not multiples of a tile or a vector width,
//! 1-sized dimensions, blocks cut everywhere, every epilogue and bias kind.

pub(crate) mod prelude;

use std::collections::HashMap;

use super::binary::BinaryKind::{Add, Mul, Sub};
use super::matmul::cases::Epilogue::{Gated, GatedResidual, Gelu, Plain, Residual};

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::graph::{cpu, ExecOptions, Executable, Graph};
use crate::kernel::{AttentionKernel, MatmulKernel, Tuning};
use crate::ops::upsample::UpsampleKind::{CausalTrilinear, Nearest2d};
use crate::rng::Rng;
use crate::tensor::{DType, HostData, HostTensor};

/// A graph and the values of its inputs and params.
pub struct Case {
    pub graph: Graph,
    pub feeds: HashMap<String, HostTensor>,
}

/// Which kernel variants a case runs under, besides the device's own choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Every [`MatmulKernel`], forced onto every product.
    Matmul,
    /// Every [`AttentionKernel`].
    Attention,
    /// Ops with one kernel.
    Single,
}

/// A kernel choice to run a case under.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    pub name: &'static str,
    /// `None`: the device's own choice (per product shape, as a model runs).
    pub tuning: Option<Tuning>,
}

impl Variant {
    pub const DEVICE: Variant = Variant {
        name: "device",
        tuning: None,
    };

    /// `kernel` on every product (GELU fused into its epilogue, so the epilogue is tested too).
    pub fn matmul(kernel: MatmulKernel) -> Variant {
        Variant {
            name: kernel.name(),
            tuning: Some(Tuning {
                matmul: kernel,
                fuse_gelu: true,
                attention: AttentionKernel::Tiled,
                per_shape: false,
                f16_math: false,
                coop: false,
                coop_attention: false,
            }),
        }
    }

    pub fn attention(kernel: AttentionKernel) -> Variant {
        Variant {
            name: kernel.name(),
            tuning: Some(Tuning {
                matmul: MatmulKernel::Registers,
                fuse_gelu: false,
                attention: kernel,
                per_shape: false,
                f16_math: false,
                coop: false,
                coop_attention: false,
            }),
        }
    }

    /// Whether running a case under this variant on `ctx` in `mode` tests anything of its own:
    /// the `coop` kernels exist only for f16 graphs on devices with cooperative matrices
    /// (elsewhere they would run `tiled` again).
    pub fn applies(&self, ctx: &GpuContext, mode: Mode) -> bool {
        !self.is_coop() || mode == Mode::F16 && ctx.coop().is_some()
    }

    /// Whether this variant forces a `coop` kernel (matmul or attention).
    fn is_coop(&self) -> bool {
        self.tuning
            .is_some_and(|t| t.matmul == MatmulKernel::Coop || t.attention == AttentionKernel::Coop)
    }

    /// Whether this variant has an f16-arithmetic form (`Tuning::f16_math`) worth testing.
    pub fn has_f16_math(&self) -> bool {
        self.tuning.is_some_and(|t| t.matmul.has_f16_math())
    }
}

impl Family {
    /// The device's choice, then each variant of the family.
    pub fn variants(self) -> Vec<Variant> {
        let mut v = vec![Variant::DEVICE];
        match self {
            Family::Matmul => v.extend(MatmulKernel::ALL.map(Variant::matmul)),
            Family::Attention => v.extend(AttentionKernel::ALL.map(Variant::attention)),
            Family::Single => {}
        }
        v
    }
}

/// How far a GPU result may be from the CPU reference, relative to the reference's scale
/// (max |gpu − cpu| / max(1, max |cpu|)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub f32: f32,
    pub f16: f32,
    pub f16_math: f32,
}

impl Tolerance {
    /// - f32: 24 bits (6e-8 relative); sums of a few thousand terms in another order and the
    ///   GPU's exp / inverseSqrt (a few ulp) stay well below 1e-5 of the output scale. 1e-4
    ///   leaves a margin of 10 and still catches any indexing error, which shows at the scale of
    ///   the data itself.
    /// - f16 storage, f32 arithmetic: GPU and CPU reference round the same f32 results to f16,
    ///   but values within an ulp of a rounding boundary may round apart: one f16 ulp is
    ///   2^-10 ≈ 9.8e-4 of the value, so 2e-3 of the output's scale.
    /// - f16 sums within a K slice (`Tuning::f16_math`; S = 8 or 16 terms): on top of the f16
    ///   rounding, each product and partial sum is rounded to f16 (2^-11 relative). For
    ///   independent roundings the error's rms is about 2^-11/√3 · √(1 + S/2) ≈ 8.5e-4 of a
    ///   typical output (S = 16); the largest of a few thousand outputs' errors is ~4 rms, and
    ///   the scale (the largest output) is at least 2.5 typical ones here, so ~1.4e-3 of the
    ///   scale more: 4e-3. An indexing error shows at the scale of the data, 250× this.
    pub const STANDARD: Tolerance = Tolerance {
        f32: 1e-4,
        f16: 2e-3,
        f16_math: 4e-3,
    };
}

/// A binding limit far below every test tensor's size: the ops must split their work.
pub const TINY: u64 = 2048;

/// One row of the table.
pub struct OpCase {
    pub name: &'static str,
    pub family: Family,
    /// The binding limit of the split run: [`TINY`] unless a part the op binds whole by design
    /// (the keys of one attention sequence, a bias) is larger; the other parts still split.
    pub limit: u64,
    pub tol: Tolerance,
    pub build: fn(DType) -> Result<Case>,
}

const fn case(name: &'static str, family: Family, build: fn(DType) -> Result<Case>) -> OpCase {
    OpCase {
        name,
        family,
        limit: TINY,
        tol: Tolerance::STANDARD,
        build,
    }
}

const fn limited(
    name: &'static str,
    family: Family,
    limit: u64,
    build: fn(DType) -> Result<Case>,
) -> OpCase {
    OpCase {
        limit,
        ..case(name, family, build)
    }
}

use Family::{Attention, Matmul, Single};

/// Every op case. The matmul shapes cut the kernels' blocks everywhere: `tiled` (64×64, K in
/// slices of 16), `rows` (128×8), `wide` (128×128 in 64×64 quarters, K slices of 8), `split`
/// (K among 8 lanes): M and N past a block and not multiples of it, K not a multiple of 16 (or
/// of 4), a matrix smaller than one block, batched weights. The attention shapes leave part of
/// a 64-query workgroup empty, have key counts that are not multiples of 4, heads odd, 72 and
/// 160 wide, every bias kind and the row map.
#[rustfmt::skip]
pub static TABLE: &[OpCase] = &[
    case("matmul_1x1x1", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [1, 1, 1], false)),
    case("matmul_odd_shapes_bias", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [37, 67, 29], true)),
    case("matmul_past_a_block", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [130, 67, 70], true)),
    case("matmul_k_multiple_of_4", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [33, 64, 65], true)),
    case("matmul_k_multiple_of_4_not_16", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [65, 36, 129], true)),
    case("matmul_k_multiple_of_16", Matmul, |f| super::matmul::cases::linear(f, Plain, &[2], [64, 48, 64], false)),
    case("matmul_smaller_than_one_block", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [3, 301, 7], true)),
    case("matmul_leading_dims", Matmul, |f| super::matmul::cases::linear(f, Plain, &[2, 3], [5, 12, 7], true)),
    case("matmul_tall", Matmul, |f| super::matmul::cases::linear(f, Plain, &[], [130, 20, 3], false)),
    case("matmul_weight_per_batch", Matmul, |f| super::matmul::cases::matmul_batched_weight(f, 3, 9, 10, 11)),
    case("matmul_weight_per_batch_large", Matmul, |f| super::matmul::cases::matmul_batched_weight(f, 3, 70, 20, 66)),
    case("matmul_gelu_epilogue", Matmul, |f| super::matmul::cases::linear(f, Gelu, &[], [37, 20, 45], true)),
    case("matmul_gelu_epilogue_large", Matmul, |f| super::matmul::cases::linear(f, Gelu, &[], [70, 24, 65], true)),
    case("matmul_residual_bias", Matmul, |f| super::matmul::cases::linear(f, Residual, &[], [37, 20, 45], true)),
    case("matmul_residual_leading_dims", Matmul, |f| super::matmul::cases::linear(f, Residual, &[2], [9, 12, 70], false)),
    case("matmul_residual_large", Matmul, |f| super::matmul::cases::linear(f, Residual, &[2], [70, 24, 65], true)),
    case("matmul_gated_residual_bias", Matmul, |f| super::matmul::cases::linear(f, GatedResidual, &[3], [13, 24, 20], true)),
    case("matmul_gated_residual_one_item", Matmul, |f| super::matmul::cases::linear(f, GatedResidual, &[1], [37, 12, 9], false)),
    case("matmul_gated_no_residual", Matmul, |f| super::matmul::cases::linear(f, Gated, &[2], [21, 40, 36], true)),
    case("matmul_q8_gated_no_residual", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q8), Gated, &[2], [21, 64, 36], true)),
    case("matmul_gated_residual_large", Matmul, |f| super::matmul::cases::linear(f, GatedResidual, &[3], [50, 24, 20], true)),
    // Packed weights (bf16, q8, q4), unpacked as the kernels load them: every epilogue, rows and
    // columns past a block, bf16 with K odd and K a multiple of 4 but not 16.
    case("matmul_bf16_odd_k", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::BF16), Plain, &[], [37, 67, 29], true)),
    case("matmul_bf16_k_multiple_of_4", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::BF16), Gelu, &[], [65, 36, 129], true)),
    case("matmul_bf16_gated_residual", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::BF16), GatedResidual, &[3], [13, 24, 20], true)),
    case("matmul_q8_bias", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q8), Plain, &[], [37, 64, 29], true)),
    case("matmul_q8_gelu_past_a_block", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q8), Gelu, &[], [130, 96, 70], true)),
    case("matmul_q8_residual", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q8), Residual, &[2], [9, 160, 70], false)),
    case("matmul_q8_gated_residual", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q8), GatedResidual, &[3], [13, 32, 20], true)),
    case("matmul_q4_bias", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q4), Plain, &[], [37, 64, 29], true)),
    case("matmul_q4_gelu_past_a_block", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q4), Gelu, &[], [130, 96, 70], true)),
    case("matmul_q4_residual", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q4), Residual, &[2], [9, 160, 70], false)),
    case("matmul_q4_gated_residual", Matmul, |f| super::matmul::cases::stored_linear(f, Some(DType::Q4), GatedResidual, &[3], [13, 32, 20], true)),
    case("add_same_shape", Single, |f| super::binary::cases::binary(f, Add, &[7, 33], &[7, 33])),
    case("add_row_broadcast", Single, |f| super::binary::cases::binary(f, Add, &[2, 301, 5], &[5])),
    case("add_table_broadcast", Single, |f| super::binary::cases::binary(f, Add, &[3, 6, 40], &[6, 40])),
    case("mul_broadcast", Single, |f| super::binary::cases::binary(f, Mul, &[700], &[700])),
    case("mul_large_right_side", Single, |f| super::binary::cases::binary(f, Mul, &[2, 900], &[900])),
    case("sub_row_broadcast", Single, |f| super::binary::cases::binary(f, Sub, &[3, 70], &[70])),
    case("select_picks_a", Single, |f| super::select::cases::select(f, [0.0, 1.0, 0.0], 1, 1000)),
    case("select_picks_b", Single, |f| super::select::cases::select(f, [1.0, 0.0, 1.0], 1, 300)),
    case("change_partial_last_slice", Single, |f| super::change::cases::change(f, 1000)),
    case("change_one_element", Single, |f| super::change::cases::change(f, 1)),
    case("extrapolate_by_a_factor", Single, |f| super::extrapolate::cases::extrapolate(f, 0.5, 1000)),
    case("extrapolate_factor_zero", Single, |f| super::extrapolate::cases::extrapolate(f, 0.0, 300)),
    case("skip_decision_skips", Single, |f| super::skip_decision::cases::skip_decision(f, 200, [1.0, 0.0, 0.0, 1.0, 4.0, 0.1, 7.0, 1.0, 3.0, 0.3, 0.0, 0.0], [0.5, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 0.0])),
    case("skip_decision_accumulated_runs", Single, |f| super::skip_decision::cases::skip_decision(f, 37, [1.0, 1.0, 0.45, 1.0, 4.0, 0.1, 7.0, 2.0, 2.0, 1.0, 0.0, 0.0], [0.5, 0.0, 9.0, 1.0, 1.0, 0.0, 0.0, 0.0])),
    case("skip_decision_forced_runs", Single, |f| super::skip_decision::cases::skip_decision(f, 1, [0.0; 12], [0.5, 1.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0])),
    case("skip_decision_run_cap", Single, |f| super::skip_decision::cases::skip_decision(f, 5, [1.0, 0.0, 0.0, 3.0, 3.0, 0.1, 7.0, 3.0, 4.0, 0.75, 0.0, 0.0], [0.5, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 0.0])),
    case("silu", Single, |f| super::unary::cases::unary(f, false, 1001)),
    case("gelu_tanh", Single, |f| super::unary::cases::unary(f, true, 1001)),
    case("modulate_per_batch", Single, |f| super::modulate::cases::modulate(f, false, 2, 37, 13)),
    case("modulate_batch_1", Single, |f| super::modulate::cases::modulate(f, false, 1, 50, 24)),
    case("layer_norm_modulate_per_batch", Single, |f| super::modulate::cases::modulate(f, true, 2, 37, 13)),
    case("layer_norm_modulate_wide", Single, |f| super::modulate::cases::modulate(f, true, 1, 9, 80)),
    case("gate_residual", Single, |f| super::gate::cases::gate(f, 2, 19, 21, true)),
    case("gate_no_residual", Single, |f| super::gate::cases::gate(f, 3, 11, 16, false)),
    case("layer_norm_d1", Single, |f| super::layer_norm::cases::layer_norm(f, 4, 1, 0.0)),
    case("layer_norm_odd", Single, |f| super::layer_norm::cases::layer_norm(f, 9, 13, 0.0)),
    case("layer_norm_wide_offset", Single, |f| super::layer_norm::cases::layer_norm(f, 5, 400, 100.0)),
    case("rms_norm_odd", Single, |f| super::layer_norm::cases::rms_norm(f, 7, 45)),
    case("rms_norm_d1", Single, |f| super::layer_norm::cases::rms_norm(f, 3, 1)),
    case("softmax_d1", Single, |f| super::softmax::cases::softmax(f, 3, 1)),
    case("softmax_odd", Single, |f| super::softmax::cases::softmax(f, 11, 300)),
    limited("attention_head_72_cross", Attention, 24 << 10, |f| super::attention::cases::attention(f, 2, 70, 33, 2, 72, None, None)),
    case("attention_lq1_lk1", Attention, |f| super::attention::cases::attention(f, 3, 1, 1, 4, 16, None, None)),
    limited("attention_text_bias", Attention, 4 << 10, |f| super::attention::cases::attention(f, 2, 65, 12, 4, 16, Some((2, false)), None)),
    limited("attention_bias_per_query_per_window", Attention, 4 << 10, |f| super::attention::cases::attention(f, 6, 16, 16, 2, 8, Some((3, true)), None)),
    limited("attention_row_map", Attention, 6 << 10, |f| super::attention::cases::attention(f, 16, 16, 16, 2, 8, Some((4, true)), Some(4))),
    case("attention_one_long_sequence", Attention, |f| super::attention::cases::attention(f, 1, 200, 9, 2, 8, None, None)),
    case("attention_head_dim_odd", Attention, |f| super::attention::cases::attention(f, 2, 9, 7, 3, 5, None, None)),
    limited("attention_head_160_loops_kernel", Attention, 8 << 10, |f| super::attention::cases::attention(f, 2, 9, 7, 1, 160, Some((2, false)), None)),
    limited("attention_fused_qkv_shifted_windows", Attention, 16 << 10, |f| super::attention::cases::attention_fused(f, 8, 16, None, 2, 8, Some(4))),
    limited("attention_fused_kv_text", Attention, 4 << 10, |f| super::attention::cases::attention_fused(f, 3, 21, Some(7), 4, 16, None)),
    limited("attention_t5_head_bias_and_mask", Attention, 8 << 10, |f| super::attention::cases::attention_head_bias(f, 2, 19, 4, 16)),
    case("window_mean_one_proxy", Single, |f| super::window_mean::cases::window_mean(f, 6, [1, 4, 4], [1, 1, 1], 9)),
    case("window_mean_dilated_proxies", Single, |f| super::window_mean::cases::window_mean(f, 3, [2, 4, 4], [1, 2, 2], 7)),
    case("group_mean", Single, |f| super::window_mean::cases::window_mean(f, 5, [1, 1, 3], [1, 1, 1], 40)),
    case("permute_3d", Single, |f| super::reindex::cases::permute(f, &[3, 17, 11], &[2, 0, 1])),
    case("permute_1_sized", Single, |f| super::reindex::cases::permute(f, &[1, 5, 1, 130], &[3, 1, 2, 0])),
    case("roll_2d", Single, |f| super::reindex::cases::roll(f, &[9, 13, 4], &[-4, 3, 0])),
    case("window_partition_video", Single, |f| super::reindex::cases::window_partition(f, [2, 4, 8, 12, 3], [2, 4, 4])),
    case("permute_u32_index_map", Single, |f| super::reindex::cases::permute_u32(f, &[4, 6, 5], &[1, 2, 0])),
    limited("cfg_euler_step", Single, 16 << 10, |f| super::cfg_euler::cases::cfg_euler(f, 2, 4, 8, &[1, 6, 10])),
    limited("conv3d_causal_3x3x3_three_frames", Single, 4 << 10, |f| super::conv3d::cases::conv3d(f, [1, 5, 7], [3, 6, 5], [3, 3, 3])),
    case("conv3d_1x1x1_batch_2", Single, |f| super::conv3d::cases::conv3d(f, [2, 6, 9], [1, 4, 7], [1, 1, 1])),
    case("conv3d_1x3x3", Single, |f| super::conv3d::cases::conv3d(f, [1, 4, 5], [2, 5, 5], [1, 3, 3])),
    case("group_norm_silu_frames", Single, |f| super::group_norm::cases::group_norm(f, 2, 8, 3, 5, 4, true)),
    case("group_norm_one_channel_per_group", Single, |f| super::group_norm::cases::group_norm(f, 1, 6, 1, 4, 6, false)),
    case("upsample_nearest", Single, |f| super::upsample::cases::upsample(f, Nearest2d, 2, 3, 5)),
    case("upsample_trilinear_three_frames", Single, |f| super::upsample::cases::upsample(f, CausalTrilinear, 3, 4, 3)),
    case("upsample_trilinear_one_frame", Single, |f| super::upsample::cases::upsample(f, CausalTrilinear, 1, 3, 4)),
];

/// The run a case is checked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// f32, planned for the device's binding limit.
    DeviceLimits,
    /// f32 under the case's [`OpCase::limit`]: where a tensor exceeds it the work must split
    /// into more dispatches, with the same result.
    TinyBinding,
    /// f16 storage; for a variant with f16 arithmetic, that form too.
    F16,
}

/// What a checked case found beyond passing.
#[derive(Debug)]
pub struct Checked {
    /// In [`Mode::F16`] under a variant with f16 arithmetic: whether that form's result
    /// differed from the f32-arithmetic one (it must for some case, or the flag did nothing).
    pub f16_math_changed: Option<bool>,
}

/// Checks one case under `variant` in `mode` against its CPU reference; the error says what
/// differed, by how much, against which tolerance.
pub async fn check_case(
    ctx: &GpuContext,
    case: &OpCase,
    variant: Variant,
    mode: Mode,
) -> std::result::Result<Checked, String> {
    let opts = ExecOptions {
        tuning: variant.tuning,
        ..Default::default()
    };
    let float = if mode == Mode::F16 {
        DType::F16
    } else {
        DType::F32
    };
    let c = (case.build)(float).map_err(|e| format!("building the case: {e}"))?;
    let want = cpu::run(&c.graph, &c.feeds).map_err(|e| format!("CPU reference: {e}"))?;
    let compare = |tol, opts| compare_to(ctx, &c.graph, &c.feeds, &want, tol, opts);
    let mut checked = Checked {
        f16_math_changed: None,
    };
    match mode {
        Mode::DeviceLimits => {
            compare(case.tol.f32, &opts).await?;
        }
        Mode::TinyBinding => {
            let small = ExecOptions {
                max_binding_bytes: Some(case.limit),
                ..opts.clone()
            };
            let split = compare(case.tol.f32, &small)
                .await
                .map_err(|e| format!("under a {} B binding limit: {e}", case.limit))?;
            // The run at the device's limit is checked in its own mode; here only its dispatch
            // count matters.
            let normal = Executable::with_options(ctx, &c.graph, &opts)
                .await
                .map_err(|e| format!("compile: {e}"))?
                .dispatches;
            let big = c.graph.tensors().any(|(_, t)| t.desc.bytes() > case.limit);
            if big && split.dispatches <= normal {
                return Err(format!(
                    "a tensor exceeds {} B but the work was not split ({} dispatches, {normal} at the device's limit)",
                    case.limit, split.dispatches
                ));
            }
        }
        Mode::F16 => {
            let plain = compare(case.tol.f16, &opts).await?;
            if variant.is_coop() {
                // `coop` runs only in f16, so its split work is checked here.
                let small = ExecOptions {
                    max_binding_bytes: Some(case.limit),
                    ..opts.clone()
                };
                compare_to(ctx, &c.graph, &c.feeds, &want, case.tol.f16, &small)
                    .await
                    .map_err(|e| format!("under a {} B binding limit: {e}", case.limit))?;
            }
            if let (true, Some(t)) = (variant.has_f16_math(), variant.tuning) {
                let opts = ExecOptions {
                    tuning: Some(Tuning {
                        f16_math: true,
                        ..t
                    }),
                    ..Default::default()
                };
                let math = compare(case.tol.f16_math, &opts)
                    .await
                    .map_err(|e| format!("with f16 arithmetic: {e}"))?;
                checked.f16_math_changed = Some(math.got != plain.got);
            }
        }
    }
    Ok(checked)
}

/// A graph's GPU results and how far they are from the CPU reference.
pub struct Compared {
    /// The largest relative error of any output.
    pub worst: f32,
    pub dispatches: usize,
    /// What the GPU computed, by output name.
    pub got: HashMap<String, HostTensor>,
}

/// Runs `graph` on the GPU (with `opts`) and on the CPU reference; every output must agree
/// within `tol` of the reference's scale (u32 outputs exactly).
pub async fn compare(
    ctx: &GpuContext,
    graph: &Graph,
    feeds: &HashMap<String, HostTensor>,
    tol: f32,
    opts: &ExecOptions,
) -> std::result::Result<Compared, String> {
    let want = cpu::run(graph, feeds).map_err(|e| format!("CPU reference: {e}"))?;
    compare_to(ctx, graph, feeds, &want, tol, opts).await
}

/// [`compare`] against reference outputs already computed.
async fn compare_to(
    ctx: &GpuContext,
    graph: &Graph,
    feeds: &HashMap<String, HostTensor>,
    want: &HashMap<String, HostTensor>,
    tol: f32,
    opts: &ExecOptions,
) -> std::result::Result<Compared, String> {
    let exe = Executable::with_options(ctx, graph, opts)
        .await
        .map_err(|e| format!("compile: {e}"))?;
    for (name, v) in feeds {
        exe.write(name, v)
            .map_err(|e| format!("write {name}: {e}"))?;
    }
    exe.run().map_err(|e| format!("run: {e}"))?;
    let mut worst = 0f32;
    let mut got = HashMap::new();
    let mut names: Vec<&String> = want.keys().collect();
    names.sort();
    for name in names {
        let w = &want[name];
        let g = exe
            .read(name)
            .await
            .map_err(|e| format!("read {name}: {e}"))?;
        if g.shape != w.shape {
            return Err(format!("{name}: shape {} (reference {})", g.shape, w.shape));
        }
        let e = match (&g.data, &w.data) {
            (HostData::U32(a), HostData::U32(b)) if a == b => 0.0,
            (HostData::U32(_), HostData::U32(_)) => {
                return Err(format!("{name}: u32 data differs"))
            }
            _ => rel_err(g.as_f32(), w.as_f32()),
        };
        if e.is_nan() || e > tol {
            return Err(format!("{name}: relative error {e:e} exceeds {tol:e}"));
        }
        worst = worst.max(e);
        got.insert(name.clone(), g);
    }
    Ok(Compared {
        worst,
        dispatches: exe.dispatches,
        got,
    })
}

/// max |a − b| over max(1, max |b|): the error relative to the reference's scale; infinite
/// where either side is NaN or the lengths differ.
pub fn rel_err(gpu: &[f32], reference: &[f32]) -> f32 {
    if gpu.len() != reference.len() {
        return f32::INFINITY;
    }
    let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
    let err = gpu.iter().zip(reference).fold(0f32, |m, (a, b)| {
        if a.is_nan() || b.is_nan() {
            f32::INFINITY
        } else {
            m.max((a - b).abs())
        }
    });
    err / scale
}

/// Normal values with standard deviation `std`, seeded.
pub fn rand(shape: &[usize], seed: u64, std: f32) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::f32(shape.to_vec(), Rng::new(seed).normals(n, std))
}

/// A feed map from (name, tensor) pairs.
pub fn feeds(items: Vec<(&str, HostTensor)>) -> HashMap<String, HostTensor> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_builds_in_both_float_types_with_unique_names() {
        let mut names = std::collections::HashSet::new();
        for c in TABLE {
            assert!(names.insert(c.name), "two cases are named {}", c.name);
            for f in [DType::F32, DType::F16] {
                let built = (c.build)(f).unwrap_or_else(|e| panic!("{}: {e}", c.name));
                assert!(!built.graph.nodes().is_empty(), "{}: no op", c.name);
                for t in built.graph.feeds() {
                    assert!(
                        built.feeds.contains_key(&t.name),
                        "{}: no value for {}",
                        c.name,
                        t.name
                    );
                }
            }
        }
    }

    #[test]
    fn rel_err_is_relative_to_the_reference_scale_and_infinite_on_nan() {
        assert_eq!(rel_err(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(rel_err(&[1.0, 4.5], &[1.0, 4.0]), 0.125);
        assert_eq!(rel_err(&[0.5], &[0.25]), 0.25);
        assert_eq!(rel_err(&[f32::NAN], &[0.0]), f32::INFINITY);
        assert_eq!(rel_err(&[1.0], &[1.0, 2.0]), f32::INFINITY);
    }
}
