#!/usr/bin/env bash
# ctest: slow
# The pipeline in containers: builds the fogpipe image (deploy/build-image:
# FROM scratch, the binary under test and its libraries), brings a 3-stage
# plan up with deploy/podman-up (yolov3-tiny at 96x96, a random weights file;
# stage 1 with 2 replicas; the stages mount no model directory: the cfg comes
# in the ConfigMap, each stage's own weights from the gateway), POSTs darknet's sample images to the gateway and compares
# the answers with `fogpipe detect`, then deletes a replica's pod (the other
# replica serves meanwhile) and plays it again as a StatefulSet would, kills
# the single stage 2 container's process during a burst of requests (podman
# restarts it, the gateway resends), checks every answer again, and tears it
# all down with deploy/podman-down.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
# Exits 77 (skip) without Debian's darknet, curl, python3-yaml, podman, root
# (podman-up polls the pods' addresses from the host), or where podman cannot
# build and run a container; says which.
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
case $FOGPIPE in /*) ;; */*) FOGPIPE=$PWD/$FOGPIPE ;; esac
DN=/usr/share/darknet
PY=/usr/bin/python3
skip() { echo "skip: $*"; exit 77; }
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || skip "Debian's darknet is not installed (scripts/setup.sh)"
command -v curl >/dev/null || skip "curl is not installed (scripts/setup.sh)"
"$PY" -c 'import yaml' 2>/dev/null || skip "python3 with PyYAML is missing (apt-get install python3-yaml)"
command -v podman >/dev/null || skip "podman is not installed (apt-get install podman runc, then /etc/containers/containers.conf as docs/deploy.md says)"
[ "$(id -u)" = 0 ] || skip "needs rootful podman (run as root): deploy/podman-up polls the pods' addresses from the host"
podman info >/dev/null 2>&1 || skip "podman does not work here: $(podman info 2>&1 | tail -1)"

T=$(mktemp -d)
chmod 755 "$T"
NAME=fpt$$
IMG=localhost/fogpipe:ctest-$$
PROBE=localhost/fogpipe-probe:ctest-$$
cleanup() {
    [ -n "${KEEP:-}" ] && { echo "kept: $T, pods of $NAME, image $IMG"; return; }
    "$FP_SRC/deploy/podman-down" --name "$NAME" >/dev/null 2>&1
    podman rmi -f "$IMG" "$PROBE" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' TERM INT # (a ctest timeout) still clean up
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }
# N distinct free ports below the kernel's ephemeral range (tests/tools/free_port.py)
free_port() { "$PY" "$FP_SRC/tests/tools/free_port.py" "${1:-1}" | paste -sd ' '; }

# Can podman build and run a container at all here? The dynamic loader alone
# runs in an empty image (`ld.so --version`).
interp=$(ldd "$FOGPIPE" | awk '$1 ~ /^\// { print $1; exit }')
mkdir -p "$T/probe"
cp -L "$interp" "$T/probe/ld.so"
printf 'FROM scratch\nCOPY ld.so /ld.so\nENTRYPOINT ["/ld.so", "--version"]\n' >"$T/probe/Containerfile"
if ! podman build -q -f "$T/probe/Containerfile" -t "$PROBE" "$T/probe" >"$T/probe.out" 2>&1 ||
    ! podman run --rm "$PROBE" >"$T/probe.out" 2>&1; then
    skip "podman cannot build or run a container here: $(tail -2 "$T/probe.out" | tr '\n' ' ')"
fi

# --- the image ------------------------------------------------------------
if ENGINE=podman "$FP_SRC/deploy/build-image" "$FOGPIPE" "$IMG" >"$T/build.out" 2>&1; then
    ok "deploy/build-image builds the image FROM scratch, offline ($(sed -n 's/.*built with podman: \(.*\)/\1/p' "$T/build.out"))"
else
    bad "deploy/build-image builds the image" "$(tail -5 "$T/build.out")"
    echo "$pass passed, $fail failed"
    exit 1
fi
user=$(podman image inspect --format '{{.Config.User}}' "$IMG")
check "the image runs as the non-root user 65532" '[ "$user" = 65532:65532 ]' "$user"
ver=$(podman run --rm --read-only "$IMG" --version 2>&1)
check "fogpipe runs in it with a read-only root" '[ "$ver" = "$("$FOGPIPE" --version)" ]' "$ver"
cid=$(podman create "$IMG")
podman export "$cid" | tar -t >"$T/files"
podman rm "$cid" >/dev/null
check "the image holds the binary, its libraries, OpenBLAS and /etc/passwd, and no model files" \
    'grep -qx "usr/bin/fogpipe" "$T/files" && grep -q "libzmq.so.5$" "$T/files" && grep -q "libopenblas.so.0$" "$T/files" &&
     grep -qx "etc/passwd" "$T/files" && ! grep -qE "\.(cfg|weights)$" "$T/files" && [ "$(wc -l <"$T/files")" -lt 80 ]' \
    "$(wc -l <"$T/files") entries: $(head -c 600 "$T/files")"

# --- a 3-stage plan, stage 1 replicated --------------------------------------
mkdir -p "$T/models"
chmod 755 "$T/models"
sed -e 's/^width=.*/width=96/' -e 's/^height=.*/height=96/' "$DN/cfg/yolov3-tiny.cfg" >"$T/models/small.cfg"
"$FOGPIPE" random-weights --cfg "$T/models/small.cfg" --seed 5 -o "$T/models/small.weights" 2>/dev/null
chmod 644 "$T/models"/*
M=(--cfg "$T/models/small.cfg" --weights "$T/models/small.weights")
"$FOGPIPE" profile "${M[@]}" --iters 1 --warmup 0 --no-codecs -o "$T/small.prof" >/dev/null 2>&1
"$FOGPIPE" plan "${M[@]}" --profile "$T/small.prof" --devices 4 --link 1gbit --codec none --cuts 4,12 -o "$T/p.json" \
    >/dev/null 2>&1 || { echo "FAIL: cannot make a plan"; exit 1; }
"$PY" - "$T/p.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
p["stages"][1]["replicas"] = 2
p["stages"][1]["devices"] = ["dev1", "dev3"]
json.dump(p, open(sys.argv[1], "w"), indent=1)
EOF
kernels=$(podman run --rm --read-only -v "$T/models:/models:ro" "$IMG" bench --cfg small.cfg --iters 1 --warmup 0 2>&1 |
          sed -n 's/^kernels: //p')
check "in the container the fast kernels load OpenBLAS" 'grep -q OpenBLAS <<<"$kernels"' "$kernels"

# --- up ---------------------------------------------------------------------
PORT=$(free_port)
t0=$SECONDS
# Every link CURVE-encrypted: one key file for all (a hostPath in the podman
# overlay; a Secret in the Kubernetes manifests).
"$FOGPIPE" keys -o "$T/curve.key" >/dev/null 2>&1
FOGPIPE=$FOGPIPE "$FP_SRC/deploy/podman-up" "$T/p.json" --image "$IMG" --name "$NAME" --port "$PORT" \
    --out "$T/deploy" --timeout 180 --curve-key "$T/curve.key" >"$T/up.out" 2>"$T/up.err"
rc=$?
url=$(tail -1 "$T/up.out")
check "deploy/podman-up: every stage ready, the gateway's URL last ($((SECONDS - t0)) s)" \
    '[ $rc = 0 ] && [ "$url" = "http://127.0.0.1:$PORT" ]' "rc $rc, '$url': $(tail -8 "$T/up.err")"
pods=$(podman pod ps --filter "label=app.kubernetes.io/instance=$NAME" --format '{{.Name}}' | sort | tr '\n' ' ')
check "5 pods: stage 0, stage 1 twice, stage 2, the gateway" \
    '[ "$pods" = "$NAME-gateway $NAME-stage-0-0 $NAME-stage-1-0 $NAME-stage-1-1 $NAME-stage-2-0 " ]' "$pods"
gwlog=$(podman logs "$NAME-gateway-gateway" 2>&1 | head -3)
check "the gateway's links are CURVE-encrypted (the key mounted from the host)" 'grep -q "CURVE-encrypted" <<<"$gwlog"' "$gwlog"
sec=$(podman inspect "$NAME-stage-1-0-stage" --format '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}} {{.HostConfig.Memory}} {{len .EffectiveCaps}}')
check "a stage container: read-only root, user 65532, the plan's memory limit, no capabilities" \
    'read -r ro u mem caps <<<"$sec"; [ "$ro" = true ] && [ "$u" = 65532:65532 ] && [ "$mem" -gt 0 ] && [ "$caps" = 0 ]' "$sec"
smounts=$(podman inspect "$NAME-stage-1-0-stage" --format '{{range .Mounts}}{{.Destination}} {{end}}')
gmounts=$(podman inspect "$NAME-gateway-gateway" --format '{{range .Mounts}}{{.Destination}} {{end}}')
check "stages mount no model directory (weights from the gateway), the gateway does" \
    '! grep -q /models <<<"$smounts" && grep -q /models <<<"$gmounts"' "stage: $smounts; gateway: $gmounts"

# --- answers equal fogpipe detect ---------------------------------------------
# The reference: fogpipe detect in the same image (the same binary, libraries
# and environment as the stages: the host's OPENBLAS_CORETYPE, for one, can
# pick other kernels and move the last bits of the scores).
IMAGES=("$DN"/data/*.jpg)
podman run --rm --read-only -v "$T/models:/models:ro" -v "$DN/data:$DN/data:ro" "$IMG" \
    detect --cfg small.cfg --weights small.weights "${IMAGES[@]}" >"$T/det" 2>"$T/det.err"
check "fogpipe detect in the image gives one object per image" '[ "$(grep -c "\"detections\"" "$T/det")" = ${#IMAGES[@]} ]' \
    "$(cat "$T/det.err")"
post_all() { # post_all OUT: every image once, in order, one JSON object a line
    : >"$1"
    for im in "${IMAGES[@]}"; do
        curl -s -m 120 --data-binary "@$im" "$url/v1/detect?name=$im" >>"$1"
        echo >>"$1"
    done
}
post_all "$T/http1"
check "POST /v1/detect for ${#IMAGES[@]} images equals fogpipe detect" 'cmp -s "$T/det" "$T/http1"' \
    "$(diff "$T/det" "$T/http1" | head -c 400)"
for i in 1 2; do post_all "$T/more"; done
curl -s "$url/v1/stats" >"$T/stats"
check "both replicas of stage 1 take frames (/v1/stats, scraped over the pod network)" \
    '"$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); f=[x.get(\"frames\",0) for x in s[\"stages\"] if \"-stage-1-\" in x[\"http\"]]; assert len(f)==2 and min(f)>0, f" "$T/stats"' \
    "$(head -c 600 "$T/stats")"

# --- a replica's pod deleted: the other serves; played again, it takes frames ---
# As `kubectl delete pod` does: SIGTERM (the stage drains), then removal.
podman pod stop -t 15 "$NAME-stage-1-0" >/dev/null
podman pod rm -f "$NAME-stage-1-0" >/dev/null
post_all "$T/http2"
check "with stage 1's replica 0 deleted, every answer still equals detect" 'cmp -s "$T/det" "$T/http2"' \
    "$(diff "$T/det" "$T/http2" | head -c 400)"
# What the StatefulSet controller would do: the same pod again (a new address).
"$PY" - "$T/deploy/podman/kube.yaml" "$NAME-stage-1-0" "$T/deploy/podman/one.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and (d["kind"] == "ConfigMap" or d["metadata"]["name"] == sys.argv[2])]
yaml.safe_dump_all(docs, open(sys.argv[3], "w"))
EOF
(cd "$T/deploy/podman" && podman kube play one.yaml >"$T/replay.out" 2>&1)
ready=0
for i in $(seq 120); do
    infra=$(podman pod inspect "$NAME-stage-1-0" --format '{{.InfraContainerID}}' 2>/dev/null)
    ip=$(podman inspect "$infra" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' 2>/dev/null)
    [ -n "$ip" ] && [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$ip:9602/readyz")" = 200 ] && { ready=1; break; }
    sleep 0.5
done
check "the deleted pod played again is ready" '[ $ready = 1 ]' "$(tail -3 "$T/replay.out")"
# Stage 0 reconnects to it by name (a new address; ZeroMQ resolves again).
infra=$(podman pod inspect "$NAME-stage-0-0" --format '{{.InfraContainerID}}')
ip0=$(podman inspect "$infra" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
t0=$SECONDS
peers=0
while [ $((SECONDS - t0)) -lt 60 ]; do
    peers=$(curl -s -m 2 "http://$ip0:9601/metrics" | sed -n 's/^fogpipe_peers_connected //p')
    [ "${peers:-0}" = 2 ] && break
    sleep 0.2
done
check "stage 0 reconnects to the new pod by its name ($((SECONDS - t0)) s)" '[ "$peers" = 2 ]' "peers connected: $peers"
before=$(curl -s "http://$ip:9602/metrics" | sed -n 's/^fogpipe_compute_seconds_count //p')
post_all "$T/http3"
after=$(curl -s "http://$ip:9602/metrics" | sed -n 's/^fogpipe_compute_seconds_count //p')
check "once it is back every answer equals detect, and the new pod takes frames" \
    'cmp -s "$T/det" "$T/http3" && [ "${after:-0}" -gt "${before:-0}" ]' "$(diff "$T/det" "$T/http3" | head -c 300) frames $before -> $after"

# --- the single stage 2 container dies during a burst: restarted, nothing lost ---
pid=$(podman inspect "$NAME-stage-2-0-stage" --format '{{.State.Pid}}')
kill -9 "$pid"
cpids=()
for i in "${!IMAGES[@]}"; do
    curl -s -m 120 --data-binary "@${IMAGES[$i]}" "$url/v1/detect?name=${IMAGES[$i]}" >"$T/burst.$i" &
    cpids+=($!)
done
wait "${cpids[@]}"
for i in "${!IMAGES[@]}"; do cat "$T/burst.$i"; echo; done >"$T/http4"
restarts=$(podman inspect "$NAME-stage-2-0-stage" --format '{{.RestartCount}}')
check "stage 2 killed during ${#IMAGES[@]} concurrent requests: podman restarts it, every answer equals detect" \
    '[ "$restarts" -ge 1 ] && cmp -s "$T/det" "$T/http4"' "restarts $restarts; $(diff "$T/det" "$T/http4" | head -c 300)"
curl -s "$url/v1/stats" >"$T/stats"
check "...the gateway's stats: everything submitted completed, nothing in flight" \
    '"$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); assert s[\"completed\"]==s[\"submitted\"]>=6*${#IMAGES[@]} and s[\"in_flight\"]==0, s" "$T/stats"' \
    "$(head -c 300 "$T/stats")"
oom=$(for c in $(podman ps -a --filter "label=app.kubernetes.io/instance=$NAME" --format '{{.Names}}'); do
          podman inspect "$c" --format '{{.State.OOMKilled}}'; done | sort -u | tr '\n' ' ')
check "no container was killed for memory (limits from the plan's predictions)" '[ "$oom" = "false " ]' "$oom"

# --- down ---------------------------------------------------------------------
"$FP_SRC/deploy/podman-down" --name "$NAME" >"$T/down.out" 2>&1
rc=$?
left=$(podman pod ps -q --filter "label=app.kubernetes.io/instance=$NAME" | wc -l)
vols=$(podman volume ls -q | grep -c "^$NAME-plan-" || true)
check "deploy/podman-down removes every pod and the plan volume" '[ $rc = 0 ] && [ "$left" = 0 ] && [ "$vols" = 0 ]' \
    "rc $rc, $left pods, $vols volumes left: $(cat "$T/down.out")"
code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url/healthz")
check "...and the gateway no longer answers" '[ "$code" = 000 ]' "$code"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
