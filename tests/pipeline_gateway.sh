#!/usr/bin/env bash
# `fogpipe stage` and `fogpipe gateway` as separate processes, as a cluster
# runs them: readiness, the HTTP API (POST /v1/detect equals `fogpipe
# detect`; 400 for non-images, 413 for oversize bodies, 404/405), /v1/stats,
# Prometheus /metrics on both, environment twins of flags, usage errors,
# stages fetching only their own weights from the gateway (--serve-weights,
# --weights-from, SHA-256 against the plan), and SIGTERM draining to exit 0. Small network (yolov3-tiny at 96x96): quick
# enough for the ASan tier too.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
# Needs Debian's darknet (cfg, sample images) and curl: exits 77 without.
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
DN=/usr/share/darknet
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || { echo "skip: Debian's darknet is not installed (scripts/setup.sh)"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl is not installed (scripts/setup.sh)"; exit 77; }
T=$(mktemp -d)
pids=()
trap 'kill ${pids[*]} 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }

# N distinct free ports below the kernel's ephemeral range (tests/tools/free_port.py)
free_port() { python3 "$FP_SRC/tests/tools/free_port.py" "${1:-1}" | paste -sd ' '; }
read -r P0 P1 PR H0 H1 HG <<<"$(free_port 6)"

sed -e 's/^width=.*/width=96/' -e 's/^height=.*/height=96/' "$DN/cfg/yolov3-tiny.cfg" >"$T/small.cfg"
"$FOGPIPE" random-weights --cfg "$T/small.cfg" --seed 5 -o "$T/small.weights" 2>/dev/null
M=(--cfg "$T/small.cfg" --weights "$T/small.weights")
"$FOGPIPE" profile "${M[@]}" --iters 1 --warmup 0 --no-codecs -o "$T/small.prof" >/dev/null 2>&1
"$FOGPIPE" plan "${M[@]}" --profile "$T/small.prof" --devices 2 --link 1gbit --codec none --cuts 14 -o "$T/p.json" \
    >/dev/null 2>&1 || { echo "FAIL: cannot make a plan"; exit 1; }

# Usage errors: exit 2 and a precise line.
"$FOGPIPE" stage --plan "$T/p.json" >"$T/out" 2>&1
rc=$?
check "stage without --stage: exit 2" '[ $rc = 2 ] && grep -q -- "--stage" "$T/out"' "$(cat "$T/out")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 5 >"$T/out" 2>&1
rc=$?
check "stage 5 of a 2-stage plan: exit 2" '[ $rc = 2 ] && grep -q "has 2 stages" "$T/out"' "$(cat "$T/out")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --next "http://x" >"$T/out" 2>&1
rc=$?
check "stage with a bad --next: exit 2" '[ $rc = 2 ] && grep -q "not an endpoint" "$T/out"' "$(cat "$T/out")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --http nonsense >"$T/out" 2>&1
rc=$?
check "stage with a bad --http: exit 2" '[ $rc = 2 ] && grep -q "HOST:PORT" "$T/out"' "$(cat "$T/out")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --weights "$T/small.cfg" --http off >"$T/out" 2>&1
rc=$?
check "stage with weights that do not hash as the plan says: exit 1" \
    '[ $rc = 1 ] && grep -q "but the plan was made for" "$T/out"' "$(cat "$T/out")"
"$FOGPIPE" stage --plan /nonexistent.json --stage 0 >"$T/out" 2>&1
rc=$?
check "stage with a missing plan: exit 1" '[ $rc = 1 ] && grep -q "nonexistent" "$T/out"' "$(cat "$T/out")"

# Stage 1 from environment twins, stage 0 from flags, the gateway.
FOGPIPE_PLAN="$T/p.json" FOGPIPE_STAGE=1 FOGPIPE_BIND="tcp://127.0.0.1:$P1" FOGPIPE_NEXT="tcp://127.0.0.1:$PR" \
    FOGPIPE_HTTP="127.0.0.1:$H1" FOGPIPE_THRESHOLD=0.4 "$FOGPIPE" stage 2>"$T/s1.err" &
s1=$!
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --bind "tcp://127.0.0.1:$P0" --next "tcp://127.0.0.1:$P1" \
    --http "127.0.0.1:$H0" 2>"$T/s0.err" &
s0=$!
"$FOGPIPE" gateway --plan "$T/p.json" --first "tcp://127.0.0.1:$P0" --results "tcp://127.0.0.1:$PR" \
    --http "127.0.0.1:$HG" --stage-http "127.0.0.1:$H0,127.0.0.1:$H1" --max-body 200000 2>"$T/gw.err" &
gw=$!
pids=($s0 $s1 $gw)
ready=0
for i in $(seq 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H0/readyz")" = 200 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$H1/readyz")" = 200 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HG/healthz")" = 200 ]; then ready=1; break; fi
    sleep 0.1
done
check "stages ready (/readyz 200: weights loaded, next hop connected), gateway healthy" '[ $ready = 1 ]' \
    "$(cat "$T/s0.err" "$T/s1.err" "$T/gw.err" | tail -5)"

# POST /v1/detect equals fogpipe detect (the image name aside).
"$FOGPIPE" detect "${M[@]}" --threshold 0.4 "$DN/data/dog.jpg" "$DN/data/person.jpg" >"$T/det" 2>/dev/null
: >"$T/http"
for im in dog person; do
    curl -s --data-binary "@$DN/data/$im.jpg" "http://127.0.0.1:$HG/v1/detect?name=$DN/data/$im.jpg" >>"$T/http"
    echo >>"$T/http"
done
check "POST /v1/detect gives fogpipe detect's objects" 'cmp -s "$T/det" "$T/http"' "$(diff "$T/det" "$T/http" | head -c 300)"

code=$(curl -s -o "$T/out" -w '%{http_code}' --data-binary "hello, not an image" "http://127.0.0.1:$HG/v1/detect")
check "a non-image body: 400 with a message" '[ "$code" = 400 ] && grep -q "not an image" "$T/out"' "$code $(cat "$T/out")"
head -c 300000 /dev/zero >"$T/big"
# The gateway answers a declared length over the limit at once, without
# reading the body; a client that sends the body without waiting may see the
# connection reset before it reads the 413, so wait as HTTP allows (Expect).
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Expect: 100-continue" --data-binary "@$T/big" \
    "http://127.0.0.1:$HG/v1/detect")
check "a body over --max-body: 413" '[ "$code" = 413 ]' "$code"
printf '\xff\xd8\xff\xe0 truncated jpeg' >"$T/bad.jpg"
code=$(curl -s -o "$T/out" -w '%{http_code}' --data-binary "@$T/bad.jpg" "http://127.0.0.1:$HG/v1/detect")
check "a corrupt JPEG: 422 with stage 0's message" '[ "$code" = 422 ] && grep -q "stage 0" "$T/out"' "$code $(cat "$T/out")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HG/v1/detect")
check "GET /v1/detect: 405" '[ "$code" = 405 ]' "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HG/nothing")
check "unknown path: 404" '[ "$code" = 404 ]' "$code"

# Concurrent requests share the window; all answered.
cpids=()
for i in $(seq 8); do
    curl -s --data-binary "@$DN/data/horses.jpg" "http://127.0.0.1:$HG/v1/detect?name=h" >"$T/c$i" &
    cpids+=($!)
done
wait "${cpids[@]}"
n=$(grep -l '"detections"' "$T"/c? | wc -l)
check "8 concurrent requests: 8 answers" '[ "$n" = 8 ]' "$n"

curl -s "http://127.0.0.1:$HG/v1/stats" >"$T/stats"
check "/v1/stats: completed, latency, per-stage figures" \
    'python3 -c "import json,sys; s=json.load(open(sys.argv[1])); assert s[\"completed\"]>=11 and s[\"latency_ms\"][\"p50\"]>0 and len(s[\"stages\"])==2 and s[\"stages\"][0][\"frames\"]>=10" "$T/stats"' \
    "$(cat "$T/stats")"
curl -s "http://127.0.0.1:$H0/metrics" >"$T/m0"
check "stage /metrics: frames, bytes by codec, compute histogram, errors by kind, CPU time" \
    'grep -q "^process_cpu_seconds_total 0*[0-9]*\.*[0-9]*[1-9]" "$T/m0" && grep -q "^fogpipe_frames_in_total{kind=\"features\"} 1[0-9]" "$T/m0" && grep -q "^fogpipe_bytes_out_total{codec=\"none\"}" "$T/m0" && grep -q "^fogpipe_compute_seconds_bucket{le=\"+Inf\"} 1[0-9]" "$T/m0" && grep -q "^fogpipe_errors_total{kind=\"image\"} 1" "$T/m0"' \
    "$(head -c 600 "$T/m0")"
curl -s "http://127.0.0.1:$HG/metrics" >"$T/mg"
check "gateway /metrics: requests by status" 'grep -q "^fogpipe_gateway_requests_total{status=\"400\"} 1" "$T/mg"' \
    "$(head -c 400 "$T/mg")"

# A bearer token: everything but /healthz needs it.
read -r HT PT <<<"$(free_port 2)"
printf 'short\n' >"$T/short.token"
"$FOGPIPE" gateway --plan "$T/p.json" --token-file "$T/short.token" >"$T/out" 2>&1
rc=$?
check "a token shorter than 16 bytes: exit 2" '[ $rc = 2 ] && grep -q "16.." "$T/out"' "$(cat "$T/out")"
printf 'a-long-enough-secret-token\n' >"$T/token"
"$FOGPIPE" gateway --plan "$T/p.json" --first "tcp://127.0.0.1:$P0" --results "tcp://127.0.0.1:$PT" \
    --http "127.0.0.1:$HT" --token-file "$T/token" 2>"$T/gwt.err" &
gwt=$!
pids+=($gwt)
for i in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HT/healthz")" = 200 ] && break
    sleep 0.1
done
c1=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HT/v1/stats")
c2=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-token-of-some-length" "http://127.0.0.1:$HT/v1/stats")
c3=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$DN/data/dog.jpg" "http://127.0.0.1:$HT/v1/detect")
c4=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer a-long-enough-secret-token" "http://127.0.0.1:$HT/v1/stats")
c5=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HT/metrics")
check "with --token-file: 401 without or with a wrong token, 200 with it, /healthz open" \
    '[ "$c1 $c2 $c3 $c4 $c5" = "401 401 401 200 401" ]' "$c1 $c2 $c3 $c4 $c5"
kill -TERM $gwt
wait $gwt

# Each stage gets only its own layers' weights, from the gateway.
code=$(curl -s -o "$T/out" -w '%{http_code}' "http://127.0.0.1:$HG/v1/weights/0")
check "a gateway without --serve-weights: /v1/weights/0 is 404 with a hint" \
    '[ "$code" = 404 ] && grep -q -- "--serve-weights" "$T/out"' "$code $(cat "$T/out")"
check "the plan records each stage's weights SHA-256" \
    'python3 -c "import json,re,sys; p=json.load(open(sys.argv[1])); assert all(re.fullmatch(\"sha256:[0-9a-f]{64}\", s[\"weights_sha256\"]) for s in p[\"stages\"])" "$T/p.json"' \
    "$(grep weights_sha256 "$T/p.json")"
read -r HW PW0 PW1 PWR HW0 HW1 <<<"$(free_port 6)"
"$FOGPIPE" gateway --plan "$T/p.json" --first "tcp://127.0.0.1:$PW0" --results "tcp://127.0.0.1:$PWR" \
    --http "127.0.0.1:$HW" --serve-weights --token-file "$T/token" 2>"$T/gww.err" &
gww=$!
pids+=($gww)
for i in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HW/healthz")" = 200 ] && break
    sleep 0.1
done
mv "$T/small.weights" "$T/small.weights.away" # the stages must not need the file
curl -s -o "$T/w0" "http://127.0.0.1:$HW/v1/weights/0"
code=$(curl -s -o "$T/out" -w '%{http_code}' "http://127.0.0.1:$HW/v1/weights/2")
check "--serve-weights: a blob per stage without the token, 404 past the last stage" \
    '[ "$(head -c 8 "$T/w0")" = FPSTAGEW ] && [ "$code" = 404 ] && grep -q "stages 0..1" "$T/out"' \
    "$(head -c 8 "$T/w0") $code $(cat "$T/out" "$T/gww.err")"
W=(--weights-from "http://127.0.0.1:$HW/v1/weights")
FP_LOG_LEVEL=info "$FOGPIPE" stage --plan "$T/p.json" --stage 1 --bind "tcp://127.0.0.1:$PW1" --next "tcp://127.0.0.1:$PWR" \
    --http "127.0.0.1:$HW1" --threshold 0.4 "${W[@]}/1" 2>"$T/sw1.err" &
sw1=$!
FP_LOG_LEVEL=info FOGPIPE_WEIGHTS_FROM="http://127.0.0.1:$HW/v1/weights/0" "$FOGPIPE" stage --plan "$T/p.json" --stage 0 \
    --bind "tcp://127.0.0.1:$PW0" --next "tcp://127.0.0.1:$PW1" --http "127.0.0.1:$HW0" 2>"$T/sw0.err" &
sw0=$!
pids+=($sw0 $sw1)
ready=0
for i in $(seq 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HW0/readyz")" = 200 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HW1/readyz")" = 200 ]; then ready=1; break; fi
    sleep 0.1
done
: >"$T/httpw"
for im in dog person; do
    curl -s -H "Authorization: Bearer a-long-enough-secret-token" --data-binary "@$DN/data/$im.jpg" \
        "http://127.0.0.1:$HW/v1/detect?name=$DN/data/$im.jpg" >>"$T/httpw"
    echo >>"$T/httpw"
done
check "stages with --weights-from (no weights file): ready, answers equal fogpipe detect's" \
    '[ $ready = 1 ] && cmp -s "$T/det" "$T/httpw" && grep -q "SHA-256 as the plan says" "$T/sw0.err" "$T/sw1.err"' \
    "ready=$ready $(diff "$T/det" "$T/httpw" | head -c 300) $(tail -n 3 "$T/sw0.err" "$T/sw1.err")"
# a plan whose hash for stage 1 is another: the served blob is refused
python3 -c "import json,sys; p=json.load(open(sys.argv[1])); h=p['stages'][1]['weights_sha256']; p['stages'][1]['weights_sha256']=h[:7]+('0' if h[7]!='0' else '1')+h[8:]; json.dump(p,open(sys.argv[2],'w'))" \
    "$T/p.json" "$T/p-tampered.json"
"$FOGPIPE" stage --plan "$T/p-tampered.json" --stage 1 --http off "${W[@]}/1" --weights-timeout 5 >"$T/out" 2>&1
rc=$?
check "a blob whose SHA-256 is not the plan's: refused, exit 1" '[ $rc = 1 ] && grep -q "refused" "$T/out"' \
    "rc=$rc $(cat "$T/out"; diff "$T/p.json" "$T/p-tampered.json")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --http off "${W[@]}/1" --weights-timeout 5 >"$T/out" 2>&1
rc=$?
check "another stage's blob: refused, exit 1" '[ $rc = 1 ] && grep -Eq "refused|expected [0-9]+" "$T/out"' "rc=$rc $(cat "$T/out")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --http off --weights-from "http://127.0.0.1:1/none" --weights-timeout 1 \
    >"$T/out" 2>&1
rc=$?
check "no server: gives up after --weights-timeout, exit 1" '[ $rc = 1 ] && grep -q "no weights after" "$T/out"' \
    "rc=$rc $(cat "$T/out")"
"$FOGPIPE" stage --plan "$T/p.json" --stage 0 --weights-from "ftp://x/y" >"$T/out" 2>&1
rc=$?
check "--weights-from with a non-http URL: exit 2" '[ $rc = 2 ] && grep -q "http://" "$T/out"' "rc=$rc $(cat "$T/out")"
mv "$T/small.weights.away" "$T/small.weights"
for p in $sw0 $sw1 $gww; do kill -TERM $p; done
for p in $sw0 $sw1 $gww; do wait $p; done

# SIGTERM: each drains and exits 0.
for p in $s0 $s1 $gw; do kill -TERM $p; done
rcs=""
for p in $s0 $s1 $gw; do wait $p; rcs="$rcs$?"; done
check "SIGTERM: stage 0, stage 1 and the gateway exit 0" '[ "$rcs" = 000 ]' "exit codes $rcs"
pids=()

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
