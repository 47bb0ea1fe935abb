#!/usr/bin/env node
// faceapi_ref.js — the reference for fogpipe's face detector: runs
// @vladmandic/face-api's TinyFaceDetector (on TF.js, CPU backend by default)
// over binary PPM images and prints its detections as JSON Lines, one object
// per (image, input size):
//   {"image": PATH, "size": S, "width": W, "height": H,
//    "detections": [{"score": P, "box": {"x": X, "y": Y, "w": W, "h": H}}]}
// Boxes are face-api's own, in image pixels, not clamped to the image.
//
//   node faceapi_ref.js --modules DIR --model DIR [--sizes 160,320,416,608]
//        [--threshold 0.5] [--backend cpu|wasm] IMAGE.ppm...
//
// --modules is the node_modules folder holding @tensorflow/tfjs,
// @tensorflow/tfjs-backend-wasm and @vladmandic/face-api (scripts/setup.sh
// installs them into data/node/node_modules); --model the folder holding
// tiny_face_detector_model-weights_manifest.json and its shard. Images are
// PPM because TF.js in Node has no image decoder: the test converts its
// images with fogpipe's decoder (tests/tools/image_to_ppm.c), so both sides
// see the same pixels.
'use strict';
const fs = require('fs');
const path = require('path');

function usage(msg) {
  process.stderr.write(`faceapi_ref: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { sizes: [160, 320, 416, 608], threshold: 0.5, backend: 'cpu', images: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === '--modules') o.modules = val();
    else if (a === '--model') o.model = val();
    else if (a === '--sizes') o.sizes = val().split(',').map(Number);
    else if (a === '--threshold') o.threshold = Number(val());
    else if (a === '--backend') o.backend = val();
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else o.images.push(a);
  }
  if (!o.modules || !o.model) usage('--modules and --model are required');
  if (o.sizes.some((s) => !Number.isInteger(s) || s % 32 !== 0)) usage('sizes must be multiples of 32');
  return o;
}

// Reads a binary PPM (P6, maxval 255) into {width, height, data: Uint8Array RGB}.
function readPpm(file) {
  const b = fs.readFileSync(file);
  let pos = 0;
  const token = () => {
    for (;;) {
      while (pos < b.length && /\s/.test(String.fromCharCode(b[pos]))) pos++;
      if (b[pos] !== 0x23) break; // '#': comment to the end of the line
      while (pos < b.length && b[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < b.length && !/\s/.test(String.fromCharCode(b[pos]))) pos++;
    return b.toString('latin1', start, pos);
  };
  if (token() !== 'P6') throw new Error(`${file}: not a binary PPM (P6)`);
  const width = Number(token()), height = Number(token()), maxval = Number(token());
  pos++; // the single whitespace byte before the samples
  if (maxval !== 255 || b.length - pos !== width * height * 3) throw new Error(`${file}: unexpected PPM layout`);
  return { width, height, data: new Uint8Array(b.buffer, b.byteOffset + pos, width * height * 3) };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const req = (m) => require(path.resolve(o.modules, m));
  // The node-wasm bundle needs only @tensorflow/tfjs and the WASM backend
  // (the default node bundle needs the native tfjs-node, which cannot be
  // installed here). Its `tf` is the TF.js it was given.
  const faceapi = req('@vladmandic/face-api/dist/face-api.node-wasm.js');
  const tf = faceapi.tf;
  await tf.setBackend(o.backend);
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromDisk(o.model);
  for (const file of o.images) {
    const img = readPpm(file);
    const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
    for (const size of o.sizes) {
      const opts = new faceapi.TinyFaceDetectorOptions({ inputSize: size, scoreThreshold: o.threshold });
      const dets = await faceapi.detectAllFaces(t, opts);
      const out = dets.map((d) => ({
        score: d.score,
        box: { x: d.box.x, y: d.box.y, w: d.box.width, h: d.box.height },
      }));
      process.stdout.write(`${JSON.stringify({ image: file, size, width: img.width, height: img.height, detections: out })}\n`);
    }
    t.dispose();
  }
}

main().catch((e) => {
  process.stderr.write(`faceapi_ref: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
