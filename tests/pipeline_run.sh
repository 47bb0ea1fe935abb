#!/usr/bin/env bash
# `fogpipe run` against single-process `fogpipe detect`, multi-process over
# loopback: every model (yolov1-tiny, yolov1-tiny-tf, yolov2-tiny, yolov3-tiny,
# the face detector) with codec none gives exactly detect's output (2, 3
# and 4 stages; yolov3-tiny cut across its routes, so cuts carry several
# tensors and the first head travels to the end); a replicated stage shares
# the load; int8 keeps the face detector's boxes; kill -9 of stages in the
# middle of a 500-image stream with --respawn still gives every image
# exactly one, correct result.
# ctest: slow (skipped by the ASan tier: full-size networks)
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
#   FP_SRC    the source directory (.)
# Needs Debian's darknet (cfgs, sample images): exits 77 (skip) without it.
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
DN=/usr/share/darknet
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || { echo "skip: Debian's darknet is not installed (scripts/setup.sh)"; exit 77; }
T=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null; rm -rf "$T"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
IMAGES="$DN/data/dog.jpg $DN/data/person.jpg $DN/data/horses.jpg $DN/data/eagle.jpg"

# plan NAME MODEL_FLAGS... -- PLAN_FLAGS...: profile once per model, then a plan.
plan() {
    local name=$1
    shift
    local model=() rest=()
    while [ "$1" != -- ]; do model+=("$1"); shift; done
    shift
    rest=("$@")
    local prof="$T/$(echo "${model[*]}" | md5sum | cut -c1-8).prof"
    [ -f "$prof" ] || "$FOGPIPE" profile "${model[@]}" --iters 1 --warmup 0 --no-codecs -o "$prof" >/dev/null 2>"$T/err" ||
        { bad "$name" "profile: $(cat "$T/err")"; return 1; }
    "$FOGPIPE" plan "${model[@]}" --profile "$prof" "${rest[@]}" -o "$T/$name.plan" >/dev/null 2>"$T/err" ||
        { bad "$name" "plan: $(cat "$T/err")"; return 1; }
}

# same NAME PLAN DETECT_FLAGS... -- RUN_FLAGS...: run's stdout equals detect's.
same() {
    local name=$1 p=$2
    shift 2
    local det=() runf=()
    while [ "$1" != -- ]; do det+=("$1"); shift; done
    shift
    runf=("$@")
    "$FOGPIPE" detect "${det[@]}" $IMAGES >"$T/det" 2>"$T/err" || { bad "$name" "detect: $(cat "$T/err")"; return; }
    if ! timeout 300 "$FOGPIPE" run --plan "$p" "${runf[@]}" $IMAGES >"$T/run" 2>"$T/err"; then
        bad "$name" "run failed: $(tail -5 "$T/err")"
    elif ! cmp -s "$T/det" "$T/run"; then
        bad "$name" "run differs from detect: $(diff "$T/det" "$T/run" | head -c 400)"
    elif [ "$(wc -l <"$T/run")" != "$(echo $IMAGES | wc -w)" ]; then
        bad "$name" "expected $(echo $IMAGES | wc -w) lines, got $(wc -l <"$T/run")"
    else
        ok "$name"
    fi
}

# --- darknet models, random weights, codec none: exactly detect's output --
for m in yolov1-tiny yolov2-tiny yolov3-tiny; do
    "$FOGPIPE" random-weights --cfg "$DN/cfg/$m.cfg" --seed 3 -o "$T/$m.weights" 2>/dev/null
done
V3=(--cfg "$DN/cfg/yolov3-tiny.cfg" --weights "$T/yolov3-tiny.weights")
V2=(--cfg "$DN/cfg/yolov2-tiny.cfg" --weights "$T/yolov2-tiny.weights")
V1=(--cfg "$DN/cfg/yolov1-tiny.cfg" --weights "$T/yolov1-tiny.weights")
plan v3-2 "${V3[@]}" -- --devices 2 --link 1gbit --codec none --cuts 8 &&
    same "yolov3-tiny, 2 stages" "$T/v3-2.plan" "${V3[@]}" -- --threshold 0.5
# cut after 14 carries layers 8 (read by route 20), 13 (route 17) and 14
plan v3-3 "${V3[@]}" -- --devices 3 --link 1gbit --codec none --cuts 8,14 &&
    same "yolov3-tiny, 3 stages (cut across routes)" "$T/v3-3.plan" "${V3[@]}" -- --threshold 0.5
# cut after 16 carries the first head (read by nobody) on to the end
plan v3-4 "${V3[@]}" -- --devices 4 --link 1gbit --codec none --cuts 8,16,19 &&
    same "yolov3-tiny, 4 stages (a head crosses two cuts)" "$T/v3-4.plan" "${V3[@]}" -- --threshold 0.5
plan v3-3p "${V3[@]}" -- --devices 3 --link 1gbit --codec none --cuts 5,17 &&
    same "yolov3-tiny, 3 stages, pixels from the gateway" "$T/v3-3p.plan" "${V3[@]}" -- --input pixels
# JPEGs go re-encoded losslessly (optimised Huffman tables) unless --keep-jpeg:
# the same results either way, fewer bytes on the input link for dog.jpg
if [ -f "$T/v3-2.plan" ]; then
    same "yolov3-tiny, 2 stages, JPEGs sent as they are" "$T/v3-2.plan" "${V3[@]}" -- --threshold 0.5 --keep-jpeg
    sent() { sed -n 's/^run: gateway -> stage 0: \([0-9]*\) bytes per frame.*/\1/p' "$T/err"; }
    "$FOGPIPE" run --plan "$T/v3-2.plan" -q "$DN/data/dog.jpg" 2>"$T/err" && opt=$(sent)
    "$FOGPIPE" run --plan "$T/v3-2.plan" -q --keep-jpeg "$DN/data/dog.jpg" 2>"$T/err" && keep=$(sent)
    if [ -n "${opt:-}" ] && [ -n "${keep:-}" ] && [ "$opt" -lt $((keep * 95 / 100)) ]; then
        ok "dog.jpg re-encoded: $opt bytes per frame to stage 0, $keep as it is"
    else
        bad "JPEG re-encoding" "bytes per frame to stage 0: ${opt:-?} re-encoded, ${keep:-?} as it is"
    fi
fi
plan v2-2 "${V2[@]}" -- --devices 2 --link 1gbit --codec none --cuts 6 &&
    same "yolov2-tiny, 2 stages" "$T/v2-2.plan" "${V2[@]}" -- 
plan v2-4 "${V2[@]}" -- --devices 4 --link 1gbit --codec none --cuts 3,8,12 &&
    same "yolov2-tiny, 4 stages" "$T/v2-4.plan" "${V2[@]}" -- 
plan v1-3 "${V1[@]}" -- --devices 3 --link 1gbit --codec none --cuts 4,9 &&
    same "yolov1-tiny, 3 stages" "$T/v1-3.plan" "${V1[@]}" -- 
# the original prototype's network and split: convolutions | connected layers
"$FOGPIPE" random-weights --cfg "$FP_SRC/models/yolov1-tiny-tf.cfg" --seed 3 -o "$T/v1tf.weights" 2>/dev/null
V1TF=(--cfg "$FP_SRC/models/yolov1-tiny-tf.cfg" --weights "$T/v1tf.weights")
plan v1tf-2 "${V1TF[@]}" -- --devices 2 --link 1gbit --codec none --strategy by-type &&
    same "yolov1-tiny-tf, 2 stages (the prototype's by-type split)" "$T/v1tf-2.plan" "${V1TF[@]}" -- 
rm -f "$T/v1tf.weights"

# --- a replicated stage: both replicas work, results complete, in order ----
if plan v2-r "${V2[@]}" -- --devices 4 --link 1gbit --codec none --cuts 3,8; then
    python3 - "$T/v2-r.plan" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
p["stages"][1]["replicas"] = 2
p["stages"][1]["devices"] = ["dev1", "dev3"]
json.dump(p, open(sys.argv[1], "w"), indent=1)
EOF
    "$FOGPIPE" detect "${V2[@]}" $IMAGES $IMAGES $IMAGES >"$T/det" 2>/dev/null
    if ! timeout 300 "$FOGPIPE" run --plan "$T/v2-r.plan" $IMAGES $IMAGES $IMAGES >"$T/run" 2>"$T/err"; then
        bad "replicated stage" "run failed: $(tail -5 "$T/err")"
    elif ! cmp -s "$T/det" "$T/run"; then
        bad "replicated stage" "results differ from detect"
    else
        r0=$(sed -n 's/.*stage 1 replica 0 (layers [0-9.]*): \([0-9]*\) frames.*/\1/p' "$T/err")
        r1=$(sed -n 's/.*stage 1 replica 1 (layers [0-9.]*): \([0-9]*\) frames.*/\1/p' "$T/err")
        if [ "${r0:-0}" -gt 0 ] && [ "${r1:-0}" -gt 0 ] && [ $((r0 + r1)) -ge 12 ]; then
            ok "replicated stage (replica 0: $r0 frames, replica 1: $r1)"
        else
            bad "replicated stage" "replicas did not share the load: '$r0' and '$r1' frames: $(cat "$T/err")"
        fi
    fi
fi

# --- the face detector (real weights): exact with none; int8 keeps boxes --
FACE=$FP_SRC/data/face-api/tiny_face_detector_model-weights_manifest.json
if [ -f "$FACE" ]; then
    FIMGS=$(ls "$FP_SRC"/data/samples/*/*.jpg "$FP_SRC"/data/samples/*/*.png 2>/dev/null)
    plan face-3 --model "$FACE" -- --devices 3 --link 1gbit --codec none --cuts 4,9 &&
        { IMAGES=$FIMGS same "face detector, 3 stages" "$T/face-3.plan" --model "$FACE" -- ; }
    if plan face-i8 --model "$FACE" -- --devices 3 --link 1gbit --codec int8 --cuts 4,9; then
        "$FOGPIPE" detect --model "$FACE" $FIMGS >"$T/det" 2>/dev/null
        if timeout 300 "$FOGPIPE" run --plan "$T/face-i8.plan" $FIMGS >"$T/run" 2>"$T/err"; then
            if msg=$(python3 - "$T/det" "$T/run" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b), f"{len(a)} vs {len(b)} images"
faces = 0
for x, y in zip(a, b):
    da, db = x["detections"], y["detections"]
    assert len(da) == len(db), f'{x["image"]}: {len(da)} faces with none, {len(db)} with int8'
    for p, q in zip(da, db):
        assert abs(p["score"] - q["score"]) <= 0.02, f'{x["image"]}: score {p["score"]} vs {q["score"]}'
        for k in "xywh":
            assert abs(p["box"][k] - q["box"][k]) <= 0.02 * max(x["width"], x["height"]), f'{x["image"]}: box {k}'
        faces += 1
print(f"{len(a)} images, {faces} faces")
EOF
            ); then
                bytes=$(sed -n 's/^run: \(stage [0-9]\) replica 0 .*out int8: \([0-9]*\) bytes per frame.*/\1 sends \2 bytes per frame;/p' "$T/err" | tr '\n' ' ')
                ok "face detector, int8 cuts: same boxes, scores within 0.02 ($msg; $bytes)"
            else
                bad "face detector, int8" "$msg"
            fi
        else
            bad "face detector, int8" "run failed: $(tail -5 "$T/err")"
        fi
    fi
else
    echo "skip face detector cases: $FACE not installed (scripts/setup.sh)"
fi

# --- kill -9 in the middle of a 500-image stream, with --respawn ----------
# yolov3-tiny at 96x96 (a DAG; fast enough for 500 images on two cores).
sed -e 's/^width=.*/width=96/' -e 's/^height=.*/height=96/' "$DN/cfg/yolov3-tiny.cfg" >"$T/small.cfg"
"$FOGPIPE" random-weights --cfg "$T/small.cfg" --seed 5 -o "$T/small.weights" 2>/dev/null
SM=(--cfg "$T/small.cfg" --weights "$T/small.weights")
KIMGS="$DN/data/dog.jpg $DN/data/person.jpg $DN/data/horses.jpg $DN/data/eagle.jpg $DN/data/kite.jpg"
if plan small "${SM[@]}" -- --devices 3 --link 1gbit --codec none --cuts 8,14; then
    "$FOGPIPE" detect "${SM[@]}" --threshold 0.4 $KIMGS >"$T/det5" 2>/dev/null
    for i in $(seq 100); do cat "$T/det5"; done >"$T/det500"
    timeout 600 "$FOGPIPE" run --plan "$T/small.plan" --respawn --resend-ms 500 --threshold 0.4 --repeat 100 $KIMGS \
        >"$T/run500" 2>"$T/err500" &
    runpid=$!
    killed=""
    for at in 100:1 250:2 400:0; do
        n=${at%%:*}
        k=${at##*:}
        while kill -0 $runpid 2>/dev/null && [ "$(wc -l <"$T/run500")" -lt "$n" ]; do sleep 0.05; done
        if pkill -9 -f -- "fogpipe stage --plan $T/small.plan --stage=$k "; then killed="$killed $k@$n"; fi
    done
    wait $runpid
    rc=$?
    restarts=$(grep -c "restarting it" "$T/err500")
    if [ $rc != 0 ]; then
        bad "kill -9 with --respawn" "run exited $rc: $(tail -5 "$T/err500")"
    elif ! cmp -s "$T/det500" "$T/run500"; then
        bad "kill -9 with --respawn" "$(wc -l <"$T/run500") lines; results differ: $(diff "$T/det500" "$T/run500" | head -c 300)"
    elif [ "$restarts" -lt 2 ]; then
        bad "kill -9 with --respawn" "stages killed at:$killed but only $restarts restarts: $(tail -5 "$T/err500")"
    else
        ok "kill -9 of stages$killed (stage@line) mid-stream: 500 images, 500 correct results, $restarts restarts, $(grep -o '[0-9]* resent' "$T/err500")"
    fi
    # without --respawn a dead stage stops the run with exit 1
    timeout 300 "$FOGPIPE" run --plan "$T/small.plan" --repeat 200 $KIMGS >"$T/run" 2>"$T/err" &
    runpid=$!
    while kill -0 $runpid 2>/dev/null && [ "$(wc -l <"$T/run")" -lt 20 ]; do sleep 0.05; done
    pkill -9 -f -- "fogpipe stage --plan $T/small.plan --stage=1 "
    wait $runpid
    rc=$?
    if [ $rc = 1 ] && grep -q "killed by signal 9; stopping" "$T/err"; then ok "a dead stage without --respawn stops the run"
    else bad "a dead stage without --respawn" "exit $rc: $(tail -3 "$T/err")"; fi
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
