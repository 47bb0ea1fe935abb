#!/usr/bin/env bash
# Fetches what the face detector needs into data/ (gitignored); called by
# scripts/setup.sh. Idempotent: each part is skipped when already present.
#   data/face-api/   face-api's tiny face detector (TF.js manifest + shard),
#                    from `npm pack @vladmandic/face-api` (no global install):
#                    the default model of `fogpipe detect`
#   data/node/       @tensorflow/tfjs, its WASM backend and face-api, for the
#                    reference test (tests/facedet_reference.sh) and the
#                    benchmark (bench/facedet.sh); never committed
#   data/samples/    sample images from Debian packages, downloaded with
#                    `apt-get download` and unpacked without installing them:
#                    python3-skimage's astronaut.png, camera.png, coins.png and
#                    opencv-doc's example images (darknet's come with darknet)
# Needs node and npm (installs Debian's nodejs and npm when they are absent).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${FOGPIPE_DATA:-data}
FACEAPI_VERSION=1.7.15
TFJS_VERSION=4.22.0
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
mkdir -p "$data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt-get download runs as _apt and writes here

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup-face: installing nodejs and npm" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

model=$data/face-api/tiny_face_detector_model-weights_manifest.json
if [ ! -s "$model" ] || [ ! -s "$data/face-api/tiny_face_detector_model.bin" ]; then
  echo "setup-face: fetching @vladmandic/face-api@$FACEAPI_VERSION (npm pack) for its tiny face detector" >&2
  (cd "$tmp" && npm pack --silent "@vladmandic/face-api@$FACEAPI_VERSION" >/dev/null)
  tar -xzf "$tmp"/vladmandic-face-api-"$FACEAPI_VERSION".tgz -C "$tmp" \
    package/model/tiny_face_detector_model.bin package/model/tiny_face_detector_model-weights_manifest.json
  mkdir -p "$data/face-api"
  cp "$tmp"/package/model/tiny_face_detector_model* "$data/face-api/"
fi

mods=$data/node/node_modules
have_version() { # package version: 0 when installed at that version
  [ -f "$mods/$1/package.json" ] && grep -q "\"version\": \"$2\"" "$mods/$1/package.json"
}
if ! have_version @vladmandic/face-api "$FACEAPI_VERSION" || ! have_version @tensorflow/tfjs "$TFJS_VERSION" ||
   ! have_version @tensorflow/tfjs-backend-wasm "$TFJS_VERSION"; then
  echo "setup-face: installing @tensorflow/tfjs@$TFJS_VERSION, its WASM backend and face-api into $data/node (tests, benchmark)" >&2
  npm install --prefix "$data/node" --no-audit --no-fund --loglevel=error \
    "@tensorflow/tfjs@$TFJS_VERSION" "@tensorflow/tfjs-backend-wasm@$TFJS_VERSION" \
    "@vladmandic/face-api@$FACEAPI_VERSION" >/dev/null
fi

samples=$data/samples
if [ ! -f "$samples/.complete" ]; then
  echo "setup-face: fetching sample images (python3-skimage, opencv-doc; downloaded, not installed)" >&2
  (cd "$tmp" && { apt-get download -qq python3-skimage opencv-doc 2>/dev/null ||
                  { $SUDO apt-get update -qq && apt-get download -qq python3-skimage opencv-doc; }; })
  mkdir -p "$tmp/x" "$samples/skimage" "$samples/opencv"
  dpkg-deb --fsys-tarfile "$tmp"/python3-skimage_*.deb | tar -x -C "$tmp/x" \
    ./usr/lib/python3/dist-packages/skimage/data/astronaut.png \
    ./usr/lib/python3/dist-packages/skimage/data/camera.png \
    ./usr/lib/python3/dist-packages/skimage/data/coins.png
  cp "$tmp"/x/usr/lib/python3/dist-packages/skimage/data/*.png "$samples/skimage/"
  dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -x -C "$tmp/x" --wildcards \
    './usr/share/doc/opencv-doc/examples/data/*.jpg' './usr/share/doc/opencv-doc/examples/data/*.png'
  cp "$tmp"/x/usr/share/doc/opencv-doc/examples/data/* "$samples/opencv/"
  touch "$samples/.complete"
fi
echo "setup-face: face detector in $data/face-api, test packages in $data/node, sample images in $samples" >&2
