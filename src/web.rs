//! The browser API (wasm-bindgen, ES module): an engine on the page's WebGPU, a model handed
//! over as files, `generate` with a per-step preview callback and an `AbortSignal`.
//!
//! ```js
//! import init, { Engine } from "./ptdit.js";
//! await init();
//! const engine = await Engine.create();     // or Engine.onDevice(myGPUDevice)
//! engine.loadModel(new Map([["transformer/config.json", bytes], ...]));
//! const image = await engine.generate({ prompt: "a red apple", steps: 30, seed: 1 },
//!     (step, total, preview) => { /* preview: {width, height, data} RGBA */ }, abortSignal);
//! ctx.putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
//! ```

use std::collections::BTreeMap;

use js_sys::{Function, Object, Reflect, Uint8Array, Uint8ClampedArray};
use wasm_bindgen::prelude::*;

use crate::gpu::GpuContext;
use crate::pipeline::generate::{preview, Frame, Request, TextToImage};
use crate::pipeline::{default_model, model_dir};

// wgpu cannot wrap a `GPUDevice` made by JavaScript, but it gets its device from
// `navigator.gpu.requestAdapter()` and `adapter.requestDevice()`, called as methods of those
// objects. So for one call, `requestAdapter` answers with an adapter whose `requestDevice`
// returns the host's device; the original method is back before wgpu sees the adapter.
#[wasm_bindgen(inline_js = r#"
export function lend_device(device) {
    if (!navigator.gpu) throw new Error("this browser has no WebGPU (navigator.gpu is missing)");
    if (!device || typeof device.createBuffer !== "function" || !device.queue)
        throw new Error("onDevice needs a GPUDevice");
    const gpu = navigator.gpu;
    const info = device.adapterInfo || {};
    const text = (v) => (typeof v === "string" ? v : "");
    const num = (v, d) => (typeof v === "number" ? v : d);
    const adapter = {
        features: device.features,
        limits: device.limits,
        // wgpu reads every field with a fixed type: missing ones get neutral values.
        info: {
            vendor: text(info.vendor),
            architecture: text(info.architecture),
            device: text(info.device),
            description: text(info.description) || "host GPUDevice",
            isFallbackAdapter: info.isFallbackAdapter === true,
            subgroupMinSize: num(info.subgroupMinSize, 4),
            subgroupMaxSize: num(info.subgroupMaxSize, 128),
        },
        isFallbackAdapter: info.isFallbackAdapter === true,
        requestDevice: async () => device,
    };
    gpu.requestAdapter = async () => {
        delete gpu.requestAdapter;
        return adapter;
    };
}
export function unlend_device() {
    if (navigator.gpu && Object.prototype.hasOwnProperty.call(navigator.gpu, "requestAdapter"))
        delete navigator.gpu.requestAdapter;
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn lend_device(device: &JsValue) -> Result<(), JsValue>;
    fn unlend_device();
}

fn js_err(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// An RGBA image as `{width, height, data: Uint8ClampedArray}` (what `new ImageData` takes).
fn image(f: &Frame) -> Result<JsValue, JsError> {
    let mut rgba = Vec::with_capacity(f.width * f.height * 4);
    for px in f.rgb.chunks_exact(3) {
        rgba.extend_from_slice(px);
        rgba.push(255);
    }
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        Reflect::set(&o, &JsValue::from_str(k), &v)
            .map(|_| ())
            .map_err(|_| JsError::new("cannot build the image object"))
    };
    set("width", JsValue::from(f.width as u32))?;
    set("height", JsValue::from(f.height as u32))?;
    set("data", Uint8ClampedArray::from(&rgba[..]).into())?;
    Ok(o.into())
}

fn field(o: &JsValue, k: &str) -> Option<JsValue> {
    Reflect::get(o, &JsValue::from_str(k))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Reads `generate`'s options over the model's defaults.
fn request(o: &JsValue, defaults: Request) -> Result<Request, JsError> {
    let mut r = defaults;
    let num = |k: &str| {
        field(o, k).map(|v| {
            v.as_f64()
                .ok_or_else(|| JsError::new(&format!("option `{k}` must be a number")))
        })
    };
    let text = |k: &str| {
        field(o, k).map(|v| {
            v.as_string()
                .ok_or_else(|| JsError::new(&format!("option `{k}` must be a string")))
        })
    };
    r.prompt = text("prompt").unwrap_or(Ok(String::new()))?;
    r.negative_prompt = text("negativePrompt").unwrap_or(Ok(String::new()))?;
    let count = |v: f64, k: &str| {
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
            Ok(v as usize)
        } else {
            Err(JsError::new(&format!(
                "option `{k}` must be a whole number"
            )))
        }
    };
    if let Some(v) = num("steps") {
        r.steps = count(v?, "steps")?;
    }
    if let Some(v) = num("width") {
        r.width = count(v?, "width")?;
    }
    if let Some(v) = num("height") {
        r.height = count(v?, "height")?;
    }
    if let Some(v) = num("seed") {
        r.seed = count(v?, "seed")? as u64;
    }
    if let Some(v) = num("cfg") {
        r.cfg = v? as f32;
    }
    Ok(r)
}

#[wasm_bindgen]
pub struct Engine {
    ctx: GpuContext,
    pipe: Option<TextToImage>,
    kernels: String,
}

#[wasm_bindgen]
impl Engine {
    /// An engine on the browser's WebGPU adapter; fails with a clear message without WebGPU.
    pub async fn create() -> Result<Engine, JsError> {
        let ctx = GpuContext::new().await.map_err(js_err)?;
        Self::tuned(ctx).await
    }

    /// An engine on `ctx`, its kernel variants timed on this adapter (under a second) and kept
    /// for the page's lifetime.
    async fn tuned(ctx: GpuContext) -> Result<Engine, JsError> {
        let tuned = crate::autotune::autotune(&ctx, &crate::autotune::Cache::Default)
            .await
            .map_err(js_err)?;
        Ok(Engine {
            ctx,
            pipe: None,
            kernels: tuned.summary(),
        })
    }

    /// An engine on the page's own `GPUDevice` (a renderer's), so images can stay on that
    /// device. The engine never destroys it; it does install its own `onuncapturederror`
    /// handler on it (wgpu's), so set yours again afterwards if you had one.
    #[wasm_bindgen(js_name = onDevice)]
    pub async fn on_device(device: JsValue) -> Result<Engine, JsError> {
        lend_device(&device).map_err(|e| {
            JsError::new(
                &e.as_string()
                    .or_else(|| {
                        js_sys::Reflect::get(&e, &JsValue::from_str("message"))
                            .ok()
                            .and_then(|m| m.as_string())
                    })
                    .unwrap_or_else(|| "onDevice: not a GPUDevice".into()),
            )
        })?;
        let ctx = GpuContext::new().await;
        unlend_device();
        let mut ctx = ctx.map_err(js_err)?;
        ctx.ownership = crate::gpu::Ownership::Borrowed;
        Self::tuned(ctx).await
    }

    /// The kernel variants the autotuner chose for this adapter, with their measured speeds.
    pub fn kernels(&self) -> String {
        self.kernels.clone()
    }

    /// The adapter, as `"name (backend, device type)"`.
    pub fn adapter(&self) -> String {
        let r = &self.ctx.report;
        let name = if r.name.is_empty() {
            "unnamed adapter"
        } else {
            &r.name
        };
        format!("{name} ({}, {})", r.backend, r.device_type)
    }

    /// Loads a model from its files: a `Map` of relative path (`"transformer/config.json"`, …)
    /// to `Uint8Array`.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&mut self, files: &js_sys::Map) -> Result<(), JsError> {
        let mut map = BTreeMap::new();
        let mut bad = None;
        files.for_each(
            &mut |v, k| match (k.as_string(), v.dyn_ref::<Uint8Array>()) {
                (Some(k), Some(bytes)) => {
                    map.insert(k, bytes.to_vec());
                }
                _ => bad = Some("loadModel takes a Map of path strings to Uint8Array"),
            },
        );
        if let Some(msg) = bad {
            return Err(JsError::new(msg));
        }
        let components = model_dir::from_files(&map).map_err(js_err)?;
        self.pipe = Some(TextToImage::new(&self.ctx, components));
        Ok(())
    }

    /// Loads the default model compiled into the engine (emoji, 32×32 px).
    #[wasm_bindgen(js_name = loadDefaultModel)]
    pub fn load_default_model(&mut self) -> Result<(), JsError> {
        let components = model_dir::from_files(&default_model::files()).map_err(js_err)?;
        self.pipe = Some(TextToImage::new(&self.ctx, components));
        Ok(())
    }

    /// The loaded model's defaults: `{width, height, steps, cfg}`.
    pub fn defaults(&self) -> Result<JsValue, JsError> {
        let pipe = self
            .pipe
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded: call loadModel first"))?;
        let r = pipe.request("");
        let o = Object::new();
        for (k, v) in [
            ("width", r.width as f64),
            ("height", r.height as f64),
            ("steps", r.steps as f64),
            ("cfg", r.cfg as f64),
        ] {
            Reflect::set(&o, &JsValue::from_str(k), &JsValue::from(v))
                .map_err(|_| JsError::new("cannot build the defaults object"))?;
        }
        Ok(o.into())
    }

    /// Generates an image. `onStep(step, total, preview)` is called after each step with a
    /// small RGBA preview of the latents; an aborted `signal` cancels between steps.
    pub async fn generate(
        &self,
        options: JsValue,
        on_step: Option<Function>,
        signal: Option<web_sys::AbortSignal>,
    ) -> Result<JsValue, JsError> {
        let pipe = self
            .pipe
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded: call loadModel first"))?;
        let req = request(&options, pipe.request(""))?;
        let frames = pipe
            .generate(
                &req,
                |i, n, latents| {
                    if let (Some(f), Some(l)) = (&on_step, latents) {
                        if let Ok(img) = image(&preview(l)) {
                            let _ = f.call3(
                                &JsValue::NULL,
                                &JsValue::from(i as u32),
                                &JsValue::from(n as u32),
                                &img,
                            );
                        }
                    }
                    !signal.as_ref().is_some_and(|s| s.aborted())
                },
                on_step.is_some(),
            )
            .await
            .map_err(js_err)?;
        let first = frames
            .first()
            .ok_or_else(|| JsError::new("no image was produced"))?;
        image(first)
    }
}
