// The demo's engine, wherever it runs: `loadEngine(onStatus)` resolves to
// `{ where, adapter, kernels, which, defaults, generate(opts, onStep) -> image, cancel() }`.
// Loading the model and generating are the same code in a worker and on the page
// (`startEngine`), so the page can fall back to its own thread where a worker has no WebGPU.
import init, { Engine } from "./ptdit.js";

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

async function loadModel(engine, base, onStatus) {
  const list = await fetch(new URL("model/files.json", base)).catch(() => null);
  if (!list || !list.ok) {
    engine.loadDefaultModel();
    return "the built-in emoji model";
  }
  const paths = await list.json();
  const cache = "caches" in self ? await caches.open("ptdit-model-v1") : null;
  const files = new Map();
  let loaded = 0;
  for (const path of paths) {
    files.set(path, await fetchCached(cache, new URL(`model/${path}`, base), (b) => {
      loaded += b;
      onStatus(`loading model… ${(loaded / 1048576).toFixed(1)} MiB`);
    }));
  }
  engine.loadModel(files);
  return "model/";
}

/** The engine on this thread (a worker's or the page's). */
export async function startEngine(base, onStatus) {
  if (!navigator.gpu) throw new Error("no WebGPU on this thread");
  await init();
  const engine = await Engine.create();
  const which = await loadModel(engine, base, onStatus);
  let abort = null;
  return {
    adapter: engine.adapter(),
    kernels: engine.kernels(),
    which,
    defaults: engine.defaults(),
    async generate(opts, onStep) {
      abort = new AbortController();
      return engine.generate(opts, onStep, abort.signal);
    },
    cancel() { if (abort) abort.abort(); },
  };
}

/** A worker running `startEngine`; rejects if the worker cannot start one. */
function workerEngine(onStatus) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
    let pending = null;
    worker.onerror = (e) => reject(new Error(e.message || "the worker failed to start"));
    worker.onmessage = ({ data: m }) => {
      if (m.type === "status") onStatus(m.text);
      else if (m.type === "failed") { worker.terminate(); reject(new Error(m.message)); }
      else if (m.type === "ready") resolve({
        where: "a worker", adapter: m.adapter, kernels: m.kernels, which: m.which, defaults: m.defaults,
        generate(opts, onStep) {
          return new Promise((res, rej) => { pending = { res, rej, onStep }; worker.postMessage({ type: "generate", opts }); });
        },
        cancel() { worker.postMessage({ type: "cancel" }); },
      });
      else if (m.type === "step" && pending) pending.onStep(m.step, m.total, m.preview);
      else if (m.type === "done" && pending) { pending.res(m.image); pending = null; }
      else if (m.type === "error" && pending) { pending.rej(new Error(m.message)); pending = null; }
    };
    worker.postMessage({ type: "start", base: new URL(".", import.meta.url).href });
  });
}

/** The engine in a worker (the page stays free while it works), else on the page. */
export async function loadEngine(onStatus) {
  if ("Worker" in self) {
    try {
      return await workerEngine(onStatus);
    } catch (e) {
      console.warn(`ptdit: no engine in a worker (${e.message}); running on the page`);
    }
  }
  const local = await startEngine(new URL(".", import.meta.url).href, onStatus);
  return { where: "the page", ...local };
}
