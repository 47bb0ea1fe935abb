#!/usr/bin/env bash
# Golden test: fogpipe against Debian's darknet (libdarknet.so) on the tiny
# YOLO models, with random weights and a random input.
#
#   1. forward: every layer's output, fogpipe's --dump-layers against
#      darknet's (darknet_oracle forward), must agree to TOL relative to the
#      layer's largest magnitude in darknet's output.
#   2. detect: fogpipe detect against darknet_oracle detect (darknet's own
#      preprocessing and box decoding) on dog/person/horses.jpg, at a
#      threshold darknet_oracle pickthresh chooses so that darknet reports a
#      handful of detections, none of them near the threshold.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary          (build/fogpipe)
#   FP_BUILD  the build directory          (build), holds darknet_oracle
#   FP_SRC    the source directory         (.)
#   GOLDEN_MODELS  optional space-separated subset of model names to run
#   GOLDEN_KEEP=1  keep the temporary directory and print its path
# Exit: 0 pass, 1 mismatch or failure, 77 skipped (no darknet / no oracle).
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FP_BUILD=${FP_BUILD:-$FP_SRC/build}
FOGPIPE=${FOGPIPE:-$FP_BUILD/fogpipe}
ORACLE=$FP_BUILD/darknet_oracle
DN=/usr/share/darknet
TOL=1e-4
SEED=7
BOXTOL=1.0
# fogpipe detect --threshold accepts [0, 1]; darknet takes any float (and
# random-weight YOLOv1 scores, raw linear outputs, can be far above 1)
MAXTHRESH=1000

if [ ! -d "$DN/cfg" ] || [ ! -d "$DN/data" ]; then
    echo "SKIP: $DN not found (install Debian's darknet package)"
    exit 77
fi
if [ ! -x "$ORACLE" ]; then
    echo "SKIP: $ORACLE not built (needs /usr/lib/darknet/libdarknet.so and darknet.h)"
    exit 77
fi
if [ ! -x "$FOGPIPE" ]; then
    echo "FAIL: fogpipe binary $FOGPIPE not found"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/golden_darknet.XXXXXX") || exit 1
if [ "${GOLDEN_KEEP:-0}" = 1 ]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi

IMAGES=("$DN/data/dog.jpg" "$DN/data/person.jpg" "$DN/data/horses.jpg")
for im in "${IMAGES[@]}"; do
    [ -r "$im" ] || { echo "SKIP: $im missing"; exit 77; }
done

# name|cfg|names|nms  (nms: examples/yolo.c uses .4, examples/detector.c .45)
MODELS=(
    "yolov1-tiny|$DN/cfg/yolov1-tiny.cfg|$DN/data/voc.names|0.4"
    "yolov2-tiny|$DN/cfg/yolov2-tiny.cfg|$DN/data/coco.names|0.45"
    "yolov2-tiny-voc|$DN/cfg/yolov2-tiny-voc.cfg|$DN/data/voc.names|0.45"
    "yolov3-tiny|$DN/cfg/yolov3-tiny.cfg|$DN/data/coco.names|0.45"
    "yolov1-tiny-tf|$FP_SRC/models/yolov1-tiny-tf.cfg|$DN/data/voc.names|0.4"
)

# [net] width/height/channels of a cfg, as "C H W" (darknet: no default for
# width/height; channels defaults to 0, which no detector uses)
net_shape() {
    awk '
        /^[ \t]*#/ || /^[ \t]*;/ { next }
        /^[ \t]*\[/ { sec++; insec = ($0 ~ /^[ \t]*\[(net|network)\]/) && sec == 1; next }
        insec {
            line = $0; gsub(/[ \t\r]/, "", line)
            split(line, kv, "=")
            if (kv[1] == "width") w = kv[2]
            if (kv[1] == "height") h = kv[2]
            if (kv[1] == "channels") c = kv[2]
        }
        END { if (w > 0 && h > 0 && c > 0) print c, h, w; else exit 1 }
    ' "$1"
}

# runs a command, saving stdout/stderr to $2.out/$2.err; on failure prints
# the stderr tail and returns 1
run_logged() {
    local what=$1 log=$2
    shift 2
    "$@" >"$log.out" 2>"$log.err"
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "  $what failed (exit $rc): $*"
        tail -n 5 "$log.err" | sed 's/^/    /'
        return 1
    fi
}

failures=0
summary=()
for entry in "${MODELS[@]}"; do
    IFS='|' read -r name cfg names nms <<<"$entry"
    if [ -n "${GOLDEN_MODELS:-}" ] && [[ " $GOLDEN_MODELS " != *" $name "* ]]; then
        continue
    fi
    if [ ! -r "$cfg" ]; then
        echo "== $name: SKIPPED ($cfg not found)"
        summary+=("$name: skipped (no cfg)")
        continue
    fi
    echo "== $name ($cfg)"
    d=$tmp/$name
    mkdir -p "$d/fp" "$d/dn"
    model_ok=1

    shape=$(net_shape "$cfg") || { echo "  cannot read [net] width/height/channels"; failures=$((failures + 1)); summary+=("$name: FAIL (cfg)"); continue; }
    read -r c h w <<<"$shape"
    n=$((c * h * w))

    if ! run_logged "fogpipe random-weights" "$d/rw" "$FOGPIPE" random-weights --cfg "$cfg" --seed $SEED -o "$d/w.weights" ||
       ! run_logged "randinput" "$d/ri" "$ORACLE" randinput $n $SEED "$d/in.f32"; then
        failures=$((failures + 1)); summary+=("$name: FAIL (setup)"); continue
    fi

    # ---- forward, both engines at once (2 cores)
    run_logged "fogpipe forward" "$d/fpf" "$FOGPIPE" forward --cfg "$cfg" --weights "$d/w.weights" \
        --input-raw "$d/in.f32" --output "$d/out.f32" --dump-layers "$d/fp" &
    fp_pid=$!
    run_logged "darknet_oracle forward" "$d/dnf" "$ORACLE" forward "$cfg" "$d/w.weights" "$d/in.f32" "$d/dn"
    dn_rc=$?
    wait $fp_pid
    fp_rc=$?
    fwd="forward not run"
    if [ $fp_rc -ne 0 ] || [ $dn_rc -ne 0 ]; then
        model_ok=0
        fwd="forward FAILED to run"
    else
        grep 'skipped' "$d/dnf.err" | sed 's/^darknet_oracle: /  darknet: /'
        if "$ORACLE" compare-layers "$d/fp" "$d/dn" $TOL >"$d/cmp.txt" 2>&1; then
            fwd="forward ok: $(grep '^WORST' "$d/cmp.txt" | sed 's/^WORST //')"
        else
            model_ok=0
            grep -v ': ok ' "$d/cmp.txt" | sed 's/^/  /'
            fwd="forward MISMATCH: $(grep '^WORST' "$d/cmp.txt" | sed 's/^WORST //')"
        fi
        # the final output must be the last layer's
        last=$(ls "$d/dn" | sort | tail -n 1)
        if [ -f "$d/out.f32" ] && ! cmp -s "$d/out.f32" "$d/fp/$last"; then
            model_ok=0
            fwd="$fwd; --output differs from the last layer dump $last"
        fi
    fi
    echo "  $fwd"
    rm -rf "$d/fp" "$d/dn"

    # ---- detect
    det="detect not run"
    if run_logged "darknet_oracle pickthresh" "$d/pt" "$ORACLE" pickthresh "$cfg" "$d/w.weights" "$nms" 5 40 "$MAXTHRESH" "${IMAGES[@]}"; then
        read -r thr expect <"$d/pt.out"
        # scores are printed with 6 decimals; compare them relative to the
        # threshold's scale (1e-3 absolute, tighter for small scores)
        stol=$(awk -v t="$thr" 'BEGIN { s = t * 1e-2; if (s > 1e-3) s = 1e-3; if (s < 2e-6) s = 2e-6; printf "%g", s }')
        echo "  threshold $thr (darknet: $expect detections), nms $nms, score tol $stol"
        run_logged "fogpipe detect" "$d/fpd" "$FOGPIPE" detect --cfg "$cfg" --weights "$d/w.weights" \
            --names "$names" --threshold "$thr" --nms "$nms" "${IMAGES[@]}" &
        fp_pid=$!
        run_logged "darknet_oracle detect" "$d/dnd" "$ORACLE" detect "$cfg" "$d/w.weights" "$names" "$thr" "$nms" "${IMAGES[@]}"
        dn_rc=$?
        wait $fp_pid
        fp_rc=$?
        if [ $fp_rc -ne 0 ] || [ $dn_rc -ne 0 ]; then
            model_ok=0
            det="detect FAILED to run"
        elif "$ORACLE" compare-detect "$d/fpd.out" "$d/dnd.out" $BOXTOL "$stol" >"$d/cmpd.txt" 2>&1; then
            det="detect ok: $(tail -n 1 "$d/cmpd.txt" | sed 's/^DETECT //')"
        else
            model_ok=0
            sed 's/^/  /' "$d/cmpd.txt"
            det="detect MISMATCH: $(tail -n 1 "$d/cmpd.txt" | sed 's/^DETECT //')"
        fi
    else
        model_ok=0
        det="detect: no usable threshold (darknet finds no detection)"
    fi
    echo "  $det"
    [ "${GOLDEN_KEEP:-0}" = 1 ] || rm -f "$d/w.weights" "$d/in.f32"

    if [ $model_ok = 1 ]; then
        summary+=("$name: PASS | $fwd | $det")
    else
        failures=$((failures + 1))
        summary+=("$name: FAIL | $fwd | $det")
    fi
done

echo
echo "== summary"
for s in "${summary[@]}"; do echo "  $s"; done
if [ $failures -ne 0 ]; then
    echo "FAIL: $failures model(s) differ from darknet"
    exit 1
fi
echo "PASS"
exit 0
