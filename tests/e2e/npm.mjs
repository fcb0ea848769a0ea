// The npm package as a user gets it: installs the packed tarball ($TGZ) into a fresh app
// (tests/npm/ copied to target/npm-app/), type-checks the app against the package's
// declarations with tsc, bundles it by package name with esbuild, serves the bundle and runs it
// in headless Chromium (SwiftShader's WebGPU) to an image. Exits non-zero with the reason.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./chromium.mjs";

const fail = (msg) => { console.error(`npm: FAIL: ${msg}`); process.exit(1); };
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const tgz = path.resolve(process.env.TGZ ?? fail("TGZ (the packed package) is not set"));
const app = path.join(root, "target/npm-app");
const bin = (name) => path.join(here, "node_modules/.bin", name);
const run = (cmd, args) => {
  try { execFileSync(cmd, args, { cwd: app, stdio: "inherit" }); }
  catch { fail(`\`${path.basename(cmd)} ${args.join(" ")}\` failed (its output is above)`); }
};

fs.rmSync(app, { recursive: true, force: true });
fs.mkdirSync(app, { recursive: true });
for (const f of fs.readdirSync(path.join(root, "tests/npm"))) fs.copyFileSync(path.join(root, "tests/npm", f), path.join(app, f));
fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "ptdit-npm-app", private: true, type: "module" }));
run("npm", ["install", "--no-audit", "--no-fund", "--silent", tgz]);
run(bin("tsc"), ["-p", "tsconfig.json"]);
console.log("npm: the app type-checks against the package's declarations");
run(bin("esbuild"), ["app.ts", "--bundle", "--format=esm", "--loader:.wasm=file", "--outdir=dist", "--log-level=warning"]);
fs.copyFileSync(path.join(app, "index.html"), path.join(app, "dist/index.html"));

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((req, res) => {
  const file = path.join(app, "dist", path.normalize(decodeURIComponent(req.url.split("?")[0])).replace(/^(\.\.[/\\])+/, ""));
  if (!fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/index.html`;
const browser = await launch();
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(url);
  await page.waitForFunction(() => window.result || window.error, null, { timeout: 300000 });
  const { result, error } = await page.evaluate(() => ({ result: window.result, error: window.error }));
  if (error) fail(`the bundled app failed: ${error}`);
  console.log(`npm: the bundled app generated ${result.width}x${result.height} (std ${result.std.toFixed(1)}, ${result.previews} previews, ${result.settings} settings in its PNG)`);
  if (result.width !== 32 || result.height !== 32) fail("not the built-in model's 32x32");
  if (result.std < 10) fail("the image is blank");
  if (!result.pngSignature || result.settings < 12) fail("no PNG with settings on the image");
  if (result.previews !== 2) fail(`${result.previews} previews for 2 steps`);
} finally {
  await browser.close();
  server.close();
}
