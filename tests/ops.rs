//! Every case of the op-test table (`ptdit::ops::cases::TABLE`) on the GPU against its CPU
//! reference, in the spirit of ggml's test-backend-ops: under the device's own kernel choice and
//! under each kernel variant of the case's family, at the device's limits, under the case's
//! small binding limit (the op must split its work, with the same result) and, natively, in f16.
//! One test per family and mode; a failing test lists every case and variant that failed.
//! Natively, `PTDIT_OP_CASES=text` runs only the cases whose names contain `text`, and
//! `PTDIT_OP_VARIANT=name` only that kernel variant (CI runs `coop` alone on a lavapipe that
//! has cooperative matrices, with `PTDIT_REQUIRE_COOP=1`).

#[macro_use]
mod common;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use ptdit::ops::cases::{check_case, Family, Mode, TABLE};

/// An environment variable, natively; the browser has none.
fn env(name: &str) -> Option<String> {
    #[cfg(not(target_arch = "wasm32"))]
    return std::env::var(name).ok();
    #[cfg(target_arch = "wasm32")]
    {
        let _ = name;
        None
    }
}

/// The cases' name filter (`PTDIT_OP_CASES`).
fn filter() -> Option<String> {
    env("PTDIT_OP_CASES")
}

/// The one variant to run (`PTDIT_OP_VARIANT=coop`), all when unset.
fn only_variant() -> Option<String> {
    env("PTDIT_OP_VARIANT")
}

/// Whether the run must test the `coop` kernels (`PTDIT_REQUIRE_COOP=1`, which CI sets where
/// it runs these tests on a lavapipe with cooperative matrices): then a device without them
/// fails the f16 matmul and attention tests instead of leaving `coop` out.
fn coop_required() -> bool {
    env("PTDIT_REQUIRE_COOP").is_some_and(|v| v == "1")
}

async fn run(family: Family, mode: Mode) {
    let ctx = common::gpu_async().await;
    let filter = filter();
    let cases: Vec<_> = TABLE
        .iter()
        .filter(|c| c.family == family)
        .filter(|c| filter.as_ref().is_none_or(|s| c.name.contains(s.as_str())))
        .collect();
    assert!(
        !cases.is_empty() || filter.is_some(),
        "no {family:?} case in the table"
    );
    let has_coop = matches!(family, Family::Matmul | Family::Attention);
    if has_coop && mode == Mode::F16 && coop_required() {
        assert!(
            ctx.coop().is_some(),
            "PTDIT_REQUIRE_COOP is set but {} offers no cooperative matrices the engine can \
             use (f16 x f16 -> f32 in 8x8 or 16x16, shader-f16, subgroups of one size): the \
             `coop` kernels would go untested",
            ctx.report.name
        );
    }
    let only = only_variant();
    let mut failures = Vec::new();
    let mut ran = 0;
    for variant in family.variants() {
        if !variant.applies(&ctx, mode) || only.as_ref().is_some_and(|v| v != variant.name) {
            continue;
        }
        ran += 1;
        // (cases run with f16 arithmetic, of which changed their result)
        let (mut math, mut changed) = (0, 0);
        for case in &cases {
            match check_case(&ctx, case, variant, mode).await {
                Ok(c) => {
                    if let Some(ch) = c.f16_math_changed {
                        math += 1;
                        changed += usize::from(ch);
                    }
                }
                Err(e) => failures.push(format!("{} [{}]: {e}", case.name, variant.name)),
            }
        }
        // Sums rounded to f16 differ from f32 sums somewhere, or the flag did nothing.
        if math > 0 && filter.is_none() {
            assert!(
                changed > 0,
                "[{}] f16 arithmetic changed none of {math} results: the flag did nothing",
                variant.name
            );
        }
    }
    assert!(
        ran > 0,
        "PTDIT_OP_VARIANT={only:?} names no {family:?} variant that runs here in {mode:?}"
    );
    assert!(
        failures.is_empty(),
        "{} failed ({mode:?}):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

macro_rules! family_tests {
    ($($module:ident => $family:expr;)*) => {$(
        mod $module {
            use super::*;
            gpu_test!(fn at_device_limits() {
                run($family, Mode::DeviceLimits).await
            });
            gpu_test!(fn under_tiny_binding_limit() {
                run($family, Mode::TinyBinding).await
            });
            // Browsers' software adapter (SwiftShader) has no shader-f16; f16 is tested natively.
            gpu_test!(#[cfg(not(target_arch = "wasm32"))] fn in_f16() {
                run($family, Mode::F16).await
            });
        }
    )*};
}

family_tests! {
    matmul => Family::Matmul;
    attention => Family::Attention;
    single_kernel_ops => Family::Single;
}
