// The demo page: starts the engine in a worker (or on the page where a worker has no WebGPU),
// loads a model (a model/ folder next to the page, cached with the Cache API, or else the emoji
// model built into the engine), then generates with a live preview every step. The task choice
// loads the video or multi-view model instead (engine.js says where they live); a video plays
// on the canvas, a multi-view model's views are shown side by side.
import { loadEngine } from "./engine.js";

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
};

// Example prompts of each task's built-in model.
const EXAMPLES = {
  image: "red apple",
  video: "rocket moving up",
  views: "a red cube on a blue sphere",
};

// The video being played: its frames, and the timer that shows them in turn.
let playing = null;
const stop = () => { if (playing) clearInterval(playing); playing = null; };

function draw(image) {
  const canvas = $("output");
  // The canvas keeps the image's shape (views side by side are wider than tall).
  const height = Math.round(canvas.width * image.height / image.width);
  if (canvas.height !== height) {
    canvas.height = height;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  const tmp = document.createElement("canvas");
  tmp.width = image.width;
  tmp.height = image.height;
  tmp.getContext("2d").putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

async function main() {
  if (!navigator.gpu) {
    status("This browser has no WebGPU. Use a recent Chrome, Edge or Safari (or Firefox with WebGPU enabled).", true);
    return;
  }
  let engine;
  try {
    engine = await loadEngine((text) => status(text));
  } catch (e) {
    if (e.duringModel) status(e.message, true);
    else status(`WebGPU is present but no adapter could be used: ${e.message || e}`, true);
    return;
  }
  let defaults = engine.defaults;
  let task = "image";
  $("steps").value = defaults.steps;
  const shape = () => defaults.frames > 1 ? `, ${defaults.frames} ${task === "views" ? "views" : "frames"}` : "";
  const ready = () => `ready on ${engine.adapter} in ${engine.where} with ${engine.which} (${defaults.width}×${defaults.height}${shape()})`;
  status(ready());
  document.body.dataset.engine = engine.where;
  document.body.dataset.kernels = engine.kernels;
  window.ptditLoseDevice = () => engine.loseDevice(); // for tests of the recovery below
  // A lost device (a driver reset, the GPU taken back) takes the engine with it: start a new
  // one, with the model from the cache or built in, instead of asking for a reload.
  const restart = async (why) => {
    status(`${why}; restarting the engine…`, true);
    engine.close();
    engine = await loadEngine((text) => status(`${why}; restarting the engine: ${text}`, true));
    // The new engine starts with the image model: load the task's again.
    if (task !== "image") ({ which: engine.which, defaults } = await engine.load(task));
    status(`restarted after a lost GPU device: ${ready()}`);
    document.body.dataset.restarts = `${Number(document.body.dataset.restarts || 0) + 1}`;
  };
  $("generate").disabled = false;
  $("task").disabled = false;
  $("task").onchange = async () => {
    const want = $("task").value;
    stop();
    $("generate").disabled = true;
    $("task").disabled = true;
    try {
      ({ which: engine.which, defaults } = await engine.load(want));
      task = want;
      $("steps").value = defaults.steps;
      $("prompt").value = EXAMPLES[task];
      status(ready());
    } catch (e) {
      $("task").value = task; // the model loaded before is still the one in use
      status(`${e.message || e}`, true);
    } finally {
      $("generate").disabled = false;
      $("task").disabled = false;
      document.body.dataset.task = task;
    }
  };
  $("cancel").onclick = () => engine.cancel();
  // The PNG the engine wrote, with the settings as text chunks.
  let lastPng = null;
  $("download").onclick = () => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([lastPng], { type: "image/png" }));
    a.download = `ptdit-${task}-${$("seed").value}.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  };
  $("generate").onclick = async () => {
    stop();
    $("generate").disabled = true;
    $("task").disabled = true;
    $("cancel").disabled = false;
    $("progress").value = 0;
    const t0 = performance.now();
    try {
      const opts = {
        prompt: $("prompt").value,
        seed: Number($("seed").value),
        steps: Number($("steps").value),
        cache: $("cache").value,
        width: Number(document.body.dataset.width || defaults.width),
        height: Number(document.body.dataset.height || defaults.height),
      };
      const image = await engine.generate(opts, (step, total, preview) => {
        $("progress").value = step / total;
        status(`step ${step}/${total}`);
        draw(preview);
      });
      draw(image);
      // A video plays in a loop; views stay side by side (the image is all of them).
      if (task === "video" && image.frames.length > 1) {
        let i = 0;
        playing = setInterval(() => {
          i = (i + 1) % image.frames.length;
          draw(image.frames[i]);
          document.body.dataset.shownFrame = `${i}`;
        }, 1000 / 6);
      }
      window.ptditLastImage = image; // for tests: the image before scaling to the canvas
      lastPng = image.png;
      $("download").disabled = false;
      $("progress").value = 1;
      const skipped = image.skippedSteps ? `, step cache skipped ${image.skippedSteps} of ${opts.steps} steps` : "";
      status(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s${skipped}`);
      document.body.dataset.done = "1";
    } catch (e) {
      const msg = `${e.message || e}`;
      if (/cancelled/.test(msg)) status("cancelled");
      else if (/device.*lost|lost.*device/i.test(msg)) {
        try { await restart(msg); } catch (e2) { status(`${msg}; restarting the engine failed: ${e2.message || e2}`, true); }
      }
      else status(msg, true);
    } finally {
      $("generate").disabled = false;
      $("task").disabled = false;
      $("cancel").disabled = true;
    }
  };
}

main().catch((e) => status(`${e}`, true));
