//! The step cache's decision (spec of the rule: [`decide`]): from the partial sums of
//! [`super::change`] and last step's state, whether this step skips the cached blocks. One
//! workgroup on the GPU, so the loop records every step without reading anything back; the
//! flag it writes drives the skipped region's indirect dispatches and the `select`s after it.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::kernel::{EncodeCx, Kernel, Op, TensorArg};
use crate::tensor::{DType, HostTensor, TensorDesc, TensorId};

/// Elements of the state, each an f32 (counts are exact below 2^24).
pub mod state {
    /// 1 when this step skips the cached blocks (the flag the skipped region reads).
    pub const SKIP: usize = 0;
    /// 1 when this step's residual becomes the reference the next step is measured against.
    pub const UPDATE_REF: usize = 1;
    /// The change accumulated since the blocks last ran (0 after a full step).
    pub const ACC: usize = 2;
    /// Skips in a row.
    pub const RUN: usize = 3;
    /// Steps skipped since the state was cleared.
    pub const SKIPPED: usize = 4;
    /// The relative change measured this step; −1 when there was no reference.
    pub const REL: usize = 5;
    /// Steps decided since the state was cleared.
    pub const STEPS: usize = 6;
    /// Steps since the blocks last ran (0 when they ran this step).
    pub const SINCE: usize = 7;
    /// Steps between the blocks' last two runs (0 until they ran twice).
    pub const GAP: usize = 8;
    /// On a skip with extrapolation, `SINCE / GAP`: how far past the last run this step is,
    /// in units of the last gap (the cached residual moves on by that much of its last
    /// change, `ops::extrapolate`); otherwise 0.
    pub const ALPHA: usize = 9;
    pub const LEN: usize = 12;
}

/// Elements of the control the host writes before each step.
pub mod control {
    /// Skip while the (accumulated) relative change is below this.
    pub const THRESHOLD: usize = 0;
    /// Nonzero: run the blocks this step whatever the change (warm-up, last steps).
    pub const FORCE: usize = 1;
    /// The most skips in a row.
    pub const MAX_RUN: usize = 2;
    /// Nonzero: add up the change since the blocks last ran and measure each step against the
    /// previous one (TeaCache-style); zero: measure against the last full step (FBCache-style).
    pub const ACCUMULATE: usize = 3;
    /// Nonzero: a skipped step extrapolates the cached residual linearly from the last two runs
    /// (TaylorSeer's first order); zero: reuses the last run's residual as it is.
    pub const EXTRAPOLATE: usize = 4;
    pub const LEN: usize = 8;
}

/// The rule, on totals `Σ|r − ref|` and `Σ|ref|`: the new state after `old` under `ctl`. The
/// kernel computes the same in f32; only a change within rounding of the threshold can decide
/// differently.
pub fn decide(sum_diff: f32, sum_ref: f32, old: &[f32], ctl: &[f32]) -> [f32; state::LEN] {
    use state::*;
    let accumulate = ctl[control::ACCUMULATE] != 0.0;
    let has_ref = sum_ref > 0.0;
    let (rel, acc) = if has_ref {
        let rel = sum_diff / sum_ref;
        (rel, if accumulate { rel + old[ACC] } else { rel })
    } else {
        (-1.0, 0.0)
    };
    let run = old[RUN];
    let skip = ctl[control::FORCE] == 0.0
        && has_ref
        && run < ctl[control::MAX_RUN]
        && acc < ctl[control::THRESHOLD];
    let mut s = [0f32; LEN];
    if skip {
        s[SKIP] = 1.0;
        s[UPDATE_REF] = if accumulate { 1.0 } else { 0.0 };
        s[ACC] = acc;
        s[RUN] = run + 1.0;
        s[SKIPPED] = old[SKIPPED] + 1.0;
        s[SINCE] = old[SINCE] + 1.0;
        s[GAP] = old[GAP];
        if ctl[control::EXTRAPOLATE] != 0.0 && s[GAP] > 0.0 {
            s[ALPHA] = s[SINCE] / s[GAP];
        }
    } else {
        s[UPDATE_REF] = 1.0;
        s[SKIPPED] = old[SKIPPED];
        // The first step has no run before it.
        s[GAP] = if old[STEPS] > 0.0 {
            old[SINCE] + 1.0
        } else {
            0.0
        };
    }
    s[REL] = rel;
    s[STEPS] = old[STEPS] + 1.0;
    s
}

crate::param_block! {
    pub struct SkipDecisionParams {
        slices: u32,
        off_sums: u32,
        off_state: u32,
        off_control: u32,
        off_out: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

#[derive(Clone, Debug)]
pub struct SkipDecision;

impl Op for SkipDecision {
    fn name(&self) -> &'static str {
        "skip_decision"
    }

    fn infer(&self, inputs: &[&TensorDesc]) -> Result<TensorDesc> {
        let [sums, st, ctl] = inputs else {
            return Err(Error::shape(
                "skip_decision",
                format!(
                    "takes 3 inputs (sums, state, control), got {}",
                    inputs.len()
                ),
            ));
        };
        let want = [
            ("sums", *sums, None),
            ("state", *st, Some(state::LEN)),
            ("control", *ctl, Some(control::LEN)),
        ];
        for (name, t, len) in want {
            let ok = t.dtype == DType::F32
                && match len {
                    Some(n) => t.shape.dims() == [n],
                    None => t.shape.rank() == 2 && t.shape.last() == 2,
                };
            if !ok {
                let shape = len.map_or("(S, 2)".to_string(), |n| format!("({n})"));
                return Err(Error::shape(
                    "skip_decision",
                    format!("{name} must be f32 {shape}, not {:?} {}", t.dtype, t.shape),
                ));
            }
        }
        Ok(TensorDesc::f32([state::LEN]))
    }

    fn cpu(&self, inputs: &[&HostTensor], out: &TensorDesc) -> HostTensor {
        let sums = inputs[0].as_f32();
        let d: f32 = sums.iter().step_by(2).sum();
        let m: f32 = sums.iter().skip(1).step_by(2).sum();
        let s = decide(d, m, inputs[1].as_f32(), inputs[2].as_f32());
        HostTensor::f32(out.shape.clone(), s.to_vec())
    }

    fn encode(&self, cx: &mut EncodeCx, inputs: &[TensorArg], out: &TensorArg) -> Result<()> {
        let params = SkipDecisionParams {
            slices: inputs[0].desc.shape.dims()[0] as u32,
            off_sums: cx.bind_all(&inputs[0])?,
            off_state: cx.bind_all(&inputs[1])?,
            off_control: cx.bind_all(&inputs[2])?,
            off_out: cx.bind_all(out)?,
            ..Default::default()
        };
        let kernel = Kernel::new("skip_decision")
            .read("sums")
            .read("state")
            .read("control");
        cx.dispatch(kernel, &params, [1, 1, 1])
    }
}

impl Graph {
    /// The step cache's new state from the change sums, the last state and the control.
    pub fn skip_decision(
        &mut self,
        sums: TensorId,
        state: TensorId,
        control: TensorId,
    ) -> Result<TensorId> {
        self.push(SkipDecision, &[sums, state, control])
    }
}

/// This op's cases in the op-test table ([`crate::ops::cases::TABLE`]).
pub(crate) mod cases {
    use super::{control, state};
    use crate::ops::cases::prelude::*;

    /// Sums of `slices` rows, with last state `old` and control `ctl`; the thresholds are far
    /// from the change of these sums, so f32 rounding cannot flip the decision.
    pub(crate) fn skip_decision(
        f: DType,
        slices: usize,
        old: [f32; state::LEN],
        ctl: [f32; control::LEN],
    ) -> Result<Case> {
        let mut g = Graph::with_float(f);
        let sums = g.input("sums", TensorDesc::f32([slices, 2]))?;
        let st = g.input("state", TensorDesc::f32([state::LEN]))?;
        let c = g.input("control", TensorDesc::f32([control::LEN]))?;
        let z = g.skip_decision(sums, st, c)?;
        g.output(z, "z")?;
        // Σ|r − ref| about a tenth of Σ|ref|: a relative change near 0.1.
        let mut rng = Rng::new(12);
        let v: Vec<f32> = (0..slices)
            .flat_map(|_| {
                let m = 100.0 + 10.0 * rng.normal().abs();
                [m * (0.1 + 0.01 * rng.normal()), m]
            })
            .collect();
        done(
            g,
            vec![
                ("sums", HostTensor::f32([slices, 2], v)),
                ("state", HostTensor::f32([state::LEN], old.to_vec())),
                ("control", HostTensor::f32([control::LEN], ctl.to_vec())),
            ],
        )
    }
}
