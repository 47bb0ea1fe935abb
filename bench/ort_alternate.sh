#!/usr/bin/env bash
# fogpipe against ONNX Runtime, alternating run by run: on a shared, noisy
# machine one engine's run can land in a slow minute and the other's in a
# fast one, so a single side-by-side run (bench/engine.sh) moves by up to
# 0.2 in its ratios. Here, for each model and thread count, ROUNDS rounds
# each run `fogpipe bench` and bench/onnx/ort_time.js once (LOOPS passes
# after warm-up, the order swapped every round) on the same network and
# weights (fixed-seed random weights, exported with bench/onnx/export_onnx.py)
# and keep each run's minimum. Printed per model: both engines' minimum over
# the rounds, their ratio, and the median and range of the per-round ratios
# ONNX Runtime / fogpipe (> 1: fogpipe is faster).
#   bench/ort_alternate.sh [ROUNDS=7] [LOOPS=10] [THREADS=1 2] [-- CFG...]
# Needs bench/onnx/setup.sh. One-thread runs are pinned to one CPU
# (bench/pin_cpu.sh); OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS are cleared
# for fogpipe, as in bench/engine.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h | --help)
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 0 ;;
esac
ROUNDS=${1:-7}
LOOPS=${2:-10}
shift $(($# < 2 ? $# : 2))
threads=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do threads+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#threads[@]} -gt 0 ] || threads=(1 2)
B=${FP_BUILD:-build}
[ -x "$B/fogpipe" ] || { echo "build first: make build" >&2; exit 1; }
command -v node >/dev/null && [ -f data/ort/node_modules/onnxruntime-node/package.json ] &&
  /usr/bin/python3 -c 'import onnx, numpy' 2>/dev/null ||
  { echo "ONNX Runtime is not set up: run bench/onnx/setup.sh" >&2; exit 1; }
DN=/usr/share/darknet/cfg
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("models/yolov1-tiny-tf.cfg" "$DN/yolov1-tiny.cfg" "$DN/yolov2-tiny.cfg"
                                   "$DN/yolov3-tiny.cfg" "bench/onnx/tiny-face-detector.cfg")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
clean=(env -u OPENBLAS_CORETYPE -u OPENBLAS_NUM_THREADS)
. bench/pin_cpu.sh
echo "alternating fogpipe and ONNX Runtime: $ROUNDS rounds of $LOOPS passes, minimum of each run;" \
     "one-thread runs pinned to CPU $CPU1"
mn() { sort -n | head -1; }
med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
lo_hi() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END{print lo "-" hi}'; }
minms() { sed -n 's/.*min_ms=\([0-9.]*\).*/\1/p'; }
printf "%-20s %3s %10s %10s %14s %13s %s\n" model t "fogpipe ms" "ORT ms" "ORT/fp (mins)" "median ratio" "range"
for cfg in "${models[@]}"; do
  name=$(basename "$cfg" .cfg)
  w=$tmp/$name.weights o=$tmp/$name.onnx
  "$B/fogpipe" random-weights --cfg "$cfg" --seed 1 -o "$w" 2>/dev/null
  /usr/bin/python3 bench/onnx/export_onnx.py "$cfg" "$w" "$o" >/dev/null
  for t in "${threads[@]}"; do
    pin=(); [ "$t" = 1 ] && pin=("${pin1[@]}")
    : > "$tmp/f"; : > "$tmp/o"; : > "$tmp/r"
    for r in $(seq "$ROUNDS"); do
      echo "  $name, $t thread(s): round $r/$ROUNDS" >&2
      fp() { "${pin[@]}" "${clean[@]}" "$B/fogpipe" bench --cfg "$cfg" --weights "$w" --iters "$LOOPS" --threads "$t" | minms; }
      ort() { "${pin[@]}" node bench/onnx/ort_time.js "$o" --threads "$t" --warmup 2 --iters "$LOOPS" | minms; }
      if [ $((r % 2)) = 0 ]; then f=$(fp); g=$(ort); else g=$(ort); f=$(fp); fi
      echo "$f" >> "$tmp/f"; echo "$g" >> "$tmp/o"
      awk -v a="$g" -v b="$f" 'BEGIN{printf "%.3f\n", a/b}' >> "$tmp/r"
    done
    fm=$(mn < "$tmp/f") om=$(mn < "$tmp/o")
    printf "%-20s %3s %10s %10s %14s %13s %s\n" "$name" "$t" "$fm" "$om" \
      "$(awk -v a="$om" -v b="$fm" 'BEGIN{printf "%.2f", a/b}')" "$(med < "$tmp/r")" "$(lo_hi < "$tmp/r")"
  done
done
