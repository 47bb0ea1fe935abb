#!/bin/bash
# make_seeds.sh — (re)writes the seed corpora tests/fuzz/corpus/<target>/.
# Every seed is small and made here: text seeds are written below, binary
# ones by seedgen.c (the library's own encoders), the plan by `fogpipe plan`.
#     tests/fuzz/make_seeds.sh [BUILD_DIR]     (a built gcc tree; default build)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
c=$src/tests/fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in cfg weights tfjs plan cluster frame image result http stagew; do mkdir -p "$c/$t"; done

# ---- binary seeds: frames, images, weights
cc -std=c11 -D_POSIX_C_SOURCE=200809L -I"$src/include" -I"$src/tests/fuzz" "$src/tests/fuzz/seedgen.c" \
   "$build/libfogpipe_core.a" $(pkg-config --libs libcjson liblz4 libzstd libzmq libmicrohttpd libsodium) \
   -lstb -ljpeg -lm -lpthread -ldl -o "$tmp/seedgen"
"$tmp/seedgen" "$c"
# weights variants: a 0.1 header (4-byte "seen"), a transposed flag, a short file
w=$c/weights/valid.weights
{ printf '\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00'; tail -c +21 "$w"; } > "$c/weights/v01_seen32.weights"
{ printf '\xe9\x03\x00\x00\xe9\x03\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00'; tail -c +21 "$w"; } > "$c/weights/transposed.weights"
head -c 100 "$w" > "$c/weights/short.weights"

# ---- cfg: small networks over the layer types fogpipe supports
cat > "$c/cfg/conv_pool.cfg" <<'EOF'
[net]
width=16
height=16
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=8
size=3
stride=2
pad=1
activation=relu

[avgpool]

[connected]
output=10
activation=linear

[dropout]
probability=.5

[softmax]
groups=1
EOF
cat > "$c/cfg/yolo_tiny.cfg" <<'EOF'
[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-2
activation=linear

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,0

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=3,4,5
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6
EOF
cat > "$c/cfg/region_reorg.cfg" <<'EOF'
[net]
width=32
height=32
channels=3

[convolutional]
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[reorg]
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=30
activation=linear

[region]
anchors=1.08,1.19, 3.42,4.41
classes=10
coords=4
num=2
softmax=1
EOF
cat > "$c/cfg/detection_v1.cfg" <<'EOF'
[net]
width=16
height=16
channels=3

[convolutional]
filters=4
size=3
stride=2
pad=1
activation=leaky

[connected]
output=52
activation=linear

[detection]
classes=3
coords=4
rescore=1
side=2
num=2
softmax=0
sqrt=1
EOF

# ---- tfjs: manifest, NUL, shard. A complete tiny face-api detector
# (1 channel per block, float32) and a uint8-quantised variant.
python3 - "$c/tfjs" <<'EOF'
import json, struct, sys
out = sys.argv[1]
def model(q):
    specs = [("conv0/filters", [3, 3, 3, 1]), ("conv0/bias", [1])]
    for k in range(1, 6):
        specs += [("conv%d/depthwise_filter" % k, [3, 3, 1, 1]),
                  ("conv%d/pointwise_filter" % k, [1, 1, 1, 1]), ("conv%d/bias" % k, [1])]
    specs += [("conv8/filters", [1, 1, 1, 25]), ("conv8/bias", [25])]
    weights, shard = [], b""
    for i, (name, shape) in enumerate(specs):
        n = 1
        for d in shape: n *= d
        w = {"name": name, "shape": shape, "dtype": "float32"}
        if q:
            w["quantization"] = {"dtype": "uint8", "scale": 0.01, "min": -1.0}
            shard += bytes((i * 13 + j * 7) % 256 for j in range(n))
        else:
            shard += b"".join(struct.pack("<f", ((i + j) % 7 - 3) * 0.1) for j in range(n))
        weights.append(w)
    return json.dumps([{"paths": ["shard1"], "weights": weights}]).encode() + b"\0" + shard
open(out + "/facedet_f32", "wb").write(model(False))
open(out + "/facedet_u8", "wb").write(model(True))
open(out + "/other_model", "wb").write(json.dumps([{"paths": ["shard1"], "weights": [
    {"name": "dense/kernel", "shape": [2, 2], "dtype": "float32",
     "quantization": {"dtype": "float16"}}]}]).encode() + b"\0" + b"\x00\x3c" * 4)
open(out + "/no_shard", "wb").write(b'[{"paths":["shard1","shard2"],"weights":[]}]')
EOF

# ---- plan: made by `fogpipe plan` for the small cfg above on 2 devices
if [ -x "$build/fogpipe" ]; then
  "$build/fogpipe" profile --cfg "$c/cfg/conv_pool.cfg" --iters 1 -o "$tmp/p.json" >/dev/null
  "$build/fogpipe" plan --cfg "$c/cfg/conv_pool.cfg" --profile "$tmp/p.json" --devices 2 --link 20mbit \
      --strategy equal-flops -o "$c/plan/equal_flops.json" >/dev/null
  "$build/fogpipe" plan --cfg "$c/cfg/conv_pool.cfg" --profile "$tmp/p.json" --devices 3 --link 1gbit \
      --strategy optimal -o "$c/plan/optimal.json" >/dev/null
fi

# ---- cluster: the documented example and a minimal one
cat > "$c/cluster/example.json" <<'EOF'
{
  "fogpipe_cluster": 1,
  "profile": "v1tf.profile.json",
  "memory_overhead_mb": 16,
  "devices": [
    {"name": "pi-1", "node": "rpi-kitchen", "speed": 0.25, "threads": 4, "memory_mb": 900},
    {"name": "pi-2", "node": "rpi-hall",    "speed": 0.25, "threads": 4, "memory_mb": 900},
    {"name": "nano", "profile": "nano.profile.json", "threads": 4, "memory_mb": 3500}
  ],
  "links": {
    "default": {"bandwidth": "20mbit", "latency_ms": 3, "codecs": ["none", "fp16", "int8"]},
    "pairs": [
      {"between": ["pi-1", "pi-2"], "bandwidth": "100mbit", "latency_ms": 0.5},
      {"between": ["gateway", "nano"], "bandwidth": "1gbit", "codecs": ["none", "fp16", "fp16+lz4"]}
    ]
  },
  "codecs": {
    "fp16+lz4": {"ratio": 0.42, "cost_ns_per_byte": 0.9}
  }
}
EOF
printf '%s' '{"fogpipe_cluster":1,"devices":[{"name":"dev0","speed":1}],"links":{"default":{"bandwidth":"1gbit"}}}' > "$c/cluster/minimal.json"

# ---- result: what a last stage sends the gateway
printf '%s' '{"detections":[{"label":"dog","class":16,"score":0.93,"box":{"x":0.3,"y":0.6,"w":0.2,"h":0.4}},{"class":1,"score":0.5,"box":{"x":0.5,"y":0.5,"w":1,"h":1}}]}' > "$c/result/two.json"
printf '%s' '{"detections":[]}' > "$c/result/empty.json"
printf '%s' '{"error":"stage 1: frame 7: bad input"}' > "$c/result/error.json"
printf '%s' '{"detections":[{"class":1e300,"score":-1e-300,"box":{"x":1e39,"y":0,"w":0,"h":0}}]}' > "$c/result/big_numbers.json"

# ---- http: raw requests as a client would send them
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' > "$c/http/get.txt"
printf 'POST /v1/detect?threshold=0.5 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9' > "$c/http/post.txt"
printf 'POST /v1/detect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n' > "$c/http/chunked.txt"
printf 'GET /a%%20b?x=%%zz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n' > "$c/http/pipelined.txt"
printf 'GET /\r\n\r\n' > "$c/http/http09.txt"
echo "seeds in $c:"
for t in "$c"/*; do echo "  $(basename "$t"): $(ls "$t" | wc -l) files, $(du -sb "$t" | cut -f1) bytes"; done
