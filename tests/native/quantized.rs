//! Packed Linear weights (bf16, q8, q4) on the official fixtures: the error against the golden
//! outputs stays within what each format is allowed (`linear_storage_tolerance`), and the GPU
//! agrees with the CPU reference on the same packed weights as closely as in f32, so what error
//! there is comes from the format, not the kernels.

use crate::common::gpu;
use ptdit::formats::safetensors::TensorFile;
use ptdit::graph::cpu;
use ptdit::model::verify::{check_gpu, linear_storage_tolerance, run_gpu, Comparison, Fixture};
use ptdit::DType;

const FIXTURES: [&str; 2] = ["ptdit_tiny_square", "t5_tiny"];

fn fixture(name: &str, linear: DType) -> Fixture {
    let path = format!(
        "{}/tests/fixtures/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    Fixture::stored(TensorFile::read(path).unwrap(), Some(linear)).unwrap()
}

#[test]
fn fixtures_within_each_formats_error() {
    let ctx = gpu();
    let mut failures = Vec::new();
    for linear in [DType::BF16, DType::Q8, DType::Q4] {
        let (max_tol, rms_tol) = linear_storage_tolerance(linear);
        for name in FIXTURES {
            let fx = fixture(name, linear);
            let r =
                pollster::block_on(check_gpu(fx.0.as_ref(), &ctx, max_tol, DType::F32)).unwrap();
            let (max, rms) = (r.output.relative(), r.output.relative_rms());
            println!(
                "{name} {}: max|err|/std {max:.2e}, rms/std {rms:.2e}",
                linear.name()
            );
            if !(max <= max_tol && rms <= rms_tol) {
                failures.push(format!(
                    "{name} {}: max {max:.3e} (≤ {max_tol}), rms {rms:.3e} (≤ {rms_tol})",
                    linear.name()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Both sides read the same packed values (the CPU reference unpacks what the GPU holds), so
/// the whole models' f32 GPU-vs-CPU tolerance holds on every output and trace: 1e-4 × std.
#[test]
fn gpu_matches_cpu_reference_on_packed_weights() {
    let ctx = gpu();
    for linear in [DType::BF16, DType::Q8, DType::Q4] {
        for name in FIXTURES {
            let fx = fixture(name, linear);
            let (graph, feeds) = fx.0.graph_and_feeds(DType::F32).unwrap();
            let want = cpu::run(&graph, &feeds).unwrap();
            let got = pollster::block_on(run_gpu(&ctx, &graph, &feeds)).unwrap();
            assert!(!want.is_empty());
            for (key, w) in &want {
                let c = Comparison::new(key, got[key].as_f32(), w.as_f32(), 1e-4);
                assert!(c.passed(), "{name} {} `{key}`: {c:?}", linear.name());
            }
        }
    }
}
