#!/usr/bin/env bash
# Malformed TF.js models: broken copies of face-api's tiny face detector
# (made here, in a temporary folder, from the real manifest and shard that
# scripts/setup.sh installs; skipped with exit 77 when it is absent) given to
# `fogpipe detect --model`. Each must fail with exit status 1 and exactly one
# line on stderr starting with "fogpipe: " that names the problem, with no
# crash, hang or sanitizer report. Usage errors must exit 2.
# (tests/test_tfjs.c covers the same reader with small crafted manifests.)
# Environment (set by ctest): FOGPIPE, FP_BUILD, FP_SRC.
set -u
FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FP_BUILD=${FP_BUILD:-$FP_SRC/build}
FOGPIPE=${FOGPIPE:-$FP_BUILD/fogpipe}
MODEL=$FP_SRC/data/face-api
MANIFEST=tiny_face_detector_model-weights_manifest.json
SHARD=tiny_face_detector_model.bin
LIMIT=20
[ -s "$MODEL/$MANIFEST" ] && [ -s "$MODEL/$SHARD" ] ||
  { echo "SKIP: face-api's tiny face detector is not in $MODEL; run scripts/setup.sh"; exit 77; }
[ -x "$FOGPIPE" ] || { echo "FAIL: $FOGPIPE not found"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/facedet_bad.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:log_path=stderr
IMG=/usr/share/darknet/data/dog.jpg
[ -f "$IMG" ] || IMG=$FP_SRC/tests/data/bad/img/ok_tiny.png
pass=0
fail=0

# make CASE PYTHON: a copy of the model in $tmp/CASE/, then PYTHON edits it
# with `m` (the manifest's JSON), `shard` (its bytes) and `d` (the folder).
make() {
  local d=$tmp/$1
  mkdir -p "$d"
  cp "$MODEL/$MANIFEST" "$MODEL/$SHARD" "$d/"
  python3 - "$d" <<PY
import json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "$MANIFEST")))
shard = open(os.path.join(d, "$SHARD"), "rb").read()
w = {x["name"]: x for x in m[0]["weights"]}
$2
if m is not None:
    open(os.path.join(d, "$MANIFEST"), "w").write(json.dumps(m) if not isinstance(m, str) else m)
open(os.path.join(d, "$SHARD"), "wb").write(shard)
PY
}

# expect CASE RC NEEDLE ARGS...: runs fogpipe detect ARGS, checks the status
# and that stderr is one "fogpipe" line containing NEEDLE.
expect() {
  local name=$1 want=$2 needle=$3
  shift 3
  timeout -k 5 "$LIMIT" "$FOGPIPE" detect "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$? why=""
  if [ "$rc" -ge 124 ]; then why="crashed or timed out (status $rc)"
  elif grep -q -E 'Sanitizer|runtime error' "$tmp/err"; then why="sanitizer: $(grep -m 1 -E 'ERROR|runtime error' "$tmp/err")"
  elif [ "$rc" != "$want" ]; then why="exit status $rc, expected $want"
  elif [ "$(wc -l < "$tmp/err")" != 1 ]; then why="$(wc -l < "$tmp/err") lines on stderr, expected 1"
  elif ! head -n 1 "$tmp/err" | grep -q '^fogpipe'; then why="stderr does not start with fogpipe"
  elif ! grep -q -F -- "$needle" "$tmp/err"; then why="message lacks \"$needle\""
  fi
  if [ -n "$why" ]; then
    echo "FAIL $name: $why: $(head -c 300 "$tmp/err")"
    fail=$((fail + 1))
  else
    echo "ok   $name: $(head -n 1 "$tmp/err" | cut -c 1-200)"
    pass=$((pass + 1))
  fi
}

run_case() { # CASE NEEDLE PYTHON
  make "$1" "$3"
  expect "$1" 1 "$2" --model "$tmp/$1/$MANIFEST" "$IMG"
}

run_case truncated-shard "hold 193221 bytes but its 19 weights need 193321" 'shard = shard[:-100]'
run_case long-shard "hold 193322 bytes" 'shard = shard + b"x"'
run_case empty-shard "hold 0 bytes" 'shard = b""'
make missing-shard 'pass'
rm "$tmp/missing-shard/$SHARD"
expect missing-shard 1 "cannot open shard" --model "$tmp/missing-shard/$MANIFEST" "$IMG"
run_case wrong-size "need 193833" 'w["conv5/bias"]["shape"] = [1024]'
run_case wrong-shape 'weight "conv8/filters" has shape [1,1,25,512], expected [1,1,512,25]' \
  'w["conv8/filters"]["shape"] = [1, 1, 25, 512]'
run_case bad-dtype 'dtype "int32" not supported' 'w["conv2/bias"]["dtype"] = "int32"'
run_case bad-quantization 'quantization dtype "int4" not supported' 'w["conv2/bias"]["quantization"]["dtype"] = "int4"'
run_case no-scale '"scale" and "min"' 'del w["conv1/bias"]["quantization"]["scale"]'
run_case name-missing '"name" missing' 'del w["conv4/depthwise_filter"]["name"]'
run_case name-renamed 'weight "conv4/bias" missing' 'w["conv4/bias"]["name"] = "conv4/b"'
run_case name-twice 'listed twice' 'w["conv4/bias"]["name"] = "conv3/bias"'
run_case bad-json 'not valid JSON' 'm = open(os.path.join(d, "'$MANIFEST'")).read()[:-40]'
run_case not-array 'array of 1..64 groups' 'm = m[0]'
run_case no-paths '"paths" array' 'del m[0]["paths"]'
run_case absolute-path 'is absolute' 'm[0]["paths"] = ["/etc/hostname"]'
run_case parent-path "leaves the manifest's folder" 'm[0]["paths"] = ["../x.bin"]'
run_case huge-dim 'must be an integer in [1, 65536]' 'w["conv8/bias"]["shape"] = [1e12]'
run_case rank-5 'rank 5' 'w["conv8/bias"]["shape"] = [1, 1, 1, 1, 25]'
run_case other-model "not face-api's tiny face detector" 'w["conv0/filters"]["name"] = "conv0/depthwise_filter"'
expect not-json 1 'not a TF.js weights manifest' --model "$IMG" "$IMG"
expect no-file 1 'cannot' --model "$tmp/none.json" "$IMG"
expect size-bad 2 'multiple of 32' --model "$MODEL/$MANIFEST" --input-size 130 "$IMG"
expect size-big 2 'expected an integer in [128, 608]' --model "$MODEL/$MANIFEST" --input-size 640 "$IMG"
expect both-models 2 'exclude each other' --model "$MODEL/$MANIFEST" --cfg x.cfg --weights x.weights "$IMG"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
