/* cmd_deploy.c — `fogpipe deploy`: Kubernetes manifests for a plan (plain
 * YAML + kustomization.yaml), and with --podman the variant that
 * `podman kube play` runs on one machine. docs/deploy.md explains the
 * choices; this file only writes what it says.
 *
 * What is written (NAME = --instance, default "fogpipe"; K = stage index):
 *   plan.yaml          ConfigMap NAME-plan-<hash>: the plan file, key plan.json, and
 *                      the model's cfg (model.cfg) or TF.js manifest
 *                      (model-manifest.json) where it is readable here
 *   stage-K.yaml       StatefulSet NAME-stage-K (replicas from the plan) and a
 *                      headless Service NAME-stage-K: replica i is reachable as
 *                      NAME-stage-K-i.NAME-stage-K, which the upstream's --next
 *                      lists one by one (ZeroMQ deals frames over them)
 *   gateway.yaml       Deployment NAME-gateway, Service NAME-gateway (its HTTP
 *                      API) and headless Service NAME-results (where the last
 *                      stage sends)
 *   secret.yaml        with --curve-key: Secret NAME-curve holding the key file
 *                      (mode 0600), mounted by every pod at /etc/fogpipe-keys
 *   namespace.yaml     with --namespace
 *   kustomization.yaml the list of the above (kubectl apply -k DIR)
 *   podman/kube.yaml   with --podman: the podman overlay (see fpd_podman_note)
 *   podman/curve.key   with --podman and --curve-key: the key, mounted from
 *                      the host (podman 4.3's kube play cannot mount Secrets)
 *
 * Objects are built as cJSON trees and printed as block YAML by a small
 * emitter (fpd_yaml_*) that quotes every string YAML could read as anything
 * but a string. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "fogpipe/partition.h"
#include "pipeline/curve.h"
#include "pipeline/pipeline.h"

static fp_flag fp_deploy_flags[] = {
    {"plan", 'p', "PATH", "plan file (fogpipe plan -o)", NULL},
    {"image", 'i', "IMAGE", "the fogpipe image (make image), e.g. localhost/fogpipe:0.1.0", NULL},
    {"output", 'o', "DIR", "directory to write the manifests into (created if missing)", NULL},
    {"namespace", 'N', "NS", "namespace for every object (also writes namespace.yaml); default: none set", NULL},
    {"instance", 0, "NAME", "instance name, the prefix of every object (default fogpipe)", NULL},
    {"model-dir", 'm', "DIR", "directory holding the plan's cfg and weights under their file names on the gateway's "
                              "node (on every node for a plan without per-stage weights hashes), mounted read-only at "
                              "/models (default: the directory of the plan's cfg)", NULL},
    {"max-replicas", 0, "N", "per-replica addresses listed for each stage (default: its replicas in the plan); "
                             "more lets `kubectl scale` add replicas up to N without touching the upstream", NULL},
    {"service-type", 0, "TYPE", "the gateway Service: ClusterIP (default), NodePort or LoadBalancer", NULL},
    {"gateway-node", 0, "LABEL", "pin the gateway to nodes labelled device=LABEL (default: anywhere)", NULL},
    {"podman", 0, NULL, "also write podman/kube.yaml for `podman kube play` on one machine", NULL},
    {"host-port", 0, "PORT", "with --podman: host port of the gateway API on 127.0.0.1 (default 8080)", NULL},
    {"curve-key", 0, "PATH", "encrypt and authenticate the links with this CURVE key file (fogpipe keys): written "
                             "into a Secret every pod mounts (docs/security.md)", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static fp_command fp_deploy_cmd = {
    "deploy", "--plan PATH --image IMAGE -o DIR [--namespace NS] [--model-dir DIR] [--max-replicas N] [--podman]",
    "Writes Kubernetes manifests that run a plan: a ConfigMap with the plan, per\n"
    "stage a StatefulSet (replicas, node, CPU and memory from the plan) and a\n"
    "headless Service, the gateway's Deployment and Services, and\n"
    "kustomization.yaml. Apply with `kubectl apply -k DIR`. Model files are not\n"
    "in the image: the cfg (or TF.js manifest) goes into the ConfigMap, and with\n"
    "the per-stage weights hashes `fogpipe plan` records, each stage fetches\n"
    "only its own layers' weights from the gateway (--weights-from), so only\n"
    "the gateway's node needs the model in --model-dir (docs/deploy.md).",
    "Pods run as user 65532 with a read-only root, no privilege escalation and\n"
    "no capabilities; stages are probed on /healthz (liveness, startup) and\n"
    "/readyz (readiness). Stage K listens on 5601+K (frames) and 9601+K (HTTP);\n"
    "the gateway on 8080 (API) and 5600 (results). Nodes are chosen by the\n"
    "label device=<the plan's node of the stage's device>. --podman adds\n"
    "podman/kube.yaml: one Pod per replica named as the StatefulSet would, pod\n"
    "names instead of Service names, no probes or node selection, the API on\n"
    "127.0.0.1:--host-port (deploy/podman-up runs it). With --curve-key the key\n"
    "goes into secret.yaml (mode 0600: it holds the secret key) and every pod\n"
    "gets FOGPIPE_CURVE_KEY; the podman variant mounts podman/curve.key instead.",
    fp_deploy_flags, 0, 0};

enum { FPD_RESULTS_PORT = 5600, FPD_HTTP_PORT = 8080, FPD_UID = 65532 };
/* Room for an address list: FPP_MAX_PEERS endpoints (a plan has at most
 * FP_PART_MAX_DEVICES replicas in all). */
enum { FPD_LIST_MAX = FPP_MAX_PEERS * FPP_MAX_ENDPOINT };

typedef struct fpd_ctx {
    const fp_plan *plan;
    const char *plan_text;  /* the plan file's bytes */
    const char *image;
    const char *ns;         /* NULL = none */
    const char *name;
    const char *model_dir;  /* absolute */
    const char *cfg_base;   /* file names inside /models */
    const char *weights_base; /* NULL = random weights */
    const char *cfg_text;   /* the cfg/manifest, in the ConfigMap as cfg_key; NULL: not readable here */
    const char *cfg_key;    /* "model.cfg" or "model-manifest.json" */
    int stage_weights;      /* stages fetch their own weights from the gateway (--weights-from) */
    uint64_t weights_bytes; /* the weights file's size, where it is here (the gateway's memory) */
    const char *service_type;
    const char *gateway_node;
    char plan_hash[32];     /* fnv1a64:... of the plan text */
    char cm_name[128];      /* the ConfigMap's name */
    int max_replicas;       /* 0 = the plan's per stage */
    const char *curve_text; /* the key file's bytes, NULL = no CURVE */
    const char *curve_public; /* its public key (an annotation: a new key rolls the pods) */
    char curve_host[PATH_MAX]; /* podman: the key file on the host */
    int host_port;
    int podman;             /* building the podman variant */
    int oom;                /* a cJSON allocation failed */
} fpd_ctx;

/* ------------------------------------------------------------------ YAML */

/* 1 if YAML reads `s` as a plain string: letters, digits and ._/- only, not
 * starting with a digit unless it is digits then letters (128Mi, 500m), and
 * not a YAML 1.1 boolean or null. */
static int fpd_yaml_plain(const char *s)
{
    static const char *const reserved[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", NULL};
    if (!s[0]) return 0;
    for (int i = 0; reserved[i]; i++)
        if (!strcasecmp(s, reserved[i])) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '/' || *p == '-'))
            return 0;
    if (s[0] == '-' || s[0] == '.') return 0;
    if (s[0] >= '0' && s[0] <= '9') {
        const char *p = s;
        while (*p >= '0' && *p <= '9') p++;
        if (!*p) return 0;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) p++;
        return !*p;
    }
    return 1;
}

/* A JSON string literal is a valid YAML double-quoted scalar. */
static void fpd_yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void fpd_yaml_string(FILE *f, const char *s)
{
    if (fpd_yaml_plain(s)) fputs(s, f);
    else fpd_yaml_quoted(f, s);
}

/* Multi-line text as a literal block (|) when YAML keeps it exactly: no
 * carriage returns or other control characters but tabs, and a first line
 * that does not start with a space. Trailing newlines become one. */
static int fpd_yaml_literal_ok(const char *s)
{
    if (!strchr(s, '\n') || s[0] == ' ' || s[0] == '\n') return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) return 0;
    return 1;
}

static void fpd_yaml_block(FILE *f, const char *s, int indent)
{
    fputs(" |\n", f);
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n') n--;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && s[e] != '\n') e++;
        if (e > i) fprintf(f, "%*s%.*s", indent, "", (int)(e - i), s + i);
        fputc('\n', f);
        i = e + 1;
    }
}

static void fpd_yaml_scalar(FILE *f, const cJSON *it)
{
    if (cJSON_IsString(it)) fpd_yaml_string(f, it->valuestring);
    else if (cJSON_IsBool(it)) fputs(cJSON_IsTrue(it) ? "true" : "false", f);
    else if (cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble) && fabs(it->valuedouble) < 1e15)
        fprintf(f, "%.0f", it->valuedouble);
    else if (cJSON_IsNumber(it)) fprintf(f, "%.17g", it->valuedouble);
    else fputs("null", f);
}

static void fpd_yaml_seq(FILE *f, const cJSON *arr, int indent);

/* A mapping at `indent`; with `inline_first` its first key follows a "- "
 * already printed. */
static void fpd_yaml_map(FILE *f, const cJSON *obj, int indent, int inline_first)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        if (!(inline_first && it == obj->child)) fprintf(f, "%*s", indent, "");
        fpd_yaml_string(f, it->string);
        fputc(':', f);
        if (cJSON_IsObject(it) && it->child) {
            fputc('\n', f);
            fpd_yaml_map(f, it, indent + 2, 0);
        } else if (cJSON_IsObject(it)) {
            fputs(" {}\n", f);
        } else if (cJSON_IsArray(it) && it->child) {
            fputc('\n', f);
            fpd_yaml_seq(f, it, indent + 2);
        } else if (cJSON_IsArray(it)) {
            fputs(" []\n", f);
        } else if (cJSON_IsString(it) && fpd_yaml_literal_ok(it->valuestring)) {
            fpd_yaml_block(f, it->valuestring, indent + 2);
        } else {
            fputc(' ', f);
            fpd_yaml_scalar(f, it);
            fputc('\n', f);
        }
    }
}

static void fpd_yaml_seq(FILE *f, const cJSON *arr, int indent)
{
    for (const cJSON *it = arr->child; it; it = it->next) {
        fprintf(f, "%*s-", indent, "");
        if (cJSON_IsObject(it) && it->child) {
            fputc(' ', f);
            fpd_yaml_map(f, it, indent + 2, 1);
        } else if (cJSON_IsArray(it) && it->child) {
            fputc('\n', f);
            fpd_yaml_seq(f, it, indent + 2);
        } else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
            fputs(cJSON_IsObject(it) ? " {}\n" : " []\n", f);
        } else {
            fputc(' ', f);
            fpd_yaml_scalar(f, it);
            fputc('\n', f);
        }
    }
}

/* Writes the documents of `docs` (an array of objects), separated by "---",
 * to dir/file. 0 or FP_EXIT_FAIL (printed). */
/* Writes docs to dir/file with permissions `mode` (also when it exists). */
static int fpd_write_mode(const char *dir, const char *file, const char *comment, const cJSON *docs, mode_t mode)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path) {
        fprintf(stderr, "fogpipe deploy: %s/%s: path too long\n", dir, file);
        return FP_EXIT_FAIL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    FILE *f = fd >= 0 && fchmod(fd, mode) == 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        fprintf(stderr, "fogpipe deploy: %s: cannot write: %s\n", path, strerror(errno));
        return FP_EXIT_FAIL;
    }
    fprintf(f, "# %s\n# Written by `fogpipe deploy`; edit the plan and run it again rather than editing this.\n",
            comment);
    for (const cJSON *d = docs->child; d; d = d->next) {
        if (d != docs->child) fputs("---\n", f);
        fpd_yaml_map(f, d, 0, 0);
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "fogpipe deploy: %s: write failed: %s\n", path, strerror(errno));
        return FP_EXIT_FAIL;
    }
    return 0;
}

static int fpd_write(const char *dir, const char *file, const char *comment, const cJSON *docs)
{
    return fpd_write_mode(dir, file, comment, docs, 0644);
}

/* --------------------------------------------------------- object builders */

/* cJSON helpers that remember an allocation failure in c->oom (cJSON's own
 * functions accept NULL parents, so a failure only has to be noticed once). */
static cJSON *fpd_check(fpd_ctx *c, cJSON *it)
{
    if (!it) c->oom = 1;
    return it;
}
static cJSON *fpd_obj(fpd_ctx *c, cJSON *parent, const char *key)
{
    return fpd_check(c, cJSON_AddObjectToObject(parent, key));
}
static cJSON *fpd_arr(fpd_ctx *c, cJSON *parent, const char *key)
{
    return fpd_check(c, cJSON_AddArrayToObject(parent, key));
}
static void fpd_str(fpd_ctx *c, cJSON *parent, const char *key, const char *v)
{
    fpd_check(c, cJSON_AddStringToObject(parent, key, v));
}
static void fpd_num(fpd_ctx *c, cJSON *parent, const char *key, double v)
{
    fpd_check(c, cJSON_AddNumberToObject(parent, key, v));
}
static void fpd_bool(fpd_ctx *c, cJSON *parent, const char *key, int v)
{
    fpd_check(c, cJSON_AddBoolToObject(parent, key, v));
}
static cJSON *fpd_item(fpd_ctx *c, cJSON *arr)
{
    cJSON *o = fpd_check(c, cJSON_CreateObject());
    if (o && !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        c->oom = 1;
        return NULL;
    }
    return o;
}
static void fpd_push_str(fpd_ctx *c, cJSON *arr, const char *v)
{
    cJSON *s = fpd_check(c, cJSON_CreateString(v));
    if (s && !cJSON_AddItemToArray(arr, s)) {
        cJSON_Delete(s);
        c->oom = 1;
    }
}

/* apiVersion, kind, metadata (name, namespace, labels) of a new document in
 * `docs`; returns the document. `component` NULL: the instance labels only. */
static cJSON *fpd_doc(fpd_ctx *c, cJSON *docs, const char *api, const char *kind, const char *name,
                      const char *component, cJSON **metadata)
{
    cJSON *d = fpd_item(c, docs);
    fpd_str(c, d, "apiVersion", api);
    fpd_str(c, d, "kind", kind);
    cJSON *m = fpd_obj(c, d, "metadata");
    fpd_str(c, m, "name", name);
    if (c->ns && !c->podman && strcmp(kind, "Namespace")) fpd_str(c, m, "namespace", c->ns);
    cJSON *l = fpd_obj(c, m, "labels");
    fpd_str(c, l, "app.kubernetes.io/name", "fogpipe");
    fpd_str(c, l, "app.kubernetes.io/instance", c->name);
    if (component) fpd_str(c, l, "app.kubernetes.io/component", component);
    fpd_str(c, l, "app.kubernetes.io/part-of", "fogpipe");
    fpd_str(c, l, "app.kubernetes.io/managed-by", "fogpipe-deploy");
    if (metadata) *metadata = m;
    return d;
}

/* The labels that select a component's pods (a subset of its pod labels). */
static void fpd_selector_labels(fpd_ctx *c, cJSON *o, const char *component)
{
    fpd_str(c, o, "app.kubernetes.io/name", "fogpipe");
    fpd_str(c, o, "app.kubernetes.io/instance", c->name);
    fpd_str(c, o, "app.kubernetes.io/component", component);
}

static void fpd_env(fpd_ctx *c, cJSON *env, const char *name, const char *value)
{
    cJSON *e = fpd_item(c, env);
    fpd_str(c, e, "name", name);
    fpd_str(c, e, "value", value);
}

static void fpd_port(fpd_ctx *c, cJSON *ports, const char *name, int port, int host_port)
{
    cJSON *p = fpd_item(c, ports);
    fpd_str(c, p, "name", name);
    fpd_num(c, p, "containerPort", port);
    fpd_str(c, p, "protocol", "TCP");
    if (host_port) {
        fpd_num(c, p, "hostPort", host_port);
        fpd_str(c, p, "hostIP", "127.0.0.1");
    }
}

static void fpd_probe(fpd_ctx *c, cJSON *container, const char *key, const char *path, int period, int failures)
{
    cJSON *p = fpd_obj(c, container, key);
    cJSON *g = fpd_obj(c, p, "httpGet");
    fpd_str(c, g, "path", path);
    fpd_str(c, g, "port", "http");
    fpd_num(c, p, "periodSeconds", period);
    fpd_num(c, p, "timeoutSeconds", 2);
    fpd_num(c, p, "failureThreshold", failures);
}

/* Millicores as a quantity: "250m", or whole cores "2". */
static void fpd_cpu(char *buf, size_t n, long milli)
{
    if (milli % 1000 == 0) snprintf(buf, n, "%ld", milli / 1000);
    else snprintf(buf, n, "%ldm", milli);
}

/* The resources block: requests and limits. */
static void fpd_resources(fpd_ctx *c, cJSON *container, long cpu_req_m, long cpu_lim_m, uint64_t mem_req,
                          uint64_t mem_lim)
{
    char q[32];
    cJSON *r = fpd_obj(c, container, "resources");
    cJSON *req = fpd_obj(c, r, "requests"), *lim = fpd_obj(c, r, "limits");
    fpd_cpu(q, sizeof q, cpu_req_m);
    fpd_str(c, req, "cpu", q);
    snprintf(q, sizeof q, "%lluMi", (unsigned long long)((mem_req + (1u << 20) - 1) >> 20));
    fpd_str(c, req, "memory", q);
    fpd_cpu(q, sizeof q, cpu_lim_m);
    fpd_str(c, lim, "cpu", q);
    snprintf(q, sizeof q, "%lluMi", (unsigned long long)((mem_lim + (1u << 20) - 1) >> 20));
    fpd_str(c, lim, "memory", q);
}

/* The pod-level parts every fogpipe pod shares: security, the plan and model
 * volumes, no service links or API token. Returns the containers array. */
static cJSON *fpd_pod_spec(fpd_ctx *c, cJSON *spec, int models)
{
    fpd_bool(c, spec, "automountServiceAccountToken", 0);
    fpd_bool(c, spec, "enableServiceLinks", 0);
    cJSON *sc = fpd_obj(c, spec, "securityContext");
    fpd_bool(c, sc, "runAsNonRoot", 1);
    fpd_num(c, sc, "runAsUser", FPD_UID);
    fpd_num(c, sc, "runAsGroup", FPD_UID);
    if (c->curve_text && !c->podman) fpd_num(c, sc, "fsGroup", FPD_UID); /* the Secret's files: group-readable */
    if (!c->podman) {
        cJSON *sp = fpd_obj(c, sc, "seccompProfile");
        fpd_str(c, sp, "type", "RuntimeDefault");
    }
    if (c->podman) fpd_str(c, spec, "restartPolicy", "Always");
    cJSON *vols = fpd_arr(c, spec, "volumes");
    cJSON *v = fpd_item(c, vols);
    fpd_str(c, v, "name", "plan");
    cJSON *cm = fpd_obj(c, v, "configMap");
    fpd_str(c, cm, "name", c->cm_name);
    cJSON *hp;
    if (models) {
        v = fpd_item(c, vols);
        fpd_str(c, v, "name", "models");
        hp = fpd_obj(c, v, "hostPath");
        fpd_str(c, hp, "path", c->model_dir);
        fpd_str(c, hp, "type", "Directory");
    }
    if (c->curve_text) {
        v = fpd_item(c, vols);
        fpd_str(c, v, "name", "curve");
        if (c->podman) {
            hp = fpd_obj(c, v, "hostPath");
            fpd_str(c, hp, "path", c->curve_host);
            fpd_str(c, hp, "type", "File");
        } else {
            char secret[160];
            snprintf(secret, sizeof secret, "%s-curve", c->name);
            cJSON *sv = fpd_obj(c, v, "secret");
            fpd_str(c, sv, "secretName", secret);
            fpd_num(c, sv, "defaultMode", 0440);
        }
    }
    return fpd_arr(c, spec, "containers");
}

/* A container of the image with the shared security context and mounts;
 * returns it with its env array in *env. */
static cJSON *fpd_container(fpd_ctx *c, cJSON *containers, const char *name, const char *role, int models,
                            cJSON **env)
{
    cJSON *ct = fpd_item(c, containers);
    fpd_str(c, ct, "name", name);
    fpd_str(c, ct, "image", c->image);
    fpd_str(c, ct, "imagePullPolicy", "IfNotPresent");
    cJSON *args = fpd_arr(c, ct, "args");
    fpd_push_str(c, args, role);
    cJSON *sc = fpd_obj(c, ct, "securityContext");
    fpd_bool(c, sc, "allowPrivilegeEscalation", 0);
    fpd_bool(c, sc, "readOnlyRootFilesystem", 1);
    fpd_bool(c, sc, "runAsNonRoot", 1);
    cJSON *cap = fpd_obj(c, sc, "capabilities");
    fpd_push_str(c, fpd_arr(c, cap, "drop"), "ALL");
    cJSON *mounts = fpd_arr(c, ct, "volumeMounts");
    cJSON *m = fpd_item(c, mounts);
    fpd_str(c, m, "name", "plan");
    fpd_str(c, m, "mountPath", "/etc/fogpipe");
    fpd_bool(c, m, "readOnly", 1);
    if (models) {
        m = fpd_item(c, mounts);
        fpd_str(c, m, "name", "models");
        fpd_str(c, m, "mountPath", "/models");
        fpd_bool(c, m, "readOnly", 1);
    }
    if (c->curve_text) {
        m = fpd_item(c, mounts);
        fpd_str(c, m, "name", "curve");
        fpd_str(c, m, "mountPath", c->podman ? "/etc/fogpipe-keys/curve.key" : "/etc/fogpipe-keys");
        fpd_bool(c, m, "readOnly", 1);
    }
    *env = fpd_arr(c, ct, "env");
    if (c->curve_text) fpd_env(c, *env, "FOGPIPE_CURVE_KEY", "/etc/fogpipe-keys/curve.key");
    char path[FP_PART_MAX_PATH + 16];
    fpd_env(c, *env, "FOGPIPE_PLAN", "/etc/fogpipe/plan.json");
    if (models) snprintf(path, sizeof path, "/models/%s", c->cfg_base);
    else snprintf(path, sizeof path, "/etc/fogpipe/%s", c->cfg_key);
    fpd_env(c, *env, "FOGPIPE_CFG", path);
    return ct;
}

/* Replicas whose addresses a stage's upstream lists. */
static int fpd_listed(const fpd_ctx *c, int k)
{
    int r = c->plan->stages[k].n_devices;
    return c->max_replicas > r ? c->max_replicas : r;
}

/* "tcp://NAME-stage-K-0.NAME-stage-K:PORT,..." (podman: the pod names
 * NAME-stage-K-i, since podman resolves pods by name and has no Services).
 * `http` lists HOST:PORT of the HTTP servers instead, the plan's replicas only. */
static void fpd_stage_addrs(const fpd_ctx *c, int k, int http, char *buf, size_t n)
{
    size_t len = 0;
    int count = http ? c->plan->stages[k].n_devices : fpd_listed(c, k);
    buf[0] = '\0';
    for (int i = 0; i < count && len < n; i++) {
        if (c->podman)
            len += (size_t)snprintf(buf + len, n - len, "%s%s%s-stage-%d-%d:%d", i ? "," : "", http ? "" : "tcp://",
                                    c->name, k, i, (http ? 9601 : 5601) + k);
        else
            len += (size_t)snprintf(buf + len, n - len, "%s%s%s-stage-%d-%d.%s-stage-%d:%d", i ? "," : "",
                                    http ? "" : "tcp://", c->name, k, i, c->name, k, (http ? 9601 : 5601) + k);
    }
}

/* Where a stage's pods may run: nodeSelector device=<node> when all its
 * devices share one node label, else required node affinity to those labels
 * with replicas spread over hosts where possible. */
static void fpd_placement(fpd_ctx *c, cJSON *spec, int k, const char *component)
{
    const fp_plan_stage *st = &c->plan->stages[k];
    const char *nodes[FP_PART_MAX_DEVICES];
    int n = 0;
    for (int r = 0; r < st->n_devices; r++) {
        const char *node = c->plan->devices[st->devices[r]].node;
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= !strcmp(nodes[j], node);
        if (!seen) nodes[n++] = node;
    }
    if (n == 1) {
        fpd_str(c, fpd_obj(c, spec, "nodeSelector"), "device", nodes[0]);
        return;
    }
    cJSON *aff = fpd_obj(c, spec, "affinity");
    cJSON *na = fpd_obj(c, fpd_obj(c, aff, "nodeAffinity"), "requiredDuringSchedulingIgnoredDuringExecution");
    cJSON *term = fpd_item(c, fpd_arr(c, na, "nodeSelectorTerms"));
    cJSON *expr = fpd_item(c, fpd_arr(c, term, "matchExpressions"));
    fpd_str(c, expr, "key", "device");
    fpd_str(c, expr, "operator", "In");
    cJSON *vals = fpd_arr(c, expr, "values");
    for (int j = 0; j < n; j++) fpd_push_str(c, vals, nodes[j]);
    cJSON *pa = fpd_arr(c, fpd_obj(c, aff, "podAntiAffinity"), "preferredDuringSchedulingIgnoredDuringExecution");
    cJSON *w = fpd_item(c, pa);
    fpd_num(c, w, "weight", 100);
    cJSON *t = fpd_obj(c, w, "podAffinityTerm");
    fpd_str(c, t, "topologyKey", "kubernetes.io/hostname");
    fpd_selector_labels(c, fpd_obj(c, fpd_obj(c, t, "labelSelector"), "matchLabels"), component);
}

/* The pod template (metadata + spec) of stage k into `tmpl`. `pod` is the
 * pod's own name in the podman variant (NULL: taken from the downward API). */
static void fpd_stage_pod(fpd_ctx *c, cJSON *tmpl_meta, cJSON *spec, int k, const char *pod)
{
    const fp_plan *p = c->plan;
    const fp_plan_stage *st = &p->stages[k];
    char component[32], buf[FPD_LIST_MAX], num[32];
    snprintf(component, sizeof component, "stage-%d", k);
    cJSON *l = fpd_obj(c, tmpl_meta, "labels");
    fpd_selector_labels(c, l, component);
    fpd_str(c, l, "app.kubernetes.io/part-of", "fogpipe");
    fpd_str(c, l, "app.kubernetes.io/managed-by", "fogpipe-deploy");
    cJSON *an = fpd_obj(c, tmpl_meta, "annotations");
    fpd_str(c, an, "fogpipe.dev/plan-hash", c->plan_hash);
    if (c->curve_public) fpd_str(c, an, "fogpipe.dev/curve-public-key", c->curve_public);
    snprintf(buf, sizeof buf, "%d..%d", st->first, st->last);
    fpd_str(c, an, "fogpipe.dev/layers", buf);
    if (!c->podman) fpd_placement(c, spec, k, component);
    fpd_num(c, spec, "terminationGracePeriodSeconds", 30);
    /* the host's model directory only where the cfg is not in the
     * ConfigMap or the weights are not served by the gateway */
    int models = !c->cfg_text || (c->weights_base && !c->stage_weights);
    cJSON *containers = fpd_pod_spec(c, spec, models), *env;
    cJSON *ct = fpd_container(c, containers, "stage", "stage", models, &env);
    if (c->stage_weights) {
        snprintf(buf, sizeof buf, "http://%s-gateway:%d/v1/weights/%d", c->name, FPD_HTTP_PORT, k);
        fpd_env(c, env, "FOGPIPE_WEIGHTS_FROM", buf);
    } else if (c->weights_base) {
        snprintf(buf, sizeof buf, "/models/%s", c->weights_base);
        fpd_env(c, env, "FOGPIPE_WEIGHTS", buf);
    }
    snprintf(num, sizeof num, "%d", k);
    fpd_env(c, env, "FOGPIPE_STAGE", num);
    snprintf(buf, sizeof buf, "tcp://0.0.0.0:%d", 5601 + k);
    fpd_env(c, env, "FOGPIPE_BIND", buf);
    if (k + 1 < p->n_stages) {
        fpd_stage_addrs(c, k + 1, 0, buf, sizeof buf);
    } else if (c->podman) {
        snprintf(buf, sizeof buf, "tcp://%s-gateway:%d", c->name, FPD_RESULTS_PORT);
    } else {
        snprintf(buf, sizeof buf, "tcp://%s-results:%d", c->name, FPD_RESULTS_PORT);
    }
    fpd_env(c, env, "FOGPIPE_NEXT", buf);
    snprintf(buf, sizeof buf, "0.0.0.0:%d", 9601 + k);
    fpd_env(c, env, "FOGPIPE_HTTP", buf);
    int threads = p->devices[st->devices[0]].threads > 0 ? p->devices[st->devices[0]].threads : 1;
    snprintf(num, sizeof num, "%d", threads);
    fpd_env(c, env, "FOGPIPE_THREADS", num);
    if (pod) {
        fpd_env(c, env, "FOGPIPE_NAME", pod);
    } else {
        cJSON *e = fpd_item(c, env);
        fpd_str(c, e, "name", "FOGPIPE_NAME");
        cJSON *fr = fpd_obj(c, fpd_obj(c, e, "valueFrom"), "fieldRef");
        fpd_str(c, fr, "fieldPath", "metadata.name");
    }
    if (!c->podman) {
        /* podman kube play (4.3) publishes every containerPort on the host,
         * so replicas would collide: the podman variant lists none (pods
         * reach each other over the pod network without them). */
        cJSON *ports = fpd_arr(c, ct, "ports");
        fpd_port(c, ports, "data", 5601 + k, 0);
        fpd_port(c, ports, "http", 9601 + k, 0);
        /* The HTTP server starts once the stage's weights are loaded. */
        fpd_probe(c, ct, "startupProbe", "/healthz", 2, 150);
        fpd_probe(c, ct, "livenessProbe", "/healthz", 10, 3);
        fpd_probe(c, ct, "readinessProbe", "/readyz", 2, 2);
    }
    /* CPU: the plan's busy share of the stage's threads (compute over the
     * bottleneck; each replica is busy that fraction of the time) requested,
     * all its threads as the limit. Memory: the predicted peak requested,
     * 1.5x + 32 MiB as the limit (the prediction is a model, not a bound). */
    double busy = p->bottleneck_s > 0 && isfinite(p->bottleneck_s) && isfinite(st->compute_s)
                      ? st->compute_s / p->bottleneck_s : 1;
    if (busy > 1) busy = 1;
    long req_m = (long)ceil(threads * 1000.0 * busy);
    if (req_m < 100) req_m = 100;
    uint64_t mem = st->memory_bytes ? st->memory_bytes : 64u << 20;
    fpd_resources(c, ct, req_m, threads * 1000L, mem, mem + mem / 2 + (32u << 20));
}

/* Stage k: a StatefulSet and its headless Service (k8s), or one Pod per
 * replica (podman). */
static void fpd_stage(fpd_ctx *c, cJSON *docs, int k)
{
    const fp_plan_stage *st = &c->plan->stages[k];
    char name[128], component[32];
    snprintf(name, sizeof name, "%s-stage-%d", c->name, k);
    snprintf(component, sizeof component, "stage-%d", k);
    if (c->podman) {
        for (int r = 0; r < st->n_devices; r++) {
            char pod[160];
            snprintf(pod, sizeof pod, "%s-%d", name, r);
            cJSON *meta, *d = fpd_doc(c, docs, "v1", "Pod", pod, component, &meta);
            /* The pod's own labels and annotations come from the template. */
            cJSON_DeleteItemFromObjectCaseSensitive(meta, "labels");
            fpd_stage_pod(c, meta, fpd_obj(c, d, "spec"), k, pod);
        }
        return;
    }
    cJSON *d = fpd_doc(c, docs, "apps/v1", "StatefulSet", name, component, NULL);
    cJSON *spec = fpd_obj(c, d, "spec");
    fpd_str(c, spec, "serviceName", name);
    fpd_num(c, spec, "replicas", st->n_devices);
    fpd_str(c, spec, "podManagementPolicy", "Parallel");
    fpd_selector_labels(c, fpd_obj(c, fpd_obj(c, spec, "selector"), "matchLabels"), component);
    cJSON *tmpl = fpd_obj(c, spec, "template");
    cJSON *tmeta = fpd_obj(c, tmpl, "metadata"); /* before "spec": argument order is unspecified */
    fpd_stage_pod(c, tmeta, fpd_obj(c, tmpl, "spec"), k, NULL);

    cJSON *svc = fpd_doc(c, docs, "v1", "Service", name, component, NULL);
    spec = fpd_obj(c, svc, "spec");
    fpd_str(c, spec, "clusterIP", "None");
    /* Per-pod names resolve before the pod is ready: readiness needs the
     * upstream connected, so waiting for it would deadlock the chain. */
    fpd_bool(c, spec, "publishNotReadyAddresses", 1);
    fpd_selector_labels(c, fpd_obj(c, spec, "selector"), component);
    cJSON *ports = fpd_arr(c, spec, "ports");
    cJSON *pt = fpd_item(c, ports);
    fpd_str(c, pt, "name", "data");
    fpd_num(c, pt, "port", 5601 + k);
    fpd_str(c, pt, "targetPort", "data");
    fpd_str(c, pt, "protocol", "TCP");
    pt = fpd_item(c, ports);
    fpd_str(c, pt, "name", "http");
    fpd_num(c, pt, "port", 9601 + k);
    fpd_str(c, pt, "targetPort", "http");
    fpd_str(c, pt, "protocol", "TCP");
}

static void fpd_gateway_pod(fpd_ctx *c, cJSON *tmpl_meta, cJSON *spec)
{
    const fp_plan *p = c->plan;
    char buf[FPD_LIST_MAX];
    cJSON *l = fpd_obj(c, tmpl_meta, "labels");
    fpd_selector_labels(c, l, "gateway");
    fpd_str(c, l, "app.kubernetes.io/part-of", "fogpipe");
    fpd_str(c, l, "app.kubernetes.io/managed-by", "fogpipe-deploy");
    cJSON *an = fpd_obj(c, tmpl_meta, "annotations");
    fpd_str(c, an, "fogpipe.dev/plan-hash", c->plan_hash);
    if (c->curve_public) fpd_str(c, an, "fogpipe.dev/curve-public-key", c->curve_public);
    if (c->gateway_node && !c->podman) fpd_str(c, fpd_obj(c, spec, "nodeSelector"), "device", c->gateway_node);
    cJSON *containers = fpd_pod_spec(c, spec, 1), *env;
    cJSON *ct = fpd_container(c, containers, "gateway", "gateway", 1, &env);
    if (c->stage_weights) { /* it holds the model and hands each stage its part */
        fpd_env(c, env, "FOGPIPE_SERVE_WEIGHTS", "1");
        if (c->weights_base) {
            snprintf(buf, sizeof buf, "/models/%s", c->weights_base);
            fpd_env(c, env, "FOGPIPE_WEIGHTS", buf);
        }
    }
    fpd_stage_addrs(c, 0, 0, buf, sizeof buf);
    fpd_env(c, env, "FOGPIPE_FIRST", buf);
    snprintf(buf, sizeof buf, "tcp://0.0.0.0:%d", FPD_RESULTS_PORT);
    fpd_env(c, env, "FOGPIPE_RESULTS", buf);
    snprintf(buf, sizeof buf, "0.0.0.0:%d", FPD_HTTP_PORT);
    fpd_env(c, env, "FOGPIPE_HTTP", buf);
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < p->n_stages && len < sizeof buf; k++) {
        char one[FPD_LIST_MAX];
        fpd_stage_addrs(c, k, 1, one, sizeof one);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", k ? "," : "", one);
    }
    fpd_env(c, env, "FOGPIPE_STAGE_HTTP", buf);
    cJSON *ports = fpd_arr(c, ct, "ports");
    fpd_port(c, ports, "http", FPD_HTTP_PORT, c->podman ? c->host_port : 0);
    if (!c->podman) fpd_port(c, ports, "results", FPD_RESULTS_PORT, 0);
    if (!c->podman) {
        fpd_probe(c, ct, "startupProbe", "/healthz", 2, 150);
        fpd_probe(c, ct, "livenessProbe", "/healthz", 10, 3);
        fpd_probe(c, ct, "readinessProbe", "/healthz", 5, 2);
    }
    /* Not predicted by the plan: the model's cfg, --window frames in flight
     * and the request bodies (16 MiB at most each); serving the stages'
     * weights, the model and its blobs (twice the weights file). */
    uint64_t held = c->stage_weights ? 2 * c->weights_bytes : 0;
    fpd_resources(c, ct, 100, 1000, (64u << 20) + held, (384u << 20) + held);
}

static void fpd_gateway(fpd_ctx *c, cJSON *docs)
{
    char name[128], rname[128];
    snprintf(name, sizeof name, "%s-gateway", c->name);
    snprintf(rname, sizeof rname, "%s-results", c->name);
    if (c->podman) {
        cJSON *meta, *d = fpd_doc(c, docs, "v1", "Pod", name, "gateway", &meta);
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "labels");
        fpd_gateway_pod(c, meta, fpd_obj(c, d, "spec"));
        return;
    }
    cJSON *d = fpd_doc(c, docs, "apps/v1", "Deployment", name, "gateway", NULL);
    cJSON *spec = fpd_obj(c, d, "spec");
    fpd_num(c, spec, "replicas", 1);
    /* One gateway at a time: results go to whichever holds the results port. */
    fpd_str(c, fpd_obj(c, spec, "strategy"), "type", "Recreate");
    fpd_selector_labels(c, fpd_obj(c, fpd_obj(c, spec, "selector"), "matchLabels"), "gateway");
    cJSON *tmpl = fpd_obj(c, spec, "template");
    cJSON *tmeta = fpd_obj(c, tmpl, "metadata");
    fpd_gateway_pod(c, tmeta, fpd_obj(c, tmpl, "spec"));

    cJSON *svc = fpd_doc(c, docs, "v1", "Service", name, "gateway", NULL);
    spec = fpd_obj(c, svc, "spec");
    fpd_str(c, spec, "type", c->service_type);
    fpd_selector_labels(c, fpd_obj(c, spec, "selector"), "gateway");
    cJSON *pt = fpd_item(c, fpd_arr(c, spec, "ports"));
    fpd_str(c, pt, "name", "http");
    fpd_num(c, pt, "port", FPD_HTTP_PORT);
    fpd_str(c, pt, "targetPort", "http");
    fpd_str(c, pt, "protocol", "TCP");

    /* Headless too: the last stage connects straight to the gateway pod and
     * resolves the name again when it reconnects (a ClusterIP would keep a
     * connection through kube-proxy to an address that may be gone). */
    svc = fpd_doc(c, docs, "v1", "Service", rname, "gateway", NULL);
    spec = fpd_obj(c, svc, "spec");
    fpd_str(c, spec, "clusterIP", "None");
    fpd_bool(c, spec, "publishNotReadyAddresses", 1);
    fpd_selector_labels(c, fpd_obj(c, spec, "selector"), "gateway");
    pt = fpd_item(c, fpd_arr(c, spec, "ports"));
    fpd_str(c, pt, "name", "results");
    fpd_num(c, pt, "port", FPD_RESULTS_PORT);
    fpd_str(c, pt, "targetPort", "results");
    fpd_str(c, pt, "protocol", "TCP");
}

static void fpd_configmap(fpd_ctx *c, cJSON *docs)
{
    cJSON *meta, *d = fpd_doc(c, docs, "v1", "ConfigMap", c->cm_name, "plan", &meta);
    fpd_str(c, fpd_obj(c, meta, "annotations"), "fogpipe.dev/plan-hash", c->plan_hash);
    cJSON *data = fpd_obj(c, d, "data");
    fpd_str(c, data, "plan.json", c->plan_text);
    if (c->cfg_text) fpd_str(c, data, c->cfg_key, c->cfg_text);
}

/* Base64 (RFC 4648, padded) of s into a fresh string; NULL when out of
 * memory. A Secret's data must be base64. */
static char *fpd_base64(const char *s)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)s[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static void fpd_secret(fpd_ctx *c, cJSON *docs)
{
    char name[160];
    snprintf(name, sizeof name, "%s-curve", c->name);
    cJSON *meta, *d = fpd_doc(c, docs, "v1", "Secret", name, "keys", &meta);
    fpd_str(c, fpd_obj(c, meta, "annotations"), "fogpipe.dev/curve-public-key", c->curve_public);
    fpd_str(c, d, "type", "Opaque");
    char *b64 = fpd_base64(c->curve_text);
    if (!b64) c->oom = 1;
    else fpd_str(c, fpd_obj(c, d, "data"), "curve.key", b64);
    free(b64);
}

/* ----------------------------------------------------------------- inputs */

static char *fpd_read_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int bad = !buf || ferror(f) || n > max;
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* FNV-1a 64 of a string, as the plan's hashes are written. */
static void fpd_hash_text(const char *s, char *out, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    snprintf(out, n, "fnv1a64:%016llx", (unsigned long long)h);
}

/* DNS-1123 label of at most `max` characters. */
static int fpd_dns_label(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n > max || s[0] == '-' || s[n - 1] == '-') return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) return 0;
    return 1;
}

static const char *fpd_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The model directory: --model-dir, else the directory of the plan's cfg
 * (relative paths as fogpipe stage reads them: from the current directory,
 * else from the plan file's). Absolute in `out`. 0, or FP_EXIT_USAGE. */
static int fpd_model_dir(const char *given, const char *plan_path, const char *cfg, char *out, size_t n)
{
    char dir[PATH_MAX];
    if (given) {
        if (given[0] != '/') {
            if (!realpath(given, dir)) {
                fprintf(stderr, "fogpipe deploy: --model-dir: %s is relative and not a directory here; give the "
                                "absolute path it has on the nodes\n", given);
                return FP_EXIT_USAGE;
            }
            given = dir;
        }
        snprintf(out, n, "%s", given);
        size_t len = strlen(out);
        while (len > 1 && out[len - 1] == '/') out[--len] = '\0';
        return 0;
    }
    char cand[2][PATH_MAX];
    int nc = 0;
    snprintf(cand[nc++], PATH_MAX, "%s", cfg);
    if (cfg[0] != '/' && strchr(plan_path, '/'))
        snprintf(cand[nc++], PATH_MAX, "%.*s/%s", (int)(strrchr(plan_path, '/') - plan_path), plan_path, cfg);
    for (int i = 0; i < nc; i++)
        if (realpath(cand[i], dir)) {
            *strrchr(dir, '/') = '\0';
            snprintf(out, n, "%s", dir[0] ? dir : "/");
            return 0;
        }
    fprintf(stderr, "fogpipe deploy: the plan's model %s is not here, so its directory is unknown; pass "
                    "--model-dir DIR (the directory on the nodes that holds %s)\n", cfg, fpd_base(cfg));
    return FP_EXIT_USAGE;
}

/* What travels how: the cfg (or TF.js manifest) goes into the ConfigMap
 * when it is readable here; with per-stage weights hashes in the plan the
 * stages fetch their own layers' weights from the gateway, so only the
 * gateway's node needs the model directory. */
static int fpd_model_parts(fpd_ctx *c, const fp_plan *p)
{
    enum { FPD_MAX_CFG = 900 << 10 }; /* a ConfigMap holds 1 MiB in all */
    char path[PATH_MAX];
    struct stat sb;
    int tfjs = strchr(p->cfg_hash, '@') != NULL;
    c->cfg_key = tfjs ? "model-manifest.json" : "model.cfg";
    snprintf(path, sizeof path, "%s/%s", c->model_dir, c->cfg_base);
    if (!stat(path, &sb) && S_ISREG(sb.st_mode) && sb.st_size <= FPD_MAX_CFG) {
        if (!(c->cfg_text = fpd_read_file(path, FPD_MAX_CFG))) {
            fprintf(stderr, "fogpipe deploy: %s: cannot read it\n", path);
            return FP_EXIT_FAIL;
        }
    } else {
        fprintf(stderr, "fogpipe deploy: note: %s is %s here, so the stages read it from %s on their nodes too\n", path,
                stat(path, &sb) ? "not" : "too big for a ConfigMap", c->model_dir);
    }
    if (c->weights_base) {
        snprintf(path, sizeof path, "%s/%s", c->model_dir, c->weights_base);
        if (!stat(path, &sb)) c->weights_bytes = (uint64_t)sb.st_size;
    }
    if (!c->weights_base && !tfjs) return 0; /* random weights: nothing to send */
    c->stage_weights = 1;
    for (int k = 0; k < p->n_stages; k++) c->stage_weights &= p->stages[k].weights_sha256[0] != 0;
    if (!c->stage_weights)
        fprintf(stderr, "fogpipe deploy: note: the plan records no per-stage weights hashes (made by an older "
                        "fogpipe?), so every stage's node needs the whole model in %s; `fogpipe plan` again to send "
                        "each stage only its own layers' weights\n", c->model_dir);
    return 0;
}

/* When the model directory exists here, its files must be the plan's: a
 * mismatch would only show as stages failing to start on every node. */
static int fpd_check_models(const fpd_ctx *c, const fp_plan *p)
{
    struct stat sb;
    if (stat(c->model_dir, &sb) || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "fogpipe deploy: note: %s is not a directory on this machine; every node must hold %s%s%s "
                        "there\n", c->model_dir, c->cfg_base, c->weights_base ? " and " : "",
                c->weights_base ? c->weights_base : "");
        return 0;
    }
    const char *files[2] = {c->cfg_base, c->weights_base};
    const char *want[2] = {p->cfg_hash, p->weights_hash};
    for (int i = 0; i < 2; i++) {
        if (!files[i] || !want[i][0]) continue;
        char path[PATH_MAX], got[48];
        snprintf(path, sizeof path, "%s/%s", c->model_dir, files[i]);
        if (fp_part_hash_file(path, got, 32)) {
            fprintf(stderr, "fogpipe deploy: --model-dir %s: %s\n", c->model_dir, fp_last_error());
            return FP_EXIT_FAIL;
        }
        const char *at = strchr(want[i], '@'); /* TF.js: "<hash>@<input size>" */
        size_t len = at ? (size_t)(at - want[i]) : strlen(want[i]);
        if (strlen(got) != len || strncmp(got, want[i], len)) {
            fprintf(stderr, "fogpipe deploy: %s hashes to %s, but the plan was made for %s\n", path, got, want[i]);
            return FP_EXIT_FAIL;
        }
    }
    return 0;
}

/* Creates dir and its parents. 0 or FP_EXIT_FAIL (printed). */
static int fpd_mkdirs(const char *dir)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s", dir) >= sizeof tmp) return fp_cli_mkdir(dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0777);
            *p = '/';
        }
    return fp_cli_mkdir(tmp);
}

/* The podman variant's key: dir/curve.key, readable by the pods' user
 * only (podman 4.3's kube play cannot mount a Secret; a hostPath can). */
static int fpd_podman_key(fpd_ctx *c, const char *dir)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/curve.key", dir) >= sizeof path) {
        fprintf(stderr, "fogpipe deploy: %s: path too long\n", dir);
        return FP_EXIT_FAIL;
    }
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    size_t n = strlen(c->curve_text);
    int ok = fd >= 0 && write(fd, c->curve_text, n) == (ssize_t)n;
    if (fd >= 0 && geteuid() == 0 && fchown(fd, FPD_UID, FPD_UID)) ok = 0;
    if (fd >= 0 && close(fd)) ok = 0;
    if (!ok || !realpath(path, c->curve_host)) {
        fprintf(stderr, "fogpipe deploy: %s: cannot write the key: %s\n", path, strerror(errno));
        return FP_EXIT_FAIL;
    }
    if (geteuid() != 0)
        fprintf(stderr, "fogpipe deploy: warning: %s belongs to you, not to the pods' user %d: run podman as root, or "
                        "chown it\n", path, FPD_UID);
    return 0;
}

int fp_cmd_deploy(int argc, char **argv)
{
    char **pos;
    int npos, rc = fp_args_parse(&fp_deploy_cmd, argc, argv, &pos, &npos);
    if (rc) return rc < 0 ? 0 : rc;
    const char *plan_path = fp_flag_get(&fp_deploy_cmd, "plan");
    const char *out = fp_flag_get(&fp_deploy_cmd, "output");
    fpd_ctx c = {0};
    c.image = fp_flag_get(&fp_deploy_cmd, "image");
    if (!plan_path) return fp_args_require(&fp_deploy_cmd, "plan");
    if (!c.image) return fp_args_require(&fp_deploy_cmd, "image");
    if (!out) return fp_args_require(&fp_deploy_cmd, "output");
    long max_rep = 0, host_port = 8080;
    if ((rc = fp_flag_int(&fp_deploy_cmd, "max-replicas", 1, FPP_MAX_PEERS, &max_rep)) ||
        (rc = fp_flag_int(&fp_deploy_cmd, "host-port", 1, 65535, &host_port)))
        return rc;
    c.max_replicas = (int)max_rep;
    c.host_port = (int)host_port;
    c.ns = fp_flag_get(&fp_deploy_cmd, "namespace");
    c.name = fp_flag_get(&fp_deploy_cmd, "instance");
    if (!c.name) c.name = "fogpipe";
    c.service_type = fp_flag_get(&fp_deploy_cmd, "service-type");
    if (!c.service_type) c.service_type = "ClusterIP";
    c.gateway_node = fp_flag_get(&fp_deploy_cmd, "gateway-node");
    if (!c.image[0] || strpbrk(c.image, " \t\n\"'")) {
        fprintf(stderr, "fogpipe deploy: --image: expected an image reference like localhost/fogpipe:0.1.0 (got \"%s\")\n",
                c.image);
        return FP_EXIT_USAGE;
    }
    if (c.ns && !fpd_dns_label(c.ns, 63)) {
        fprintf(stderr, "fogpipe deploy: --namespace: expected a DNS label (a-z, 0-9, '-', at most 63) (got \"%s\")\n",
                c.ns);
        return FP_EXIT_USAGE;
    }
    /* NAME-stage-31 must stay a valid StatefulSet name (52 characters, as
     * the controller-revision-hash label is built from it). */
    if (!fpd_dns_label(c.name, 40) || !(c.name[0] >= 'a' && c.name[0] <= 'z')) {
        fprintf(stderr, "fogpipe deploy: --instance: expected a-z, 0-9 and '-', starting with a letter, at most 40 "
                        "(got \"%s\")\n", c.name);
        return FP_EXIT_USAGE;
    }
    if (strcmp(c.service_type, "ClusterIP") && strcmp(c.service_type, "NodePort") &&
        strcmp(c.service_type, "LoadBalancer")) {
        fprintf(stderr, "fogpipe deploy: --service-type: expected ClusterIP, NodePort or LoadBalancer (got \"%s\")\n",
                c.service_type);
        return FP_EXIT_USAGE;
    }
    if (c.gateway_node && (!c.gateway_node[0] || strlen(c.gateway_node) > 63)) {
        fprintf(stderr, "fogpipe deploy: --gateway-node: expected a label value of 1..63 characters\n");
        return FP_EXIT_USAGE;
    }

    fpp_curve_key key;
    char *key_text = NULL;
    const char *key_path = fp_flag_get(&fp_deploy_cmd, "curve-key");
    if (key_path) {
        if (fpp_curve_key_load(key_path, &key) || !(key_text = fpd_read_file(key_path, 4096))) {
            fprintf(stderr, "fogpipe deploy: --curve-key: %s\n", fp_last_error());
            return FP_EXIT_USAGE;
        }
        c.curve_text = key_text;
        c.curve_public = key.public_key;
    }
    fp_plan *plan = malloc(sizeof *plan);
    char *text = NULL, model_dir[PATH_MAX];
    cJSON *docs[4] = {NULL};
    if (!plan) {
        fprintf(stderr, "fogpipe deploy: out of memory\n");
        return FP_EXIT_FAIL;
    }
    if (fp_plan_load(plan_path, NULL, plan)) {
        rc = fp_cli_fail();
        goto done;
    }
    if (!(text = fpd_read_file(plan_path, 16u << 20))) { /* it just loaded: unlikely */
        fprintf(stderr, "fogpipe deploy: %s: cannot read it again, or it is over 16 MiB\n", plan_path);
        rc = FP_EXIT_FAIL;
        goto done;
    }
    if ((rc = fpd_model_dir(fp_flag_get(&fp_deploy_cmd, "model-dir"), plan_path, plan->cfg, model_dir,
                            sizeof model_dir)))
        goto done;
    c.plan = plan;
    c.plan_text = text;
    c.model_dir = model_dir;
    c.cfg_base = fpd_base(plan->cfg);
    c.weights_base = plan->weights[0] ? fpd_base(plan->weights) : NULL;
    fpd_hash_text(text, c.plan_hash, sizeof c.plan_hash);
    /* A new plan gets a new ConfigMap, and the pods' annotation changes with
     * it, so `kubectl apply` rolls every stage over to the new plan. */
    snprintf(c.cm_name, sizeof c.cm_name, "%s-plan-%.10s", c.name, c.plan_hash + 8);
    if ((rc = fpd_check_models(&c, plan))) goto done;
    if ((rc = fpd_model_parts(&c, plan))) goto done;
    for (int k = 0; k < plan->n_stages; k++)
        if (!plan->stages[k].fits)
            fprintf(stderr, "fogpipe deploy: warning: stage %d does not fit its device's memory in this plan\n", k);
    if ((rc = fpd_mkdirs(out))) goto done;

    /* Kubernetes: one file per part, and the kustomization listing them. */
    cJSON *kust = docs[0] = cJSON_CreateArray();
    cJSON *k = fpd_item(&c, kust);
    fpd_str(&c, k, "apiVersion", "kustomize.config.k8s.io/v1beta1");
    fpd_str(&c, k, "kind", "Kustomization");
    if (c.ns) fpd_str(&c, k, "namespace", c.ns);
    cJSON *res = fpd_arr(&c, k, "resources");
    char file[64];
    if (c.ns) {
        cJSON *d = docs[1] = cJSON_CreateArray();
        fpd_doc(&c, d, "v1", "Namespace", c.ns, NULL, NULL);
        if (c.oom || (rc = fpd_write(out, "namespace.yaml", "The namespace of the pipeline.", d))) goto done;
        fpd_push_str(&c, res, "namespace.yaml");
        cJSON_Delete(d);
        docs[1] = NULL;
    }
    docs[1] = cJSON_CreateArray();
    fpd_configmap(&c, docs[1]);
    if (c.oom || (rc = fpd_write(out, "plan.yaml", "The plan every pod reads (/etc/fogpipe/plan.json).", docs[1])))
        goto done;
    fpd_push_str(&c, res, "plan.yaml");
    if (c.curve_text) {
        cJSON_Delete(docs[1]);
        docs[1] = cJSON_CreateArray();
        fpd_secret(&c, docs[1]);
        if (c.oom || (rc = fpd_write_mode(out, "secret.yaml",
                                          "The CURVE key every pod mounts (/etc/fogpipe-keys). It holds the secret "
                                          "key: keep this file private.", docs[1], 0600)))
            goto done;
        fpd_push_str(&c, res, "secret.yaml");
    }
    for (int s = 0; s < plan->n_stages; s++) {
        char comment[160];
        cJSON_Delete(docs[1]);
        docs[1] = cJSON_CreateArray();
        fpd_stage(&c, docs[1], s);
        snprintf(file, sizeof file, "stage-%d.yaml", s);
        snprintf(comment, sizeof comment, "Stage %d: layers %d..%d, %d replica(s).", s, plan->stages[s].first,
                 plan->stages[s].last, plan->stages[s].n_devices);
        if (c.oom || (rc = fpd_write(out, file, comment, docs[1]))) goto done;
        fpd_push_str(&c, res, file);
    }
    cJSON_Delete(docs[1]);
    docs[1] = cJSON_CreateArray();
    fpd_gateway(&c, docs[1]);
    if (c.oom || (rc = fpd_write(out, "gateway.yaml", "The gateway: POST /v1/detect.", docs[1]))) goto done;
    fpd_push_str(&c, res, "gateway.yaml");
    if (c.oom || (rc = fpd_write(out, "kustomization.yaml", "kubectl apply -k .", kust))) goto done;

    /* The podman variant: every document in one file for `podman kube play`. */
    if (fp_flag_get(&fp_deploy_cmd, "podman")) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/podman", out);
        if ((rc = fp_cli_mkdir(dir))) goto done;
        if (c.curve_text && (rc = fpd_podman_key(&c, dir))) goto done;
        c.podman = 1;
        docs[2] = cJSON_CreateArray();
        fpd_configmap(&c, docs[2]);
        for (int s = 0; s < plan->n_stages; s++) fpd_stage(&c, docs[2], s);
        fpd_gateway(&c, docs[2]);
        if (c.oom || (rc = fpd_write(dir, "kube.yaml",
                                     "podman kube play kube.yaml: the manifests with the podman overlay "
                                     "(docs/deploy.md).", docs[2])))
            goto done;
    }
    int replicas = 0;
    for (int s = 0; s < plan->n_stages; s++) replicas += plan->stages[s].n_devices;
    printf("%s: %d stages (%d pods) and the gateway, image %s, model files from %s%s; apply: kubectl apply -k %s\n",
           out, plan->n_stages, replicas, c.image, model_dir, c.podman ? ", podman/kube.yaml" : "", out);
done:
    if (c.oom && !rc) {
        fprintf(stderr, "fogpipe deploy: out of memory\n");
        rc = FP_EXIT_FAIL;
    } else if (c.oom) {
        fprintf(stderr, "fogpipe deploy: out of memory\n");
    }
    for (int i = 0; i < 4; i++) cJSON_Delete(docs[i]);
    free(text);
    free((void *)c.cfg_text);
    free(plan);
    if (key_text) {
        memset(key_text, 0, strlen(key_text));
        free(key_text);
        memset(&key, 0, sizeof key);
    }
    return rc;
}
