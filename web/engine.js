// The demo's engine, wherever it runs: `loadEngine(onStatus)` resolves to
// `{ where, adapter, kernels, which, defaults, load(task) -> {which, defaults},
// generate(opts, onStep) -> image, cancel(), loseDevice(), close() }`.
// Each task's model: "image" is a model/ folder next to the page or else the emoji model built
// into the engine; "video" and "views" are models/video/ and models/views/ next to the page
// (web/build.sh copies them from assets/), downloaded when first chosen and kept in the Cache
// API, so the first visit loads the engine and the image model only.
// Loading the model and generating are the same code in a worker and on the page
// (`startEngine`), so the page can fall back to its own thread where a worker has no WebGPU.
import init, { Engine } from "./ptdit.js";

// Counts the bytes that pass through a stream.
const counted = (body, onBytes) => body.pipeThrough(new TransformStream({
  transform(chunk, out) { onBytes(chunk.length); out.enqueue(chunk); },
}));

// A model file as a Response whose body the engine reads as a stream. The first time, the
// download is streamed into the Cache API (to disk, not memory) and the engine then streams it
// from there; later visits read the cache only.
async function cachedResponse(cache, url, onBytes) {
  const download = async () => {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return new Response(counted(res.body, onBytes), { headers: res.headers });
  };
  if (!cache) return download();
  const hit = await cache.match(url);
  if (hit) return hit;
  try {
    await cache.put(url, await download());
  } catch (e) {
    // A download that broke off: nothing of it may stay in the cache.
    await cache.delete(url).catch(() => {});
    throw new Error(`${url}: the download broke off (${e.message || e})`);
  }
  const res = await cache.match(url);
  if (!res) throw new Error(`${url}: the browser did not keep it in the cache`);
  return res;
}

// Where each task's model lives next to the page, and how a PNG's settings name it (the names
// `ptdit generate --from` maps to the CLI's own copies of the built-in models).
const TASKS = {
  image: { folder: "model/" },
  video: { folder: "models/video/", name: "built-in video model" },
  views: { folder: "models/views/", name: "built-in multi-view model" },
};

async function loadModel(engine, base, onStatus, task = "image") {
  const where = TASKS[task];
  if (!where) throw new Error(`no task "${task}": image, video or views`);
  const folder = where.folder;
  const list = await fetch(new URL(`${folder}files.json`, base)).catch(() => null);
  if (!list || !list.ok) {
    if (task !== "image") {
      const err = new Error(`this demo has no ${task} model (${folder} is not next to the page)`);
      err.duringModel = true;
      throw err;
    }
    engine.loadDefaultModel();
    return "the built-in emoji model";
  }
  const paths = await list.json();
  const cache = "caches" in self ? await caches.open("ptdit-model-v1") : null;
  const mib = (b) => (b / 1048576).toFixed(1);
  let downloaded = 0;
  const files = new Map();
  for (const path of paths) {
    // A function: the engine opens each file when it comes to it, so one download runs at a
    // time and nothing waits in memory.
    files.set(path, () => cachedResponse(cache, new URL(`${folder}${path}`, base), (b) => {
      downloaded += b;
      onStatus(`downloading the model… ${mib(downloaded)} MiB`);
    }));
  }
  try {
    await engine.loadModel(files, (bytes) => onStatus(`weights to the GPU… ${mib(bytes)} MiB`), where.name);
  } catch (e) {
    // A file that arrived whole but wrong (cut short by a proxy, say) is in the cache now:
    // drop every file of the model, so that the next visit downloads them again.
    if (cache) await Promise.all(paths.map((p) => cache.delete(new URL(`${folder}${p}`, base)).catch(() => {})));
    const err = new Error(`loading the model failed: ${e.message || e}; nothing was kept, reload the page to try again`);
    err.duringModel = true;
    throw err;
  }
  return folder;
}

// The autotuner's table, kept in the Cache API (which workers have, unlike localStorage) so
// that a later visit measures nothing: seconds on a software adapter.
const TUNING = "ptdit-tuning.json";

async function createTuned(base, onStatus) {
  const store = "caches" in self ? await caches.open("ptdit-tuning-v1").catch(() => null) : null;
  const key = new URL(TUNING, base).href;
  const saved = store && await store.match(key);
  const savedText = saved ? await saved.text() : null;
  if (savedText !== null) {
    try { Engine.setTuningCache(savedText); }
    catch (e) { console.warn(`ptdit: the saved tuning was not usable (${e.message}); measuring again`); }
  } else {
    onStatus("timing the kernels on this GPU (once per browser)…");
  }
  const engine = await Engine.create();
  const table = Engine.tuningCache();
  if (store && table !== savedText) {
    const body = new Response(table, { headers: { "content-type": "application/json" } });
    await store.put(key, body).catch((e) => console.warn(`ptdit: the tuning was not saved (${e.message})`));
  }
  return engine;
}

/** The engine on this thread (a worker's or the page's). */
export async function startEngine(base, onStatus) {
  if (!navigator.gpu) throw new Error("no WebGPU on this thread");
  await init();
  const engine = await createTuned(base, onStatus);
  const which = await loadModel(engine, base, onStatus);
  // Kernels are compiled now rather than on the first click (over a second on a software GPU).
  onStatus("compiling kernels…");
  await engine.warm();
  let abort = null;
  return {
    adapter: engine.adapter(),
    kernels: engine.kernels(),
    which,
    defaults: engine.defaults(),
    /** Another task's model in place of the one loaded (on the same engine and device). */
    async load(task) {
      const which = await loadModel(engine, base, onStatus, task);
      onStatus("compiling kernels…");
      await engine.warm();
      return { which, defaults: engine.defaults() };
    },
    async generate(opts, onStep) {
      abort = new AbortController();
      return engine.generate(opts, onStep, abort.signal);
    },
    cancel() { if (abort) abort.abort(); },
    // Tests of recovery: destroys the device as a driver reset would.
    loseDevice() { engine.loseDevice(); },
    close() { engine.free(); },
  };
}

/** A worker running `startEngine`; rejects if the worker cannot start one. */
function workerEngine(onStatus) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
    let pending = null;
    let loading = null;
    worker.onerror = (e) => reject(new Error(e.message || "the worker failed to start"));
    worker.onmessage = ({ data: m }) => {
      if (m.type === "status") onStatus(m.text);
      else if (m.type === "failed") {
        worker.terminate();
        reject(Object.assign(new Error(m.message), { duringModel: m.duringModel }));
      }
      else if (m.type === "ready") resolve({
        where: "a worker", adapter: m.adapter, kernels: m.kernels, which: m.which, defaults: m.defaults,
        load(task) {
          return new Promise((res, rej) => { loading = { res, rej }; worker.postMessage({ type: "load", task }); });
        },
        generate(opts, onStep) {
          return new Promise((res, rej) => { pending = { res, rej, onStep }; worker.postMessage({ type: "generate", opts }); });
        },
        cancel() { worker.postMessage({ type: "cancel" }); },
        loseDevice() { worker.postMessage({ type: "lose-device" }); },
        close() { worker.terminate(); },
      });
      else if (m.type === "step" && pending) pending.onStep(m.step, m.total, m.preview);
      else if (m.type === "done" && pending) { pending.res(m.image); pending = null; }
      else if (m.type === "error" && pending) { pending.rej(new Error(m.message)); pending = null; }
      else if (m.type === "loaded" && loading) { loading.res({ which: m.which, defaults: m.defaults }); loading = null; }
      else if (m.type === "load-failed" && loading) { loading.rej(new Error(m.message)); loading = null; }
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
      // The page runs the engine only where a worker cannot; a model that failed to load
      // would fail there too.
      if (e.duringModel) throw e;
      console.warn(`ptdit: no engine in a worker (${e.message}); running on the page`);
    }
  }
  const local = await startEngine(new URL(".", import.meta.url).href, onStatus);
  return { where: "the page", ...local };
}
