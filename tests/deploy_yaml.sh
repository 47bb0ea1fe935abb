#!/usr/bin/env bash
# `fogpipe deploy` without a cluster: manifests for a 3-stage plan (yolov3-tiny
# at 96x96, random weights) whose middle stage has 2 replicas on devices with
# their own node labels, checked with python3: every object has apiVersion,
# kind and metadata; selectors match pod labels; Services' ports match
# container ports; nodeSelector / node affinity values come from the plan;
# probes, security context, resources from the plan's predictions; every
# stage's --next lists the next stage's replicas by their per-pod DNS names;
# the ConfigMap holds the plan; the podman variant. `kubectl kustomize` builds
# the directory when kubectl is installed. Usage errors exit 2, a bad plan 1.
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
# Needs Debian's darknet (a cfg) and python3 with PyYAML (python3-yaml): exits 77 without.
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FOGPIPE=${FOGPIPE:-$FP_SRC/build/fogpipe}
case $FOGPIPE in /*) ;; */*) FOGPIPE=$PWD/$FOGPIPE ;; esac
DN=/usr/share/darknet
PY=/usr/bin/python3
[ -x "$FOGPIPE" ] || { echo "FAIL: fogpipe binary $FOGPIPE not found"; exit 1; }
[ -f "$DN/cfg/yolov3-tiny.cfg" ] || { echo "skip: Debian's darknet is not installed (scripts/setup.sh)"; exit 77; }
"$PY" -c 'import yaml' 2>/dev/null || { echo "skip: python3 with PyYAML is missing (apt-get install python3-yaml)"; exit 77; }
T=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }

# A 3-stage plan over a cluster whose devices have node labels of their own;
# stage 1 then gets a second replica on pi-d (as tests/pipeline_run.sh does).
mkdir -p "$T/models"
sed -e 's/^width=.*/width=96/' -e 's/^height=.*/height=96/' "$DN/cfg/yolov3-tiny.cfg" >"$T/models/small.cfg"
"$FOGPIPE" random-weights --cfg "$T/models/small.cfg" --seed 5 -o "$T/models/small.weights" 2>/dev/null
M=(--cfg "$T/models/small.cfg" --weights "$T/models/small.weights")
"$FOGPIPE" profile "${M[@]}" --iters 1 --warmup 0 --no-codecs -o "$T/small.prof" >/dev/null 2>&1
cat >"$T/cluster.json" <<EOF
{"fogpipe_cluster": 1, "profile": "small.prof",
 "devices": [{"name": "pi-a", "node": "rpi-kitchen", "threads": 4, "memory_mb": 900},
             {"name": "pi-b", "node": "0", "threads": 2, "memory_mb": 900},
             {"name": "pi-c", "node": "rpi-hall", "threads": 3, "memory_mb": 900},
             {"name": "pi-d", "threads": 2, "memory_mb": 900}],
 "links": {"default": {"bandwidth": "100mbit", "latency_ms": 1}}}
EOF
# Relative model paths in the plan: deploy finds them from the plan's directory.
(cd "$T" && "$FOGPIPE" plan --cfg models/small.cfg --weights models/small.weights --cluster cluster.json --codec none \
    --cuts 4,12 -o p.json >/dev/null 2>&1) || { echo "FAIL: cannot make a plan"; exit 1; }
"$PY" - "$T/p.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
p["stages"][1]["replicas"] = 2
p["stages"][1]["devices"] = ["pi-b", "pi-d"]
json.dump(p, open(sys.argv[1], "w"), indent=1)
EOF

# --- usage errors and bad input -------------------------------------------
run() { "$FOGPIPE" deploy "$@" >"$T/out" 2>&1; rc=$?; }
run --image fp:1 -o "$T/x"
check "no --plan: exit 2 naming it" '[ $rc = 2 ] && grep -q -- "--plan is required" "$T/out"' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" -o "$T/x"
check "no --image: exit 2 naming it" '[ $rc = 2 ] && grep -q -- "--image is required" "$T/out"' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1
check "no -o: exit 2 naming it" '[ $rc = 2 ] && grep -q -- "--output is required" "$T/out"' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1 -o "$T/x" --namespace Bad_NS
check "a namespace that is not a DNS label: exit 2" '[ $rc = 2 ] && grep -q -- "--namespace" "$T/out"' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1 -o "$T/x" --service-type Ingress
check "an unknown --service-type: exit 2" '[ $rc = 2 ] && grep -q -- "--service-type" "$T/out"' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1 -o "$T/x" --instance Fog_1
check "an --instance that is not a DNS label: exit 2" '[ $rc = 2 ] && grep -q -- "--instance" "$T/out"' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1 -o "$T/x" --bogus
check "an unknown flag: exit 2" '[ $rc = 2 ]' "rc $rc: $(cat "$T/out")"
run --plan "$T/nonexistent.json" --image fp:1 -o "$T/x"
check "a missing plan: exit 1 naming the file" '[ $rc = 1 ] && grep -q "nonexistent.json" "$T/out"' "rc $rc: $(cat "$T/out")"
echo '{"fogpipe_plan": 1, "model": ' >"$T/broken.json"
run --plan "$T/broken.json" --image fp:1 -o "$T/x"
check "a plan that is not JSON: exit 1 with a message" '[ $rc = 1 ] && grep -q "broken.json" "$T/out"' "rc $rc: $(cat "$T/out")"
sed 's/"layers": \[/"layers": [99, /' "$T/p.json" >"$T/bad-range.json"
run --plan "$T/bad-range.json" --image fp:1 -o "$T/x"
check "a plan with a malformed stage: exit 1 naming the field" '[ $rc = 1 ] && grep -q "layers" "$T/out"' \
    "rc $rc: $(cat "$T/out")"
mkdir -p "$T/other"
cp "$T/models/small.cfg" "$T/other/small.cfg"
printf 'not the weights' >"$T/other/small.weights"
run --plan "$T/p.json" --image fp:1 -o "$T/x" --model-dir "$T/other"
check "a model dir whose weights are not the plan's: exit 1" '[ $rc = 1 ] && grep -q "but the plan was made for" "$T/out"' \
    "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1 -o "$T/x" --model-dir /nonexistent/models
check "a model dir not on this machine: written, with a note" '[ $rc = 0 ] && grep -q "not a directory on this machine" "$T/out"' \
    "rc $rc: $(cat "$T/out")"
check "...and mounted as given" 'grep -q "path: /nonexistent/models" "$T/x/stage-0.yaml"' "$(grep -n path: "$T/x/stage-0.yaml")"
"$PY" -c "import json,sys; p=json.load(open(sys.argv[1])); [s.pop('weights_sha256') for s in p['stages']]; json.dump(p,open(sys.argv[2],'w'))" \
    "$T/p.json" "$T/old.json"
run --plan "$T/old.json" --image fp:1 -o "$T/x2" --model-dir "$T/models"
check "a plan without per-stage weights hashes: written, with a note, every stage mounting the weights" \
    '[ $rc = 0 ] && grep -q "no per-stage weights hashes" "$T/out" && grep -q "FOGPIPE_WEIGHTS$" "$T/x2/stage-0.yaml" && ! grep -q "FOGPIPE_WEIGHTS_FROM" "$T/x2/stage-0.yaml" && grep -q "path: $T/models" "$T/x2/stage-0.yaml"' \
    "rc $rc: $(cat "$T/out"; grep -n -A1 "FOGPIPE_WEIGHTS\|path:" "$T/x2/stage-0.yaml")"
test ! -e "$T/y"
run --plan "$T/p.json" --image fp:1 -o "$T/y/a/b" --max-replicas 40
check "--max-replicas over 32: exit 2, nothing written" '[ $rc = 2 ] && [ ! -e "$T/y" ]' "rc $rc: $(cat "$T/out")"

# --- the manifests ---------------------------------------------------------
# From another directory, the plan's relative paths resolved from the plan's own.
(cd / && "$FOGPIPE" deploy --plan "$T/p.json" --image localhost/fogpipe:0.1.0 --namespace vision -o "$T/k8s" --podman \
    --host-port 18123 --max-replicas 3) >"$T/out" 2>&1
rc=$?
check "deploy writes the manifests: exit 0" '[ $rc = 0 ] && grep -q "kubectl apply -k" "$T/out"' "rc $rc: $(cat "$T/out")"
"$PY" - "$T/k8s" "$T/p.json" "$T/models" >"$T/py.out" 2>&1 <<'EOF'
import json, math, os, re, sys
import yaml

out, plan_path, model_dir = sys.argv[1:4]
plan = json.load(open(plan_path))
stages = plan["stages"]
MiB = 1 << 20
results = []
def check(name, cond, why=""):
    results.append((name, bool(cond), why))

kust = yaml.safe_load(open(os.path.join(out, "kustomization.yaml")))
check("kustomization: Kustomization listing files that exist, namespace set",
      kust["kind"] == "Kustomization" and kust.get("namespace") == "vision"
      and all(os.path.exists(os.path.join(out, f)) for f in kust["resources"])
      and sorted(kust["resources"]) == sorted(f for f in os.listdir(out) if f.endswith(".yaml") and f != "kustomization.yaml"),
      str(kust))
docs = []
for f in kust["resources"]:
    for d in yaml.safe_load_all(open(os.path.join(out, f))):
        if d is not None:
            docs.append(d)
bad = [d for d in docs if not (isinstance(d.get("apiVersion"), str) and isinstance(d.get("kind"), str)
                               and isinstance(d.get("metadata"), dict) and d["metadata"].get("name"))]
check("every object has apiVersion, kind and metadata.name", not bad, str(bad)[:300])
check("every object but the Namespace is in namespace vision",
      all(d["metadata"].get("namespace") == "vision" for d in docs if d["kind"] != "Namespace"))
check("every object has the app.kubernetes.io labels",
      all(d["metadata"]["labels"].get("app.kubernetes.io/name") == "fogpipe"
          and d["metadata"]["labels"].get("app.kubernetes.io/instance") == "fogpipe"
          and d["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "fogpipe-deploy" for d in docs))
by = {}
for d in docs:
    by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
kinds = {k: len(v) for k, v in by.items()}
check("objects: 1 Namespace, 1 ConfigMap, 3 StatefulSets, 1 Deployment, 5 Services",
      kinds == {"Namespace": 1, "ConfigMap": 1, "StatefulSet": 3, "Deployment": 1, "Service": 5}, str(kinds))

cm = next(iter(by["ConfigMap"].values()))
check("the ConfigMap holds the plan file and the model's cfg", json.loads(cm["data"]["plan.json"]) == plan
      and cm["data"]["model.cfg"] == open(os.path.join(model_dir, "small.cfg")).read())
workloads = list(by["StatefulSet"].values()) + list(by["Deployment"].values())

def pod_labels(w): return w["spec"]["template"]["metadata"]["labels"]
def container(w): return w["spec"]["template"]["spec"]["containers"][0]
def env(w): return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(w)["env"]}
def ports(w): return {p["name"]: p["containerPort"] for p in container(w).get("ports", [])}

for w in workloads:
    n = w["metadata"]["name"]
    sel = w["spec"]["selector"]["matchLabels"]
    check(f"{n}: selector matches the pod labels", sel and all(pod_labels(w).get(k) == v for k, v in sel.items()),
          f"{sel} vs {pod_labels(w)}")
    spec = w["spec"]["template"]["spec"]
    c = container(w)
    sc = c["securityContext"]
    check(f"{n}: non-root, no privilege escalation, read-only root, no capabilities",
          spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
          and sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
          and sc["capabilities"]["drop"] == ["ALL"], str(sc))
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    check(f"{n}: the plan ConfigMap mounted read-only", vols["plan"]["configMap"]["name"] == cm["metadata"]["name"]
          and mounts["plan"]["readOnly"] is True and env(w)["FOGPIPE_PLAN"] == mounts["plan"]["mountPath"] + "/plan.json",
          f"{vols} {mounts}")
    if w["kind"] == "Deployment":
        check(f"{n}: the gateway: the model dir mounted read-only, serving the stages' weights",
              vols["models"]["hostPath"]["path"] == model_dir and mounts["models"]["readOnly"] is True
              and mounts["models"]["mountPath"] == "/models" and env(w)["FOGPIPE_CFG"] == "/models/small.cfg"
              and env(w)["FOGPIPE_WEIGHTS"] == "/models/small.weights" and env(w)["FOGPIPE_SERVE_WEIGHTS"] == "1",
              f"{vols} {mounts} {env(w)}")
    else:
        check(f"{n}: a stage: no model dir, the cfg from the ConfigMap, the weights from the gateway",
              "models" not in vols and "models" not in mounts and env(w)["FOGPIPE_CFG"] == "/etc/fogpipe/model.cfg"
              and "FOGPIPE_WEIGHTS" not in env(w)
              and env(w)["FOGPIPE_WEIGHTS_FROM"] == f"http://fogpipe-gateway:8080/v1/weights/{env(w)['FOGPIPE_STAGE']}",
              f"{vols} {mounts} {env(w)}")
    r = c["resources"]
    check(f"{n}: CPU and memory requests and limits", all(k in r["requests"] and k in r["limits"] for k in ("cpu", "memory")), str(r))
    check(f"{n}: image and args", c["image"] == "localhost/fogpipe:0.1.0" and c["args"][0] in ("stage", "gateway"))

def cpu_m(q): return int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)
def mem_mi(q): assert q.endswith("Mi"); return int(q[:-2])

# Services: selectors match exactly one workload's pods; ports match its containers.
for s in by["Service"].values():
    n = s["metadata"]["name"]
    sel = s["spec"]["selector"]
    targets = [w for w in workloads if all(pod_labels(w).get(k) == v for k, v in sel.items())]
    check(f"Service {n}: selects the pods of exactly one workload", len(targets) == 1, str(sel))
    if len(targets) == 1:
        cp = ports(targets[0])
        check(f"Service {n}: every port's targetPort is a container port of the same number",
              all(p["targetPort"] in cp and cp[p["targetPort"]] == p["port"] for p in s["spec"]["ports"]),
              f"{s['spec']['ports']} vs {cp}")

nodes = {"pi-a": "rpi-kitchen", "pi-b": "0", "pi-c": "rpi-hall", "pi-d": "pi-d"}
for k, st in enumerate(stages):
    name = f"fogpipe-stage-{k}"
    w = by["StatefulSet"].get(name)
    check(f"stage {k}: a StatefulSet {name}", w is not None)
    if w is None:
        continue
    spec = w["spec"]["template"]["spec"]
    svc = by["Service"].get(w["spec"]["serviceName"])
    check(f"stage {k}: replicas from the plan ({st['replicas']}), headless Service {name} publishing not-ready pods",
          w["spec"]["replicas"] == st["replicas"] and svc is not None and svc["spec"]["clusterIP"] == "None"
          and svc["spec"]["publishNotReadyAddresses"] is True)
    want = sorted({nodes[d] for d in st["devices"]})
    if len(want) == 1:
        check(f"stage {k}: nodeSelector device={want[0]!r} (the plan's node)", spec.get("nodeSelector") == {"device": want[0]},
              str(spec.get("nodeSelector")))
    else:
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        ex = terms[0]["matchExpressions"][0]
        check(f"stage {k}: node affinity device in {want} (the plan's nodes), replicas spread over hosts",
              ex["key"] == "device" and ex["operator"] == "In" and sorted(ex["values"]) == want
              and "nodeSelector" not in spec and spec["affinity"]["podAntiAffinity"], str(spec.get("affinity"))[:300])
    c = container(w)
    e = env(w)
    p = ports(w)
    check(f"stage {k}: probes: startup and liveness /healthz, readiness /readyz on the http port",
          c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
          and c["startupProbe"]["httpGet"]["path"] == "/healthz"
          and c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"} and "http" in p, str(c.get("readinessProbe")))
    check(f"stage {k}: FOGPIPE_STAGE, _BIND and _HTTP agree with the container ports",
          e["FOGPIPE_STAGE"] == str(k) and e["FOGPIPE_BIND"] == f"tcp://0.0.0.0:{p['data']}"
          and e["FOGPIPE_HTTP"] == f"0.0.0.0:{p['http']}"
          and e["FOGPIPE_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}, str(e))
    if k + 1 < len(stages):
        nxt = by["StatefulSet"][f"fogpipe-stage-{k+1}"]
        port = ports(nxt)["data"]
        n_listed = max(3, stages[k + 1]["replicas"])  # --max-replicas 3
        want_next = ",".join(f"tcp://fogpipe-stage-{k+1}-{i}.fogpipe-stage-{k+1}:{port}" for i in range(n_listed))
    else:
        gw = by["Deployment"]["fogpipe-gateway"]
        want_next = f"tcp://fogpipe-results:{ports(gw)['results']}"
    check(f"stage {k}: FOGPIPE_NEXT lists the next hop's per-pod names", e["FOGPIPE_NEXT"] == want_next,
          f"{e['FOGPIPE_NEXT']} != {want_next}")
    thr = st["threads"] or 1
    busy = min(1, st["compute_ms"] / plan["predicted"]["bottleneck_ms"])
    r = c["resources"]
    check(f"stage {k}: resources from the plan (memory {st['memory_bytes']} B, {thr} threads, busy {busy:.2f})",
          mem_mi(r["requests"]["memory"]) == math.ceil(st["memory_bytes"] / MiB)
          and mem_mi(r["limits"]["memory"]) > mem_mi(r["requests"]["memory"])
          and cpu_m(r["limits"]["cpu"]) == 1000 * thr and e["FOGPIPE_THREADS"] == str(thr)
          and abs(cpu_m(r["requests"]["cpu"]) - max(100, math.ceil(thr * 1000 * busy))) <= 1, str(r))

gw = by["Deployment"]["fogpipe-gateway"]
e = env(gw)
check("gateway: one replica, Recreate, FOGPIPE_FIRST lists stage 0's pods, results and HTTP ports agree",
      gw["spec"]["replicas"] == 1 and gw["spec"]["strategy"]["type"] == "Recreate"
      and e["FOGPIPE_FIRST"] == ",".join(f"tcp://fogpipe-stage-0-{i}.fogpipe-stage-0:5601" for i in range(3))
      and e["FOGPIPE_RESULTS"] == f"tcp://0.0.0.0:{ports(gw)['results']}" and e["FOGPIPE_HTTP"] == f"0.0.0.0:{ports(gw)['http']}",
      str(e))
check("gateway: FOGPIPE_STAGE_HTTP lists every replica's HTTP server",
      e["FOGPIPE_STAGE_HTTP"].split(",") == [f"fogpipe-stage-{k}-{i}.fogpipe-stage-{k}:{9601+k}"
                                             for k, st in enumerate(stages) for i in range(st["replicas"])], e["FOGPIPE_STAGE_HTTP"])
check("gateway: probes on /healthz", container(gw)["livenessProbe"]["httpGet"]["path"] == "/healthz"
      and container(gw)["readinessProbe"]["httpGet"]["path"] == "/healthz")
check("gateway: headless Service fogpipe-results for the last stage",
      by["Service"]["fogpipe-results"]["spec"].get("clusterIP") == "None")
check("gateway: Service fogpipe-gateway exposes the HTTP API",
      by["Service"]["fogpipe-gateway"]["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])

# The podman variant.
pd = [d for d in yaml.safe_load_all(open(os.path.join(out, "podman", "kube.yaml"))) if d]
pods = [d for d in pd if d["kind"] == "Pod"]
want_pods = sorted([f"fogpipe-stage-{k}-{i}" for k, st in enumerate(stages) for i in range(st["replicas"])] + ["fogpipe-gateway"])
check("podman: a ConfigMap and one Pod per replica named as the StatefulSet names them, plus the gateway",
      sorted(d["kind"] for d in pd) == ["ConfigMap"] + ["Pod"] * len(want_pods)
      and sorted(p["metadata"]["name"] for p in pods) == want_pods, str([d["metadata"]["name"] for d in pd]))
cs = [p["spec"]["containers"][0] for p in pods]
check("podman: no probes, no node selection, no namespace, restartPolicy Always",
      not any(k in c for c in cs for k in ("livenessProbe", "readinessProbe", "startupProbe"))
      and not any(k in p["spec"] for p in pods for k in ("nodeSelector", "affinity"))
      and not any("namespace" in d["metadata"] for d in pd) and all(p["spec"]["restartPolicy"] == "Always" for p in pods))
addrs = ",".join(e.get("value", "") for c in cs for e in c["env"] if e["name"] in ("FOGPIPE_NEXT", "FOGPIPE_FIRST", "FOGPIPE_STAGE_HTTP"))
check("podman: addresses are pod names (no Service names)",
      "." not in re.sub(r"tcp://|:\d+|0\.0\.0\.0", "", addrs) and "fogpipe-results" not in addrs
      and "tcp://fogpipe-gateway:5600" in addrs, addrs)
gwp = next(p for p in pods if p["metadata"]["name"] == "fogpipe-gateway")["spec"]["containers"][0]
check("podman: only the gateway's API is published, on 127.0.0.1:--host-port",
      gwp["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP", "hostPort": 18123, "hostIP": "127.0.0.1"}]
      and all("ports" not in c for c in cs if c is not gwp), str(gwp.get("ports")))
check("podman: FOGPIPE_NAME is the pod's name",
      all({e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}.get("FOGPIPE_NAME") == p["metadata"]["name"]
          for p in pods if p["metadata"]["name"] != "fogpipe-gateway"))

for name, good, why in results:
    print(("ok   " if good else "FAIL ") + name + ("" if good else ": " + why))
EOF
prc=$?
while IFS= read -r line; do
    case $line in
    "ok   "*) ok "${line#ok   }" ;;
    "FAIL "*) bad "${line#FAIL }" "" ;;
    *) echo "$line" ;;
    esac
done <"$T/py.out"
check "the python checks ran to the end" '[ $prc = 0 ]' "python exited $prc"

# The podman variant without --max-replicas, and without a namespace.
"$FOGPIPE" deploy --plan "$T/p.json" --image fp:1 -o "$T/k8s2" >/dev/null 2>&1
check "without --namespace: no namespace.yaml, no namespace set" \
    '[ ! -e "$T/k8s2/namespace.yaml" ] && ! grep -q "namespace:" "$T/k8s2"/*.yaml && [ ! -e "$T/k8s2/podman" ]'
check "without --max-replicas: stage 0 lists stage 1's 2 replicas" \
    'grep -q "value: \"tcp://fogpipe-stage-1-0.fogpipe-stage-1:5602,tcp://fogpipe-stage-1-1.fogpipe-stage-1:5602\"" "$T/k8s2/stage-0.yaml"' \
    "$(grep -A1 FOGPIPE_NEXT "$T/k8s2/stage-0.yaml")"

"$FOGPIPE" deploy --plan "$T/p.json" --image fp:1 -o "$T/k8s4" --instance blue >/dev/null 2>&1
check "--instance blue: every object and address is blue-*" \
    'grep -q "^  name: blue-stage-1$" "$T/k8s4/stage-1.yaml" && grep -q "tcp://blue-stage-2-0.blue-stage-2:5603" "$T/k8s4/stage-1.yaml" &&
     grep -q "tcp://blue-results:5600" "$T/k8s4/stage-2.yaml" && ! grep -q "fogpipe-stage" "$T/k8s4"/*.yaml' \
    "$(grep -n "name: \|tcp://" "$T/k8s4/stage-1.yaml" | head -5)"

# --curve-key: a Secret (mode 0600) every pod mounts, FOGPIPE_CURVE_KEY set,
# the public key as a pod annotation (a new key rolls the pods); the podman
# variant mounts podman/curve.key from the host instead.
"$FOGPIPE" keys -o "$T/curve.key" >/dev/null 2>&1
echo "secret-key = \"short\"" >"$T/bad.key"
run --plan "$T/p.json" --image fp:1 -o "$T/k8s6" --curve-key "$T/bad.key"
check "--curve-key with a broken key file: exit 2 naming it, nothing written" \
    '[ $rc = 2 ] && grep -q "bad.key" "$T/out" && [ ! -e "$T/k8s6" ]' "rc $rc: $(cat "$T/out")"
run --plan "$T/p.json" --image fp:1 -o "$T/k8s5" --curve-key "$T/curve.key" --podman
check "--curve-key: exit 0" '[ $rc = 0 ]' "rc $rc: $(cat "$T/out")"
check "secret.yaml and podman/curve.key are private (0600, 0400)" \
    '[ "$(stat -c %a "$T/k8s5/secret.yaml")" = 600 ] && [ "$(stat -c %a "$T/k8s5/podman/curve.key")" = 400 ]' \
    "$(stat -c '%a %n' "$T/k8s5/secret.yaml" "$T/k8s5/podman/curve.key" 2>&1)"
"$PY" - "$T/k8s5" "$T/curve.key" >"$T/py5.out" 2>&1 <<'EOF'
import base64, os, sys, yaml
out, key = sys.argv[1:3]
text = open(key).read()
pub = [l.split('"')[1] for l in text.splitlines() if l.startswith("public-key")][0]
docs = [d for f in sorted(os.listdir(out)) if f.endswith(".yaml") and f != "kustomization.yaml"
        for d in yaml.safe_load_all(open(os.path.join(out, f))) if d]
def say(name, cond, why=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(why)[:300]))
kust = yaml.safe_load(open(os.path.join(out, "kustomization.yaml")))
say("curve: the kustomization lists secret.yaml", "secret.yaml" in kust["resources"], kust["resources"])
sec = [d for d in docs if d["kind"] == "Secret"]
say("curve: one Secret fogpipe-curve holding the key file",
    len(sec) == 1 and sec[0]["metadata"]["name"] == "fogpipe-curve"
    and base64.b64decode(sec[0]["data"]["curve.key"]).decode() == text, sec)
pods = [d["spec"]["template"] for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
bad = []
for t in pods:
    s, c = t["spec"], t["spec"]["containers"][0]
    vol = {v["name"]: v for v in s["volumes"]}.get("curve", {})
    mnt = {m["name"]: m for m in c["volumeMounts"]}.get("curve", {})
    env = {e["name"]: e.get("value") for e in c["env"]}
    if not (vol.get("secret", {}).get("secretName") == "fogpipe-curve" and vol["secret"].get("defaultMode") == 0o440
            and s["securityContext"].get("fsGroup") == 65532 and mnt.get("mountPath") == "/etc/fogpipe-keys"
            and mnt.get("readOnly") and env.get("FOGPIPE_CURVE_KEY") == "/etc/fogpipe-keys/curve.key"
            and t["metadata"]["annotations"].get("fogpipe.dev/curve-public-key") == pub):
        bad.append(t["metadata"])
say(f"curve: all {len(pods)} workloads mount the Secret (fsGroup, 0440), set FOGPIPE_CURVE_KEY, carry the public key",
    len(pods) == 4 and not bad, bad)
pdocs = [d for d in yaml.safe_load_all(open(os.path.join(out, "podman", "kube.yaml"))) if d]
pd = [d for d in pdocs if d["kind"] == "Pod"]
hp = os.path.realpath(os.path.join(out, "podman", "curve.key"))
bad = [p["metadata"]["name"] for p in pd
       if {v["name"]: v for v in p["spec"]["volumes"]}.get("curve", {}).get("hostPath", {}).get("path") != hp
       or {e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}.get("FOGPIPE_CURVE_KEY")
          != "/etc/fogpipe-keys/curve.key"]
say("curve: podman pods mount podman/curve.key from the host, no Secret",
    pd and not bad and not any(d["kind"] == "Secret" for d in pdocs), bad)
EOF
while IFS= read -r line; do
    case $line in
    "ok   "*) ok "${line#ok   }" ;;
    "FAIL "*) bad "${line#FAIL }" "" ;;
    *) bad "curve checks" "$line" ;;
    esac
done <"$T/py5.out"

# A new plan: a new ConfigMap name and new pod annotations, so `kubectl apply` rolls the pods.
"$PY" -c 'import json,sys; p=json.load(open(sys.argv[1])); p["stages"][0]["threads"]=1; json.dump(p,open(sys.argv[2],"w"))' \
    "$T/p.json" "$T/p2.json"
"$FOGPIPE" deploy --plan "$T/p2.json" --image fp:1 -o "$T/k8s3" >/dev/null 2>&1
cm1=$(sed -n 's/^  name: //p' "$T/k8s2/plan.yaml")
cm2=$(sed -n 's/^  name: //p' "$T/k8s3/plan.yaml")
check "another plan gets another ConfigMap, referenced by the pods" \
    '[ -n "$cm1" ] && [ "$cm1" != "$cm2" ] && grep -q "name: $cm2" "$T/k8s3/stage-2.yaml" && ! cmp -s "$T/k8s2/stage-2.yaml" "$T/k8s3/stage-2.yaml"' \
    "$cm1 $cm2"

if command -v kubectl >/dev/null; then
    if kubectl kustomize "$T/k8s" >"$T/kust.yaml" 2>"$T/kust.err"; then
        n=$(grep -c '^kind:' "$T/kust.yaml")
        check "kubectl kustomize builds the directory (11 objects)" '[ "$n" = 11 ]' "$n objects"
    else
        bad "kubectl kustomize builds the directory" "$(head -5 "$T/kust.err")"
    fi
else
    echo "note: kubectl is not installed; kustomization not built"
fi

# Schema check with the kubernetes-models npm package (types, required
# fields, enums of the Kubernetes OpenAPI schemas) where it is installed:
# npm install --prefix data/node kubernetes-models@5 js-yaml@4
KM=${FP_K8S_MODELS:-$FP_SRC/data/node}
if command -v node >/dev/null && [ -d "$KM/node_modules/kubernetes-models" ] && [ -d "$KM/node_modules/js-yaml" ]; then
    NODE_PATH=$KM/node_modules node - "$T/k8s"/*.yaml "$T/k8s5"/*.yaml >"$T/km.out" 2>&1 <<'EOF'
const fs = require('fs'), yaml = require('js-yaml');
let bad = 0, n = 0;
for (const f of process.argv.slice(2)) for (const d of yaml.loadAll(fs.readFileSync(f, 'utf8'))) {
  if (!d || d.kind === 'Kustomization') continue;
  const [g, v] = d.apiVersion.includes('/') ? d.apiVersion.split('/') : ['', d.apiVersion];
  try { new (require(`kubernetes-models/${g ? g + '/' : ''}${v}/${d.kind}`)[d.kind])(d).validate(); n++; }
  catch (e) { bad++; console.log(`${f}: ${d.kind} ${d.metadata && d.metadata.name}: ${e.message.slice(0, 300)}`); }
}
console.log(`${n} valid`);
process.exit(bad ? 1 : 0);
EOF
    krc=$?
    check "every object validates against the Kubernetes schemas (kubernetes-models)" '[ $krc = 0 ]' "$(cat "$T/km.out")"
else
    echo "note: kubernetes-models (npm) is not installed in $KM; schema check not run"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
