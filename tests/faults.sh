#!/usr/bin/env bash
# ctest: slow
# Faults on a 3-stage pipeline over loopback (`fogpipe stage` ×3 and `fogpipe
# gateway`, as a cluster runs them; yolov3-tiny at 96x96, random weights, cut
# across its routes), with images streamed over HTTP by 8 clients
# (tests/tools/http_client.py). Each scenario checks that every image got
# exactly one answer, equal to `fogpipe detect`'s, or an explicit error:
#   1. stages killed with SIGKILL over and over during a 2,000-image stream,
#      each restarted at once (as a supervisor or Kubernetes does);
#   2. the link into stage 2 cut for 5 s (iptables drops every packet both
#      ways, as netem 100% loss would; needs root) and restored;
#   3. stage 1 stopped (SIGSTOP) for 10 s and continued;
#   4. the gateway restarted while idle; then a stage that stays dead: the
#      client gets 504 with a message after --timeout, and answers again once
#      the stage is back.
# Figures go to docs/reliability.md. CURVE on every link when FP_FAULTS_CURVE=1.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
#   FP_FAULT_IMAGES  images in the SIGKILL stream (default 2000)
# Needs Debian's darknet (cfg, sample images), curl and python3: exits 77 without.
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
case $FOGPIPE in /*) ;; */*) FOGPIPE=$PWD/$FOGPIPE ;; esac
DN=/usr/share/darknet
PY=/usr/bin/python3
CLIENT=$FP_SRC/tests/tools/http_client.py
N_KILL=${FP_FAULT_IMAGES:-2000}
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || { echo "skip: Debian's darknet is not installed (scripts/setup.sh)"; exit 77; }
command -v curl >/dev/null && [ -x "$PY" ] || { echo "skip: curl or python3 is missing (scripts/setup.sh)"; exit 77; }
T=$(mktemp -d)
cleanup() {
    [ -f "$T/gw.pid" ] && kill -TERM "$(cat "$T/gw.pid")" 2>/dev/null && wait "$(cat "$T/gw.pid")" 2>/dev/null
    for f in "$T"/*.pid; do [ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null && kill -9 "$(cat "$f")" 2>/dev/null; done
    [ -n "${CUT_RULES:-}" ] && cut_link del 2>/dev/null
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }
# N distinct free ports below the kernel's ephemeral range (tests/tools/free_port.py)
free_port() { "$PY" "$FP_SRC/tests/tools/free_port.py" "${1:-1}" | paste -sd ' '; }

# --- the model, its plan, the reference answers ---------------------------
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

KEYARGS=()
if [ "${FP_FAULTS_CURVE:-}" = 1 ]; then
    "$FOGPIPE" keys -o "$T/curve.key" >/dev/null 2>&1
    KEYARGS=(--curve-key "$T/curve.key")
fi
ports=($(free_port 8))
P=("${ports[@]:0:3}") # stage data ports
H=("${ports[@]:3:3}") # stage HTTP ports
PR=${ports[6]}
HG=${ports[7]}
URL=http://127.0.0.1:$HG

# start_stage K: (re)starts stage K in the background; its pid in $T/sK.pid.
# Started from a subshell, so no shell reports its death by SIGKILL.
start_stage() {
    local k=$1 next
    if [ "$k" = 2 ]; then next=tcp://127.0.0.1:$PR; else next=tcp://127.0.0.1:${P[$((k + 1))]}; fi
    ("$FOGPIPE" stage --plan "$T/p.json" --stage "$k" --bind "tcp://127.0.0.1:${P[$k]}" --next "$next" \
        --http "127.0.0.1:${H[$k]}" "${KEYARGS[@]}" 2>>"$T/s$k.log" &
     echo $! >"$T/s$k.pid")
}
start_gateway() { # start_gateway [EXTRA FLAGS]
    "$FOGPIPE" gateway --plan "$T/p.json" --first "tcp://127.0.0.1:${P[0]}" --results "tcp://127.0.0.1:$PR" \
        --http "127.0.0.1:$HG" --resend-ms 500 --window 8 "${KEYARGS[@]}" "$@" 2>>"$T/gw.log" &
    echo $! >"$T/gw.pid"
}
gone() { # gone PID: exited (a zombie counts: its sockets are closed)
    [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
wait_ok() { # wait_ok URL SECONDS: until it answers 200
    local end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}
metric() { # metric HTTP_PORT NAME: sum of its series
    curl -s -m 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
# verify NAME ANSWERS COUNT: every answer 200 and equal to the reference.
verify() {
    "$PY" - "$T/images" "$T/ref" "$2" "$3" >"$T/verify" 2>&1 <<'EOF'
import json, sys
paths = [l.strip() for l in open(sys.argv[1]) if l.strip()]
ref = {json.loads(l)["image"]: json.loads(l) for l in open(sys.argv[2])}
n = int(sys.argv[4])
rows = [l.rstrip("\n").split("\t", 2) for l in open(sys.argv[3])]
bad = []
for i, st, body in rows:
    i = int(i)
    if st != "200":
        bad.append("request %d: status %s: %s" % (i, st, body[:120]))
    elif json.loads(body) != ref[paths[i % len(paths)]]:
        bad.append("request %d: %s differs from detect" % (i, paths[i % len(paths)]))
print("%d answers, %d as detect%s" % (len(rows), len(rows) - len(bad), "".join("\n" + b for b in bad[:5])))
sys.exit(0 if len(rows) == n and not bad else 1)
EOF
}
stream() { # stream NAME COUNT: COUNT requests; answers in $T/NAME.out
    "$PY" "$CLIENT" "$URL" "$T/images" "$T/$1.out" --count "$2" --concurrency 8 --timeout 120 2>"$T/$1.client"
}
gw_stat() { curl -s -m 5 "$URL/v1/stats" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

for k in 0 1 2; do start_stage $k; done
start_gateway
up=1
for k in 0 1 2; do wait_ok "http://127.0.0.1:${H[$k]}/readyz" 60 || up=0; done
wait_ok "$URL/healthz" 30 || up=0
check "3 stages ready and the gateway up${KEYARGS:+ (CURVE on every link)}" '[ $up = 1 ]' "$(tail -n 3 "$T"/*.log)"
[ $up = 1 ] || { echo "$pass passed, $fail failed"; exit 1; }
stream warm 40
verify warm "$T/warm.out" 40
vrc=$?
check "warm-up: 40 images over HTTP equal detect" '[ $vrc = 0 ]' "$(cat "$T/verify")"

# --- 1. SIGKILL, over and over, during a long stream --------------------------
(
    kills=0
    while [ ! -e "$T/stop-killer" ]; do
        sleep "1.$((RANDOM % 10))"
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
kills=$(cat "$T/kills" 2>/dev/null || echo 0)
verify kill "$T/kill.out" "$N_KILL"
vrc=$?
resent=$(($(gw_stat resent) - res0))
echo "note: SIGKILL: $kills kills in $((SECONDS - t0)) s, $resent frames resent; $(tail -1 "$T/kill.client")"
check "SIGKILL ×$kills during $N_KILL images (each stage restarted): every image answered once, equal to detect" \
    '[ $crc = 0 ] && [ $vrc = 0 ] && [ "$kills" -ge 5 ]' "kills $kills; $(cat "$T/verify")"
for k in 0 1 2; do wait_ok "http://127.0.0.1:${H[$k]}/readyz" 30; done
check "...and nothing is left in flight at the gateway" '[ "$(gw_stat in_flight)" = 0 ]' "$(curl -s "$URL/v1/stats")"

# --- 2. the link into stage 2 cut for 5 s ---------------------------------------
cut_link() { # cut_link add|del: drop every packet to and from stage 2's data port
    local op=-I
    [ "$1" = del ] && op=-D
    iptables $op INPUT -i lo -p tcp --dport "${P[2]}" -j DROP && iptables $op INPUT -i lo -p tcp --sport "${P[2]}" -j DROP
}
if [ "$(id -u)" = 0 ] && command -v iptables >/dev/null && cut_link add 2>"$T/ipt.err"; then
    CUT_RULES=1
    cut_link del
    CUT_RULES=
    stream cut 400 &
    client=$!
    sleep 1
    cut_link add && CUT_RULES=1
    sleep 1
    before=$(metric "${H[2]}" fogpipe_frames_in_total)
    sleep 4
    after=$(metric "${H[2]}" fogpipe_frames_in_total)
    cut_link del && CUT_RULES=
    wait $client
    crc=$?
    verify cut "$T/cut.out" 400
    vrc=$?
    echo "note: link cut: stage 2 took $before frames before and $after at the end of the cut; $(tail -1 "$T/cut.client")"
    check "the link into stage 2 cut for 5 s during 400 images: nothing crossed it; then every image answered, equal to detect" \
        '[ $crc = 0 ] && [ $vrc = 0 ] && [ "$before" = "$after" ]' "frames in $before -> $after; $(cat "$T/verify")"
else
    echo "skip: the link cut needs root and iptables ($(head -1 "$T/ipt.err" 2>/dev/null))"
fi

# --- 3. stage 1 stopped for 10 s -----------------------------------------------
stream stall 400 &
client=$!
sleep 1
s1=$(cat "$T/s1.pid")
kill -STOP "$s1"
sleep 1
state=$(awk '/^State:/ {print $2}' /proc/"$s1"/status)
sleep 9
kill -CONT "$s1"
wait $client
crc=$?
verify stall "$T/stall.out" 400
vrc=$?
echo "note: SIGSTOP: $(tail -1 "$T/stall.client")"
check "stage 1 stopped (state $state) for 10 s during 400 images: every image answered once, equal to detect" \
    '[ "$state" = T ] && [ $crc = 0 ] && [ $vrc = 0 ]' "$(cat "$T/verify")"

# --- 4. the gateway restarted while idle; a stage that stays dead ----------------
kill -TERM "$(cat "$T/gw.pid")"
gwrc=0
wait "$(cat "$T/gw.pid")" || gwrc=$?
start_gateway --timeout 5
wait_ok "$URL/healthz" 30
stream after 100
verify after "$T/after.out" 100
vrc=$?
check "the gateway stopped (exit $gwrc) and started again: 100 images answered, equal to detect" \
    '[ $gwrc = 0 ] && [ $vrc = 0 ]' "$(cat "$T/verify")"
s1=$(cat "$T/s1.pid")
kill -9 "$s1"
while ! gone "$s1"; do sleep 0.01; done
img=$(head -1 "$T/images")
t0=$SECONDS
code=$(curl -s -o "$T/dead.out" -m 60 -w '%{http_code}' --data-binary "@$img" "$URL/v1/detect")
took=$((SECONDS - t0))
check "stage 1 dead: the client gets 504 with a message after --timeout 5 ($took s)" \
    '[ "$code" = 504 ] && grep -q "error" "$T/dead.out" && [ $took -lt 30 ]' "$code: $(cat "$T/dead.out")"
start_stage 1
wait_ok "http://127.0.0.1:${H[1]}/readyz" 30
stream back 40
verify back "$T/back.out" 40
vrc=$?
check "stage 1 back: 40 images answered, equal to detect" '[ $vrc = 0 ]' "$(cat "$T/verify")"
check "the stages logged no crash" '! grep -qiE "sanitizer|segmentation|abort" "$T"/s*.log "$T/gw.log"' \
    "$(grep -iE "sanitizer|segmentation|abort" "$T"/s*.log | head -3)"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
