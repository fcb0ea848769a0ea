//! The engine in the browser: the adapter is WebGPU's, and the official fixtures pass with the
//! same tolerances as natively (the op tests run there too: tests/ops.rs). Natively these run
//! as well, on the native adapter.

#[macro_use]
mod common;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use common::gpu_async;
use ptdit::model::verify::{check_gpu, PtditFixture, T5Fixture, VaeFixture};
use ptdit::model::weights::TensorFile;
use ptdit::DType;

const PTDIT: &[u8] = include_bytes!("fixtures/ptdit_tiny_square.safetensors");
const T5: &[u8] = include_bytes!("fixtures/t5_tiny.safetensors");
const VAE: &[u8] = include_bytes!("fixtures/vae_image_tiny.safetensors");

/// The f32 tolerance for fixtures: max |error| ≤ 1e-3 × std.
const TOL: f32 = 1e-3;

gpu_test!(
    fn adapter_is_reported() {
        let ctx = gpu_async().await;
        assert!(!ctx.report.name.is_empty() || !ctx.report.backend.is_empty());
        #[cfg(target_arch = "wasm32")]
        assert!(
            ctx.report.backend.contains("BrowserWebGpu"),
            "{:?}",
            ctx.report
        );
    }
);

gpu_test!(
    fn ptdit_fixture() {
        let fx = PtditFixture::from_file(TensorFile::parse(PTDIT).unwrap()).unwrap();
        let r = check_gpu(&fx, &gpu_async().await, TOL, DType::F32)
            .await
            .unwrap();
        assert!(
            r.passed() && r.first_divergence().is_none(),
            "{:?}",
            r.output
        );
    }
);

gpu_test!(
    fn t5_fixture() {
        let fx = T5Fixture::from_file(TensorFile::parse(T5).unwrap()).unwrap();
        let r = check_gpu(&fx, &gpu_async().await, 1e-4, DType::F32)
            .await
            .unwrap();
        assert!(r.passed(), "{:?}", r.output);
    }
);

gpu_test!(
    fn vae_fixture() {
        let fx = VaeFixture::from_file(TensorFile::parse(VAE).unwrap()).unwrap();
        let r = check_gpu(&fx, &gpu_async().await, TOL, DType::F32)
            .await
            .unwrap();
        assert!(r.passed(), "{:?}", r.output);
    }
);
