//! Shared test harness: one GPU context per test binary, and the GPU-vs-CPU comparison every
//! op and model test uses.
#![allow(dead_code)]

pub mod tiny;

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::OnceLock;

use ptdit::graph::{cpu, ExecOptions};
use ptdit::rng::Rng;
use ptdit::{Executable, GpuContext, Graph, HostTensor};

/// The test GPU. Without an adapter every GPU test fails with the engine's message, which says
/// how to install a software one. Tests never skip.
#[cfg(not(target_arch = "wasm32"))]
pub async fn gpu_async() -> GpuContext {
    gpu()
}

#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> GpuContext {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    match CTX.get_or_init(|| GpuContext::new_blocking().map_err(|e| e.to_string())) {
        Ok(c) => c.clone(),
        Err(e) => panic!("GPU tests need a WebGPU adapter: {e}"),
    }
}

/// In the browser: one device per page (the test runner's), created on first use.
#[cfg(target_arch = "wasm32")]
pub async fn gpu_async() -> GpuContext {
    thread_local!(static CTX: std::cell::RefCell<Option<GpuContext>> = const { std::cell::RefCell::new(None) });
    if let Some(c) = CTX.with(|c| c.borrow().clone()) {
        return c;
    }
    match GpuContext::new().await {
        Ok(c) => {
            CTX.with(|slot| *slot.borrow_mut() = Some(c.clone()));
            c
        }
        Err(e) => {
            panic!("GPU tests need a WebGPU adapter: {e} (in Chromium: --enable-unsafe-webgpu)")
        }
    }
}

/// A GPU test: a plain `#[test]` natively (the body runs under pollster), an async
/// `wasm_bindgen_test` in the browser. The body is async code that may `.await`.
#[macro_export]
macro_rules! gpu_test {
    ($(#[$m:meta])* fn $name:ident() $body:block) => {
        #[cfg(not(target_arch = "wasm32"))]
        $(#[$m])*
        #[test]
        fn $name() {
            pollster::block_on(async $body)
        }
        #[cfg(target_arch = "wasm32")]
        $(#[$m])*
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() $body
    };
}

pub fn rand(shape: &[usize], seed: u64, std: f32) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::f32(shape.to_vec(), Rng::new(seed).normals(n, std))
}

/// max |a - b| over max(1, max |b|): the error relative to the reference's scale.
pub fn rel_err(gpu: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(gpu.len(), reference.len(), "lengths differ");
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

/// f32 tolerance for ops against their CPU reference: f32 has 24 bits (6e-8 relative); sums
/// of a few thousand terms in another order, and the GPU's exp / inverseSqrt (a few ulp),
/// stay well below 1e-5 of the output scale. 1e-4 leaves a margin of 10 and still catches any
/// indexing error, which shows up at the scale of the data itself.
pub const F32_TOL: f32 = 1e-4;

pub struct Compared {
    pub worst: f32,
    pub dispatches: usize,
    /// What the GPU computed, by output name.
    pub got: HashMap<String, HostTensor>,
}

/// Runs `graph` on the GPU (with `opts`) and on the CPU reference; asserts every output
/// agrees within `tol` (relative to the reference's scale).
pub async fn check(
    graph: &Graph,
    feeds: &HashMap<String, HostTensor>,
    tol: f32,
    opts: &ExecOptions,
) -> Compared {
    let ctx = gpu_async().await;
    let want = cpu::run(graph, feeds).expect("CPU reference run");
    let exe = Executable::with_options(&ctx, graph, opts)
        .await
        .expect("compile");
    for (name, v) in feeds {
        exe.write(name, v).expect("write");
    }
    exe.run().expect("run");
    let mut worst = 0f32;
    let mut outputs = HashMap::new();
    for (name, w) in &want {
        let got = exe.read(name).await.expect("read");
        assert_eq!(got.shape, w.shape, "{name}: shape");
        let e = match (&got.data, &w.data) {
            (ptdit::tensor::HostData::U32(a), ptdit::tensor::HostData::U32(b)) => {
                assert_eq!(a, b, "{name}: u32 data differs");
                0.0
            }
            _ => rel_err(got.as_f32(), w.as_f32()),
        };
        assert!(e <= tol, "{name}: relative error {e:e} exceeds {tol:e}");
        worst = worst.max(e);
        outputs.insert(name.clone(), got);
    }
    Compared {
        worst,
        dispatches: exe.dispatches,
        got: outputs,
    }
}

/// Builds a feed map from (name, tensor) pairs.
pub fn feeds(items: Vec<(&str, HostTensor)>) -> HashMap<String, HostTensor> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
