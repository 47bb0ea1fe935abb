#!/usr/bin/env bash
# fp_netem (bench/cluster/netem.c), the emulated cluster's link delay and loss
# where the kernel has no netem: usage errors (exit 2 with a message), then,
# as root with network namespaces and iptables, two namespaces on a veth pair
# with UDP probes (bench/cluster/netcheck.py) from A to an echo in B while
# fp_netem holds what comes in on A's end:
#   - delay 30ms: the answers take 30 ms or more (the median: 1 ms without);
#   - loss 50% with a fixed seed: about half the answers are lost, and the
#     counts printed on SIGUSR1 and at exit say how many were dropped;
#   - fp_netem gone: the rule's --queue-bypass lets packets through again.
# Skips (77) when fp_netem was not built (no libnetfilter-queue-dev).
set -u
FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FP_BUILD=${FP_BUILD:-$FP_SRC/build}
NE=$FP_BUILD/fp_netem
NC=$FP_SRC/bench/cluster/netcheck.py
[ -x "$NE" ] || { echo "skip: $NE not built (libnetfilter-queue-dev missing)"; exit 77; }
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }
T=$(mktemp -d)
A=fpn-a-$$ B=fpn-b-$$
cleanup() {
    [ -n "${ne_pid:-}" ] && kill "$ne_pid" 2>/dev/null
    [ -n "${echo_pid:-}" ] && kill "$echo_pid" 2>/dev/null
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

# --- usage ---------------------------------------------------------------------
"$NE" --help >"$T/help" 2>&1
check "--help: exit 0, names --queue" '[ $? = 0 ] && grep -q -- "--queue N" "$T/help"'
usage() { # usage NAME EXPECTED-TEXT ARGS...
    local name=$1 text=$2
    shift 2
    "$NE" "$@" >"$T/out" 2>&1
    local rc=$?
    check "usage: $name -> exit 2, \"$text\"" '[ $rc = 2 ] && grep -q -- "$text" "$T/out"' "rc=$rc: $(head -2 "$T/out")"
}
usage "no --queue" "--queue is required" --delay 5ms
usage "bad delay" "bad delay '5x'" --queue 1 --delay 5x
usage "delay over 10 s" "bad delay '11s'" --queue 1 --delay 11s
usage "negative delay" "bad delay '-1ms'" --queue 1 --delay -1ms
usage "loss over 100%" "bad loss '150%'" --queue 1 --loss 150%
usage "bad queue" "bad queue number '70000'" --queue 70000
usage "unknown option" "unknown option '--rate'" --queue 1 --rate 1mbit
usage "value missing" "--loss needs a value" --queue 1 --loss

# --- on a veth pair ------------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v iptables >/dev/null || ! ip netns add "$A" 2>/dev/null; then
    echo "note: not root, no iptables or no network namespaces: the usage checks only"
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
fi
ip netns add "$B"
ip link add fpn-a$$ type veth peer name fpn-b$$
ip link set fpn-a$$ netns "$A"
ip link set fpn-b$$ netns "$B"
ip -n "$A" addr add 10.78.0.1/24 dev fpn-a$$
ip -n "$B" addr add 10.78.0.2/24 dev fpn-b$$
ip -n "$A" link set fpn-a$$ up
ip -n "$B" link set fpn-b$$ up
ip netns exec "$B" /usr/bin/python3 "$NC" echo 10.78.0.2 7001 60 & echo_pid=$!
# start_ne ARGS...: fp_netem on queue 0 of A, once it has bound the queue
start_ne() {
    ip netns exec "$A" "$NE" --queue 0 --stats "$@" 2>"$T/ne.err" & ne_pid=$!
    for _ in $(seq 100); do
        ip netns exec "$A" awk '$1 == 0 { f = 1 } END { exit !f }' /proc/net/netfilter/nfnetlink_queue && return
        sleep 0.05
    done
}
stop_ne() { kill "$ne_pid" 2>/dev/null; wait "$ne_pid" 2>/dev/null; ne_rc=$?; ne_pid=; }
probe() { ip netns exec "$A" /usr/bin/python3 "$NC" probe 10.78.0.2 7001 "$1"; }
field() { /usr/bin/python3 -c 'import json, sys; v = json.loads(sys.argv[1])[sys.argv[2]]; print(v if v is not None else -1)' "$1" "$2"; }
sleep 0.3
plain=$(probe 20)
ip netns exec "$A" iptables -A INPUT -i fpn-a$$ -j NFQUEUE --queue-num 0 --queue-bypass
start_ne --delay 30ms
held=$(probe 50)
stop_ne
echo "note: without fp_netem: $plain; delay 30ms: $held"
check "delay 30ms: every probe answered, the median round trip at least 30 ms" \
    "[ \"$(field "$held" answered)\" = 50 ] && awk -v r=\"$(field "$held" rtt_ms)\" 'BEGIN { exit !(r >= 30) }'" "$held"
check "...and fp_netem exits 0 on SIGTERM with its counts" '[ "$ne_rc" = 0 ] && grep -q "queue 0: [0-9]* accepted, 0 dropped (loss)" "$T/ne.err"' \
    "rc=$ne_rc: $(cat "$T/ne.err")"
start_ne --delay 1ms --loss 50% --seed 7
lossy=$(probe 100)
kill -USR1 "$ne_pid"
sleep 0.2
report=$(grep "dropped (loss)" "$T/ne.err" | tail -1)
stop_ne
dropped=$(echo "$report" | sed -n 's/.* \([0-9]*\) dropped (loss).*/\1/p')
echo "note: loss 50%: $lossy; on SIGUSR1: $report"
check "loss 50%: between 30% and 70% of the probes lost" \
    "awk -v l=\"$(field "$lossy" lost)\" 'BEGIN { exit !(l >= 0.3 && l <= 0.7) }'" "$lossy"
check "...and the SIGUSR1 counts name the answers dropped" \
    "[ -n \"$dropped\" ] && [ \"$dropped\" = \"$(( 100 - $(field "$lossy" answered) ))\" ]" "$report"
after=$(probe 20)
echo "note: fp_netem gone, the rule still there: $after"
check "fp_netem gone: the queue is bypassed, every probe answered" "[ \"$(field "$after" answered)\" = 20 ]" "$after"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
