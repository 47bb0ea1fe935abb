#!/usr/bin/env bash
# Face detector against face-api itself: tests/facedet/faceapi_ref.js runs
# @vladmandic/face-api's TinyFaceDetector on TF.js (CPU backend) over sample
# images with and without faces, at input sizes 160, 320, 416 and 608;
# `fogpipe detect` must give the same faces at thresholds 0.5 (face-api's
# default) and 0.3: same count, scores within 0.01, box edges within 2 px
# (tests/facedet/compare.py). The 0.3 runs use the reference kernels only
# (FP_NO_FAST=1), the 0.5 runs whatever kernels the engine picks, so both
# kernel sets are held to face-api at every size.
#
# Needs what scripts/setup.sh installs into data/ (the model, the npm
# packages, the sample images); skips (exit 77) saying what is missing
# otherwise. Both sides get the same pixels: images are decoded once with
# fogpipe's decoder into PPM (tests/tools/image_to_ppm.c). face-api's output
# is cached in data/facedet-ref/ under a hash of its inputs, so the
# sanitizer build reuses the release build's reference run.
#
# Environment (set by ctest): FOGPIPE, FP_BUILD, FP_SRC; FACEDET_SIZES to
# narrow the sizes (default "160 320 416 608").
set -u
FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FP_BUILD=${FP_BUILD:-$FP_SRC/build}
FOGPIPE=${FOGPIPE:-$FP_BUILD/fogpipe}
DATA=$FP_SRC/data
MODEL=$DATA/face-api
MODS=$DATA/node/node_modules
SIZES=${FACEDET_SIZES:-160 320 416 608}
THRESHOLDS="0.5 0.3"

skip() { echo "SKIP: $*; run scripts/setup.sh to install it"; exit 77; }
[ -s "$MODEL/tiny_face_detector_model-weights_manifest.json" ] || skip "face-api's tiny face detector is not in $MODEL"
[ -f "$MODS/@vladmandic/face-api/package.json" ] && [ -f "$MODS/@tensorflow/tfjs/package.json" ] ||
  skip "the npm packages @tensorflow/tfjs and @vladmandic/face-api are not in $MODS"
command -v node >/dev/null || skip "node is not installed"
[ -f "$DATA/samples/.complete" ] || skip "the sample images are not in $DATA/samples"
[ -x "$FP_BUILD/image_to_ppm" ] || { echo "FAIL: $FP_BUILD/image_to_ppm not built"; exit 1; }

# With faces: astronaut, camera (square), basketball1, left06, messi5,
# HappyFish, coins (wide), ml (tall); without: darknet's dog, eagle, horses.
images=(
  "$DATA/samples/skimage/astronaut.png" "$DATA/samples/skimage/camera.png" "$DATA/samples/skimage/coins.png"
  "$DATA/samples/opencv/basketball1.png" "$DATA/samples/opencv/left06.jpg" "$DATA/samples/opencv/messi5.jpg"
  "$DATA/samples/opencv/HappyFish.jpg" "$DATA/samples/opencv/ml.png"
  /usr/share/darknet/data/dog.jpg /usr/share/darknet/data/eagle.jpg /usr/share/darknet/data/horses.jpg
)
for f in "${images[@]}"; do [ -f "$f" ] || skip "sample image $f is missing"; done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/facedet_ref.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1

ppms=()
args=()
for f in "${images[@]}"; do
  p=$tmp/$(basename "${f%.*}").ppm
  ppms+=("$p")
  args+=("$f" "$p")
done
"$FP_BUILD/image_to_ppm" "${args[@]}" || { echo "FAIL: image_to_ppm"; exit 1; }

# The reference, cached under a hash of everything it depends on.
low=$(printf '%s\n' $THRESHOLDS | sort -n | head -n 1)
key=$( { cat "$FP_SRC/tests/facedet/faceapi_ref.js" "$MODEL"/tiny_face_detector_model*
         cat "$MODS/@vladmandic/face-api/package.json" "$MODS/@tensorflow/tfjs/package.json"
         echo "$SIZES $low"; for p in "${ppms[@]}"; do basename "$p"; cat "$p"; done; } | sha256sum | cut -c 1-16)
cache=$DATA/facedet-ref/$key.jsonl
if [ ! -s "$cache" ]; then
  echo "running face-api (TF.js CPU backend) for the reference: ${#ppms[@]} images x sizes $SIZES"
  start=$SECONDS
  (cd "$tmp" && node "$FP_SRC/tests/facedet/faceapi_ref.js" --modules "$MODS" --model "$MODEL" \
      --sizes "${SIZES// /,}" --threshold "$low" "${ppms[@]}") > "$tmp/ref.jsonl" 2> "$tmp/ref.err" || {
    echo "FAIL: faceapi_ref.js failed:"; grep -v -e '^=*$' -e 'Hi, looks like' -e '^$' "$tmp/ref.err" | head -n 20; exit 1; }
  echo "  face-api took $((SECONDS - start)) s"
  mkdir -p "$DATA/facedet-ref"
  mv "$tmp/ref.jsonl" "$cache"
fi
# The reference names the PPMs by their path in a temporary folder: rename.
python3 - "$cache" "$tmp" > "$tmp/ref.jsonl" <<'PY'
import json, os, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    r["image"] = os.path.join(sys.argv[2], os.path.basename(r["image"]))
    print(json.dumps(r))
PY

outs=()
for s in $SIZES; do
  for t in $THRESHOLDS; do
    o=$tmp/fp_${s}_$t.jsonl
    kernels=()
    [ "$t" = 0.3 ] && kernels=(FP_NO_FAST=1)
    if ! env "${kernels[@]}" "$FOGPIPE" detect --model "$MODEL/tiny_face_detector_model-weights_manifest.json" --input-size "$s" \
        --threshold "$t" "${ppms[@]}" > "$o" 2> "$tmp/err"; then
      echo "FAIL: fogpipe detect --input-size $s --threshold $t:"; head -n 20 "$tmp/err"; exit 1
    fi
    if [ -s "$tmp/err" ]; then echo "FAIL: fogpipe wrote to stderr:"; head -n 20 "$tmp/err"; exit 1; fi
    outs+=("$o")
  done
done
python3 "$FP_SRC/tests/facedet/compare.py" "$tmp/ref.jsonl" "${outs[@]}"
