#!/usr/bin/env node
// facedet_faceapi.js — face-api's side of bench/facedet.sh: milliseconds per
// image of TinyFaceDetector on TF.js's WASM backend with one thread
// (detectAllFaces on an already decoded image: preparation, network, box
// decoding and NMS), median of LOOPS after two warm-up runs.
//
//   node facedet_faceapi.js MODULES MODEL_DIR IMAGE.ppm SIZE LOOPS
//
// Prints: faceapi backend=wasm threads=1 size=S median_ms=M min_ms=A max_ms=B faces=N
//
// With LOOPS `serve` it warms up, prints `ready backend=wasm threads=1
// faces=N`, then for each line N (1..10000) on stdin times N runs and prints
// `median_ms=M min_ms=A`, until stdin ends (bench/facedet.sh's paired runs,
// with bench_facedet answering the same way).
'use strict';
const fs = require('fs');
const path = require('path');

function readPpm(file) {
  const b = fs.readFileSync(file);
  const head = b.toString('latin1', 0, 64).split(/\s+/);
  if (head[0] !== 'P6' || head[3] !== '255') throw new Error(`${file}: expected a P6 PPM with maxval 255`);
  const width = Number(head[1]), height = Number(head[2]);
  const data = b.subarray(b.length - width * height * 3);
  return { width, height, data };
}

async function main() {
  const [modules, model, image, size = '416', loops = '20'] = process.argv.slice(2);
  if (!image) {
    process.stderr.write('usage: facedet_faceapi.js MODULES MODEL_DIR IMAGE.ppm [SIZE] [LOOPS]\n');
    process.exit(2);
  }
  const faceapi = require(path.resolve(modules, '@vladmandic/face-api/dist/face-api.node-wasm.js'));
  const tf = faceapi.tf;
  tf.setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new Error('the WASM backend did not initialise');
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromDisk(model);
  const img = readPpm(image);
  const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
  const opts = new faceapi.TinyFaceDetectorOptions({ inputSize: Number(size), scoreThreshold: 0.5 });
  let faces = 0;
  for (let i = 0; i < 2; i++) faces = (await faceapi.detectAllFaces(t, opts)).length;
  const threads = typeof tf.getThreadsCount === 'function' ? tf.getThreadsCount() : 1;
  const timed = async (n) => {
    const ms = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await faceapi.detectAllFaces(t, opts);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return ms.sort((a, b) => a - b);
  };
  if (loops === 'serve') {
    process.stdout.write(`ready backend=${tf.getBackend()} threads=${threads} faces=${faces}\n`);
    const rl = require('readline').createInterface({ input: process.stdin });
    for await (const line of rl) {
      const n = Number(line);
      if (!Number.isInteger(n) || n < 1 || n > 10000) throw new Error(`expected a number of runs 1..10000, got: ${line}`);
      const ms = await timed(n);
      process.stdout.write(`median_ms=${ms[(n - 1) >> 1].toFixed(3)} min_ms=${ms[0].toFixed(3)}\n`);
    }
    return;
  }
  const ms = await timed(Number(loops));
  process.stdout.write(`faceapi backend=${tf.getBackend()} threads=${threads} size=${size} ` +
    `median_ms=${ms[(ms.length - 1) >> 1].toFixed(3)} min_ms=${ms[0].toFixed(3)} max_ms=${ms[ms.length - 1].toFixed(3)} faces=${faces}\n`);
}

main().catch((e) => {
  process.stderr.write(`facedet_faceapi: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
