// Debian's Chromium for the end-to-end tests, headless, with WebGPU (SwiftShader) and without
// the background connections this machine's closed network refuses.
import { chromium } from "playwright-core";

export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium",
  args: ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic", "--enable-unsafe-webgpu"],
});
