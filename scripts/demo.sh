#!/usr/bin/env bash
# The demo: sets up, builds, and runs detection in three parts, writing JSON
# Lines and annotated images.
#
# 1. Faces, with a real pretrained detector: face-api's tiny face detector
#    (TF.js weights fetched with `npm pack` by scripts/setup.sh; the default
#    model of `fogpipe detect`) at input size 608 (FOGPIPE_DEMO_INPUT_SIZE; the
#    small faces need it), over sample images from Debian packages:
#    python3-skimage's astronaut.png and friends, opencv-doc's example images
#    and darknet's data images. Results in out/demo/faces/.
# 2. The same faces through the distributed pipeline on this machine: the
#    face detector profiled, planned for 3 devices on 100 Mbit/s links (the
#    optimal plan: 2 stages, an int8 cut), each stage
#    a process talking ZeroMQ over loopback (`fogpipe run`); the faces found
#    are compared with part 1's. Results in out/demo/pipeline/.
# 3. The darknet path: the original prototype's yolov1-tiny-tf with
#    RANDOM weights (no trained darknet weights can be downloaded here), so
#    its boxes mean nothing: it shows the darknet path working end to end.
#    Results in out/demo/detections.jsonl and out/demo/annotated/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make build >/dev/null
out=${FOGPIPE_DEMO_OUT:-out/demo}
mkdir -p "$out/annotated" "$out/faces/annotated" "$out/pipeline/annotated"

# Part 1: faces.
model=data/face-api/tiny_face_detector_model-weights_manifest.json
[ -s "$model" ] || { echo "demo: the face detector is missing ($model): scripts/setup.sh could not fetch it" >&2; exit 1; }
faces=()
for f in data/samples/skimage/*.png data/samples/opencv/*.jpg data/samples/opencv/*.png /usr/share/darknet/data/*.jpg; do
  [ -f "$f" ] && faces+=("$f")
done
echo "demo (1/3): face detection with face-api's tiny face detector (pretrained) in ${#faces[@]} images" >&2
start=$(date +%s.%N)
rc=0
build/fogpipe detect --model "$model" --input-size "${FOGPIPE_DEMO_INPUT_SIZE:-608}" --threads "$(nproc)" \
  --annotate "$out/faces/annotated" "${faces[@]}" > "$out/faces/detections.jsonl" || rc=$?
end=$(date +%s.%N)
python3 - "$out/faces/detections.jsonl" "$start" "$end" "${#faces[@]}" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
secs = float(sys.argv[3]) - float(sys.argv[2])
hit = [r for r in rows if r["detections"]]
for r in hit:
    scores = ", ".join(f"{d['score']:.2f}" for d in r["detections"])
    print(f"  {r['image']}: {len(r['detections'])} face(s), scores {scores}")
print(f"demo: faces in {len(hit)} of {len(rows)} images ({sum(len(r['detections']) for r in rows)} in all), "
      f"{len(rows)} images in {secs:.1f} s (including model load)")
if len(rows) != int(sys.argv[4]):
    print(f"demo: {int(sys.argv[4]) - len(rows)} image(s) could not be read (see the messages above)")
PY

# Part 2: the same faces through a 3-stage pipeline (processes over loopback).
size=${FOGPIPE_DEMO_INPUT_SIZE:-608}
echo "demo (2/3): the same images through a pipeline of stage processes (fogpipe profile, plan, run)" >&2
build/fogpipe profile --model "$model" --input-size "$size" --iters 3 --image "${faces[0]}" \
  -o "$out/pipeline/face.profile.json" >/dev/null 2>&1
build/fogpipe plan --model "$model" --input-size "$size" --profile "$out/pipeline/face.profile.json" \
  --devices 3 --link 100mbit --strategy optimal --no-replicas -o "$out/pipeline/plan.json" >&2
build/fogpipe run --plan "$out/pipeline/plan.json" --annotate "$out/pipeline/annotated" "${faces[@]}" \
  > "$out/pipeline/detections.jsonl" || rc=$?
python3 - "$out/faces/detections.jsonl" "$out/pipeline/detections.jsonl" <<'PY'
import json, sys
a = {r["image"]: r for r in map(json.loads, open(sys.argv[1]))}
b = [json.loads(l) for l in open(sys.argv[2])]
same = sum(1 for r in b if len(r["detections"]) == len(a.get(r["image"], {}).get("detections", [None])))
worst = max((abs(x["score"] - y["score"]) for r in b for x, y in zip(r["detections"], a[r["image"]]["detections"])),
            default=0)
print(f"demo: pipeline with int8 cuts: {len(b)} images, the same number of faces as one process in {same}, "
      f"scores within {worst:.3f}")
PY

# Part 3: the darknet path with random weights.
cfg=models/yolov1-tiny-tf.cfg
weights=$out/yolov1-tiny-tf.random.weights
[ -f "$weights" ] || build/fogpipe random-weights --cfg "$cfg" --seed 1 -o "$weights"
build/fogpipe inspect --cfg "$cfg" | tail -n 1
images=()
for f in dog eagle giraffe horses person scream; do
  [ -f /usr/share/darknet/data/$f.jpg ] && images+=(/usr/share/darknet/data/$f.jpg)
done
echo "demo (3/3): darknet path, ${#images[@]} images with $cfg (random weights: the boxes mean nothing)" >&2
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
echo "demo: face results in $out/faces/detections.jsonl and $out/faces/annotated/" >&2
echo "demo: pipeline results in $out/pipeline/detections.jsonl and $out/pipeline/annotated/ (plan: $out/pipeline/plan.json)" >&2
echo "demo: darknet (random weights) results in $out/detections.jsonl and $out/annotated/" >&2
exit "$rc"
