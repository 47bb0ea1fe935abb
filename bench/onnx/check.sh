#!/usr/bin/env bash
# Checks the ONNX export: for each benchmark model, random weights (seed 1),
# export, run fogpipe (`forward --dump-layers`) and ONNX Runtime on the same
# random raw input and compare every graph output with fogpipe's output of
# the same layer: max |diff| / max |fogpipe| must be < 1e-4.
#   bench/onnx/check.sh [CFG...]
# Needs what bench/onnx/setup.sh installs. Exit 1 when any model fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${FP_BUILD:-build}
[ -x "$B/fogpipe" ] || { echo "build first: make build" >&2; exit 1; }
DN=/usr/share/darknet/cfg
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("models/yolov1-tiny-tf.cfg" "$DN/yolov1-tiny.cfg" "$DN/yolov2-tiny.cfg" "$DN/yolov3-tiny.cfg")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for cfg in "${models[@]}"; do
  name=$(basename "$cfg" .cfg)
  d=$tmp/$name; mkdir -p "$d/layers"
  "$B/fogpipe" random-weights --cfg "$cfg" --seed 1 -o "$d/w" 2>/dev/null
  /usr/bin/python3 bench/onnx/export_onnx.py "$cfg" "$d/w" "$d/m.onnx" > "$d/outs"
  /usr/bin/python3 - "$cfg" "$d/in.f32" <<'EOF'
import sys, numpy as np
net = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line.startswith("[") and net: break
    if "=" in line: k, v = line.split("=", 1); net[k.strip()] = int(v.strip()) if v.strip().isdigit() else v
n = int(net.get("channels", 3)) * int(net["height"]) * int(net["width"])
np.random.default_rng(7).random(n, dtype=np.float32).tofile(sys.argv[2])
EOF
  "$B/fogpipe" forward --cfg "$cfg" --weights "$d/w" --input-raw "$d/in.f32" -o "$d/fp.f32" \
    --dump-layers "$d/layers" >/dev/null 2>&1
  node bench/onnx/ort_time.js "$d/m.onnx" --input-raw "$d/in.f32" --output-prefix "$d/ort_" >/dev/null
  /usr/bin/python3 - "$name" "$d" <<'EOF' || fail=1
import sys, numpy as np
name, d = sys.argv[1:]
bad = 0
for line in open(f"{d}/outs"):
    _, out, _, layer, _, *shape = line.split()
    ref = np.fromfile(f"{d}/layers/layer_{int(layer):03d}.f32", dtype="<f4")
    got = np.fromfile(f"{d}/ort_{out}.f32", dtype="<f4")
    if ref.size != got.size:
        print(f"export check {name}: layer {layer}: size {got.size} != fogpipe {ref.size}: FAIL"); bad = 1; continue
    rel = float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
    ok = rel < 1e-4
    bad |= not ok
    print(f"export check {name}: layer {layer} ({'x'.join(shape)}): max|diff|/max|x| = {rel:.2e} {'ok' if ok else 'FAIL'}")
sys.exit(bad)
EOF
done
exit $fail
