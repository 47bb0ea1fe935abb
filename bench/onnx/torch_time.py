#!/usr/bin/python3
"""Time a darknet .cfg + .weights with PyTorch (CPU, bench only).

    /usr/bin/python3 bench/onnx/torch_time.py CFG WEIGHTS [--threads T]
        [--warmup W] [--iters N] [--check]

Builds a torch.nn.Module equal to the network that export_onnx.py exports
(same layers and semantics, heads included: batch norm folded into the
convolution exactly as the exporter folds it, leaky 0.1, darknet's max-pool
padding, route, upsample, shortcut, connected, [yolo]/[region]/[detection]),
reusing the exporter's cfg parser, weights reader and layer readers. Runs it in
torch.inference_mode(), float32, batch 1, on a 1xCxHxW input: W warm-up runs
(default 2), then prints "median_ms=X threads=T iters=N" (median of N runs,
default 5), as bench/onnx/ort_time.js does. --threads sets torch's intra-op
threads (interop 1) and OMP_NUM_THREADS / OPENBLAS_NUM_THREADS /
MKL_NUM_THREADS before torch loads, and OMP_WAIT_POLICY=PASSIVE unless
the environment sets it (torch's spinning OpenMP workers otherwise fight
OpenBLAS's own threads for the cores). Unless --malloc-default, glibc malloc is
told (mallopt) to keep freed memory (mmap threshold 32 MiB, trim threshold
1 GiB, top pad 64 MiB) so that the timed runs reuse the pages of the earlier
ones, as fogpipe's and ONNX Runtime's buffers do; PyTorch's CPU allocator
does not cache, and with glibc's defaults every run page-faults its
activations afresh, which in a VM can cost more than the arithmetic.

--check: also runs `fogpipe forward --dump-layers` (FP_BUILD, default build)
on the same random input and compares every output (each head's, or the last
layer's) with fogpipe's output of that layer; prints max|diff|/max|x| per
output and exits 1 when any is > 1e-3.

Needs Debian's python3-torch, python3-onnx and python3-numpy (they import
only under /usr/bin/python3; bench/onnx/setup.sh installs them).
"""
import argparse
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_exporter():
    spec = importlib.util.spec_from_file_location("export_onnx", os.path.join(HERE, "export_onnx.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cfg")
    ap.add_argument("weights")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--malloc-default", action="store_true",
                    help="leave glibc malloc's defaults (see the module doc)")
    ap.add_argument("--check", action="store_true",
                    help="compare the outputs with `fogpipe forward` (max|diff|/max|x| <= 1e-3)")
    return ap.parse_args()


args = parse_args()
if args.threads < 1 or args.iters < 1 or args.warmup < 0:
    sys.exit("torch_time: --threads and --iters must be >= 1, --warmup >= 0")
# The BLAS and OpenMP pools read these when the libraries load, and
# torch.set_num_threads does not limit OpenBLAS: set them before importing torch.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
# torch's OpenMP workers spin-wait by default, and Debian's OpenBLAS runs its
# own pthreads: with both at T threads on T cores they fight (yolov1-tiny at
# 2 threads on 2 cores: ~300-600 ms spinning, ~75 ms passive). An explicit
# OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")



def keep_freed_memory():
    # PyTorch's CPU allocator does not cache: every layer output is a fresh
    # malloc, which glibc serves above 128 KiB (and then adaptively) with mmap
    # and gives back on free, so each run page-faults all its activations
    # again. Where page faults are dear (VMs) that dominates the time (5x on
    # tiny-face-detector in our Firecracker VM). fogpipe and ONNX Runtime keep
    # their buffers between runs; let glibc keep freed memory too.
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
                and libc.mallopt(M_TOP_PAD, 64 << 20))


if not args.malloc_default and not keep_freed_memory():
    print("torch_time: note: mallopt failed, glibc malloc defaults kept", file=sys.stderr)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ex = load_exporter()


def act_fn(act):
    if act == "linear":
        return None
    if act == "leaky":
        return lambda x: F.leaky_relu(x, 0.1)
    if act == "relu":
        return F.relu
    if act == "logistic":
        return torch.sigmoid
    sys.exit(f"torch_time: activation {act} not supported")


def t32(a):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))


class Conv(torch.nn.Module):
    def __init__(self, W, b, stride, pad, groups, act):
        super().__init__()
        n, cin, size, _ = W.shape
        self.conv = torch.nn.Conv2d(cin * groups, n, size, stride=stride, padding=pad, groups=groups)
        with torch.no_grad():
            self.conv.weight.copy_(t32(W))
            self.conv.bias.copy_(t32(b))
        self.act = act_fn(act)

    def forward(self, x):
        y = self.conv(x)
        return self.act(y) if self.act else y


class Connected(torch.nn.Module):
    def __init__(self, W, b, act):
        super().__init__()
        n, inputs = W.shape
        self.fc = torch.nn.Linear(inputs, n)
        with torch.no_grad():
            self.fc.weight.copy_(t32(W))
            self.fc.bias.copy_(t32(b))
        self.act = act_fn(act)
        self.n = n

    def forward(self, x):
        y = self.fc(torch.flatten(x, 1))
        if self.act:
            y = self.act(y)
        return y.reshape(1, self.n, 1, 1)


class MaxPool(torch.nn.Module):
    # darknet's padding: size-1 in total by default, the extra one at the end;
    # padded cells never win (-inf), as in ONNX MaxPool
    def __init__(self, size, stride, padding):
        super().__init__()
        b, e = padding // 2, padding - padding // 2
        self.pads = (b, e, b, e)
        self.size, self.stride = size, stride

    def forward(self, x):
        if any(self.pads):
            x = F.pad(x, self.pads, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Upsample(torch.nn.Module):
    def __init__(self, s, scale):
        super().__init__()
        self.s, self.scale = s, scale

    def forward(self, x):
        y = F.interpolate(x, scale_factor=self.s, mode="nearest")
        return y * self.scale if self.scale != 1 else y


class Head(torch.nn.Module):
    # [yolo] / [region]: per anchor, logistic on x, y (and objectness, and the
    # classes for [yolo]); [region] softmax=1: softmax over the classes
    def __init__(self, na, parts, ops, cc, ch, cw):
        super().__init__()
        self.na, self.parts, self.ops = na, parts, ops
        self.shape5, self.shape4 = (1, na, sum(parts), ch, cw), (1, cc, ch, cw)

    def forward(self, x):
        r = x.reshape(self.shape5)
        outs = []
        for p, op in zip(torch.split(r, self.parts, dim=2), self.ops):
            if op == "Sigmoid":
                p = torch.sigmoid(p)
            elif op == "Softmax":
                p = torch.softmax(p, dim=2)
            outs.append(p)
        return torch.cat(outs, dim=2).reshape(self.shape4)


class Net(torch.nn.Module):
    """Layer list as export_onnx.py builds it; kinds: 'mod' (apply module to
    the previous output), 'route', 'shortcut', 'identity'."""

    def __init__(self, cfg_path, w_path):
        super().__init__()
        secs = ex.parse_cfg(cfg_path)
        net = secs[0][1]
        c, h, w = int(net.get("channels", 3)), int(net["height"]), int(net["width"])
        self.in_shape = (1, c, h, w)
        wts = ex.Weights(w_path)
        self.mods = torch.nn.ModuleList()
        self.plan = []   # (kind, module index or layer indices, activation)
        shapes, heads = [], []
        cc, ch, cw = c, h, w

        def add(m):
            self.mods.append(m)
            return len(self.mods) - 1

        for i, (kind, o) in enumerate(secs[1:]):
            if kind in ("convolutional", "conv"):
                n, size, stride, groups, pad, W, bias = ex.conv_params(o, cc, wts)
                self.plan.append(("mod", add(Conv(W, bias, stride, pad, groups,
                                                  o.get("activation", "logistic"))), None))
                cc, ch, cw = n, (ch + 2 * pad - size) // stride + 1, (cw + 2 * pad - size) // stride + 1
            elif kind == "connected":
                n, W, bias = ex.connected_params(o, cc * ch * cw, wts)
                self.plan.append(("mod", add(Connected(W, bias, o.get("activation", "logistic"))), None))
                cc, ch, cw = n, 1, 1
            elif kind in ("maxpool", "max"):
                size = int(o.get("size", 1))
                stride = int(o.get("stride", 1))
                padding = int(o.get("padding", size - 1))
                self.plan.append(("mod", add(MaxPool(size, stride, padding)), None))
                ch, cw = (ch + padding - size) // stride + 1, (cw + padding - size) // stride + 1
            elif kind == "route":
                idx = [int(x) for x in o["layers"].split(",")]
                idx = [i + x if x < 0 else x for x in idx]
                self.plan.append(("route", idx, None))
                cc = sum(shapes[j][0] for j in idx)
                ch, cw = shapes[idx[0]][1], shapes[idx[0]][2]
            elif kind == "upsample":
                s = int(o.get("stride", 2))
                if s < 0:
                    sys.exit("torch_time: downsampling [upsample] not supported")
                self.plan.append(("mod", add(Upsample(s, float(o.get("scale", 1)))), None))
                ch, cw = ch * s, cw * s
            elif kind == "shortcut":
                j = int(o["from"])
                j = i + j if j < 0 else j
                self.plan.append(("shortcut", j, act_fn(o.get("activation", "linear"))))
            elif kind in ("yolo", "region"):
                classes = int(o.get("classes", 20))
                if kind == "yolo":
                    na = len(o["mask"].split(",")) if "mask" in o else int(o.get("num", 1))
                    parts, ops = [2, 2, 1 + classes], ["Sigmoid", None, "Sigmoid"]
                else:
                    na = int(o.get("num", 1))
                    if int(o.get("coords", 4)) != 4 or int(o.get("background", 0)):
                        sys.exit("torch_time: [region] needs coords=4, background=0")
                    parts = [2, 2, 1, classes]
                    ops = ["Sigmoid", None, "Sigmoid", "Softmax" if int(o.get("softmax", 0)) else "Sigmoid"]
                if na * sum(parts) != cc:
                    sys.exit(f"torch_time: layer {i}: {cc} channels != {na} x {sum(parts)}")
                self.plan.append(("mod", add(Head(na, parts, ops, cc, ch, cw)), None))
                heads.append(i)
            elif kind == "detection":
                if int(o.get("softmax", 0)):
                    sys.exit("torch_time: [detection] with softmax=1 not supported")
                self.plan.append(("identity", None, None))
                heads.append(i)
            else:
                sys.exit(f"torch_time: layer type [{kind}] not supported")
            shapes.append((cc, ch, cw))
        if wts.pos != wts.buf.size:
            print(f"torch_time: note: {wts.buf.size - wts.pos} weights left unread", file=sys.stderr)
        self.outs = heads or [len(shapes) - 1]
        self.shapes = shapes
        # keep a layer's output only while a later route / shortcut needs it
        need = set(self.outs)
        for kind, arg, _ in self.plan:
            if kind == "route":
                need.update(arg)
            elif kind == "shortcut":
                need.add(arg)
        self.keep = need

    def forward(self, x):
        saved = {}
        for i, (kind, arg, act) in enumerate(self.plan):
            if kind == "mod":
                x = self.mods[arg](x)
            elif kind == "route":
                x = saved[arg[0]] if len(arg) == 1 else torch.cat([saved[j] for j in arg], dim=1)
            elif kind == "shortcut":
                x = x + saved[arg]
                if act:
                    x = act(x)
            if i in self.keep:
                saved[i] = x
        return [saved[j] for j in self.outs]


def check(model, x, cfg, weights):
    import subprocess
    import tempfile
    fp = os.path.join(ROOT, os.environ.get("FP_BUILD", "build"), "fogpipe")
    with tempfile.TemporaryDirectory() as d:
        x.numpy().astype("<f4").tofile(f"{d}/in.f32")
        os.mkdir(f"{d}/layers")
        try:
            r = subprocess.run([fp, "forward", "--cfg", cfg, "--weights", weights, "--input-raw",
                                f"{d}/in.f32", "-o", f"{d}/out.f32", "--dump-layers", f"{d}/layers"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        except OSError as e:
            print(f"torch_time: check: cannot run {fp}: {e}", file=sys.stderr)
            return False
        if r.returncode != 0:
            print(f"torch_time: check: {fp} forward failed: {r.stderr.strip()}", file=sys.stderr)
            return False
        with torch.inference_mode():
            outs = model(x)
        name = os.path.basename(cfg).rsplit(".", 1)[0]
        ok = True
        for j, t in zip(model.outs, outs):
            ref = np.fromfile(f"{d}/layers/layer_{j:03d}.f32", dtype="<f4")
            got = t.numpy().reshape(-1)
            shape = "x".join(map(str, model.shapes[j]))
            if ref.size != got.size:
                print(f"torch check {name}: layer {j}: size {got.size} != fogpipe {ref.size}: FAIL")
                ok = False
                continue
            rel = float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
            good = rel <= 1e-3
            ok &= good
            print(f"torch check {name}: layer {j} ({shape}): max|diff|/max|x| = {rel:.2e} "
                  f"{'ok' if good else 'FAIL'}")
        return ok


def main():
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    model = Net(args.cfg, args.weights).eval()
    x = torch.from_numpy(np.random.default_rng(7).random(model.in_shape, dtype=np.float32))
    ok = True
    if args.check:
        ok = check(model, x, args.cfg, args.weights)
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x)
        t = []
        for _ in range(args.iters):
            t0 = time.perf_counter_ns()
            model(x)
            t.append((time.perf_counter_ns() - t0) / 1e6)
    t.sort()
    n = len(t)
    med = t[(n - 1) // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2
    print(f"median_ms={med:.3f} threads={torch.get_num_threads()} iters={args.iters}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
