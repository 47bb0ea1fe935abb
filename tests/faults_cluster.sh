#!/usr/bin/env bash
# ctest: slow
# tests/faults.sh's faults over the emulated cluster (bench/cluster/cluster):
# 3 devices (network namespaces fpc-dev0..2, each in a cpu cgroup with a
# quota of --cpu of a core, links rate-shaped to --link) and a gateway
# device "gw", on one bridge. Stage K of yolov3-tiny at 96x96 (random
# weights, cut after layers 8 and 14) runs on devK, `fogpipe gateway` and the
# HTTP client (tests/tools/http_client.py, 8 threads) run on gw, so every
# frame crosses the emulated links. Each scenario checks that every image got
# exactly one HTTP 200 answer equal to `fogpipe detect`'s (sha256 of the body
# against sha256 of detect's line, as bench/soak.sh does):
#   1. a random stage SIGKILLed every 1.0-1.9 s during a stream, each restarted
#      at once on its device;
#   2. a real link cut: dev2's eth0 set down for 5 s, then up again (its
#      address and route checked afterwards);
#   3. stage 1 stopped (SIGSTOP) for 10 s and continued;
#   4. the gateway restarted while idle.
# The links also have delay and loss (--delay 2ms --loss 0.2%: netem, or
# fp_netem where the kernel has no netem); where neither is there, the
# cluster comes up without them and the note says so.
# Needs root, network namespaces and the cgroup v1 cpu controller: exits 77
# (skip) when not root or when `cluster up` fails (or a cluster is already up:
# it is left alone). Figures go to docs/reliability.md.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
#   FP_CLUSTER_FAULT_IMAGES  images in the SIGKILL stream (default 500)
#   FP_CLUSTER_CPU, FP_CLUSTER_LINK  device cpu share and link rate (0.5, 100mbit)
#   FP_CLUSTER_DELAY, FP_CLUSTER_LOSS  each link's delay and loss (2ms, 0.2%)
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
case $FOGPIPE in /*) ;; */*) FOGPIPE=$PWD/$FOGPIPE ;; esac
CLUSTER=$FP_SRC/bench/cluster/cluster
DN=/usr/share/darknet
PY=/usr/bin/python3
CLIENT=$FP_SRC/tests/tools/http_client.py
N_KILL=${FP_CLUSTER_FAULT_IMAGES:-500}
N_CUT=160
N_STALL=160
N_AFTER=60
CPU=${FP_CLUSTER_CPU:-0.5}
LINK=${FP_CLUSTER_LINK:-100mbit}
DELAY=${FP_CLUSTER_DELAY:-2ms}
LOSS=${FP_CLUSTER_LOSS:-0.2%}
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "skip: the emulated cluster needs root (network namespaces, cgroups)"; exit 77; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || { echo "skip: Debian's darknet is not installed (scripts/setup.sh)"; exit 77; }
command -v curl >/dev/null && [ -x "$PY" ] || { echo "skip: curl or python3 is missing (scripts/setup.sh)"; exit 77; }
command -v ip >/dev/null || { echo "skip: ip (iproute2) is missing"; exit 77; }
T=$(mktemp -d)
UP=
cleanup() {
    local st=$?
    if [ "$st" != 0 ]; then
        # a failed or timed-out run (ctest's TERM): what the processes said last
        for f in "$T"/gw.log "$T"/s*.log "$T"/*.client; do
            [ -f "$f" ] && { echo "--- last lines of $(basename "$f"):"; tail -n 15 "$f"; }
        done
    fi
    exec 2>/dev/null # no "Killed" notices for the processes stopped here
    for f in "$T"/*.pid; do [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null && kill -9 "$(cat "$f")" 2>/dev/null; done
    [ -n "${killer:-}" ] && kill "$killer" 2>/dev/null
    [ -n "$UP" ] && "$CLUSTER" down >/dev/null 2>&1
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }
t_start=$SECONDS

# --- the model, its plan, the reference answers (as tests/faults.sh) --------
sed -e 's/^width=.*/width=96/' -e 's/^height=.*/height=96/' "$DN/cfg/yolov3-tiny.cfg" >"$T/small.cfg"
"$FOGPIPE" random-weights --cfg "$T/small.cfg" --seed 5 -o "$T/small.weights" 2>/dev/null
M=(--cfg "$T/small.cfg" --weights "$T/small.weights")
"$FOGPIPE" profile "${M[@]}" --iters 1 --warmup 0 --no-codecs -o "$T/small.prof" >/dev/null 2>&1
"$FOGPIPE" plan "${M[@]}" --profile "$T/small.prof" --devices 3 --link 1gbit --codec none --cuts 8,14 -o "$T/p.json" \
    >/dev/null 2>&1 || { echo "FAIL: cannot make a plan"; exit 1; }
ls "$DN"/data/*.jpg "$FP_SRC"/data/samples/skimage/*.png 2>/dev/null | head -40 >"$T/images"
"$FOGPIPE" detect "${M[@]}" $(cat "$T/images") >"$T/ref" 2>"$T/ref.err"
check "reference: fogpipe detect answers $(wc -l <"$T/images") images" \
    '[ "$(wc -l <"$T/ref")" = "$(wc -l <"$T/images")" ]' "$(tail -3 "$T/ref.err")"

# --- the cluster ---------------------------------------------------------------
if ! "$CLUSTER" up --devices 3 --cpu "$CPU" --link "$LINK" --delay "$DELAY" --loss "$LOSS" --gateway >"$T/up.out" 2>&1; then
    # neither netem nor fp_netem: the links without delay and loss
    "$CLUSTER" down >/dev/null 2>&1
    DELAY=0ms LOSS=0
    if ! "$CLUSTER" up --devices 3 --cpu "$CPU" --link "$LINK" --delay 0ms --gateway >"$T/up.out" 2>&1; then
        echo "skip: cannot bring the emulated cluster up (namespaces or cgroups unavailable?): $(tail -2 "$T/up.out" | tr "\n" " ")"
        exit 77
    fi
fi
UP=1
IP=($("$CLUSTER" ip dev0) $("$CLUSTER" ip dev1) $("$CLUSTER" ip dev2))
GWIP=$("$CLUSTER" ip gw)
how="netem"; grep -q 'by fp_netem' "$T/up.out" && how="fp_netem"; [ "$DELAY" = 0ms ] && how="neither netem nor fp_netem here"
echo "note: cluster: 3 devices at $CPU of a core, links $LINK, delay $DELAY, loss $LOSS ($how), gateway device $GWIP"
P=(5601 5602 5603) # stage data ports, one per device
H=(9601 9602 9603) # stage HTTP ports
PR=5600            # the gateway's results port, on gw
HG=8080            # the gateway's HTTP API, on gw (the client runs there too)
URL=http://127.0.0.1:$HG
on() { "$CLUSTER" exec "$@"; } # on DEVICE CMD...: run CMD on DEVICE

# start_stage K: (re)starts stage K on devK; its pid in $T/sK.pid. `cluster
# exec` execs into the command, so $! is fogpipe's pid (hence "$CLUSTER", not
# the function `on`, whose background job would be a subshell). From a
# subshell, so no shell reports its death by SIGKILL.
start_stage() {
    local k=$1 next
    if [ "$k" = 2 ]; then next=tcp://$GWIP:$PR; else next=tcp://${IP[$((k + 1))]}:${P[$((k + 1))]}; fi
    ("$CLUSTER" exec "dev$k" "$FOGPIPE" stage --plan "$T/p.json" --stage "$k" --bind "tcp://0.0.0.0:${P[$k]}" --next "$next" \
        --http "0.0.0.0:${H[$k]}" 2>>"$T/s$k.log" &
     echo $! >"$T/s$k.pid")
}
start_gateway() { # start_gateway [EXTRA FLAGS]
    "$CLUSTER" exec gw "$FOGPIPE" gateway --plan "$T/p.json" --first "tcp://${IP[0]}:${P[0]}" --results "tcp://0.0.0.0:$PR" \
        --http "127.0.0.1:$HG" --resend-ms 500 --window 8 "$@" 2>>"$T/gw.log" &
    echo $! >"$T/gw.pid"
}
gone() { # gone PID: exited (a zombie counts: its sockets are closed)
    [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
wait_ok() { # wait_ok DEVICE URL SECONDS: until it answers 200 (asked on DEVICE)
    local end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do
        [ "$(on "$1" curl -s -o /dev/null -m 2 -w '%{http_code}' "$2")" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}
stage_ready() { wait_ok "dev$1" "http://127.0.0.1:${H[$1]}/readyz" "$2"; }
metric() { # metric K NAME: sum of the series NAME of stage K
    on "dev$1" curl -s -m 5 "http://127.0.0.1:${H[$1]}/metrics" |
        awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
gw_stat() { on gw curl -s -m 5 "$URL/v1/stats" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# verify ANSWERS COUNT: COUNT answers, every one 200 and its sha256 that of
# detect's line for its image.
verify() {
    "$PY" - "$T/images" "$T/ref" "$1" "$2" >"$T/verify" 2>&1 <<'EOF'
import hashlib, json, sys
paths = [l.strip() for l in open(sys.argv[1]) if l.strip()]
want = {json.loads(l)["image"]: "sha256:" + hashlib.sha256(l.strip().encode()).hexdigest() for l in open(sys.argv[2])}
n = int(sys.argv[4])
rows = [l.rstrip("\n").split("\t", 2) for l in open(sys.argv[3])]
bad = []
for i, st, body in rows:
    i = int(i)
    if st != "200":
        bad.append("request %d: status %s: %s" % (i, st, body[:120]))
    elif body != want[paths[i % len(paths)]]:
        bad.append("request %d: %s differs from detect" % (i, paths[i % len(paths)]))
print("%d answers, %d as detect%s" % (len(rows), len(rows) - len(bad), "".join("\n" + b for b in bad[:5])))
sys.exit(0 if len(rows) == n and not bad else 1)
EOF
}
# stream NAME COUNT: COUNT requests from gw; answers (digests) in $T/NAME.out
stream() {
    on gw "$PY" "$CLIENT" "$URL" "$T/images" "$T/$1.out" --count "$2" --concurrency 8 --timeout 120 --digest --progress 10 \
        2>"$T/$1.client"
}
rate() { sed -n 's/.*(\([0-9]*\) images\/min).*/\1/p' "$T/$1.client" | tail -1; }

for k in 0 1 2; do start_stage $k; done
start_gateway
up=1
for k in 0 1 2; do stage_ready $k 90 || up=0; done
wait_ok gw "$URL/healthz" 60 || up=0
is_fogpipe() { [ "$(readlink -f "/proc/$1/exe")" = "$(readlink -f "$FOGPIPE")" ]; }
for f in s0 s1 s2 gw; do is_fogpipe "$(cat "$T/$f.pid")" || { up=0; echo "$f.pid is not fogpipe's pid"; }; done
check "3 stages ready on dev0..dev2 and the gateway up on gw" '[ $up = 1 ]' "$(tail -n 3 "$T"/*.log)"
[ $up = 1 ] || { echo "$pass passed, $fail failed"; exit 1; }
stream warm 40
verify "$T/warm.out" 40
vrc=$?
echo "note: warm-up: $(tail -1 "$T/warm.client")"
check "warm-up: 40 images from gw over the cluster equal detect" '[ $vrc = 0 ]' "$(cat "$T/verify")"

# --- 1. SIGKILL, over and over, during a stream ---------------------------------
rm -f "$T/stop-killer" "$T/kills"
(
    kills=0
    while [ ! -e "$T/stop-killer" ]; do
        sleep "1.$((RANDOM % 10))"
        [ -e "$T/stop-killer" ] && break
        k=$((RANDOM % 3))
        pid=$(cat "$T/s$k.pid")
        kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
        while ! gone "$pid"; do sleep 0.01; done
        start_stage $k
        echo $kills >"$T/kills"
    done
) &
killer=$!
res0=$(gw_stat resent)
t0=$SECONDS
stream kill "$N_KILL"
crc=$?
touch "$T/stop-killer"
wait $killer
killer=
took=$((SECONDS - t0))
kills=$(cat "$T/kills" 2>/dev/null || echo 0)
verify "$T/kill.out" "$N_KILL"
vrc=$?
for k in 0 1 2; do stage_ready $k 60; done
resent=$(($(gw_stat resent) - res0))
echo "note: SIGKILL: $kills kills in $took s, $resent frames resent; $(tail -1 "$T/kill.client")"
check "SIGKILL ×$kills during $N_KILL images (each stage restarted on its device): every image answered once, equal to detect" \
    '[ $crc = 0 ] && [ $vrc = 0 ] && [ "$kills" -ge 5 ]' "kills $kills; $(cat "$T/verify")"
check "...and nothing is left in flight at the gateway" '[ "$(gw_stat in_flight)" = 0 ]' "$(on gw curl -s "$URL/v1/stats")"

# --- 2. dev2's link down for 5 s ------------------------------------------------
stream cut "$N_CUT" &
client=$!
sleep 2
ip -n fpc-dev2 link set eth0 down
cut=$?
mid=0
kill -0 $client 2>/dev/null && mid=1 # the stream still running when the link went down
sleep 1
before=$(metric 2 fogpipe_frames_in_total)
sleep 4
after=$(metric 2 fogpipe_frames_in_total)
ip -n fpc-dev2 link set eth0 up
# the address stays on a downed link and the kernel puts the subnet's route
# back when it comes up; add it again if it did not
sleep 0.5
ip -n fpc-dev2 route show dev eth0 | grep -q '^10\.77\.0\.0/24' ||
    ip -n fpc-dev2 route add 10.77.0.0/24 dev eth0 src "${IP[2]}"
addr_ok=0
ip -n fpc-dev2 -4 addr show dev eth0 | grep -q "inet ${IP[2]}/" && ip -n fpc-dev2 link show eth0 | grep -q 'state UP' &&
    ip -n fpc-dev2 route show dev eth0 | grep -q '^10\.77\.0\.0/24' && addr_ok=1
wait $client
crc=$?
verify "$T/cut.out" "$N_CUT"
vrc=$?
echo "note: link cut: stage 2 took $before frames before and $after at the end of the 5 s cut; $(tail -1 "$T/cut.client")"
check "dev2's eth0 down for 5 s during $N_CUT images: nothing reached stage 2; its address and route came back; every image answered, equal to detect" \
    '[ $cut = 0 ] && [ $mid = 1 ] && [ $addr_ok = 1 ] && [ $crc = 0 ] && [ $vrc = 0 ] && [ "$before" = "$after" ]' \
    "link down rc $cut, mid-stream $mid, address back $addr_ok, frames in $before -> $after; $(cat "$T/verify")"

# --- 3. stage 1 stopped for 10 s --------------------------------------------------
stage_ready 2 30
stream stall "$N_STALL" &
client=$!
sleep 2
s1=$(cat "$T/s1.pid")
kill -STOP "$s1"
mid=0
kill -0 $client 2>/dev/null && mid=1
sleep 1
state=$(awk '/^State:/ {print $2}' /proc/"$s1"/status)
sleep 9
kill -CONT "$s1"
wait $client
crc=$?
verify "$T/stall.out" "$N_STALL"
vrc=$?
echo "note: SIGSTOP: $(tail -1 "$T/stall.client")"
check "stage 1 stopped (state $state) on dev1 for 10 s during $N_STALL images: every image answered once, equal to detect" \
    '[ "$state" = T ] && [ $mid = 1 ] && [ $crc = 0 ] && [ $vrc = 0 ]' "mid-stream $mid; $(cat "$T/verify")"

# --- 4. the gateway restarted while idle ------------------------------------------
kill -TERM "$(cat "$T/gw.pid")"
gwrc=0
wait "$(cat "$T/gw.pid")" || gwrc=$?
start_gateway
wait_ok gw "$URL/healthz" 60
stream after "$N_AFTER"
verify "$T/after.out" "$N_AFTER"
vrc=$?
echo "note: gateway restart: $(tail -1 "$T/after.client")"
check "the gateway on gw stopped (exit $gwrc) and started again: $N_AFTER images answered, equal to detect" \
    '[ $gwrc = 0 ] && [ $vrc = 0 ]' "$(cat "$T/verify")"
check "the stages logged no crash" '! grep -qiE "sanitizer|segmentation|abort" "$T"/s*.log "$T/gw.log"' \
    "$(grep -iE "sanitizer|segmentation|abort" "$T"/s*.log | head -3)"

if [ "$how" = fp_netem ] && [ "$LOSS" != 0 ]; then
    "$CLUSTER" status >"$T/status" 2>&1
    lost=$(awk '/dropped \(loss\)/ { for (i = 1; i <= NF; i++) if ($i == "dropped" && $(i + 1) == "(loss),") n += $(i - 1) } END { print n + 0 }' "$T/status")
    echo "note: fp_netem: $(grep -c 'dropped (loss)' "$T/status") links, $lost packets dropped as lost"
    check "the links lost packets (loss $LOSS) and every answer above still came, once, equal to detect" '[ "$lost" -gt 0 ]' \
        "$(cat "$T/status")"
fi

echo "note: run time $((SECONDS - t_start)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
