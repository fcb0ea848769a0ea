// Opens the built web demo (served at $URL), checks the engine started in a worker, types a
// prompt, clicks Generate, waits for the image, checks the canvas holds a real image (not
// blank) and that previews were drawn, saves a screenshot ($SHOT), cancels a second generation
// and reloads the page, whose engine must take its kernel choice from the first visit's (with
// LOSE_DEVICE=1 it then loses its device and must restart its engine without a reload; with
// PTDIT=path/to/ptdit the Download PNG must regenerate natively with `ptdit generate --from`). With
// EXPECT_EMOJI=1 (the built-in model) the image must be an emoji-like picture: not blank, not
// noise, with the white background every training image has. With TASKS=1 it also switches
// to the video and multi-view models (see below). PAGE_CHECKS=0 leaves out the cancel and the
// second visit, which test the page's code, not the model it loads (a second pass over another
// model directory needs them once only). Exits non-zero with the reason on any failure.
import { launch } from "./chromium.mjs";

const url = process.env.URL ?? "http://127.0.0.1:8765/index.html";
const shot = process.env.SHOT ?? "demo.png";
const fail = (msg) => { console.error(`e2e: FAIL: ${msg}`); process.exit(1); };

const browser = await launch();
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  // For the comparisons below, on every load of the page: a PNG given as base64, decoded to
  // its RGBA pixels (`{width, height, data}`; an animated PNG's first frame).
  await page.addInitScript(() => {
    window.__pngPixels = async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width; c.height = img.height;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      return ctx.getImageData(0, 0, img.width, img.height);
    };
  });
  const readyIn = async () => {
    const t0 = Date.now();
    await page.waitForFunction(() => !document.getElementById("generate").disabled
        || document.getElementById("status").className === "error", null, { timeout: 180000 });
    return (Date.now() - t0) / 1000;
  };
  // CUT_ONCE=1: the first weight file arrives cut in half. The page must say so, keep nothing
  // of the model in its cache, and load it whole on the next visit (the retry).
  if (process.env.CUT_ONCE === "1") {
    let cut = false;
    await page.context().route("**/model/**/*.safetensors", async (route) => {
      if (cut) return route.continue();
      cut = true;
      const res = await route.fetch();
      const body = await res.body();
      await route.fulfill({ response: res, body: body.subarray(0, body.length >> 1) });
    });
    await page.goto(url);
    await readyIn();
    const error = await page.textContent("#status");
    if (!/loading the model failed.*reload the page/.test(error)) fail(`a cut download was not reported: ${error}`);
    const kept = await page.evaluate(async () => {
      const c = await caches.open("ptdit-model-v1");
      return (await c.keys()).map((r) => r.url).filter((u) => u.endsWith(".safetensors"));
    });
    if (kept.length) fail(`a cut download left files in the cache: ${kept}`);
    console.log(`e2e: a cut download: "${error.slice(0, 120)}…", nothing cached; retrying`);
  }
  await page.goto(url);
  const firstVisit = await readyIn();
  const ready = await page.textContent("#status");
  if (!ready.startsWith("ready")) fail(`the page did not get ready: ${ready}`);
  // EXPECT_WHICH: the model the page must have loaded (e.g. "model/", streamed from files).
  if (process.env.EXPECT_WHICH && !ready.includes(`with ${process.env.EXPECT_WHICH}`))
    fail(`the page did not load ${process.env.EXPECT_WHICH}: ${ready}`);
  // The engine runs in a worker so the page stays free (the page itself is only a fallback for
  // browsers without WebGPU in workers, which Chromium has).
  const where = await page.evaluate(() => document.body.dataset.engine);
  console.log(`e2e: ${ready}`);
  if (where !== "a worker") fail(`the engine runs in ${where}, not in a worker`);
  await page.fill("#prompt", process.env.PROMPT ?? "red apple");
  if (process.env.STEPS) await page.fill("#steps", process.env.STEPS);
  // Count preview draws: each step's callback updates the progress bar.
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.getElementById("progress");
    const d = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value");
    Object.defineProperty(bar, "value", { set(v) { window.__progress.push(v); d.set.call(this, v); }, get() { return d.get.call(this); } });
  });
  await page.click("#generate");
  await page.waitForFunction(() => document.body.dataset.done === "1"
      || document.getElementById("status").className === "error", null, { timeout: 600000 });
  const status = await page.textContent("#status");
  if (!status.startsWith("done")) fail(`generation failed: ${status}`);
  const progress = await page.evaluate(() => window.__progress);
  if (progress.filter((v) => v > 0 && v < 1).length < 2) fail(`no per-step previews (progress ${progress})`);
  const stats = await page.evaluate(() => {
    const c = document.getElementById("output");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let sum = 0, sum2 = 0, n = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) {
      const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
      sum += v; sum2 += v * v; n++;
      colours.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
    }
    const mean = sum / n;
    return { mean, std: Math.sqrt(sum2 / n - mean * mean), colours: colours.size };
  });
  if (process.env.EXPECT_EMOJI === "1") {
    // The same three checks as tests/default_model.rs: not blank (std > 20), not noise
    // (neighbour differences / variance < 0.15; noise gives 1.0) and the emoji's white
    // background (>= 30 % of border pixels near-white; noise gives 2.5 %).
    const e = await page.evaluate(() => {
      const { width: w, height: h, data } = window.ptditLastImage;
      const px = (x, y, c) => data[(y * w + x) * 4 + c];
      let sum = 0, sum2 = 0, n = 0, d2 = 0, nd = 0, white = 0, border = 0;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          const v = px(x, y, c); sum += v; sum2 += v * v; n++;
          if (x < w - 1) { d2 += (v - px(x + 1, y, c)) ** 2; nd++; }
        }
        if (x < 2 || y < 2 || x >= w - 2 || y >= h - 2) {
          border++;
          if ([0, 1, 2].every((c) => px(x, y, c) >= 230)) white++;
        }
      }
      const mean = sum / n, variance = sum2 / n - mean * mean;
      return { std: Math.sqrt(variance), ratio: d2 / nd / (2 * variance), white: white / border };
    });
    console.log(`e2e: image std ${e.std.toFixed(1)}, neighbour ratio ${e.ratio.toFixed(3)}, white border ${e.white.toFixed(3)}`);
    if (e.std <= 20) fail("the image is blank");
    if (e.ratio >= 0.15) fail("the image looks like noise");
    if (e.white < 0.3) fail("the image has no emoji background (white border)");
  }
  if (process.env.NATIVE_PNG) {
    // Same seed and prompt on the native CLI: the images must agree (see the tolerance below).
    const fs = await import("node:fs");
    const b64 = fs.readFileSync(process.env.NATIVE_PNG).toString("base64");
    const cmp = await page.evaluate(async (b64) => {
      const img = await window.__pngPixels(b64);
      const native = img.data;
      const web = window.ptditLastImage;
      if (web.width !== img.width || web.height !== img.height) return { error: `sizes differ: ${web.width}x${web.height} vs ${img.width}x${img.height}` };
      let max = 0, sum = 0, n = 0;
      for (let i = 0; i < native.length; i += 4) {
        for (let k = 0; k < 3; k++) {
          const d = Math.abs(native[i + k] - web.data[i + k]);
          max = Math.max(max, d); sum += d; n++;
        }
      }
      return { max, mean: sum / n };
    }, b64);
    if (cmp.error) fail(cmp.error);
    console.log(`e2e: browser vs native (same seed): max |diff| ${cmp.max} levels, mean ${cmp.mean.toFixed(3)}`);
    // Both run f32 arithmetic (llvmpipe natively, SwiftShader here); they differ by rounding
    // (~1e-6 relative), which moves a pixel by at most one 8-bit level where a value sits on a
    // rounding boundary. 2 levels allow for that and the GPUs' exp/sin ulps, and still catch any
    // real difference in the computation, which shows up as tens of levels.
    if (cmp.max > 2) fail(`the browser and native images differ by up to ${cmp.max} levels`);
  }
  if (process.env.PTDIT) {
    // Download PNG: the file carries its settings, and `ptdit generate --from` on it gives the
    // same image natively (the tolerance above; the download is enlarged 4x, bilinear).
    const fs = await import("node:fs");
    const { execFileSync } = await import("node:child_process");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    const file = "target/e2e-download.png", again = "target/e2e-download-regenerated.png";
    await download.saveAs(file);
    const info = execFileSync(process.env.PTDIT, ["info", file]).toString();
    const steps = process.env.STEPS ?? "30";
    if (!/^prompt +red apple$/m.test(info) || !new RegExp(`^steps +${steps}$`, "m").test(info)) fail(`the downloaded PNG lacks its settings:\n${info}`);
    execFileSync(process.env.PTDIT, ["generate", "--from", file, "--out", again]);
    const [a, b] = [file, again].map((f) => fs.readFileSync(f).toString("base64"));
    const d = await page.evaluate(async ([a, b]) => {
      const [x, y] = [await window.__pngPixels(a), await window.__pngPixels(b)];
      if (x.width !== y.width || x.height !== y.height) return { error: `sizes differ: ${x.width}x${x.height} vs ${y.width}x${y.height}` };
      let max = 0;
      for (let i = 0; i < x.data.length; i++) max = Math.max(max, Math.abs(x.data[i] - y.data[i]));
      return { max, size: `${x.width}x${x.height}` };
    }, [a, b]);
    if (d.error) fail(d.error);
    console.log(`e2e: Download PNG (${d.size}) regenerated natively with --from: max |diff| ${d.max} levels`);
    if (d.max > 2) fail(`--from on the downloaded PNG gave another image (${d.max} levels)`);
  }
  await page.screenshot({ path: shot });
  console.log(`e2e: ${status}; canvas mean ${stats.mean.toFixed(1)}, std ${stats.std.toFixed(1)}, ${stats.colours} colours; screenshot ${shot}`);
  if (stats.std < 2 || stats.colours < 16) fail("the canvas is blank");

  // TASKS=1: the task choice loads the video and the multi-view model (files next to the page),
  // each generates its frames (TASK_STEPS steps, 1 by default: the wiring, not the pictures,
  // which tests/native/default_model.rs checks), a video plays on the canvas and the views are
  // side by side; with NATIVE_VIDEO / NATIVE_VIEWS (the CLI's output for the same prompt and
  // seed) the browser's pictures must be the native ones (the tolerance above).
  if (process.env.TASKS === "1") {
    const native = async (file) => {
      const fs = await import("node:fs");
      return fs.readFileSync(file).toString("base64");
    };
    for (const [task, prompt, frames, width, file] of [
      ["video", "rocket moving up", 6, 32, process.env.NATIVE_VIDEO],
      ["views", "a red cube on a blue sphere", 4, 128, process.env.NATIVE_VIEWS],
    ]) {
      await page.selectOption("#task", task);
      await page.waitForFunction((t) => document.body.dataset.task === t
          || document.getElementById("status").className === "error", task, { timeout: 300000 });
      const loaded = await page.textContent("#status");
      if (!loaded.startsWith("ready") || !loaded.includes(`models/${task}/`)) fail(`the ${task} model did not load: ${loaded}`);
      await page.fill("#prompt", prompt);
      await page.fill("#steps", process.env.TASK_STEPS ?? "1");
      await page.evaluate(() => { document.body.dataset.done = ""; });
      await page.click("#generate");
      await page.waitForFunction(() => document.body.dataset.done === "1"
          || document.getElementById("status").className === "error", null, { timeout: 600000 });
      const done = await page.textContent("#status");
      if (!done.startsWith("done")) fail(`${task}: generation failed: ${done}`);
      const got = await page.evaluate(() => {
        const im = window.ptditLastImage;
        const differ = im.frames.slice(1).some((f) => f.data.some((v, i) => v !== im.frames[0].data[i]));
        return { n: im.frames.length, width: im.width, height: im.height, differ };
      });
      if (got.n !== frames || got.width !== width || got.height !== 32) fail(`${task}: ${got.n} frames of ${got.width}x${got.height}, not ${frames} of ${width}x32`);
      if (!got.differ) fail(`${task}: every frame is the same`);
      if (task === "video") {
        // The canvas plays the frames: it shows another one within a second.
        await page.waitForFunction(() => Number(document.body.dataset.shownFrame || 0) > 0, null, { timeout: 5000 })
          .catch(() => fail("the video does not play"));
      }
      if (file) {
        // The PNG's first frame (a video's) or the picture (the views side by side).
        const max = await page.evaluate(async (b64) => {
          const img = await window.__pngPixels(b64);
          const a = img.data;
          const web = window.ptditLastImage;
          if (web.width !== img.width || web.height !== img.height) return 999;
          let max = 0;
          for (let i = 0; i < a.length; i += 4) for (let k = 0; k < 3; k++) max = Math.max(max, Math.abs(a[i + k] - web.data[i + k]));
          return max;
        }, await native(file));
        console.log(`e2e: ${task}: ${got.n} frames, ${done}; browser vs native: max |diff| ${max} levels`);
        if (max > 2) fail(`${task}: the browser and native pictures differ by ${max} levels`);
      } else {
        console.log(`e2e: ${task}: ${got.n} frames, ${done}`);
      }
    }
    await page.selectOption("#task", "image");
    await page.waitForFunction(() => document.body.dataset.task === "image", null, { timeout: 300000 });
  }

  const pageChecks = process.env.PAGE_CHECKS !== "0";
  // Cancel reaches the worker between steps: Generate again (10 steps, whatever STEPS is: it
  // stops after one or two), Cancel after the first preview.
  if (pageChecks) {
    await page.fill("#steps", "10");
    await page.evaluate(() => { window.__progress = []; });
    await page.click("#generate");
    await page.waitForFunction(() => window.__progress.some((v) => v > 0), null, { timeout: 300000 });
    await page.click("#cancel");
    await page.waitForFunction(() => !document.getElementById("generate").disabled, null, { timeout: 300000 });
    const cancelled = await page.textContent("#status");
    if (!/cancel/i.test(cancelled)) fail(`Cancel did not stop the generation: ${cancelled}`);
    const steps = (await page.evaluate(() => window.__progress)).filter((v) => v > 0 && v < 1).length;
    const total = 10;
    console.log(`e2e: cancelled after ${steps} of ${total} steps (${cancelled})`);
    if (steps >= total - 1) fail("Cancel came too late to matter");

    // A second visit takes the autotuner's table from the Cache API and measures nothing.
    const measured = await page.evaluate(() => document.body.dataset.kernels);
    await page.reload();
    const secondVisit = await readyIn();
    const kernels = await page.evaluate(() => document.body.dataset.kernels);
    console.log(`e2e: ready in ${firstVisit.toFixed(1)} s on the first visit (${measured}), ${secondVisit.toFixed(1)} s on the second (${kernels})`);
    if (!kernels || !kernels.includes("(cached)")) fail(`the second visit measured the kernels again: ${kernels}`);
  }

  // LOSE_DEVICE=1: the worker's device is destroyed, as a driver reset loses it. The next
  // Generate fails, the page starts a new engine by itself (no reload) and generates again.
  if (process.env.LOSE_DEVICE === "1") {
    await page.fill("#steps", "2");
    await page.evaluate(() => window.ptditLoseDevice());
    await page.click("#generate");
    await page.waitForFunction(() => document.body.dataset.restarts === "1"
        && !document.getElementById("generate").disabled, null, { timeout: 300000 });
    const restarted = await page.textContent("#status");
    if (!/^restarted after a lost GPU device: ready/.test(restarted)) fail(`no restart after the device was lost: ${restarted}`);
    await page.evaluate(() => { document.body.dataset.done = ""; });
    await page.click("#generate");
    await page.waitForFunction(() => document.body.dataset.done === "1"
        || document.getElementById("status").className === "error", null, { timeout: 300000 });
    const after = await page.textContent("#status");
    if (!after.startsWith("done")) fail(`the restarted engine did not generate: ${after}`);
    console.log(`e2e: device lost, engine restarted without a reload (${restarted}), then ${after}`);
  }
} finally {
  await browser.close();
}
