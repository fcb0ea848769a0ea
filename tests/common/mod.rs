//! Shared test harness: one GPU context per test binary, and the GPU-vs-CPU comparison every
//! op and model test uses.
#![allow(dead_code)]

pub mod tiny;

use std::collections::HashMap;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::OnceLock;

use ptdit::graph::ExecOptions;
use ptdit::{GpuContext, Graph, HostTensor};

/// The released PT-DiT/XL's structure (windows, proxies, norms, shifted windows) at a test's
/// size: `heads` × `head_dim` wide, `layers` blocks, text of `caption` channels.
pub fn small_xl(
    heads: usize,
    head_dim: usize,
    layers: usize,
    caption: usize,
) -> ptdit::model::PtditConfig {
    ptdit::model::PtditConfig {
        num_attention_heads: heads,
        attention_head_dim: head_dim,
        num_layers: layers,
        cross_attention_dim: Some(heads * head_dim),
        caption_channels: caption,
        ..ptdit::model::PtditConfig::released_xl()
    }
}

/// Writes the files of a model directory (`transformer/config.json`, …) under `root`.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_model_dir(root: &std::path::Path, files: &ptdit::pipeline::model_dir::Files) {
    for (path, bytes) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

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

#[allow(unused_imports)] // each test binary uses some of them
pub use ptdit::ops::cases::{feeds, rand, rel_err, Compared, Tolerance};

/// f32 tolerance for ops against their CPU reference (the op-test table's, justified there).
pub const F32_TOL: f32 = Tolerance::STANDARD.f32;

/// Runs `graph` on the GPU (with `opts`) and on the CPU reference; panics unless every output
/// agrees within `tol` of the reference's scale.
pub async fn check(
    graph: &Graph,
    feeds: &HashMap<String, HostTensor>,
    tol: f32,
    opts: &ExecOptions,
) -> Compared {
    let ctx = gpu_async().await;
    match ptdit::ops::cases::compare(&ctx, graph, feeds, tol, opts).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// The built-in model's files without its training declaration (`task`, `num_frames`), so it
/// takes any size its windows allow: for tests of sizes the shipped model refuses.
#[cfg(not(target_arch = "wasm32"))]
pub fn undeclared_default_model() -> ptdit::pipeline::model_dir::Files {
    const SCHED: &str = "scheduler/scheduler_config.json";
    let mut files = ptdit::pipeline::default_model::files();
    let mut json: serde_json::Value = serde_json::from_slice(&files[SCHED]).unwrap();
    let fields = json.as_object_mut().unwrap();
    assert!(
        fields.remove("task").is_some(),
        "the built-in model declares its task"
    );
    fields.remove("num_frames");
    files.insert(SCHED.into(), serde_json::to_vec(&json).unwrap());
    files
}
