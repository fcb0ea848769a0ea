// A minimal app that uses the npm package by name, as a bundler user would: type-checked with
// tsc against the package's declarations, bundled by esbuild, run in Chromium by
// tests/e2e/npm.mjs. It generates with the built-in model and reports what it got.
import init, { Engine, type GenerateOptions, type GeneratedImage, type RgbaImage } from "ptdit";
import wasmUrl from "ptdit/ptdit_bg.wasm";

type Report = { width: number; height: number; std: number; pngSignature: boolean; previews: number; settings: number };

async function run(): Promise<Report> {
  await init({ module_or_path: wasmUrl });
  const engine: Engine = await Engine.create();
  engine.loadDefaultModel();
  const defaults = engine.defaults();
  const options: GenerateOptions = { prompt: "red apple", seed: 0, steps: 2, width: defaults.width, height: defaults.height, cache: "off" };
  let previews = 0;
  const image: GeneratedImage = await engine.generate(options, (_step: number, _total: number, preview: RgbaImage) => {
    previews += preview.width > 0 ? 1 : 0;
  }, null);
  let sum = 0, sum2 = 0;
  for (let i = 0; i < image.data.length; i += 4) {
    sum += image.data[i];
    sum2 += image.data[i] * image.data[i];
  }
  const n = image.data.length / 4;
  const signature = [0x89, 0x50, 0x4e, 0x47];
  return {
    width: image.width,
    height: image.height,
    std: Math.sqrt(sum2 / n - (sum / n) ** 2),
    pngSignature: signature.every((b, i) => image.png[i] === b),
    previews,
    settings: image.settings.length,
  };
}

const w = window as unknown as { result?: Report; error?: string };
run().then((r) => { w.result = r; }, (e: unknown) => { w.error = `${e instanceof Error ? e.message : e}`; });
