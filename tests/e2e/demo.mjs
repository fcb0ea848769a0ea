// Opens the built web demo (served at $URL), types a prompt, clicks Generate, waits for the
// image, checks the canvas holds a real image (not blank) and that previews were drawn, and
// saves a screenshot ($SHOT). Exits non-zero with the reason on any failure.
import { chromium } from "playwright-core";

const url = process.env.URL ?? "http://127.0.0.1:8765/index.html";
const shot = process.env.SHOT ?? "demo.png";
const fail = (msg) => { console.error(`e2e: FAIL: ${msg}`); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById("generate").disabled
      || document.getElementById("status").className === "error", null, { timeout: 180000 });
  const ready = await page.textContent("#status");
  if (!ready.startsWith("ready")) fail(`the page did not get ready: ${ready}`);
  await page.fill("#prompt", "a red apple");
  await page.fill("#steps", "3");
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
  await page.screenshot({ path: shot });
  console.log(`e2e: ${status}; canvas mean ${stats.mean.toFixed(1)}, std ${stats.std.toFixed(1)}, ${stats.colours} colours; screenshot ${shot}`);
  if (stats.std < 2 || stats.colours < 16) fail("the canvas is blank");
} finally {
  await browser.close();
}
