// The demo page: loads the engine and a model (a model/ folder next to the page, cached with the
// Cache API, or else the emoji model built into the engine), then generates with a live preview
// every step. All GPU work is submitted asynchronously, so
// the page stays responsive while the browser runs it.
import init, { Engine } from "./ptdit.js";

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
};

function draw(image) {
  const canvas = $("output");
  const ctx = canvas.getContext("2d");
  const tmp = document.createElement("canvas");
  tmp.width = image.width;
  tmp.height = image.height;
  tmp.getContext("2d").putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

async function fetchCached(cache, url, onBytes) {
  let res = cache && (await cache.match(url));
  if (!res) {
    res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    if (cache) await cache.put(url, res.clone());
  }
  // Read as a stream so progress shows for large files.
  const reader = res.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    onBytes(value.length);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

async function loadModel(engine) {
  const list = await fetch("model/files.json").catch(() => null);
  if (!list || !list.ok) {
    engine.loadDefaultModel();
    return "the built-in emoji model";
  }
  const paths = await list.json();
  const cache = "caches" in self ? await caches.open("ptdit-model-v1") : null;
  const files = new Map();
  let loaded = 0;
  for (const path of paths) {
    files.set(path, await fetchCached(cache, `model/${path}`, (b) => {
      loaded += b;
      status(`loading model… ${(loaded / 1048576).toFixed(1)} MiB`);
    }));
  }
  engine.loadModel(files);
  return "model/";
}

async function main() {
  if (!navigator.gpu) {
    status("This browser has no WebGPU. Use a recent Chrome, Edge or Safari (or Firefox with WebGPU enabled).", true);
    return;
  }
  await init();
  let engine;
  try {
    engine = await Engine.create();
  } catch (e) {
    status(`WebGPU is present but no adapter could be used: ${e}`, true);
    return;
  }
  const which = await loadModel(engine);
  const defaults = engine.defaults();
  $("steps").value = defaults.steps;
  status(`ready on ${engine.adapter()} with ${which} (${defaults.width}×${defaults.height})`);
  $("generate").disabled = false;
  let abort = null;
  $("cancel").onclick = () => abort && abort.abort();
  $("generate").onclick = async () => {
    abort = new AbortController();
    $("generate").disabled = true;
    $("cancel").disabled = false;
    $("progress").value = 0;
    const t0 = performance.now();
    try {
      const opts = {
        prompt: $("prompt").value,
        seed: Number($("seed").value),
        steps: Number($("steps").value),
        width: Number(document.body.dataset.width || defaults.width),
        height: Number(document.body.dataset.height || defaults.height),
      };
      const image = await engine.generate(opts, (step, total, preview) => {
        $("progress").value = step / total;
        status(`step ${step}/${total}`);
        draw(preview);
      }, abort.signal);
      draw(image);
      window.ptditLastImage = image; // for tests: the image before scaling to the canvas
      $("progress").value = 1;
      status(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      document.body.dataset.done = "1";
    } catch (e) {
      status(`${e}`, true);
    } finally {
      $("generate").disabled = false;
      $("cancel").disabled = true;
    }
  };
}

main().catch((e) => status(`${e}`, true));
