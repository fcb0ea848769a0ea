//! The browser API (wasm-bindgen, ES module): an engine on the page's WebGPU, a model handed
//! over as files, `generate` with a per-step preview callback and an `AbortSignal`.
//!
//! ```js
//! import init, { Engine } from "./ptdit.js";
//! await init();
//! const engine = await Engine.create();     // or Engine.onDevice(myGPUDevice)
//! await engine.loadModel(new Map([["transformer/config.json", bytes],
//!     ["transformer/model.safetensors", () => fetch(url)], ...]), (bytes, path) => {});
//! const image = await engine.generate({ prompt: "a red apple", steps: 30, seed: 1, cache: "medium" },
//!     (step, total, preview) => { /* preview: {width, height, data} RGBA */ }, abortSignal);
//! ctx.putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
//! // image.skippedSteps: steps whose middle blocks the step cache skipped
//! ```

use std::collections::BTreeMap;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array, Uint8ClampedArray};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::gpu::GpuContext;
use crate::pipeline::embeddings::PromptEmbeddings;
use crate::pipeline::generate::{preview, Frame, Request, TextToImage};
use crate::pipeline::settings::{ImageSettings, BUILT_IN_MODEL};
use crate::pipeline::{default_model, limits, model_dir, png, StepCache};
use crate::tensor::DType;

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
    let rgba = f.rgba();
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

/// A thrown JavaScript value as text (an `Error`'s message, or the value itself).
fn js_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            Reflect::get(e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Copies are made in pieces of this size, so a large array is never duplicated whole.
const PIECE: u32 = 8 << 20;

/// Hands `sink` the bytes of one file given in any of the forms `loadModel` takes, in pieces.
async fn read_file(
    path: &str,
    v: JsValue,
    mut sink: impl FnMut(&[u8]) -> Result<(), JsError>,
) -> Result<(), JsError> {
    let fail = |what: &str, e: &JsValue| JsError::new(&format!("{path}: {what}: {}", js_text(e)));
    let mut v = v;
    if let Some(f) = v.dyn_ref::<Function>() {
        v = f
            .call0(&JsValue::NULL)
            .map_err(|e| fail("the file's function threw", &e))?;
    }
    let v = JsFuture::from(Promise::resolve(&v))
        .await
        .map_err(|e| fail("the file's promise was rejected", &e))?;
    let mut buf = Vec::new();
    let mut copy = |a: &Uint8Array| -> Result<(), JsError> {
        let mut at = 0;
        while at < a.length() {
            let end = (at + PIECE).min(a.length());
            buf.resize((end - at) as usize, 0);
            a.subarray(at, end).copy_to(&mut buf);
            sink(&buf)?;
            at = end;
        }
        Ok(())
    };
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return copy(a);
    }
    if v.is_instance_of::<js_sys::ArrayBuffer>() {
        return copy(&Uint8Array::new(&v));
    }
    let method = |o: &JsValue, name: &str| {
        Reflect::get(o, &JsValue::from_str(name))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
    };
    // A Response: its body (after checking the status); a Blob or File: its stream.
    let stream = if let Some(ok) = field(&v, "ok").filter(|_| field(&v, "status").is_some()) {
        if ok.as_bool() != Some(true) {
            let status = field(&v, "status").and_then(|s| s.as_f64()).unwrap_or(0.0);
            return Err(JsError::new(&format!("{path}: HTTP status {status}")));
        }
        field(&v, "body")
            .ok_or_else(|| JsError::new(&format!("{path}: the response has no body")))?
    } else if method(&v, "getReader").is_some() {
        v
    } else if let Some(f) = method(&v, "stream") {
        f.call0(&v).map_err(|e| fail("cannot read the blob", &e))?
    } else {
        return Err(JsError::new(&format!(
            "{path}: expected a Uint8Array, ArrayBuffer, Blob, Response or ReadableStream"
        )));
    };
    let reader = method(&stream, "getReader")
        .ok_or_else(|| JsError::new(&format!("{path}: not a readable stream")))?
        .call0(&stream)
        .map_err(|e| fail("cannot read the stream", &e))?;
    let read = method(&reader, "read")
        .ok_or_else(|| JsError::new(&format!("{path}: the stream's reader has no read()")))?;
    loop {
        let p = read
            .call0(&reader)
            .map_err(|e| fail("reading failed", &e))?;
        let r = JsFuture::from(Promise::resolve(&p))
            .await
            .map_err(|e| fail("reading failed", &e))?;
        if field(&r, "done").and_then(|d| d.as_bool()) == Some(true) {
            return Ok(());
        }
        let chunk = field(&r, "value")
            .and_then(|c| c.dyn_into::<Uint8Array>().ok())
            .ok_or_else(|| {
                JsError::new(&format!(
                    "{path}: the stream gave something other than bytes"
                ))
            })?;
        copy(&chunk)?;
    }
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
    // Prompt embeddings (the bytes `encode` or `ptdit encode` wrote) instead of the prompts.
    if let Some(v) = field(o, "embeddings") {
        let bytes = v
            .dyn_into::<Uint8Array>()
            .map_err(|_| JsError::new("option `embeddings` must be a Uint8Array"))?;
        r.embeddings = Some(PromptEmbeddings::from_bytes(&bytes.to_vec()).map_err(js_err)?);
    }
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
    // Video frames or views; a model that declares its task refuses other counts by name.
    if let Some(v) = num("frames") {
        r.frames = count(v?, "frames")?;
    }
    if let Some(v) = num("cfg") {
        r.cfg = v? as f32;
    }
    // The step cache: "off", "light", "medium", "heavy" (or a RULE:THRESHOLD spec).
    if let Some(v) = text("cache") {
        r.cache = StepCache::parse(&v?).map_err(js_err)?;
    }
    Ok(r)
}

// The types of the JS API's objects, for the package's TypeScript declarations (wasm-bindgen
// writes the rest from the signatures below; `tests/npm` type-checks an app against them).
#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Options of `Engine.generate`; anything left out takes the model's default. */
export interface GenerateOptions {
  prompt?: string;
  negativePrompt?: string;
  seed?: number;
  steps?: number;
  /** Classifier-free guidance scale. */
  cfg?: number;
  width?: number;
  height?: number;
  /** Video frames or multi-view views (default: the model's). */
  frames?: number;
  /** Step cache: "off", "light", "medium", "heavy", or "RULE:THRESHOLD[,key=n...]". */
  cache?: string;
  /** Prompt embeddings from `Engine.encode` (or `ptdit encode`) instead of the prompts. */
  embeddings?: Uint8Array;
}

/** An RGBA image, as `new ImageData(data, width, height)` takes it. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

/** What `Engine.generate` resolves to: the picture to show (the first video frame, or a
 * multi-view model's views side by side) and every frame. */
export interface GeneratedImage extends RgbaImage {
  /** Every frame: one for an image, the video's frames, or the views in turn. */
  frames: RgbaImage[];
  /** Steps whose middle blocks the step cache skipped. */
  skippedSteps: number;
  /** The settings that made it: prompt, seed, steps, guidance, size, model, … */
  settings: [string, string][];
  /** As a PNG (enlarged as `ptdit generate` does) carrying `settings`: an animated PNG for
   * video, the views side by side for multi-view, as `ptdit generate` writes them. */
  png: Uint8Array;
}

/** A loaded model's defaults. */
export interface ModelDefaults {
  width: number;
  height: number;
  /** Frames (video) or views (multi-view); 1 for an image model. */
  frames: number;
  steps: number;
  cfg: number;
  /** What the model says it was trained for, or null where its config is silent. */
  task: "text-to-image" | "text-to-video" | "text-to-multi-view" | null;
}

/** One file of a model directory, or a function giving it when the engine comes to it. */
export type ModelFileSource = Uint8Array | ArrayBuffer | Blob | Response | ReadableStream<Uint8Array>;
export type ModelFile = ModelFileSource | (() => ModelFileSource | Promise<ModelFileSource>);

/** Called after each step with a small RGBA preview of the latents. */
export type StepCallback = (step: number, total: number, preview: RgbaImage) => void;
"#;

#[wasm_bindgen]
pub struct Engine {
    ctx: GpuContext,
    pipe: Option<TextToImage>,
    /// How the settings a PNG carries name the model loaded.
    model_name: String,
    kernels: String,
}

#[wasm_bindgen]
impl Engine {
    /// An engine on the browser's WebGPU adapter; fails with a clear message without WebGPU.
    pub async fn create() -> Result<Engine, JsError> {
        let ctx = GpuContext::new().await.map_err(js_err)?;
        Self::tuned(ctx).await
    }

    /// An engine on `ctx`, its kernel variants timed on this adapter and kept for the page's
    /// lifetime, or taken from a table given to [`Engine::set_tuning_cache`].
    async fn tuned(ctx: GpuContext) -> Result<Engine, JsError> {
        let tuned = crate::autotune::autotune(&ctx, &crate::autotune::Cache::Default)
            .await
            .map_err(js_err)?;
        Ok(Engine {
            ctx,
            pipe: None,
            model_name: String::new(),
            kernels: tuned.summary(),
        })
    }

    /// An engine on the page's own `GPUDevice` (a renderer's), so images can stay on that
    /// device. The engine never destroys it; it does install its own `onuncapturederror`
    /// handler on it (wgpu's), so set yours again afterwards if you had one.
    #[wasm_bindgen(js_name = onDevice)]
    pub async fn on_device(
        #[wasm_bindgen(unchecked_param_type = "object")] device: JsValue,
    ) -> Result<Engine, JsError> {
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

    /// The autotuner's choices as JSON, to keep across page loads (the demo puts it in the Cache
    /// API): measuring takes seconds on a software adapter, and this page measured only if no
    /// table from an earlier visit was given to `setTuningCache` before `create`/`onDevice`.
    #[wasm_bindgen(js_name = tuningCache)]
    pub fn tuning_cache() -> String {
        crate::autotune::memory_json()
    }

    /// Gives the autotuner a table `tuningCache` returned on an earlier visit; call it before
    /// `create` or `onDevice`. A table that is not one is refused with a message.
    #[wasm_bindgen(js_name = setTuningCache)]
    pub fn set_tuning_cache(json: &str) -> Result<(), JsError> {
        crate::autotune::set_memory_json(json).map_err(js_err)
    }

    /// The kernel variants the autotuner chose for this adapter, with their measured speeds.
    pub fn kernels(&self) -> String {
        self.kernels.clone()
    }

    /// Destroys the engine's own device, as a driver reset loses one: the way a page tests its
    /// recovery (every later call fails with "the GPU device was lost"; the demo then starts a
    /// new engine). A device lent with `onDevice` is the page's to destroy: refused.
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) -> Result<(), JsError> {
        if self.ctx.ownership == crate::gpu::Ownership::Borrowed {
            return Err(JsError::new(
                "loseDevice: the device was lent by the page (onDevice); destroy it there",
            ));
        }
        self.ctx.device.destroy();
        Ok(())
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

    /// Loads a model from its files: a `Map` of relative path (`"transformer/config.json"`,
    /// …) to the file, as a `Uint8Array`, an `ArrayBuffer`, a `Blob`/`File`, a `Response`, a
    /// `ReadableStream` of bytes, or a function returning one of those (or a promise of one),
    /// called when the engine comes to that file — so a download can start only then.
    ///
    /// Weight files (`*.safetensors`) are streamed: each piece is converted and written to its
    /// GPU buffer as it arrives, so no file is ever whole in wasm memory, and a header's wrong
    /// shapes or unexpected keys fail before the rest is downloaded. `onProgress(bytes, path)`
    /// reports the weight bytes read so far. Resolves once every weight is on the GPU.
    /// `name` is how the settings a PNG carries name the model (`ptdit generate --from` maps
    /// "built-in video model" and "built-in multi-view model" back to the CLI's own copies).
    #[wasm_bindgen(js_name = loadModel)]
    pub async fn load_model(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Map<string, ModelFile>")] files: js_sys::Map,
        #[wasm_bindgen(unchecked_param_type = "((bytes: number, path: string) => void) | null")]
        on_progress: Option<Function>,
        name: Option<String>,
    ) -> Result<(), JsError> {
        let mut small = BTreeMap::new();
        let mut weights = Vec::new();
        let mut bad = false;
        files.for_each(&mut |v, k| match k.as_string() {
            Some(k) => weights.push((k, v)),
            None => bad = true,
        });
        if bad {
            return Err(JsError::new(
                "loadModel takes a Map whose keys are paths (strings)",
            ));
        }
        weights.sort_by(|a, b| a.0.cmp(&b.0));
        let (weights, rest): (Vec<_>, Vec<_>) = weights
            .into_iter()
            .partition(|(k, _)| k.ends_with(".safetensors"));
        for (path, v) in rest {
            let mut bytes = Vec::new();
            read_file(&path, v, |piece| {
                bytes.extend_from_slice(piece);
                Ok(())
            })
            .await?;
            small.insert(path, bytes);
        }
        let names: Vec<String> = weights.iter().map(|(k, _)| k.clone()).collect();
        let mut stream =
            model_dir::Streamed::new(&self.ctx, &small, &names, DType::F32).map_err(js_err)?;
        for (path, v) in weights {
            read_file(&path, v, |piece| {
                stream.push(&path, piece).map_err(js_err)?;
                if let Some(f) = &on_progress {
                    let _ = f.call2(
                        &JsValue::NULL,
                        &JsValue::from(stream.bytes() as f64),
                        &JsValue::from_str(&path),
                    );
                }
                Ok(())
            })
            .await?;
            stream.end(&path).map_err(js_err)?;
        }
        let components = stream.finish().map_err(js_err)?;
        self.pipe = Some(TextToImage::new(&self.ctx, components).map_err(js_err)?);
        self.model_name = name.unwrap_or_else(|| "a model directory loaded by the page".into());
        Ok(())
    }

    /// Loads the default model compiled into the engine (emoji, 32×32 px).
    #[wasm_bindgen(js_name = loadDefaultModel)]
    pub fn load_default_model(&mut self) -> Result<(), JsError> {
        let components = model_dir::from_files(&default_model::files()).map_err(js_err)?;
        self.pipe = Some(TextToImage::new(&self.ctx, components).map_err(js_err)?);
        self.model_name = BUILT_IN_MODEL.into();
        Ok(())
    }

    /// Builds the kernels of a default-size request now, so the first `generate` starts at once
    /// (call it after loading, while the page shows "loading").
    pub async fn warm(&self) -> Result<(), JsError> {
        let pipe = self
            .pipe
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded: call loadModel first"))?;
        pipe.warm().await.map_err(js_err)
    }

    /// The loaded model's defaults: `{width, height, frames, steps, cfg, task}`.
    #[wasm_bindgen(unchecked_return_type = "ModelDefaults")]
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
            ("frames", r.frames as f64),
            ("steps", r.steps as f64),
            ("cfg", r.cfg as f64),
        ] {
            Reflect::set(&o, &JsValue::from_str(k), &JsValue::from(v))
                .map_err(|_| JsError::new("cannot build the defaults object"))?;
        }
        let task = pipe
            .task()
            .map_or(JsValue::NULL, |t| JsValue::from_str(t.name()));
        Reflect::set(&o, &JsValue::from_str("task"), &task)
            .map_err(|_| JsError::new("cannot build the defaults object"))?;
        Ok(o.into())
    }

    /// The text encoder's outputs for `prompt` and `negativePrompt`, as the bytes of a
    /// safetensors file: `generate({ embeddings })` takes them instead of the prompts, also on
    /// a model loaded without a text encoder.
    pub async fn encode(&self, prompt: &str, negative_prompt: &str) -> Result<Vec<u8>, JsError> {
        let pipe = self
            .pipe
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded: call loadModel first"))?;
        let e = pipe.encode(prompt, negative_prompt).await.map_err(js_err)?;
        e.to_bytes(prompt, negative_prompt).map_err(js_err)
    }

    /// Generates an image. `onStep(step, total, preview)` is called after each step with a
    /// small RGBA preview of the latents; an aborted `signal` cancels between steps. Besides
    /// `width`, `height` and `data`, the image has `skippedSteps`, `settings` (`[key, value]`
    /// pairs) and `png`: the image as a PNG enlarged as `ptdit generate` enlarges it, with
    /// the settings as text chunks (`ptdit generate --from FILE.png` repeats them).
    #[wasm_bindgen(unchecked_return_type = "GeneratedImage")]
    pub async fn generate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GenerateOptions")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "StepCallback | null")] on_step: Option<Function>,
        signal: Option<web_sys::AbortSignal>,
    ) -> Result<JsValue, JsError> {
        let pipe = self
            .pipe
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded: call loadModel first"))?;
        let req = request(&options, pipe.request(""))?;
        let (frames, report) = pipe
            .generate_report(
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
        // What `ptdit generate` writes to its --out.
        let shown = Frame::written(pipe.task(), &frames).map_err(js_err)?;
        let img = image(&shown[0])?;
        let all = js_sys::Array::new();
        for f in &frames {
            all.push(&image(f)?);
        }
        let cache = match field(&options, "cache").and_then(|v| v.as_string()) {
            Some(c) => c,
            None => "off".into(),
        };
        let upscale = limits::factor_for(first.width, first.height, 128);
        let enlarged = shown
            .iter()
            .map(|f| f.upscale(upscale))
            .collect::<crate::Result<Vec<_>>>()
            .map_err(js_err)?;
        let model = self.model_name.clone();
        let settings = ImageSettings::of(&req, model, pipe.float(), &cache, upscale);
        let text = settings.to_text();
        let bytes = png::encode_with_text(&enlarged, &text).map_err(js_err)?;
        let pairs = js_sys::Array::new();
        for (k, v) in &text {
            pairs.push(&js_sys::Array::of2(
                &JsValue::from_str(k),
                &JsValue::from_str(v),
            ));
        }
        for (k, v) in [
            ("settings", JsValue::from(pairs)),
            ("frames", all.into()),
            ("png", Uint8Array::from(&bytes[..]).into()),
        ] {
            Reflect::set(&img, &JsValue::from_str(k), &v)
                .map_err(|_| JsError::new("cannot annotate the image"))?;
        }
        // How many steps the step cache skipped, on the image object.
        Reflect::set(
            &img,
            &JsValue::from_str("skippedSteps"),
            &JsValue::from(report.skipped_steps as u32),
        )
        .map_err(|_| JsError::new("cannot annotate the image"))?;
        Ok(img)
    }
}
