#!/usr/bin/env bash
# soak — streams many images through a 3-stage pipeline on loopback (`fogpipe
# stage` ×3 + `fogpipe gateway`, yolov3-tiny at 96x96 with random weights, as
# tests/faults.sh builds it) over HTTP with 8 clients, and samples every
# process's resident memory (VmRSS) and open file descriptors every few
# seconds. Prints a table and writes bench/results/soak.json; exit 1 when
# an answer is missing or wrong, or memory or descriptors grow
# (docs/reliability.md).
#
# usage: bench/soak.sh [IMAGES] [--curve]      (default 50000; make soak)
#   FOGPIPE   the fogpipe binary (default build/fogpipe)
#   OUT       the JSON (default bench/results/soak.json)
# "Flat": after the first 10% of the images (warm-up: allocators and
# libmicrohttpd's pools reach their working size), each process's RSS grows
# by at most 4 MiB and its descriptor count not at all.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
FOGPIPE=${FOGPIPE:-$src/build/fogpipe}
case $FOGPIPE in /*) ;; */*) FOGPIPE=$PWD/$FOGPIPE ;; esac
OUT=${OUT:-$src/bench/results/soak.json}
PY=/usr/bin/python3
DN=/usr/share/darknet
N=50000
curve=0
for a in "$@"; do
    case $a in
    --curve) curve=1 ;;
    [0-9]*) N=$a ;;
    *) echo "usage: $0 [IMAGES] [--curve]" >&2; exit 2 ;;
    esac
done
[ -x "$FOGPIPE" ] || { echo "soak: $FOGPIPE not found (make)" >&2; exit 1; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || { echo "soak: Debian's darknet is not installed (scripts/setup.sh)" >&2; exit 1; }
T=$(mktemp -d)
pids=()
trap 'kill ${pids[*]} 2>/dev/null; rm -rf "$T"' EXIT
# N distinct free ports below the kernel's ephemeral range (tests/tools/free_port.py)
free_port() { "$PY" "$src/tests/tools/free_port.py" "${1:-1}" | paste -sd ' '; }

sed -e 's/^width=.*/width=96/' -e 's/^height=.*/height=96/' "$DN/cfg/yolov3-tiny.cfg" >"$T/small.cfg"
"$FOGPIPE" random-weights --cfg "$T/small.cfg" --seed 5 -o "$T/small.weights" 2>/dev/null
M=(--cfg "$T/small.cfg" --weights "$T/small.weights")
"$FOGPIPE" profile "${M[@]}" --iters 1 --warmup 0 --no-codecs -o "$T/small.prof" >/dev/null 2>&1
"$FOGPIPE" plan "${M[@]}" --profile "$T/small.prof" --devices 3 --link 1gbit --codec none --cuts 8,14 -o "$T/p.json" \
    >/dev/null 2>&1
ls "$DN"/data/*.jpg >"$T/images"
"$FOGPIPE" detect "${M[@]}" $(cat "$T/images") >"$T/ref" 2>/dev/null
keys=()
if [ $curve = 1 ]; then "$FOGPIPE" keys -o "$T/k" >/dev/null 2>&1; keys=(--curve-key "$T/k"); fi
ports=($(free_port 8)); P=("${ports[@]:0:3}"); H=("${ports[@]:3:3}"); PR=${ports[6]}; HG=${ports[7]}
for k in 0 1 2; do
    next=tcp://127.0.0.1:$PR
    [ $k -lt 2 ] && next=tcp://127.0.0.1:${P[$((k + 1))]}
    "$FOGPIPE" stage --plan "$T/p.json" --stage $k --bind tcp://127.0.0.1:${P[$k]} --next "$next" \
        --http 127.0.0.1:${H[$k]} "${keys[@]}" 2>"$T/s$k.log" &
    pids+=($!)
done
"$FOGPIPE" gateway --plan "$T/p.json" --first tcp://127.0.0.1:${P[0]} --results tcp://127.0.0.1:$PR \
    --http 127.0.0.1:$HG "${keys[@]}" 2>"$T/gw.log" &
pids+=($!)
for i in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$HG/healthz)" = 200 ] &&
        [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${H[0]}/readyz)" = 200 ] && break
    sleep 0.1
done

# The sampler: every 5 s, images completed and each process's RSS (kB) and fds.
names=(stage0 stage1 stage2 gateway)
(
    while :; do
        done_n=$(curl -s -m 5 http://127.0.0.1:$HG/v1/stats | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["completed"])' 2>/dev/null || echo -1)
        line="$(date +%s) $done_n"
        for p in "${pids[@]}"; do
            rss=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
            fds=$(ls /proc/$p/fd 2>/dev/null | wc -l)
            line="$line $rss $fds"
        done
        echo "$line" >>"$T/samples"
        sleep 5
    done
) &
sampler=$!
pids+=($sampler)
echo "soak: $N images through 3 stages and the gateway (pids ${pids[*]:0:4}); sampling every 5 s" >&2
rc=0
"$PY" "$src/tests/tools/http_client.py" http://127.0.0.1:$HG "$T/images" "$T/answers" --count "$N" --concurrency 8 \
    --progress 60 --digest || rc=1
sleep 6
kill $sampler 2>/dev/null || true
mkdir -p "$(dirname "$OUT")"
"$PY" - "$T/samples" "$T/answers" "$T/images" "$T/ref" "$N" "$OUT" "$curve" <<'EOF' || rc=1
import hashlib, json, sys
samples, answers, images, ref, n, out, curve = sys.argv[1:8]
n = int(n)
names = ["stage 0", "stage 1", "stage 2", "gateway"]
rows = [list(map(int, l.split())) for l in open(samples) if l.strip()]
paths = [l.strip() for l in open(images)]
want = {json.loads(l)["image"]: "sha256:" + hashlib.sha256(l.strip().encode()).hexdigest() for l in open(ref)}
good = wrong = failed = 0
for l in open(answers):
    i, st, body = l.rstrip("\n").split("\t", 2)
    if st != "200":
        failed += 1
    elif body == want[paths[int(i) % len(paths)]]:
        good += 1
    else:
        wrong += 1
t0 = rows[0][0]
warm = [r for r in rows if r[1] >= n // 10] or rows[-1:]
procs, flat = [], True
print("soak: %d images: %d correct, %d wrong, %d failed, in %d s" % (n, good, wrong, failed, rows[-1][0] - t0))
print("%-8s %12s %12s %12s %6s %6s %6s" % ("process", "RSS start", "RSS @10%", "RSS end", "fds@10%", "fds end", "fds max"))
for j, name in enumerate(names):
    rss = [r[2 + 2 * j] for r in rows]
    fds = [r[3 + 2 * j] for r in rows]
    w = rows.index(warm[0])
    grow_kb = rss[-1] - rss[w]
    ok = grow_kb <= 4096 and fds[-1] <= fds[w]
    flat &= ok
    procs.append({"process": name, "rss_kb_start": rss[0], "rss_kb_at_10pct": rss[w], "rss_kb_end": rss[-1],
                  "rss_kb_max": max(rss), "fds_at_10pct": fds[w], "fds_end": fds[-1], "fds_max": max(fds), "flat": ok})
    print("%-8s %9.1f MiB %9.1f MiB %9.1f MiB %6d %6d %6d%s" % (name, rss[0] / 1024, rss[w] / 1024, rss[-1] / 1024,
          fds[w], fds[-1], max(fds), "" if ok else "   <- grows"))
json.dump({"images": n, "correct": good, "wrong": wrong, "failed": failed, "curve": curve == "1",
           "seconds": rows[-1][0] - t0, "processes": procs,
           "samples": [{"t": r[0] - t0, "completed": r[1], "rss_kb": r[2::2], "fds": r[3::2]} for r in rows]},
          open(out, "w"), indent=1)
print("soak: wrote", out)
sys.exit(0 if good == n and flat else 1)
EOF
exit $rc
