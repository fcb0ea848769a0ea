// The engine in a dedicated worker: messages in ({type: start | load | generate | cancel |
// lose-device}), status,
// per-step previews and the image out (pixel buffers transferred, not copied).
import { startEngine } from "./engine.js";

let engine = null;
self.onmessage = async ({ data: m }) => {
  if (m.type === "start") {
    try {
      engine = await startEngine(m.base, (text) => self.postMessage({ type: "status", text }));
      const { adapter, kernels, which, defaults } = engine;
      self.postMessage({ type: "ready", adapter, kernels, which, defaults });
    } catch (e) {
      self.postMessage({ type: "failed", message: `${e.message || e}`, duringModel: !!e.duringModel });
    }
  } else if (m.type === "generate") {
    try {
      const image = await engine.generate(m.opts, (step, total, preview) => {
        self.postMessage({ type: "step", step, total, preview }, [preview.data.buffer]);
      });
      // Every pixel buffer is moved, not copied: the image and each frame.
      const moved = [image.data.buffer, ...image.frames.map((f) => f.data.buffer)];
      self.postMessage({ type: "done", image }, moved);
    } catch (e) {
      self.postMessage({ type: "error", message: `${e.message || e}` });
    }
  } else if (m.type === "load") {
    try {
      const { which, defaults } = await engine.load(m.task);
      self.postMessage({ type: "loaded", which, defaults });
    } catch (e) {
      self.postMessage({ type: "load-failed", message: `${e.message || e}` });
    }
  } else if (m.type === "cancel" && engine) {
    engine.cancel();
  } else if (m.type === "lose-device" && engine) {
    engine.loseDevice();
  }
};
