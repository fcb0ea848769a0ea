//! `ptdit bench ops`: every case of the op-test table (`ptdit::ops::cases`) under each kernel
//! variant of its family, timed on the GPU against the CPU reference of the same graph, in the
//! same run; the perf mode of `tests/ops.rs`, as ggml's test-backend-ops has one.
//!
//! The cases are the tests' small, awkward shapes: their figures show dispatch overhead and
//! each variant's edge handling, not peak throughput (`bench matmul` times large products).

use ptdit::graph::{cpu, ExecOptions};
use ptdit::ops::cases::{Case, Mode, TABLE};
use ptdit::{DType, GpuContext, Result};

use super::{time_per_call, time_runs, Out};

/// Seconds each figure is timed for (the GPU and the CPU reference alike).
const MIN_SECS: f64 = 0.1;

pub(super) fn ops(ctx: &GpuContext, filter: Option<&str>, out: &mut Out) -> Result<()> {
    let floats: &[DType] = if ctx.has_f16() {
        &[DType::F32, DType::F16]
    } else {
        &[DType::F32]
    };
    out.say(format!(
        "{:<36} {:<9} {:<5} {:>10} {:>10} {:>12} {:>8}",
        "case", "variant", "float", "µs/run", "GFLOP/s", "CPU GFLOP/s", "vs CPU"
    ));
    let mut timed = 0;
    for case in TABLE {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        for &float in floats {
            let Case { graph, feeds } = (case.build)(float)?;
            let flops = graph.flops() as f64;
            let cpu_s = time_per_call(MIN_SECS, || {
                std::hint::black_box(cpu::run(&graph, &feeds)?);
                Ok(())
            })?;
            let mode = match float {
                DType::F16 => Mode::F16,
                _ => Mode::DeviceLimits,
            };
            for variant in case.family.variants() {
                if !variant.applies(ctx, mode) {
                    continue;
                }
                let opts = ExecOptions {
                    tuning: variant.tuning,
                    ..Default::default()
                };
                let feeds = feeds.iter().map(|(n, v)| (n.as_str(), v));
                let gpu_s = time_runs(ctx, &graph, &opts, feeds, MIN_SECS)?;
                let rate = |s: f64| {
                    if flops > 0.0 {
                        format!("{:.3}", flops / s / 1e9)
                    } else {
                        "-".to_string()
                    }
                };
                out.say(format!(
                    "{:<36} {:<9} {:<5} {:>10.1} {:>10} {:>12} {:>7.2}×",
                    case.name,
                    variant.name,
                    float.wgsl(),
                    gpu_s * 1e6,
                    rate(gpu_s),
                    rate(cpu_s),
                    cpu_s / gpu_s
                ));
                out.figure(
                    &format!("{} {} {}", case.name, variant.name, float.wgsl()),
                    gpu_s * 1e6,
                    "µs/run",
                    Some(("CPU reference, one thread", cpu_s * 1e6)),
                );
                timed += 1;
            }
        }
    }
    if timed == 0 {
        return Err(ptdit::Error::Input(format!(
            "no op case's name contains {:?}",
            filter.unwrap_or_default()
        )));
    }
    Ok(())
}
