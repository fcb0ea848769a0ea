//! The engine in the browser: the adapter is WebGPU's, and the official fixtures pass with the
//! same tolerances as natively (the op tests run there too: tests/ops.rs). Natively these run
//! as well, on the native adapter.

#[macro_use]
mod common;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use common::gpu_async;
use ptdit::formats::safetensors::TensorFile;
use ptdit::model::verify::{
    check_gpu, linear_storage_tolerance, Fixture, PtditFixture, T5Fixture, VaeFixture,
};
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

gpu_test!(
    fn fixtures_with_packed_linear_weights() {
        // The browser's WebGPU runs the same unpacking kernels: q8 and q4 weights give the
        // formats' error on the fixtures, as natively (tests/native/quantized.rs).
        let ctx = gpu_async().await;
        for linear in [DType::Q8, DType::Q4] {
            let (max_tol, rms_tol) = linear_storage_tolerance(linear);
            for bytes in [PTDIT, T5] {
                let fx = Fixture::stored(TensorFile::parse(bytes).unwrap(), Some(linear)).unwrap();
                let r = fx.run_gpu(&ctx, max_tol, DType::F32).await.unwrap();
                assert!(
                    r.passed() && r.output.relative_rms() <= rms_tol,
                    "{}: {:?}",
                    linear.name(),
                    r.output
                );
            }
        }
    }
);

/// Hands the tiny random model to a JS-API engine as a `Map` of files, as a page would.
#[cfg(target_arch = "wasm32")]
async fn load_tiny_model(engine: &mut ptdit::web::Engine) {
    use js_sys::{Map, Uint8Array};
    use wasm_bindgen::JsValue;
    let files = Map::new();
    for (path, bytes) in common::tiny::tiny_model_files() {
        files.set(&JsValue::from_str(&path), &Uint8Array::from(&bytes[..]));
    }
    engine.load_model(files, None, None).await.unwrap();
}

/// `generate`'s options for the tiny model: 64×64, seed 5, `steps` steps.
#[cfg(target_arch = "wasm32")]
fn tiny_options(steps: u32) -> js_sys::Object {
    use js_sys::{Object, Reflect};
    use wasm_bindgen::JsValue;
    let opts = Object::new();
    for (k, v) in [
        ("prompt", JsValue::from_str("a red apple")),
        ("width", 64.into()),
        ("height", 64.into()),
        ("steps", steps.into()),
        ("seed", 5.into()),
    ] {
        Reflect::set(&opts, &JsValue::from_str(k), &v).unwrap();
    }
    opts
}

/// The JavaScript API end to end on the tiny random model: load from a `Map` of files,
/// generate with a preview callback, cancel with an `AbortSignal`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_generates_and_cancels() {
    use js_sys::{Function, Reflect, Uint8ClampedArray};
    use wasm_bindgen::{JsCast, JsValue};

    let mut engine = ptdit::web::Engine::create().await.unwrap();
    assert!(
        engine.adapter().contains("BrowserWebGpu"),
        "{}",
        engine.adapter()
    );
    load_tiny_model(&mut engine).await;
    engine.warm().await.unwrap();
    let opts = tiny_options(2);
    // Counts previews in a global the callback increments.
    let counter = Function::new_with_args("step, total, preview", "globalThis.__steps = (globalThis.__steps || 0) + 1; if (preview.width !== 8 || preview.data.length !== 8 * 8 * 4) throw new Error('bad preview');");
    let img = engine
        .generate(opts.clone().into(), Some(counter), None)
        .await
        .unwrap();
    let get = |k: &str| Reflect::get(&img, &JsValue::from_str(k)).unwrap();
    assert_eq!(get("width").as_f64(), Some(64.0));
    let data: Uint8ClampedArray = get("data").dyn_into().unwrap();
    assert_eq!(data.length(), 64 * 64 * 4);
    // Every frame comes too: one for an image, the same pixels.
    let frames: js_sys::Array = get("frames").dyn_into().unwrap();
    assert_eq!(frames.length(), 1);
    let first = Reflect::get(&frames.get(0), &JsValue::from_str("data")).unwrap();
    let first: Uint8ClampedArray = first.dyn_into().unwrap();
    assert_eq!(first.to_vec(), data.to_vec());
    // The model declares no task: the defaults say so, with its one frame.
    let defaults = engine.defaults().unwrap();
    let d = |k: &str| Reflect::get(&defaults, &JsValue::from_str(k)).unwrap();
    assert_eq!(
        (d("frames").as_f64(), d("task").is_null()),
        (Some(1.0), true)
    );
    let steps = Reflect::get(&js_sys::global(), &JsValue::from_str("__steps")).unwrap();
    assert_eq!(steps.as_f64(), Some(2.0));

    let abort = web_sys::AbortController::new().unwrap();
    abort.abort();
    let e = engine
        .generate(opts.into(), None, Some(abort.signal()))
        .await;
    assert!(e.is_err(), "an aborted signal cancels");
}

/// `Engine.onDevice`: the engine runs on the page's own `GPUDevice`. Proof that it is really
/// that device: once the page destroys it, the engine's next generation fails.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_runs_on_the_pages_own_device() {
    use js_sys::{Function, Object, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    let make = Function::new_no_args(
        "return navigator.gpu.requestAdapter().then(a => a.requestDevice({ label: 'host' }))",
    );
    let promise: Promise = make.call0(&JsValue::NULL).unwrap().dyn_into().unwrap();
    let device = JsFuture::from(promise).await.unwrap();

    let not_a_device = ptdit::web::Engine::on_device(JsValue::from_str("gpu")).await;
    assert!(not_a_device.is_err(), "a string is refused");

    let mut engine = ptdit::web::Engine::on_device(device.clone()).await.unwrap();
    let gpu = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
        .and_then(|n| Reflect::get(&n, &JsValue::from_str("gpu")))
        .unwrap();
    let own = Object::has_own(
        gpu.unchecked_ref::<Object>(),
        &JsValue::from_str("requestAdapter"),
    );
    assert!(!own, "navigator.gpu.requestAdapter is the browser's again");

    load_tiny_model(&mut engine).await;
    let opts = tiny_options(1);
    engine
        .generate(opts.clone().into(), None, None)
        .await
        .expect("generates on the lent device");

    let destroy: Function = Reflect::get(&device, &JsValue::from_str("destroy"))
        .unwrap()
        .dyn_into()
        .unwrap();
    destroy.call0(&device).unwrap();
    let after = engine.generate(opts.clone().into(), None, None).await;
    let e = format!(
        "{:?}",
        after.expect_err("the engine was using the page's device")
    );
    assert!(e.contains("lost"), "a lost device is named: {e}");
    // A new engine on a new device works after the loss.
    let mut fresh = ptdit::web::Engine::create().await.unwrap();
    load_tiny_model(&mut fresh).await;
    fresh
        .generate(opts.into(), None, None)
        .await
        .expect("a new device generates after the old one was lost");
}

/// Generations in one page do not grow the wasm memory: the second half's size may not
/// exceed the first's (wasm memory never shrinks, so any leak shows as growth). `ptdit bench
/// soak` reports the native figures.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_generations_do_not_grow_the_wasm_memory() {
    use js_sys::{Reflect, WebAssembly};
    use wasm_bindgen::{JsCast, JsValue};
    let mut engine = ptdit::web::Engine::create().await.unwrap();
    load_tiny_model(&mut engine).await;
    let memory: WebAssembly::Memory = wasm_bindgen::memory().dyn_into().unwrap();
    let bytes = || {
        Reflect::get(&memory.buffer(), &JsValue::from_str("byteLength"))
            .unwrap()
            .as_f64()
            .unwrap()
    };
    let mut sizes = Vec::new();
    for _ in 0..6 {
        engine
            .generate(tiny_options(1).into(), None, None)
            .await
            .unwrap();
        sizes.push(bytes());
    }
    let (first, second) = sizes.split_at(3);
    let peak = |s: &[f64]| s.iter().copied().fold(0.0, f64::max);
    assert!(peak(second) <= peak(first), "wasm memory grew: {sizes:?}");
}

/// Weight files given as a `ReadableStream` (in 999-byte pieces, so tensors and elements are
/// split across pieces), a `Blob` and a function resolving to a `Response` load the same model
/// as whole `Uint8Array`s: the images are identical. A stream that ends early and a failed
/// download are refused, naming the file.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_streams_weight_files_in_pieces() {
    use js_sys::{Function, Map, Reflect, Uint8Array, Uint8ClampedArray};
    use wasm_bindgen::{JsCast, JsValue};

    let wrap = Function::new_with_args(
        "bytes, kind",
        "if (kind === 'stream' || kind === 'truncated') {
             const end = kind === 'truncated' ? bytes.length - 10 : bytes.length;
             return new ReadableStream({ start(c) {
                 for (let i = 0; i < end; i += 999) c.enqueue(bytes.slice(i, Math.min(i + 999, end)));
                 c.close();
             } });
         }
         if (kind === 'blob') return new Blob([bytes]);
         if (kind === 'lazy') return () => Promise.resolve(new Response(bytes));
         if (kind === '404') return () => new Response('gone', { status: 404 });
         return bytes;",
    );
    let files = |kind_of: &dyn Fn(&str) -> &'static str| {
        let m = Map::new();
        for (path, bytes) in common::tiny::tiny_model_files() {
            let arr: JsValue = Uint8Array::from(&bytes[..]).into();
            let v = wrap
                .call2(&JsValue::NULL, &arr, &JsValue::from_str(kind_of(&path)))
                .unwrap();
            m.set(&JsValue::from_str(&path), &v);
        }
        m
    };
    let image = |img: &JsValue| -> Vec<u8> {
        let data: Uint8ClampedArray = Reflect::get(img, &JsValue::from_str("data"))
            .unwrap()
            .dyn_into()
            .unwrap();
        data.to_vec()
    };

    let mut whole = ptdit::web::Engine::create().await.unwrap();
    whole
        .load_model(files(&|_| "bytes"), None, None)
        .await
        .unwrap();
    let expected = image(
        &whole
            .generate(tiny_options(2).into(), None, None)
            .await
            .unwrap(),
    );

    let mut streamed = ptdit::web::Engine::create().await.unwrap();
    let progress = Function::new_with_args("bytes, path", "globalThis.__loaded = bytes;");
    let kinds = |path: &str| match path.split('/').next() {
        Some("transformer") => "stream",
        Some("text_encoder") => "blob",
        Some("vae") => "lazy",
        _ => "bytes",
    };
    streamed
        .load_model(files(&kinds), Some(progress), None)
        .await
        .unwrap();
    let loaded = Reflect::get(&js_sys::global(), &JsValue::from_str("__loaded")).unwrap();
    let total: usize = common::tiny::tiny_model_files()
        .iter()
        .filter(|(p, _)| p.ends_with(".safetensors"))
        .map(|(_, b)| b.len())
        .sum();
    assert_eq!(
        loaded.as_f64(),
        Some(total as f64),
        "progress counts every weight byte"
    );
    let got = image(
        &streamed
            .generate(tiny_options(2).into(), None, None)
            .await
            .unwrap(),
    );
    assert!(got == expected, "streamed weights give a different image");

    for (kind, needle) in [("truncated", "truncated"), ("404", "HTTP status 404")] {
        let mut e = ptdit::web::Engine::create().await.unwrap();
        let bad =
            |path: &str| match path.starts_with("transformer/") && path.ends_with(".safetensors") {
                true => kind,
                false => "bytes",
            };
        let err = match e.load_model(files(&bad), None, None).await {
            Ok(()) => panic!("a {kind} weight file was accepted"),
            Err(err) => JsValue::from(err),
        };
        let msg = Reflect::get(&err, &JsValue::from_str("message"))
            .unwrap()
            .as_string()
            .unwrap_or_default();
        assert!(
            msg.contains(needle) && msg.contains("transformer/"),
            "{kind}: {msg}"
        );
    }
}

/// `Engine.tuningCache` / `setTuningCache`: the autotuner's table leaves the page and comes back
/// on a later visit, whose engine then takes its choice from it and measures nothing.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_keeps_the_tuning_across_visits() {
    use ptdit::web::Engine;
    use wasm_bindgen::JsValue;

    Engine::create().await.unwrap(); // measures, unless an earlier test of this page did
    let table: std::collections::HashMap<String, String> =
        serde_json::from_str(&Engine::tuning_cache()).unwrap();
    // An entry per device the page's tests tuned, each named by its adapter (the page's own
    // GPUDevice of `onDevice` may report its driver differently).
    assert!(
        !table.is_empty() && table.keys().all(|k| k.contains("BrowserWebGpu")),
        "{table:?}"
    );
    // A later visit hands back a table; a choice the autotuner would not make here proves that
    // the engine took it from the table.
    let later: std::collections::HashMap<&String, &str> =
        table.keys().map(|k| (k, "registers+split+rows")).collect();
    Engine::set_tuning_cache(&serde_json::to_string(&later).unwrap()).unwrap();
    let engine = Engine::create().await.unwrap();
    let kernels = engine.kernels();
    assert!(
        kernels.starts_with("matmul kernel: registers (cached)")
            && kernels.ends_with("attention kernel: rows"),
        "{kernels}"
    );
    let err = match Engine::set_tuning_cache("{ not json") {
        Ok(()) => panic!("a table that is not one was taken"),
        Err(e) => JsValue::from(e),
    };
    let msg = js_sys::Reflect::get(&err, &JsValue::from_str("message"))
        .unwrap()
        .as_string()
        .unwrap_or_default();
    assert!(msg.contains("tuning cache"), "{msg}");
    // The measured choice again, for the tests after this one.
    Engine::set_tuning_cache(&serde_json::to_string(&table).unwrap()).unwrap();
}

/// Prompts without T5 through the JavaScript API: `encode` gives embeddings that `generate`
/// takes instead of the prompt, also on a model loaded without its text encoder.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_generates_from_embeddings_without_the_text_encoder() {
    use js_sys::{Map, Reflect, Uint8Array, Uint8ClampedArray};
    use wasm_bindgen::{JsCast, JsValue};

    let pixels = |img: JsValue| -> Vec<u8> {
        let data = Reflect::get(&img, &JsValue::from_str("data")).unwrap();
        data.dyn_into::<Uint8ClampedArray>().unwrap().to_vec()
    };
    let mut engine = ptdit::web::Engine::create().await.unwrap();
    load_tiny_model(&mut engine).await;
    let emb = engine.encode("a red apple", "").await.unwrap();
    let want = pixels(
        engine
            .generate(tiny_options(2).into(), None, None)
            .await
            .unwrap(),
    );

    // The model again, without text_encoder/ and tokenizer/.
    let files = Map::new();
    for (path, bytes) in common::tiny::tiny_model_files() {
        if !path.starts_with("text_encoder/") && !path.starts_with("tokenizer/") {
            files.set(&JsValue::from_str(&path), &Uint8Array::from(&bytes[..]));
        }
    }
    engine.load_model(files, None, None).await.unwrap();
    let no_text = engine.generate(tiny_options(2).into(), None, None).await;
    assert!(no_text.is_err(), "a prompt needs the text encoder");
    let opts = tiny_options(2);
    Reflect::set(&opts, &"embeddings".into(), &Uint8Array::from(&emb[..])).unwrap();
    let got = pixels(engine.generate(opts.into(), None, None).await.unwrap());
    assert_eq!(got, want);
}

/// The step cache through the JS API on the built-in model: the `cache` option skips the steps
/// the rule allows (the device's decision, in the browser's WebGPU), reports them on the image,
/// and a level that does not exist is an error naming it.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
async fn js_api_step_cache_skips_and_reports() {
    use js_sys::{Object, Reflect};
    use wasm_bindgen::JsValue;

    let mut engine = ptdit::web::Engine::create().await.unwrap();
    engine.load_default_model().unwrap();
    let opts = |cache: &str| {
        let o = Object::new();
        for (k, v) in [
            ("prompt", JsValue::from_str("rocket")),
            ("steps", 6.into()),
            ("seed", 3.into()),
            ("cache", JsValue::from_str(cache)),
        ] {
            Reflect::set(&o, &JsValue::from_str(k), &v).unwrap();
        }
        JsValue::from(o)
    };
    let skipped = |img: &JsValue| {
        Reflect::get(img, &JsValue::from_str("skippedSteps"))
            .unwrap()
            .as_f64()
    };
    let off = engine.generate(opts("off"), None, None).await.unwrap();
    assert_eq!(skipped(&off), Some(0.0));
    // 6 steps, the first and last forced to run, at most 3 skips in a row.
    let all = "first-block:1e30,warmup=1,final=1";
    let img = engine.generate(opts(all), None, None).await.unwrap();
    assert_eq!(skipped(&img), Some(3.0));
    let bad = engine.generate(opts("fastest"), None, None).await;
    let msg = format!("{:?}", bad.err().map(JsValue::from));
    assert!(msg.contains("fastest"), "{msg}");
}
