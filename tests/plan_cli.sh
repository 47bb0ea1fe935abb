#!/usr/bin/env bash
# `fogpipe profile` and `fogpipe plan` end to end, on a tiny network written
# here: measuring and deriving profiles, the three strategies, --cuts,
# --explain, plan files written and checked, cluster files good and bad, and
# usage errors. Checks behaviour only, never timings.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
#   FP_SRC    the source directory           (.)
# Prints "ok CASE" or "FAIL CASE: why" per case, then "N passed, N failed".
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

# expect NAME STATUS NEEDLE CMD...: exit status STATUS and NEEDLE (grep -F)
# in stdout+stderr.
expect() {
    local name=$1 want=$2 needle=$3
    shift 3
    "$@" >"$T/out" 2>&1
    local got=$?
    if [ "$got" != "$want" ]; then
        bad "$name" "exit $got, expected $want: $(head -c 400 "$T/out")"
    elif [ -n "$needle" ] && ! grep -qF -- "$needle" "$T/out"; then
        bad "$name" "output lacks \"$needle\": $(head -c 400 "$T/out")"
    else
        ok "$name"
    fi
}

cat >"$T/tiny.cfg" <<'EOF'
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
[convolutional]
filters=16
size=3
stride=1
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[connected]
output=64
activation=leaky
[connected]
output=44
activation=linear
[detection]
classes=1
coords=4
side=2
num=2
softmax=0
sqrt=1
EOF
sed 's/filters=16/filters=12/' "$T/tiny.cfg" >"$T/other.cfg"
F=$FOGPIPE
M="--cfg $T/tiny.cfg"

expect profile 0 "median pass" $F profile $M --iters 3 --warmup 1 -o "$T/p.json"
# per layer: time, share and GFLOP/s (a convolution of the test model has a rate)
awk '/GFLOP\/s/ {h = 1; next} h && $2 == "convolutional" && $NF + 0 > 0 {n++} END {exit !(h && n > 0)}' "$T/out" &&
    ok profile-gflops || bad profile-gflops "$(head -c 600 "$T/out")"
grep -q '"fogpipe_profile"' "$T/p.json" && grep -q '"layers_ms"' "$T/p.json" && grep -q '"cpu"' "$T/p.json" &&
    ok profile-file || bad profile-file "$(head -c 300 "$T/p.json")"
expect profile-derive 0 "" $F profile --from "$T/p.json" --speed 0.25 --device "a slow board" -o "$T/slow.json"
# bench: the median and the mean (wall time of the timed passes / passes), both positive, min <= median <= max.
$F bench $M --iters 5 --warmup 1 --json > "$T/bench.json" 2>&1 &&
    /usr/bin/python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); sys.exit(not (b["mean_ms"] > 0 and b["min_ms"] <= b["median_ms"] <= b["max_ms"] and b["mean_ms"] >= b["min_ms"] * 0.99))' "$T/bench.json" &&
    ok bench-mean || bad bench-mean "$(head -c 300 "$T/bench.json")"
# The links' CPU per byte: measured over loopback (a positive number), x4 when derived at 0.25, used by plan.
wire=$(sed -n 's/.*"wire_ns_per_byte":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$T/p.json")
swire=$(sed -n 's/.*"wire_ns_per_byte":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$T/slow.json")
awk -v w="$wire" -v s="$swire" 'BEGIN{exit !(w > 0 && w < 100 && s > 3.9 * w && s < 4.1 * w)}' && ok profile-wire ||
    bad profile-wire "wire_ns_per_byte $wire, derived $swire"
# ... and per packet a slow link brings (a wake-up: microseconds, not seconds)
pkt=$(sed -n 's/.*"wire_ns_per_packet":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$T/p.json")
spkt=$(sed -n 's/.*"wire_ns_per_packet":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$T/slow.json")
awk -v w="$pkt" -v s="$spkt" 'BEGIN{exit !(w > 100 && w < 1e7 && s > 3.9 * w && s < 4.1 * w)}' && ok profile-packet ||
    bad profile-packet "wire_ns_per_packet $pkt, derived $spkt"
expect plan-wire 0 "us per packet a slow link brings" $F plan $M --profile "$T/p.json" --devices 2 --link 1gbit
# `fogpipe link` over loopback: both ends' CPU per byte, the bytes the sender
# sent = the bytes the receiver checked; the figures, put in a profile, are
# what plan charges.
port=$(/usr/bin/python3 "$FP_SRC/tests/tools/free_port.py")
$F link --listen "tcp://127.0.0.1:$port" --timeout 20 --json > "$T/lrecv.json" 2>&1 & lpid=$!
$F link --connect "tcp://127.0.0.1:$port" --mib 4 --timeout 20 --json > "$T/lsend.json" 2>&1
wait $lpid
/usr/bin/python3 - "$T/lsend.json" "$T/lrecv.json" <<'PY' && ok link-loopback || bad link-loopback "$(cat "$T/lsend.json" "$T/lrecv.json" | head -c 400)"
import json, sys
s, r = (json.load(open(p)) for p in sys.argv[1:])
ok = (s['end'] == 'send' and r['end'] == 'receive' and s['bytes'] == r['bytes'] > 4 * 2**20 and
      0 < s['wire_send_ns_per_byte'] < 1000 and s['wire_recv_ns_per_byte'] == r['wire_recv_ns_per_byte'] > 0)
sys.exit(not ok)
PY
expect link-usage-none 2 "exactly one of --listen and --connect" $F link
expect link-usage-both 2 "exactly one of --listen and --connect" $F link --listen tcp://127.0.0.1:1 --connect tcp://127.0.0.1:1
expect link-usage-mib 2 "--mib goes with --connect" $F link --listen tcp://127.0.0.1:1 --mib 3
expect link-no-sender 1 "no sender within 0.5 s" $F link --listen "tcp://127.0.0.1:$port" --timeout 0.5
expect link-no-receiver 1 "from the receiver within 0.5 s" $F link --connect "tcp://127.0.0.1:$port" --timeout 0.5
sed 's/"wire_ns_per_byte"/"wire_send_ns_per_byte": 2.5, "wire_recv_ns_per_byte": 7.25, "wire_ns_per_byte"/' "$T/p.json" > "$T/plink.json"
expect plan-link-measured 0 "2.500 ns of CPU per byte sent and 7.250 per byte received" \
    $F plan $M --profile "$T/plink.json" --devices 2 --link 1gbit
grep -Eq '"speed":[[:space:]]*0.25' "$T/slow.json" && ok derive-file || bad derive-file "$(head -c 300 "$T/slow.json")"
# Codec measurements: in the profile, carried by --from, used by plan.
grep -q '"codecs"' "$T/p.json" && grep -q '"int8+zstd"' "$T/p.json" &&
    grep -Eq '"codec_input":[[:space:]]*"pseudo-random"' "$T/p.json" && ok profile-codecs ||
    bad profile-codecs "$(head -c 600 "$T/p.json")"
grep -q '"int8+lz4"' "$T/slow.json" && ok derive-codecs || bad derive-codecs "$(head -c 300 "$T/slow.json")"
expect profile-no-codecs 0 "" $F profile $M --iters 1 --warmup 0 --no-codecs -o "$T/old.json"
grep -q '"codecs"' "$T/old.json" && bad profile-no-codecs-file "has codecs" || ok profile-no-codecs-file
IMG="$FP_SRC/data/samples/opencv/HappyFish.jpg"
if [ -f "$IMG" ]; then
    expect profile-image 0 "codecs measured on $IMG" $F profile $M --iters 1 --warmup 0 --image "$IMG" -o "$T/img.json"
    grep -Eq '"result_bytes":[[:space:]]*[1-9]' "$T/img.json" && ok profile-result-bytes ||
        bad profile-result-bytes "$(head -c 300 "$T/img.json")"
    expect plan-result-bytes 0 "bytes of JSON per frame to the gateway" $F plan $M --profile "$T/img.json" --devices 2 --link 1gbit
    grep -qF '"codec_input":' "$T/img.json" && grep -qF "HappyFish.jpg" "$T/img.json" && ok profile-image-file ||
        bad profile-image-file "$(head -c 300 "$T/img.json")"
fi
expect profile-bad-image 1 "" $F profile $M --iters 1 --warmup 0 --image "$T/none.jpg" -o "$T/x.json"
expect profile-from-image 2 "takes no" $F profile --from "$T/p.json" --speed 2 --image "$T/none.jpg" -o "$T/x.json"
expect plan-measured 0 "codecs: measured on pseudo-random" $F plan $M --profile "$T/p.json" --devices 2 --link 1gbit
expect plan-assumed 0 "codecs: assumed defaults" $F plan $M --profile "$T/old.json" --devices 2 --link 1gbit
# The cut after layer 0 carries its 8×32×32 float32 output (32768 bytes): assumed
# int8 = 32768 × 0.25 + 8 channels × 8 = 8256 bytes; a profile that measured
# 1234 bytes for it makes the plan predict 1234.
expect plan-assumed-int8 0 "" $F plan $M --profile "$T/old.json" --devices 2 --link 1gbit --cuts 0 --codec int8 --json
grep -Eq '"bytes":[[:space:]]*8256[,}[:space:]]' "$T/out" && ok plan-assumed-bytes || bad plan-assumed-bytes "$(head -c 900 "$T/out")"
cat >"$T/meas.json" <<EOF
{"fogpipe_profile": 1, "model": {"layers": 7}, "layers_ms": [1, 1, 1, 1, 1, 1, 0.1],
 "codec_input": "pseudo-random",
 "codecs": {"int8": {"ratio": 0.05, "cost_ns_per_byte": 1, "bytes": [3072, 1234, 100, 100, 100, 100, 100, 100]}}}
EOF
expect plan-measured-int8 0 "" $F plan $M --profile "$T/meas.json" --devices 2 --link 1gbit --cuts 0 --codec int8 --json
grep -Eq '"bytes":[[:space:]]*1234[,}[:space:]]' "$T/out" && ok plan-measured-bytes || bad plan-measured-bytes "$(head -c 900 "$T/out")"
cat >"$T/ccodec.json" <<EOF
{"fogpipe_cluster": 1, "profile": "meas.json", "devices": [{"name": "a"}, {"name": "b"}],
 "links": {"default": {"bandwidth": "1gbit", "codecs": ["int8"]}},
 "codecs": {"int8": {"ratio": 0.5, "channel_bytes": 0}}}
EOF
expect plan-cluster-codec 0 "take precedence" $F plan $M --cluster "$T/ccodec.json" --cuts 0
expect plan-cluster-codec-json 0 "" $F plan $M --cluster "$T/ccodec.json" --cuts 0 --json
grep -Eq '"bytes":[[:space:]]*16384[,}[:space:]]' "$T/out" && ok plan-cluster-codec-bytes ||
    bad plan-cluster-codec-bytes "$(head -c 900 "$T/out")"
sed 's/1234, 100/1234/' "$T/meas.json" >"$T/meas-bad.json"
expect plan-measured-bad 1 "codecs.int8.bytes must be a list of 8 numbers" $F plan $M --profile "$T/meas-bad.json" --devices 2 --link 1gbit
expect profile-usage 2 "--speed goes with --from" $F profile $M --speed 2 -o "$T/x.json"
expect profile-nocfg 2 "--cfg is required" $F profile -o "$T/x.json"

Q="$M --profile $T/p.json"
expect plan-all 0 "equal-flops" $F plan $Q --devices 3 --link 20mbit --strategy all
grep -qF "by-type" "$T/out" && grep -qF "optimal" "$T/out" && ok plan-all-rows || bad plan-all-rows "$(cat "$T/out")"
expect plan-optimal 0 "images/min" $F plan $Q --devices 3 --link 1gbit --explain -o "$T/plan.json"
grep -qF "runners-up" "$T/out" && ok plan-explain || bad plan-explain "no runners-up"
grep -Eq '"fogpipe_plan":[[:space:]]*1' "$T/plan.json" && grep -q '"images_per_min"' "$T/plan.json" &&
    grep -Eq '"cfg_hash":[[:space:]]*"fnv1a64:' "$T/plan.json" && ok plan-file || bad plan-file "$(head -c 300 "$T/plan.json")"
expect plan-json 0 '"stages"' $F plan $Q --devices 2 --link 500kbit --json --no-replicas --objective latency
expect plan-cuts 0 "1-2" $F plan $Q --devices 3 --link 20mbit --cuts 0,2 -o "$T/cuts.json"
expect plan-check 0 "a valid plan" $F plan $M --check "$T/cuts.json" --devices 3 --link 1gbit
expect plan-check-other-model 1 "but this cfg hashes to" $F plan --cfg "$T/other.cfg" --check "$T/cuts.json"
expect plan-check-small-cluster 1 "is not in the cluster" $F plan $M --check "$T/cuts.json" --devices 2 --link 1gbit
sed -E 's/"layers":([[:space:]]*)\[1,/"layers":\1[2,/' "$T/cuts.json" >"$T/gap.json"
expect plan-check-gap 1 "are in no stage" $F plan $M --check "$T/gap.json"
expect plan-profile-mismatch 1 "not for this model" $F plan --cfg "$T/other.cfg" --profile "$T/p.json" --devices 2 --link 1gbit
expect plan-no-profile 2 "has no profile" $F plan $M --devices 2 --link 1gbit
expect plan-bad-rate 2 "bad link rate unit" $F plan $Q --devices 2 --link 20mb/s
expect plan-bad-codec 2 "unknown codec" $F plan $Q --devices 2 --link 1gbit --codec fp8
expect plan-bad-cuts 1 "strictly increasing" $F plan $Q --devices 3 --link 1gbit --cuts 4,2
expect plan-too-many-cuts 1 "the cluster has 2 devices" $F plan $Q --devices 2 --link 1gbit --cuts 1,2,3
expect plan-cuts-strategy 2 "does not go with" $F plan $Q --devices 2 --link 1gbit --cuts 1 --strategy by-type
expect plan-no-cluster 2 "--cluster is required" $F plan $Q
expect plan-memory 1 "no plan fits" $F plan $Q --devices 2 --link 1gbit --memory 1

cat >"$T/cluster.json" <<EOF
{"fogpipe_cluster": 1, "profile": "p.json",
 "devices": [{"name": "pi-a", "node": "node-a", "speed": 0.5, "memory_mb": 512},
             {"name": "pi-b", "profile": "slow.json"},
             {"name": "nano", "speed": 2, "threads": 4}],
 "links": {"default": {"bandwidth": "20mbit", "latency_ms": 2},
           "pairs": [{"between": ["pi-a", "pi-b"], "bandwidth": "1gbit", "codecs": ["none", "fp16+lz4"]}]},
 "codecs": {"fp16+lz4": {"ratio": 0.4}}}
EOF
expect cluster-plan 0 "predicted" $F plan $M --cluster "$T/cluster.json" -o "$T/cplan.json"
expect cluster-check 0 "a valid plan" $F plan $M --check "$T/cplan.json" --cluster "$T/cluster.json"
sed 's/"speed": 0.5/"sped": 0.5/' "$T/cluster.json" >"$T/typo.json"
expect cluster-typo 1 'devices[0]: unknown key "sped"' $F plan $Q --cluster "$T/typo.json"
sed 's/"pi-b"\]/"pi-z"]/' "$T/cluster.json" >"$T/unknown.json"
expect cluster-unknown-device 1 'unknown device "pi-z"' $F plan $Q --cluster "$T/unknown.json"
expect cluster-and-flags 2 "exclude each other" $F plan $Q --cluster "$T/cluster.json" --devices 2

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
