#!/usr/bin/env bash
# The demo: sets up, builds, and runs detection over the sample images that
# Debian's darknet package ships, writing JSON Lines and annotated images.
#
# The network is the original prototype's yolov1-tiny-tf with RANDOM weights
# (no trained weights can be downloaded here), so the boxes mean nothing:
# the demo shows the pipeline working end to end, not detection quality.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make build >/dev/null
out=${FOGPIPE_DEMO_OUT:-out/demo}
mkdir -p "$out/annotated"
cfg=models/yolov1-tiny-tf.cfg
weights=$out/yolov1-tiny-tf.random.weights
[ -f "$weights" ] || build/fogpipe random-weights --cfg "$cfg" --seed 1 -o "$weights"
build/fogpipe inspect --cfg "$cfg" | tail -n 1
images=()
for f in dog eagle giraffe horses person scream; do
  [ -f /usr/share/darknet/data/$f.jpg ] && images+=(/usr/share/darknet/data/$f.jpg)
done
echo "demo: detecting in ${#images[@]} images with $cfg (random weights: the boxes mean nothing)" >&2
start=$(date +%s.%N)
build/fogpipe detect --cfg "$cfg" --weights "$weights" --names /usr/share/darknet/data/voc.names \
  --threshold "${FOGPIPE_THRESHOLD:-2.0}" --threads "$(nproc)" --annotate "$out/annotated" "${images[@]}" > "$out/detections.jsonl"
end=$(date +%s.%N)
python3 - "$out/detections.jsonl" "$start" "$end" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
secs = float(sys.argv[3]) - float(sys.argv[2])
for r in rows:
    print(f"  {r['image']}: {r['width']}x{r['height']}, {len(r['detections'])} boxes")
print(f"demo: {len(rows)} images in {secs:.1f} s (including model load)")
PY
echo "demo: results in $out/detections.jsonl and $out/annotated/" >&2
