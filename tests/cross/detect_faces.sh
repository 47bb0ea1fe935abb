#!/usr/bin/env bash
# The cross-built fogpipe on a real model, end to end, under the emulator:
# `fogpipe detect` with face-api's tiny face detector (the default model, put
# into data/ by scripts/setup-face.sh) at input size 608 and threshold 0.3
# over sample images with faces (astronaut: 1, coins: 3, basketball1: 1) and
# without (fruits), once with the fast kernels (OpenBLAS for the target) and
# once, on two of the images, with the reference kernels (FP_NO_FAST=1). The
# native build's output is the reference: the same images, the same number
# of faces, scores within 0.001 and box edges within 0.5 px. (Measured on
# arm64 under qemu 7.2: the reference kernels give the native output bit for
# bit, the fast ones within 1.2e-7 in score and 4e-6 px.) About 20 s.
#
# Environment (set by ctest, tests/cross/cross.cmake): FOGPIPE (the target's
# binary), FP_EMULATOR (the command that runs it), FP_HOST_FOGPIPE (a native
# fogpipe; `make cross-test` passes its build's), FP_SRC. Skips (exit 77),
# saying what is missing, without the model, the images or a native binary.
set -u
FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
FOGPIPE=${FOGPIPE:?FOGPIPE: the cross-built fogpipe}
HOST=${FP_HOST_FOGPIPE:-}
read -r -a emu <<<"${FP_EMULATOR:-}"
MODEL=$FP_SRC/data/face-api/tiny_face_detector_model-weights_manifest.json
S=$FP_SRC/data/samples
images=("$S/skimage/astronaut.png" "$S/skimage/coins.png" "$S/opencv/basketball1.png" "$S/opencv/fruits.jpg")

skip() { echo "SKIP: $*"; exit 77; }
[ -s "$MODEL" ] || skip "face-api's tiny face detector is not in $FP_SRC/data/face-api (run scripts/setup.sh)"
for f in "${images[@]}"; do [ -f "$f" ] || skip "sample image $f is missing (run scripts/setup.sh)"; done
[ -n "$HOST" ] || skip "no native fogpipe to compare with (FP_HOST_FOGPIPE; make cross-test sets it)"
[ -x "$HOST" ] || skip "the native fogpipe $HOST is not built (make build)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cross_detect.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# run NAME KERNEL_ENV IMAGE...: both binaries over the images.
run() {
    local name=$1 kenv=$2
    shift 2
    local args=(detect --model "$MODEL" --input-size 608 --threshold 0.3 "$@")
    if ! env $kenv "$HOST" "${args[@]}" >"$tmp/$name.native.jsonl" 2>"$tmp/err"; then
        echo "FAIL: native fogpipe ${args[*]}:"; head -n 20 "$tmp/err"; exit 1
    fi
    local start=$SECONDS
    if ! env $kenv "${emu[@]}" "$FOGPIPE" "${args[@]}" >"$tmp/$name.cross.jsonl" 2>"$tmp/err"; then
        echo "FAIL: ${emu[*]} $FOGPIPE ${args[*]}:"; head -n 20 "$tmp/err"; exit 1
    fi
    echo "$name: $# images in $((SECONDS - start)) s under ${emu[*]:-no emulator}"
}
run fast "" "${images[@]}"
run reference "FP_NO_FAST=1" "${images[@]:0:2}"

python3 - "$tmp" fast reference <<'PY'
import json, os, sys
SCORE_TOL, EDGE_TOL = 1e-3, 0.5
tmp, failed, faces = sys.argv[1], 0, 0
for name in sys.argv[2:]:
    native = [json.loads(l) for l in open(os.path.join(tmp, name + ".native.jsonl"))]
    cross = [json.loads(l) for l in open(os.path.join(tmp, name + ".cross.jsonl"))]
    if len(native) != len(cross):
        print(f"FAIL {name}: {len(cross)} results, native {len(native)}")
        failed += 1
        continue
    ds = de = 0.0
    for n, c in zip(native, cross):
        img = os.path.basename(n["image"])
        if c["image"] != n["image"] or (c["width"], c["height"]) != (n["width"], n["height"]):
            print(f"FAIL {name} {img}: image {c['image']} {c['width']}x{c['height']}, native {n['width']}x{n['height']}")
            failed += 1
            continue
        nd = sorted(n["detections"], key=lambda d: -d["score"])
        cd = sorted(c["detections"], key=lambda d: -d["score"])
        if len(nd) != len(cd):
            print(f"FAIL {name} {img}: {len(cd)} faces, native {len(nd)}")
            failed += 1
            continue
        faces += len(nd)
        s = max([0.0] + [abs(a["score"] - b["score"]) for a, b in zip(nd, cd)])
        e = max([0.0] + [abs(a["box"][k] - b["box"][k]) for a, b in zip(nd, cd) for k in ("x", "y", "w", "h")])
        if s > SCORE_TOL or e > EDGE_TOL:
            print(f"FAIL {name} {img}: scores differ by up to {s:.3g}, box edges by {e:.3g} px")
            failed += 1
        ds, de = max(ds, s), max(de, e)
    print(f"{name}: {len(native)} images, max score difference {ds:.3g}, max box difference {de:.3g} px")
if faces == 0:
    print("FAIL: no faces at all (the comparison would prove nothing)")
    failed += 1
print("ok" if not failed else f"{failed} failed")
sys.exit(1 if failed else 0)
PY
