#!/usr/bin/env bash
# Pipeline benchmark: images/min of `fogpipe run` (every stage a local
# process, ZeroMQ over loopback) with plans of 1, 2, 3 and 4 stages (fogpipe
# plan --strategy equal-flops --link 1gbit --codec none; the 3-stage plan
# also with --codec int8), against single-process `fogpipe detect` (1 and 2
# kernel threads) on the same images: darknet's 7 sample JPEGs, repeated.
# Models: Debian darknet's yolov3-tiny.cfg with fixed-seed random weights,
# and face-api's tiny face detector when scripts/setup.sh has put it in
# data/face-api/. detect's figure is its steady rate, startup (process,
# weights, first images) excluded:
#   images/min = 7·(R−1)·60 / (wall(7·R images) − wall(7 images));
# run's is its own (7·R images from the first submission to the last result:
# its processes' startup excluded, filling the pipeline once included, which
# costs it about one frame's latency). Median of ROUNDS interleaved rounds
# (the machine is shared and noisy); ratios are over detect with 1 thread.
# After each model, `fogpipe run`'s own summary of its last run (busy %,
# bytes per frame per cut).
#   bench/pipeline.sh [IMAGES_REPEAT=6] [ROUNDS=3]
# FP_BENCH_THRESHOLD (default 0.9) is the score threshold for the random-
# weight yolov3-tiny in both commands: at its default 0.5 random weights give
# thousands of boxes and ~1.5 MB of JSON per image, which the benchmark would
# time instead of the pipeline. The face detector keeps its own (0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-6}
ROUNDS=${2:-3}
B=${FP_BUILD:-build}
TH=${FP_BENCH_THRESHOLD:-0.9}
[ -x "$B/fogpipe" ] || { echo "build first: make build" >&2; exit 1; }
[ "$R" -ge 2 ] 2>/dev/null || { echo "IMAGES_REPEAT must be >= 2" >&2; exit 2; }
imgs=(/usr/share/darknet/data/*.jpg)
[ -f "${imgs[0]}" ] || { echo "needs Debian's darknet sample images (/usr/share/darknet/data/*.jpg)" >&2; exit 1; }
n1=${#imgs[@]}
long=()
for _ in $(seq "$R"); do long+=("${imgs[@]}"); done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a/b }'; }
now() { date +%s.%N; }
# wall seconds of a command, its stdout discarded, its stderr kept in $tmp/last.err
wall() { local t0; t0=$(now); "$@" > /dev/null 2> "$tmp/last.err" || { cat "$tmp/last.err" >&2; return 1; }
         awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}'; }
# steady images/min from a short and a long wall time
rate() { awk -v s="$1" -v l="$2" -v n=$((n1 * (R - 1))) 'BEGIN{ if (l > s) printf "%.1f\n", n * 60 / (l - s); else print "" }'; }

bench_model() { # NAME, then the model arguments for detect/profile/plan
  local name=$1; shift
  local model=("$@") thr=()
  [ "${model[0]}" = --cfg ] && thr=(--threshold "$TH")
  local d=$tmp/$name
  mkdir -p "$d"
  "$B/fogpipe" profile "${model[@]}" --iters 5 -o "$d/profile.json" > /dev/null 2>&1
  local rows=("detect 1t" "detect 2t" "1 stage" "2 stages" "3 stages" "4 stages" "3 st int8")
  for n in 1 2 3 4; do
    "$B/fogpipe" plan "${model[@]}" --profile "$d/profile.json" --devices "$n" --link 1gbit --codec none \
      --strategy equal-flops -o "$d/p$n.json" > "$d/p$n.txt" 2>&1
  done
  "$B/fogpipe" plan "${model[@]}" --profile "$d/profile.json" --devices 3 --link 1gbit --codec int8 \
    --strategy equal-flops -o "$d/p3i.json" > "$d/p3i.txt" 2>&1
  local plans=("" "" p1 p2 p3 p4 p3i)
  for r in $(seq "$ROUNDS"); do
    echo "  $name round $r/$ROUNDS" >&2
    for i in "${!rows[@]}"; do
      local s l
      if [ "$i" -lt 2 ]; then
        local t=$((i + 1))
        s=$(wall "$B/fogpipe" detect "${model[@]}" "${thr[@]}" --threads "$t" "${imgs[@]}")
        l=$(wall "$B/fogpipe" detect "${model[@]}" "${thr[@]}" --threads "$t" "${long[@]}")
      else
        local p=$d/${plans[$i]}.json
        # run's own figure: its startup, which polls the stages for
        # readiness, varies too much to subtract
        l=$(wall "$B/fogpipe" run --plan "$p" "${thr[@]}" --quiet --repeat "$R" "${imgs[@]}")
        cp "$tmp/last.err" "$d/${plans[$i]}.summary"
        s=$(sed -n 's/^run: [0-9]* images in [0-9.]* s: \([0-9.]*\) images\/min.*/\1/p' "$tmp/last.err")
      fi
      echo "$l" >> "$d/wall$i"
      if [ "$i" -lt 2 ]; then rate "$s" "$l"; else echo "$s"; fi >> "$d/rate$i"
    done
  done
  echo
  local desc="${model[*]}"
  desc=${desc//"$tmp/"/}
  [ "${model[0]}" = --cfg ] && desc="$desc (random, seed 1)"
  echo "== $name: $desc${thr:+ --threshold $TH}; $((n1 * R)) images (${n1} x $R)"
  printf "%-10s %-20s %10s %9s %10s %10s\n" config stages "images/min" "vs detect" "wall s" "predicted"
  local base
  base=$(med < "$d/rate0")
  for i in "${!rows[@]}"; do
    local v w layers="-" pred="-"
    v=$(med < "$d/rate$i"); w=$(med < "$d/wall$i")
    if [ "$i" -ge 2 ]; then
      local txt=$d/${plans[$i]}.txt
      layers=$(awk '/^[0-9]+ +[0-9]+-[0-9]+ /{printf "%s%s", sep, $2; sep=","}' "$txt")
      pred=$(sed -n 's/^predicted: \([0-9.]*\) images\/min.*/\1/p' "$txt")
    else
      layers="all, 1 process"
    fi
    printf "%-10s %-20s %10s %9s %10s %10s\n" "${rows[$i]}" "$layers" "${v:-n/a}" "$(ratio "$v" "$base")" "$w" "$pred"
  done
  for i in 2 3 4 5 6; do
    echo "-- ${rows[$i]} (fogpipe run's summary of its last ${n1}x$R run):"
    grep -E '^run: ([0-9]+ images in|gateway|stage )' "$d/${plans[$i]}.summary" | sed 's/^/   /'
  done
}

echo "pipeline benchmark: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1));" \
     "steady images/min, median of $ROUNDS rounds; build $B"
cfg=/usr/share/darknet/cfg/yolov3-tiny.cfg
"$B/fogpipe" random-weights --cfg "$cfg" --seed 1 -o "$tmp/yolov3-tiny.weights" > /dev/null 2>&1
bench_model yolov3-tiny --cfg "$cfg" --weights "$tmp/yolov3-tiny.weights"
face=data/face-api/tiny_face_detector_model-weights_manifest.json
if [ -f "$face" ]; then bench_model face-api-416 --model "$face"
else echo; echo "face-api: n/a (scripts/setup.sh puts it in data/face-api/)"; fi
cat <<EOF

(images/min: detect's steady rate, ${n1}·(R−1)·60 / (wall(${n1}·R images) − wall(${n1} images)) with
 R = $R, startup excluded; run's own figure over ${n1}·R images, first submission to last result
 (its processes' startup excluded, filling the pipeline included); vs detect: over detect with 1 kernel
 thread; wall s: the ${n1}x$R-image command, startup included; predicted: fogpipe plan's figure for
 that many separate devices on a 1 Gbit/s link. Every stage runs 1 kernel thread. On this
 $(nproc)-core machine all stage processes and the gateway share the cores: 2 stages can use both
 at once, as detect --threads 2 does, and further stages only compete for them, so these figures
 show the pipeline's overhead (encoding, ZeroMQ copies, the gateway, processes sharing cores),
 not how it scales across real devices.)
EOF
