#!/usr/bin/python3
"""Export a darknet .cfg + .weights to an equivalent ONNX model (bench only).

    /usr/bin/python3 bench/onnx/export_onnx.py CFG WEIGHTS OUT.onnx

Needs Debian's python3-onnx and python3-numpy (they import only under
/usr/bin/python3; bench/onnx/setup.sh installs them). Supports the layers of
the benchmark models: [convolutional] (batch norm folded into weights and bias
exactly as darknet computes it: (x - mean) / (sqrt(var) + 1e-6) * scale +
bias), [connected], [maxpool] (darknet's padding: size-1 in total, the extra
one at the end), [route], [upsample], [shortcut], and the heads: [yolo]
(logistic on x, y, objectness and classes), [region] (logistic on x, y,
objectness; softmax over classes when softmax=1, else logistic) and
[detection] (identity, softmax=0 only), so every engine runs the same whole
network. Graph outputs: every head's output (or the last layer when there is
no head), named out_<layer index>, in darknet's layout (C, H, W).
Prints one line per output: "output out_N layer N shape C H W".
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def parse_cfg(path):
    sections = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split(";", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                sections.append((line.strip("[]").strip(), {}))
            elif "=" in line and sections:
                k, v = line.split("=", 1)
                sections[-1][1][k.strip()] = v.strip()
    return sections


class Weights:
    def __init__(self, path):
        data = open(path, "rb").read()
        major, minor, _rev = np.frombuffer(data[:12], dtype="<i4")
        seen = 8 if (major * 10 + minor >= 2 and major < 1000 and minor < 1000) else 4
        self.transpose = major > 1000 or minor > 1000
        self.buf = np.frombuffer(data[12 + seen:], dtype="<f4")
        self.pos = 0

    def take(self, n):
        if self.pos + n > self.buf.size:
            sys.exit("export_onnx: weights file too short")
        a = self.buf[self.pos:self.pos + n].astype(np.float64)
        self.pos += n
        return a


def fold_bn(W, bias, scale, mean, var):
    """Batch norm folded into weights and bias as darknet computes it:
    (x - mean) / (sqrt(var) + 1e-6) * scale + bias."""
    k = scale / (np.sqrt(var.astype(np.float32)).astype(np.float64) + 1e-6)
    return W * k.reshape((-1,) + (1,) * (W.ndim - 1)), bias - mean * k


def conv_params(o, cc, wts):
    """A [convolutional] section's geometry and its weights (batch norm
    folded) for cc input channels: n, size, stride, groups, pad, W, bias."""
    n = int(o.get("filters", 1))
    size = int(o.get("size", 1))
    stride = int(o.get("stride", 1))
    groups = int(o.get("groups", 1))
    pad = size // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
    bn = int(o.get("batch_normalize", 0))
    bias = wts.take(n)
    if bn:
        scale, mean, var = wts.take(n), wts.take(n), wts.take(n)
    W = wts.take(n * (cc // groups) * size * size).reshape(n, cc // groups, size, size)
    if bn:
        W, bias = fold_bn(W, bias, scale, mean, var)
    return n, size, stride, groups, pad, W, bias


def connected_params(o, inputs, wts):
    """A [connected] section's outputs and weights (n x inputs, batch norm
    folded, darknet's transposed files undone): n, W, bias."""
    n = int(o.get("output", 1))
    bn = int(o.get("batch_normalize", 0))
    bias = wts.take(n)
    W = wts.take(n * inputs)
    W = W.reshape(inputs, n).T if wts.transpose else W.reshape(n, inputs)
    if bn:
        scale, mean, var = wts.take(n), wts.take(n), wts.take(n)
        W, bias = fold_bn(W, bias, scale, mean, var)
    return n, W, bias


def act_node(nodes, act, x, name):
    if act == "linear":
        return x
    if act == "leaky":
        nodes.append(helper.make_node("LeakyRelu", [x], [name], alpha=0.1))
    elif act == "relu":
        nodes.append(helper.make_node("Relu", [x], [name]))
    elif act == "logistic":
        nodes.append(helper.make_node("Sigmoid", [x], [name]))
    else:
        sys.exit(f"export_onnx: activation {act} not supported")
    return name


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    cfg_path, w_path, out_path = sys.argv[1:]
    secs = parse_cfg(cfg_path)
    net = secs[0][1]
    c, h, w = int(net.get("channels", 3)), int(net["height"]), int(net["width"])
    wts = Weights(w_path)
    nodes, inits = [], []
    shapes = []  # per layer (C, H, W)
    names = []   # per layer output tensor name
    heads = []
    cur, cc, ch, cw = "input", c, h, w

    def const(name, arr, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=dtype), name))
        return name

    for i, (kind, o) in enumerate(secs[1:]):
        L = f"l{i}"
        if kind in ("convolutional", "conv"):
            n, size, stride, groups, pad, W, bias = conv_params(o, cc, wts)
            nodes.append(helper.make_node(
                "Conv", [cur, const(L + "_w", W), const(L + "_b", bias)], [L + "_conv"],
                kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4, group=groups))
            cur = act_node(nodes, o.get("activation", "logistic"), L + "_conv", L)
            cc, ch, cw = n, (ch + 2 * pad - size) // stride + 1, (cw + 2 * pad - size) // stride + 1
        elif kind == "connected":
            n, W, bias = connected_params(o, cc * ch * cw, wts)
            nodes.append(helper.make_node("Flatten", [cur], [L + "_flat"], axis=1))
            nodes.append(helper.make_node(
                "Gemm", [L + "_flat", const(L + "_w", W), const(L + "_b", bias)], [L + "_fc"], transB=1))
            y = act_node(nodes, o.get("activation", "logistic"), L + "_fc", L + "_act")
            nodes.append(helper.make_node("Reshape", [y, const(L + "_shape", [1, n, 1, 1], np.int64)], [L]))
            cur, cc, ch, cw = L, n, 1, 1
        elif kind in ("maxpool", "max"):
            size = int(o.get("size", 1))
            stride = int(o.get("stride", 1))
            padding = int(o.get("padding", size - 1))
            b, e = padding // 2, padding - padding // 2
            nodes.append(helper.make_node("MaxPool", [cur], [L], kernel_shape=[size, size],
                                          strides=[stride, stride], pads=[b, b, e, e]))
            cur = L
            ch, cw = (ch + padding - size) // stride + 1, (cw + padding - size) // stride + 1
        elif kind == "route":
            idx = [int(x) for x in o["layers"].split(",")]
            idx = [i + x if x < 0 else x for x in idx]
            if len(idx) == 1:
                cur = names[idx[0]]
            else:
                nodes.append(helper.make_node("Concat", [names[j] for j in idx], [L], axis=1))
                cur = L
            cc = sum(shapes[j][0] for j in idx)
            ch, cw = shapes[idx[0]][1], shapes[idx[0]][2]
        elif kind == "upsample":
            s = int(o.get("stride", 2))
            if s < 0:
                sys.exit("export_onnx: downsampling [upsample] not supported")
            nodes.append(helper.make_node(
                "Resize", [cur, "", const(L + "_scales", [1, 1, s, s])], [L + "_up"], mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
            cur = L + "_up"
            if float(o.get("scale", 1)) != 1:
                nodes.append(helper.make_node("Mul", [cur, const(L + "_k", float(o["scale"]))], [L]))
                cur = L
            ch, cw = ch * s, cw * s
        elif kind == "shortcut":
            j = int(o["from"])
            j = i + j if j < 0 else j
            nodes.append(helper.make_node("Add", [cur, names[j]], [L + "_add"]))
            cur = act_node(nodes, o.get("activation", "linear"), L + "_add", L)
        elif kind in ("yolo", "region"):
            classes = int(o.get("classes", 20))
            if kind == "yolo":
                na = len(o["mask"].split(",")) if "mask" in o else int(o.get("num", 1))
                parts = [2, 2, 1 + classes]
                ops = ["Sigmoid", None, "Sigmoid"]
            else:
                na = int(o.get("num", 1))
                if int(o.get("coords", 4)) != 4 or int(o.get("background", 0)):
                    sys.exit("export_onnx: [region] needs coords=4, background=0")
                parts = [2, 2, 1, classes]
                ops = ["Sigmoid", None, "Sigmoid", "Softmax" if int(o.get("softmax", 0)) else "Sigmoid"]
            if na * sum(parts) != cc:
                sys.exit(f"export_onnx: layer {i}: {cc} channels != {na} x {sum(parts)}")
            nodes.append(helper.make_node(
                "Reshape", [cur, const(L + "_s5", [1, na, sum(parts), ch, cw], np.int64)], [L + "_r"]))
            pieces = [f"{L}_p{k}" for k in range(len(parts))]
            nodes.append(helper.make_node("Split", [L + "_r", const(L + "_split", parts, np.int64)],
                                          pieces, axis=2))
            outs = []
            for p, op in zip(pieces, ops):
                if op is None:
                    outs.append(p)
                else:
                    kw = {"axis": 2} if op == "Softmax" else {}
                    nodes.append(helper.make_node(op, [p], [p + "_a"], **kw))
                    outs.append(p + "_a")
            nodes.append(helper.make_node("Concat", outs, [L + "_c"], axis=2))
            nodes.append(helper.make_node(
                "Reshape", [L + "_c", const(L + "_s4", [1, cc, ch, cw], np.int64)], [L]))
            cur = L
            heads.append(i)
        elif kind == "detection":
            if int(o.get("softmax", 0)):
                sys.exit("export_onnx: [detection] with softmax=1 not supported")
            nodes.append(helper.make_node("Identity", [cur], [L]))
            cur = L
            heads.append(i)
        else:
            sys.exit(f"export_onnx: layer type [{kind}] not supported")
        names.append(cur)
        shapes.append((cc, ch, cw))
    if wts.pos != wts.buf.size:
        print(f"export_onnx: note: {wts.buf.size - wts.pos} weights left unread", file=sys.stderr)
    outs = heads or [len(names) - 1]
    for j in outs:
        nodes.append(helper.make_node("Identity", [names[j]], [f"out_{j}"]))
    graph = helper.make_graph(
        nodes, "darknet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info(f"out_{j}", TensorProto.FLOAT, [1, *shapes[j]]) for j in outs],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="fogpipe-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out_path)
    for j in outs:
        print(f"output out_{j} layer {j} shape {' '.join(map(str, shapes[j]))}")


if __name__ == "__main__":
    main()
