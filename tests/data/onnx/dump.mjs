// Golden outputs for facekit's ONNX runtime (OpenCV DNN): each faceplugin-face-recognition-js model run by
// Microsoft's onnxruntime (npm onnxruntime-node, CPU) on the reproducible "ramp" input of ../shared/ref-js's
// graph.mjs. Writes <model>/meta.json and <model>/output<k>.f32 (little-endian float32) next to this file.
//   npm install --ignore-scripts onnxruntime-node@1.20.1
//   node dump.mjs MODELS_DIR        # MODELS_DIR = facekit's models/faceplugin
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2];
// Input shape and value range per model (what its preprocessing produces).
const models = {
  fr_feature: { shape: [1, 3, 112, 112], range: [-1, 1] },
  fr_detect: { shape: [1, 3, 240, 320], range: [-1, 1] },
  fr_landmark: { shape: [1, 1, 64, 64], range: [0, 1] },
  fr_liveness: { shape: [1, 3, 128, 128], range: [0, 255] },
};

function ramp(shape, lo, hi) {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = new Float32Array(n);
  for (let i = 0; i < n; ++i) t[i] = lo + ((hi - lo) * ((i * 7919) % 1000)) / 999;
  return t;
}

for (const [name, m] of Object.entries(models)) {
  const session = await ort.InferenceSession.create(path.join(dir, name + '.onnx'));
  const input = new ort.Tensor('float32', ramp(m.shape, m.range[0], m.range[1]), m.shape);
  const out = await session.run({ [session.inputNames[0]]: input });
  const outDir = path.join(here, name);
  fs.mkdirSync(outDir, { recursive: true });
  const meta = { runtime: 'onnxruntime-node ' + ort.env.versions.common, input: session.inputNames[0],
                 shape: m.shape, range: m.range, outputs: [] };
  session.outputNames.forEach((o, k) => {
    const t = out[o];
    fs.writeFileSync(path.join(outDir, `output${k}.f32`), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    meta.outputs.push({ name: o, shape: t.dims });
  });
  fs.writeFileSync(path.join(outDir, 'meta.json'), JSON.stringify(meta, null, 1) + '\n');
  console.log(name, meta.outputs.map((o) => `${o.name}[${o.shape}]`).join(' '));
}
