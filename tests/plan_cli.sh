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

expect profile 0 "median ms" $F profile $M --iters 3 --warmup 1 -o "$T/p.json"
grep -q '"fogpipe_profile"' "$T/p.json" && grep -q '"layers_ms"' "$T/p.json" && grep -q '"cpu"' "$T/p.json" &&
    ok profile-file || bad profile-file "$(head -c 300 "$T/p.json")"
expect profile-derive 0 "" $F profile --from "$T/p.json" --speed 0.25 --device "a slow board" -o "$T/slow.json"
grep -Eq '"speed":[[:space:]]*0.25' "$T/slow.json" && ok derive-file || bad derive-file "$(head -c 300 "$T/slow.json")"
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
