#!/usr/bin/env bash
# Every cfg in Debian's darknet package either loads, with exactly the layer
# shapes darknet itself computes, or is refused with one error line that names
# the file, the section's line and the reason.
# Environment: FOGPIPE (binary), FP_BUILD (holds darknet_oracle). Exit 77: skip.
set -u
FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FP_BUILD=${FP_BUILD:-$FP_SRC/build}
FOGPIPE=${FOGPIPE:-$FP_BUILD/fogpipe}
ORACLE=$FP_BUILD/darknet_oracle
DIR=/usr/share/darknet/cfg
[ -d "$DIR" ] || { echo "SKIP: $DIR not found (install Debian's darknet package)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 loaded=0 refused=0
for cfg in "$DIR"/*.cfg; do
  name=$(basename "$cfg")
  "$FOGPIPE" inspect --cfg "$cfg" --json > "$tmp/fp.json" 2> "$tmp/err"
  rc=$?
  if [ $rc -ne 0 ]; then
    lines=$(wc -l < "$tmp/err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -Eq "^fogpipe: $cfg:[0-9]+: \[[a-z0-9]+\] .+" "$tmp/err"; then
      echo "ok   $name refused: $(cut -c1-150 "$tmp/err")"; pass=$((pass+1)); refused=$((refused+1))
    else
      echo "FAIL $name: exit $rc, stderr: $(head -c 300 "$tmp/err")"; fail=$((fail+1))
    fi
    continue
  fi
  if [ ! -x "$ORACLE" ]; then
    echo "ok   $name loads (darknet_oracle absent: shapes not compared)"; pass=$((pass+1)); loaded=$((loaded+1)); continue
  fi
  "$ORACLE" shapes "$cfg" > "$tmp/dn.txt" 2>/dev/null || { echo "FAIL $name: darknet could not parse it"; fail=$((fail+1)); continue; }
  if python3 - "$tmp/fp.json" "$tmp/dn.txt" > "$tmp/diff" <<'PY'
import json, sys
fp = json.load(open(sys.argv[1]))["layers"]
dn = [list(map(int, l.split())) for l in open(sys.argv[2]) if l.strip()]
if len(fp) != len(dn):
    print(f"{len(fp)} layers, darknet has {len(dn)}"); sys.exit(1)
for l, (i, w, h, c, outputs) in zip(fp, dn):
    o = l["output"]
    n = o["w"] * o["h"] * o["c"]
    # darknet leaves w/h/c at 0 for flat outputs (e.g. a route of mismatched sizes); compare counts then
    same = (o["w"], o["h"], o["c"]) == (w, h, c) if (w and h and c) else n == outputs
    if not same or n != outputs:
        print(f"layer {i} ({l['type']}): fogpipe {o['w']}x{o['h']}x{o['c']}, darknet {w}x{h}x{c} ({outputs} outputs)")
        sys.exit(1)
PY
  then
    echo "ok   $name loads, $(grep -c . "$tmp/dn.txt") layer shapes equal darknet's"; pass=$((pass+1)); loaded=$((loaded+1))
  else
    echo "FAIL $name: $(cat "$tmp/diff")"; fail=$((fail+1))
  fi
done
echo "($loaded loaded, $refused refused)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
