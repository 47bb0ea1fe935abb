// Times an ONNX model with ONNX Runtime (npm onnxruntime-node, CPU) or runs it
// once on a raw input (bench only).
//   node bench/onnx/ort_time.js MODEL.onnx [--threads T] [--iters N] [--warmup W]
//        [--input-raw IN.f32 --output-prefix P]
// Timing: prints "median_ms=X min_ms=Y threads=T iters=N" (median and fastest of N runs after W
// warm-up runs; intraOpNumThreads=T, interOpNumThreads=1, sequential
// execution, graphOptimizationLevel 'all'). With --input-raw: runs once on
// that planar float32 input and writes each output to P<name>.f32.
// ORT_NODE_PATH: folder holding node_modules/onnxruntime-node (default data/ort).
'use strict';
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
const opt = { threads: 1, iters: 5, warmup: 2 };
let model = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--threads') opt.threads = +args[++i];
  else if (a === '--iters') opt.iters = +args[++i];
  else if (a === '--warmup') opt.warmup = +args[++i];
  else if (a === '--input-raw') opt.input = args[++i];
  else if (a === '--output-prefix') opt.prefix = args[++i];
  else model = a;
}
if (!model) {
  console.error('usage: ort_time.js MODEL.onnx [--threads T] [--iters N] [--warmup W] [--input-raw F --output-prefix P]');
  process.exit(2);
}
const base = process.env.ORT_NODE_PATH || path.join(__dirname, '..', '..', 'data', 'ort');
const ort = require(path.resolve(base, 'node_modules', 'onnxruntime-node'));

(async () => {
  const sess = await ort.InferenceSession.create(model, {
    intraOpNumThreads: opt.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inName = sess.inputNames[0];
  // The exporter always declares the input as [1, C, H, W].
  const meta = sess.inputMetadata ? sess.inputMetadata[0] : null;
  let dims = meta && meta.shape ? meta.shape : null;
  let data;
  if (opt.input) {
    const buf = fs.readFileSync(opt.input);
    data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  }
  if (!dims) {
    console.error('ort_time: cannot read the input shape from the model');
    process.exit(1);
  }
  const n = dims.reduce((a, b) => a * b, 1);
  if (!data) {
    data = new Float32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; data[i] = (s >>> 8) / 16777216; }
  }
  if (data.length !== n) {
    console.error(`ort_time: input has ${data.length} floats, the model wants ${n}`);
    process.exit(1);
  }
  const feeds = { [inName]: new ort.Tensor('float32', data, dims) };
  if (opt.input) {
    const out = await sess.run(feeds);
    for (const k of sess.outputNames) {
      const v = out[k].data;
      fs.writeFileSync(`${opt.prefix}${k}.f32`, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      console.log(`wrote ${opt.prefix}${k}.f32 (${v.length} floats)`);
    }
    return;
  }
  for (let i = 0; i < opt.warmup; i++) await sess.run(feeds);
  const t = [];
  for (let i = 0; i < opt.iters; i++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  t.sort((a, b) => a - b);
  const med = t.length % 2 ? t[(t.length - 1) / 2] : (t[t.length / 2 - 1] + t[t.length / 2]) / 2;
  console.log(`median_ms=${med.toFixed(3)} min_ms=${t[0].toFixed(3)} threads=${opt.threads} iters=${opt.iters}`);
})().catch((e) => { console.error('ort_time:', e.message || e); process.exit(1); });
