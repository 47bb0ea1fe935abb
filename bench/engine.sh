#!/usr/bin/env bash
# Engine benchmark: ms per image (median of LOOPS after warm-up) for each
# model at 1 and 2 threads, side by side with Debian's darknet on the same cfg
# and weights, interleaved over ROUNDS rounds (the machine is shared and
# noisy); prints the median of the rounds and the ratio darknet/fogpipe.
#   bench/engine.sh [LOOPS=5] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
LOOPS=${1:-5}
ROUNDS=${2:-3}
B=${FP_BUILD:-build}
[ -x "$B/bench_engine" ] || { echo "build first: make build" >&2; exit 1; }
DN=/usr/share/darknet/cfg
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
models=("models/yolov1-tiny-tf.cfg" "$DN/yolov1-tiny.cfg" "$DN/yolov2-tiny.cfg" "$DN/yolov3-tiny.cfg")
med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
printf "%-20s %10s %10s %10s %9s %9s\n" model "fp 1t ms" "fp 2t ms" "darknet ms" "dn/fp 1t" "dn/fp 2t"
for cfg in "${models[@]}"; do
  name=$(basename "$cfg" .cfg)
  w=$tmp/$name.weights
  "$B/fogpipe" random-weights --cfg "$cfg" --seed 1 -o "$w" 2>/dev/null
  : > "$tmp/f1"; : > "$tmp/f2"; : > "$tmp/d"
  for r in $(seq "$ROUNDS"); do
    echo "  $name round $r/$ROUNDS" >&2
    "$B/bench_engine" "$cfg" "$w" "$LOOPS" 1 | sed 's/.*median_ms=\([0-9.]*\).*/\1/' >> "$tmp/f1"
    "$B/bench_engine" "$cfg" "$w" "$LOOPS" 2 | sed 's/.*median_ms=\([0-9.]*\).*/\1/' >> "$tmp/f2"
    if [ -x "$B/darknet_time" ]; then
      "$B/darknet_time" "$cfg" "$w" "$LOOPS" 2>/dev/null | sed 's/.*median_ms=\([0-9.]*\).*/\1/' >> "$tmp/d"
    fi
  done
  f1=$(med < "$tmp/f1"); f2=$(med < "$tmp/f2"); d=$(med < "$tmp/d" || true)
  if [ -n "$d" ]; then
    printf "%-20s %10.1f %10.1f %10.1f %9.2f %9.2f\n" "$name" "$f1" "$f2" "$d" \
      "$(awk -v a="$d" -v b="$f1" 'BEGIN{print a/b}')" "$(awk -v a="$d" -v b="$f2" 'BEGIN{print a/b}')"
  else
    printf "%-20s %10.1f %10.1f %10s\n" "$name" "$f1" "$f2" "n/a"
  fi
done
echo "(darknet's CPU path is single-threaded; its figure is the same for both ratios)"
