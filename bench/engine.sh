#!/usr/bin/env bash
# Engine benchmark: ms per image (median of LOOPS after warm-up, `fogpipe
# bench`) for each model: fogpipe's fast kernels at 1 and 2 threads, its
# reference kernels (FP_NO_FAST=1, 1 thread) and Debian's darknet on the same
# cfg and weights, ONNX Runtime (npm onnxruntime-node, 1 and 2 threads) on
# the same network exported to ONNX (bench/onnx/export_onnx.py, heads
# included), and PyTorch (Debian's python3-torch, eager, inference_mode, 1
# and 2 threads) on the same network built as a torch module
# (bench/onnx/torch_time.py: the exporter's layers and semantics;
# OMP_WAIT_POLICY=PASSIVE and glibc malloc told to keep freed memory, see
# there), interleaved over ROUNDS rounds (the machine is shared and noisy);
# prints the median of the rounds and the ratios. ONNX Runtime and PyTorch
# need bench/onnx/setup.sh (else their columns read n/a); bench/onnx/check.sh
# checks the export against fogpipe, `bench/onnx/torch_time.py CFG WEIGHTS
# --check` the torch module.
#   bench/engine.sh [LOOPS=5] [ROUNDS=3]
# OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS are cleared for fogpipe so it picks
# its kernels as on a fresh machine (FP_BENCH_KEEP_ENV=1 keeps them).
# One-thread runs of every engine are pinned to the same CPU (FP_BENCH_CPU,
# default the last one; "none": not pinned; bench/pin_cpu.sh says why).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOPS=${1:-5}
ROUNDS=${2:-3}
B=${FP_BUILD:-build}
[ -x "$B/fogpipe" ] || { echo "build first: make build" >&2; exit 1; }
DN=/usr/share/darknet/cfg
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the last: face-api's tiny face detector as fogpipe builds it (bench/onnx/tiny-face-detector.cfg)
models=("models/yolov1-tiny-tf.cfg" "$DN/yolov1-tiny.cfg" "$DN/yolov2-tiny.cfg" "$DN/yolov3-tiny.cfg"
        "bench/onnx/tiny-face-detector.cfg")
clean=(env -u OPENBLAS_CORETYPE -u OPENBLAS_NUM_THREADS)
[ "${FP_BENCH_KEEP_ENV:-0}" = 1 ] && clean=(env)
. bench/pin_cpu.sh
echo "one-thread runs pinned to CPU $CPU1"
ort=0
if command -v node >/dev/null && [ -f data/ort/node_modules/onnxruntime-node/package.json ] &&
   /usr/bin/python3 -c 'import onnx, numpy' 2>/dev/null; then ort=1
else echo "ONNX Runtime: n/a (run bench/onnx/setup.sh)" >&2; fi
pt=0
if /usr/bin/python3 -c 'import torch, onnx, numpy' 2>/dev/null; then pt=1
else echo "PyTorch: n/a (run bench/onnx/setup.sh)" >&2; fi
med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ms() { sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "") print "n/a"; else printf "%.2f", a/b }'; }
"${clean[@]}" "$B/fogpipe" bench --cfg "${models[2]}" --iters 1 --warmup 0 | sed -n 's/^kernels: /fogpipe kernels: /p'
# the machine's limit for one thread: OpenBLAS sgemm 2048^3 (two threads: twice it)
peak=""
[ -x "$B/bench_sgemm" ] && peak=$("${pin1[@]}" "${clean[@]}" "$B/bench_sgemm" 2048 5 | sed -n 's/.*sgemm_gflops=\([0-9.]*\).*/\1/p')
echo "sgemm peak, 1 thread: ${peak:-n/a} GFLOP/s (bench_sgemm 2048)"
: > "$tmp/gf"
printf "%-16s %9s %9s %9s %10s %8s %8s %8s %8s %9s %9s %9s %9s %9s %9s %11s %11s\n" model "fast 1t" "fast 2t" \
  "ref 1t" darknet "ref/1t" "ref/2t" "dn/1t" "dn/2t" "ORT 1t ms" "ORT 2t ms" "ORT/fp 1t" "ORT/fp 2t" \
  "torch 1t" "torch 2t" "torch/fp 1t" "torch/fp 2t"
for cfg in "${models[@]}"; do
  name=$(basename "$cfg" .cfg)
  w=$tmp/$name.weights
  "$B/fogpipe" random-weights --cfg "$cfg" --seed 1 -o "$w" 2>/dev/null
  : > "$tmp/f1"; : > "$tmp/f2"; : > "$tmp/r"; : > "$tmp/d"; : > "$tmp/o1"; : > "$tmp/o2"; : > "$tmp/t1"; : > "$tmp/t2"
  onnx=""
  if [ "$ort" = 1 ] && /usr/bin/python3 bench/onnx/export_onnx.py "$cfg" "$w" "$tmp/$name.onnx" >/dev/null; then
    onnx=$tmp/$name.onnx
  fi
  for r in $(seq "$ROUNDS"); do
    echo "  $name round $r/$ROUNDS" >&2
    "${pin1[@]}" "${clean[@]}" "$B/fogpipe" bench --cfg "$cfg" --weights "$w" --iters "$LOOPS" --threads 1 | ms >> "$tmp/f1"
    "${clean[@]}" "$B/fogpipe" bench --cfg "$cfg" --weights "$w" --iters "$LOOPS" --threads 2 | ms >> "$tmp/f2"
    FP_NO_FAST=1 "${pin1[@]}" "$B/fogpipe" bench --cfg "$cfg" --weights "$w" --iters "$LOOPS" --warmup 1 | ms >> "$tmp/r"
    if [ -x "$B/darknet_time" ]; then
      "${pin1[@]}" "$B/darknet_time" "$cfg" "$w" "$LOOPS" 2>/dev/null | ms >> "$tmp/d"
    fi
    if [ -n "$onnx" ]; then
      "${pin1[@]}" node bench/onnx/ort_time.js "$onnx" --threads 1 --warmup 2 --iters "$LOOPS" | ms >> "$tmp/o1"
      node bench/onnx/ort_time.js "$onnx" --threads 2 --warmup 2 --iters "$LOOPS" | ms >> "$tmp/o2"
    fi
    if [ "$pt" = 1 ]; then
      "${pin1[@]}" /usr/bin/python3 bench/onnx/torch_time.py "$cfg" "$w" --threads 1 --warmup 2 --iters "$LOOPS" | ms >> "$tmp/t1" || true
      /usr/bin/python3 bench/onnx/torch_time.py "$cfg" "$w" --threads 2 --warmup 2 --iters "$LOOPS" | ms >> "$tmp/t2" || true
    fi
  done
  f1=$(med < "$tmp/f1"); f2=$(med < "$tmp/f2"); rf=$(med < "$tmp/r"); d=$(med < "$tmp/d" || true)
  o1=$(med < "$tmp/o1" || true); o2=$(med < "$tmp/o2" || true)
  t1=$(med < "$tmp/t1" || true); t2=$(med < "$tmp/t2" || true)
  # GFLOP per image (fogpipe counts them), then GFLOP/s and % of the peak for each engine
  gflop=$("$B/fogpipe" bench --cfg "$cfg" --weights "$w" --iters 1 --warmup 0 |
          sed -n 's/.*median_ms=\([0-9.]*\).*GFLOP\/s=\([0-9.]*\).*/\1 \2/p' | awk '{printf "%.3f", $1 * $2 / 1e3}')
  gfs() { awk -v g="$gflop" -v ms="$1" -v pk="$2" -v k="$3" 'BEGIN{ if (ms == "" || g == "") { printf "%9s %6s", "n/a", "n/a"; exit }
          r = g / ms * 1e3; if (pk == "") printf "%9.1f %6s", r, "n/a"; else printf "%9.1f %5.0f%%", r, 100 * r / (pk * k) }'; }
  printf "%-16s %7s  %s  %s  %s  %s  %s  %s\n" "$name" "$gflop" "$(gfs "$f1" "$peak" 1)" "$(gfs "$f2" "$peak" 2)" \
    "$(gfs "$o1" "$peak" 1)" "$(gfs "$o2" "$peak" 2)" "$(gfs "$t1" "$peak" 1)" "$(gfs "$t2" "$peak" 2)" >> "$tmp/gf"
  printf "%-16s %9.1f %9.1f %9.1f %10s %8s %8s %8s %8s %9s %9s %9s %9s %9s %9s %11s %11s\n" "$name" "$f1" "$f2" \
    "$rf" "${d:-n/a}" "$(ratio "$rf" "$f1")" "$(ratio "$rf" "$f2")" "$(ratio "$d" "$f1")" "$(ratio "$d" "$f2")" \
    "${o1:-n/a}" "${o2:-n/a}" "$(ratio "$o1" "$f1")" "$(ratio "$o2" "$f2")" \
    "${t1:-n/a}" "${t2:-n/a}" "$(ratio "$t1" "$f1")" "$(ratio "$t2" "$f2")"
done
echo "(ms per image, median of $ROUNDS rounds of median-of-$LOOPS; ratios are speedups of fogpipe's fast"
echo " kernels over its reference kernels (ref) and over darknet (dn), whose CPU path is single-threaded;"
echo " ORT/fp, torch/fp: ONNX Runtime's / PyTorch's ms over fogpipe fast's at the same thread count,"
echo " > 1 means fogpipe is faster;"
echo " every engine runs the whole network, detection heads included)"
echo
echo "GFLOP/s and % of the sgemm peak (${peak:-n/a} GFLOP/s per thread; 2 threads: twice it)"
printf "%-16s %7s  %16s  %16s  %16s  %16s  %16s  %16s\n" model GFLOP "fogpipe 1t" "fogpipe 2t" "ORT 1t" "ORT 2t" \
  "torch 1t" "torch 2t"
cat "$tmp/gf"
