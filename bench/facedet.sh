#!/usr/bin/env bash
# Face detector benchmark: ms per image for face-api's tiny face detector at
# input size SIZE (default 416), one thread, fogpipe (bench_facedet: prepare
# + network + boxes on a decoded image) side by side with face-api on TF.js's
# WASM backend (bench/facedet_faceapi.js: detectAllFaces on a decoded image),
# interleaved over ROUNDS rounds (the machine is shared and noisy): each
# round times LOOPS runs of face-api and FP_LOOPS (default 16 x LOOPS) of
# fogpipe, so that both sample about the same stretch of time (fogpipe's
# image takes about 1/16 to 1/22 of face-api's here; a few of its runs
# would catch a fast or a slow second of this VM where face-api's span
# both), which goes first alternating; prints the median of the rounds'
# medians, their ratio, and the median of the rounds' own ratios (each
# round's two measured back to back).
# Then PAIRS steps (default 100; 0: none) with both programs kept running
# side by side: each step times 1 face-api image and FP_PAIR_LOOPS (default
# 16) fogpipe images back to back, which first alternating, so that the
# two sides of a step fall within a fraction of a second of each other;
# prints the medians over the steps and the median (and quartiles) of the
# steps' own ratios, then the same over the half of the steps in which
# fogpipe ran fastest and the half in which it ran slowest (a shared VM's
# faster and slower states, which slow the two unequally).
#   bench/facedet.sh [LOOPS=20] [ROUNDS=3] [SIZE=416]   (or: make bench-facedet)
#   FP_LOOPS=N bench/facedet.sh ...                   (fogpipe's runs per round)
#   PAIRS=N FP_PAIR_LOOPS=K bench/facedet.sh ...      (the paired steps)
#   FACEDET_STEPS=FILE bench/facedet.sh ...           (each step's face-api and fogpipe ms into FILE)
# Needs what scripts/setup.sh installs into data/ (model, npm packages).
set -euo pipefail
cd "$(dirname "$0")/.."
LOOPS=${1:-20}
ROUNDS=${2:-3}
SIZE=${3:-416}
FP_LOOPS=${FP_LOOPS:-$((16 * LOOPS < 10000 ? 16 * LOOPS : 10000))}
[ "$FP_LOOPS" -ge 1 ] && [ "$FP_LOOPS" -le 10000 ] || { echo "FP_LOOPS must be 1..10000" >&2; exit 2; }
PAIRS=${PAIRS:-100}
FP_PAIR_LOOPS=${FP_PAIR_LOOPS:-16}
[[ "$PAIRS" =~ ^[0-9]+$ ]] && [ "$PAIRS" -le 100000 ] || { echo "PAIRS must be 0..100000" >&2; exit 2; }
[[ "$FP_PAIR_LOOPS" =~ ^[0-9]+$ ]] && [ "$FP_PAIR_LOOPS" -ge 1 ] && [ "$FP_PAIR_LOOPS" -le 10000 ] ||
  { echo "FP_PAIR_LOOPS must be 1..10000" >&2; exit 2; }
B=${FP_BUILD:-build}
MODEL=data/face-api
MODS=data/node/node_modules
[ -x "$B/bench_facedet" ] && [ -x "$B/image_to_ppm" ] || { echo "build first: make build" >&2; exit 1; }
[ -s "$MODEL/tiny_face_detector_model-weights_manifest.json" ] && [ -d "$MODS/@tensorflow/tfjs-backend-wasm" ] ||
  { echo "the model or the npm packages are missing: run scripts/setup.sh" >&2; exit 1; }
IMG=${FACEDET_IMAGE:-data/samples/skimage/astronaut.png}
# both on the same CPU (FP_BENCH_CPU, default the last; "none": not pinned)
. bench/pin_cpu.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$B/image_to_ppm" "$IMG" "$tmp/img.ppm"
med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
: > "$tmp/fp"; : > "$tmp/fpnet"; : > "$tmp/fa"
run_fp() {
  "${pin1[@]}" "$B/bench_facedet" "$MODEL/tiny_face_detector_model-weights_manifest.json" "$tmp/img.ppm" "$SIZE" "$FP_LOOPS" 1 > "$tmp/o"
  field median_ms < "$tmp/o" >> "$tmp/fp"; field net_ms < "$tmp/o" >> "$tmp/fpnet"
}
run_fa() {
  "${pin1[@]}" node bench/facedet_faceapi.js "$MODS" "$MODEL" "$tmp/img.ppm" "$SIZE" "$LOOPS" 2>/dev/null > "$tmp/o"
  grep -q 'backend=wasm threads=1' "$tmp/o" || { echo "face-api did not run on WASM with 1 thread: $(cat "$tmp/o")" >&2; exit 1; }
  field median_ms < "$tmp/o" >> "$tmp/fa"
}
# the two alternate which goes first, so neither always follows the other
for r in $(seq "$ROUNDS"); do
  echo "  round $r/$ROUNDS" >&2
  if [ $((r % 2)) = 1 ]; then run_fp; run_fa; else run_fa; run_fp; fi
done
fp=$(med < "$tmp/fp"); fpnet=$(med < "$tmp/fpnet"); fa=$(med < "$tmp/fa")
# each round's ratio, the two measured back to back
paste "$tmp/fa" "$tmp/fp" | awk '{printf "%.4f\n", $1 / $2}' | sort -n > "$tmp/ratio"
echo "face detector, $(basename "$IMG"), input $SIZE, 1 thread (CPU $CPU1), median of $ROUNDS rounds (fogpipe $FP_LOOPS runs, face-api $LOOPS each):"
printf "  %-36s %8.1f ms per image (network alone %.1f ms)\n" "fogpipe" "$fp" "$fpnet"
printf "  %-36s %8.1f ms per image\n" "face-api, TF.js $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$MODS/@tensorflow/tfjs/package.json") WASM backend" "$fa"
printf "  %-36s %8.2f x\n" "face-api / fogpipe" "$(awk -v a="$fa" -v b="$fp" 'BEGIN{print a/b}')"
printf "  %-36s %8.2f x (rounds: %s)\n" "median of the rounds' ratios" "$(med < "$tmp/ratio")" \
  "$(awk '{s = s (NR > 1 ? " " : "") sprintf("%.1f", $1)} END {print s}' "$tmp/ratio")"

[ "$PAIRS" -gt 0 ] || exit 0
# paired steps: both programs answer "N" on stdin with the median of N runs
mkfifo "$tmp/fp.in" "$tmp/fp.out" "$tmp/fa.in" "$tmp/fa.out"
"${pin1[@]}" "$B/bench_facedet" "$MODEL/tiny_face_detector_model-weights_manifest.json" "$tmp/img.ppm" "$SIZE" serve 1 \
  < "$tmp/fp.in" > "$tmp/fp.out" &
fp_pid=$!
exec 3> "$tmp/fp.in" 4< "$tmp/fp.out"
"${pin1[@]}" node bench/facedet_faceapi.js "$MODS" "$MODEL" "$tmp/img.ppm" "$SIZE" serve < "$tmp/fa.in" > "$tmp/fa.out" 2> "$tmp/fa.err" &
fa_pid=$!
exec 5> "$tmp/fa.in" 6< "$tmp/fa.out"
trap 'rc=$?; exec 3>&- 5>&-; wait $fp_pid $fa_pid 2>/dev/null || true; rm -rf "$tmp"; exit $rc' EXIT
trap '' PIPE # a side that stopped: its write fails (below) instead of killing this script
read -r l <&4 || { echo "bench_facedet did not start" >&2; exit 1; }
read -r l <&6 && [[ "$l" == *"backend=wasm threads=1"* ]] ||
  { echo "face-api did not start on WASM with 1 thread: $l $(cat "$tmp/fa.err")" >&2; exit 1; }
ask() { # ask FD_OUT FD_IN N: the median of N runs
  local a
  echo "$3" >&"$1" || { echo "a side of the paired runs stopped" >&2; exit 1; }
  read -r a <&"$2" || { echo "a side of the paired runs stopped" >&2; exit 1; }
  sed -n 's/.*median_ms=\([0-9.]*\).*/\1/p' <<< "$a"
}
: > "$tmp/pfp"; : > "$tmp/pfa"
for s in $(seq "$PAIRS"); do
  [ $((s % 20)) = 0 ] && echo "  step $s/$PAIRS" >&2
  if [ $((s % 2)) = 1 ]; then a=$(ask 3 4 "$FP_PAIR_LOOPS"); b=$(ask 5 6 1); else b=$(ask 5 6 1); a=$(ask 3 4 "$FP_PAIR_LOOPS"); fi
  [ -n "$a" ] && [ -n "$b" ] || { echo "a side of the paired runs stopped at step $s" >&2; exit 1; }
  echo "$a" >> "$tmp/pfp"; echo "$b" >> "$tmp/pfa"
done
[ -z "${FACEDET_STEPS:-}" ] || paste "$tmp/pfa" "$tmp/pfp" > "$FACEDET_STEPS"
paste "$tmp/pfa" "$tmp/pfp" | awk '{printf "%.4f\n", $1 / $2}' | sort -n > "$tmp/pratio"
q() { sort -n | awk -v f="$1" '{a[NR]=$1} END{i=int(f*(NR-1)+1.5); if (i > NR) i = NR; print a[i]}'; }
echo "paired, $PAIRS steps (1 face-api image and the median of $FP_PAIR_LOOPS fogpipe images each, back to back):"
printf "  %-36s %8.1f ms per image (median over the steps)\n" "fogpipe" "$(q .5 < "$tmp/pfp")"
printf "  %-36s %8.1f ms per image\n" "face-api" "$(q .5 < "$tmp/pfa")"
printf "  %-36s %8.2f x (quartiles %.2f-%.2f)\n" "median of the steps' ratios" "$(q .5 < "$tmp/pratio")" \
  "$(q .25 < "$tmp/pratio")" "$(q .75 < "$tmp/pratio")"
# the steps ordered by fogpipe's time, in two halves: a shared VM switches
# between faster and slower states, which slow the two programs unequally
paste "$tmp/pfp" "$tmp/pfa" | sort -n > "$tmp/bytime"
half() { # half lo|hi LABEL: the medians over that half of the steps
  awk -v h="$1" -v n="$(wc -l < "$tmp/bytime")" \
    '(h == "lo" && NR <= int(n / 2)) || (h == "hi" && NR > n - int(n / 2)) {print $1, $2, $2 / $1}' \
    "$tmp/bytime" > "$tmp/half"
  [ -s "$tmp/half" ] || return 0
  printf "  %-36s %8.2f x (fogpipe %.2f ms, face-api %.1f ms)\n" "$2" "$(cut -d' ' -f3 "$tmp/half" | q .5)" \
    "$(cut -d' ' -f1 "$tmp/half" | q .5)" "$(cut -d' ' -f2 "$tmp/half" | q .5)"
}
half lo "the half fogpipe ran fastest in"
half hi "the half fogpipe ran slowest in"
