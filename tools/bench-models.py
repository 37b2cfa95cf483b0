#!/usr/bin/env python3
"""Writes the benchmark models for tools/compare (deterministic: every run writes identical files).

    tools/bench-models.py OUT_DIR [--light-dir DIR] [NAME]...     (default: every model)

Each model goes to OUT_DIR/<name>/ as model.onnx plus input_N.npy (seeded random inputs, one file per
graph input, in input order) and inputs.txt (the input names, one a line, in the same order):

    gemm-1024       MatMul [1024, 1024] @ constant [1024, 1024] (2.1 GFLOP)
    gemm-2048       MatMul [2048, 2048] @ constant [2048, 2048] (17.2 GFLOP)
    gemm-4096       MatMul [4096, 4096] @ constant [4096, 4096] (137 GFLOP; only when named: GPUs)
    squeezenet      the ONNX light model-zoo SqueezeNet 1.0 (opset 9), random weights
    resnet50        the ONNX light model-zoo ResNet-50 (opset 9), random weights
    bert-encoder    BERT-style encoder, opset 17: token ids [1, 128] -> Gather embeddings + positions,
                    4 post-norm layers (hidden 256, 4 heads of 64, FFN 1024): Q/K/V MatMul, heads via
                    Reshape/Transpose, scaled MatMul attention, Softmax, output projection, residual,
                    LayerNormalization, GELU (Erf form) MLP, residual, LayerNormalization
    mobilenet-v2    MobileNetV2-style block stack, opset 13, input [1, 3, 224, 224]: stem 3x3/2 conv,
                    17 inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project, ReLU6 as Clip,
                    residual Add where shapes allow), 1x1 conv to 1280, GlobalAveragePool, Gemm 1000

The light zoo graphs (shipped in the onnx pip package; tools/locate-light-models prints the folder)
carry their large weights as ConstantOfShape nodes filled with 0.02; these are replaced by seeded random
initializers (He-scaled for Conv/Gemm weights, positive variances for BatchNormalization, small scales
where a BatchNormalization ends a residual branch), and the
initializers are taken off the graph inputs so that every engine may treat them as constants.

Needs: pip install onnx numpy.
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODELS = ["gemm-1024", "gemm-2048", "squeezenet", "resnet50", "bert-encoder", "mobilenet-v2"]
# Written only when named (tools/gpu-kit): too large a GEMM for these 2-core machines.
EXTRA_MODELS = ["gemm-4096"]


# ----------------------------------------------------------------------------- graph building


class Builder:
    """Collects nodes and initializers; every node gets its output's name."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.initializers = []

    def const(self, name, array, dtype=np.float32):
        self.initializers.append(numpy_helper.from_array(np.asarray(array).astype(dtype), name))
        return name

    def weight(self, name, shape, scale):
        return self.const(name, self.rng.normal(0.0, scale, shape))

    def op(self, op_type, inputs, name, **attributes):
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name

    def model(self, name, inputs, outputs, opset):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name="kiln tools/bench-models.py",
                                  opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def gemm(rng, n):
    b = Builder(rng)
    b.op("MatMul", ["a", b.weight("b", (n, n), 1.0 / np.sqrt(n))], "y")
    f32 = TensorProto.FLOAT
    model = b.model(f"gemm_{n}", [helper.make_tensor_value_info("a", f32, [n, n])],
                    [helper.make_tensor_value_info("y", f32, [n, n])], opset=13)
    return model, [rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)]


def bert_encoder(rng, layers=4, hidden=256, heads=4, seq=128, ffn=1024, vocab=1000):
    head_dim = hidden // heads
    b = Builder(rng)
    x = b.op("Gather", [b.weight("embedding", (vocab, hidden), 1.0), "token_ids"], "embed", axis=0)
    x = b.op("Add", [x, b.weight("positions", (seq, hidden), 0.5)], "embed_pos")
    scale = b.const("attention_scale", np.array(1.0 / np.sqrt(head_dim)))
    sqrt2 = b.const("sqrt2", np.array(np.sqrt(2.0)))
    one = b.const("one", np.array(1.0))
    half = b.const("half", np.array(0.5))
    heads_shape = b.const("heads_shape", [1, seq, heads, head_dim], np.int64)
    merged_shape = b.const("merged_shape", [1, seq, hidden], np.int64)

    def layer_norm(x, prefix):
        gamma = b.const(f"{prefix}.gamma", rng.uniform(0.8, 1.2, hidden))
        beta = b.const(f"{prefix}.beta", rng.normal(0, 0.1, hidden))
        return b.op("LayerNormalization", [x, gamma, beta], prefix, axis=-1, epsilon=1e-5)

    def linear(x, prefix, fan_in, fan_out):
        w = b.weight(f"{prefix}.weight", (fan_in, fan_out), 1.0 / np.sqrt(fan_in))
        bias = b.weight(f"{prefix}.bias", (fan_out,), 0.02)
        return b.op("Add", [b.op("MatMul", [x, w], f"{prefix}.matmul"), bias], prefix)

    x = layer_norm(x, "embed_ln")
    for layer in range(layers):
        p = f"layer{layer}"
        q = linear(x, f"{p}.q", hidden, hidden)
        k = linear(x, f"{p}.k", hidden, hidden)
        v = linear(x, f"{p}.v", hidden, hidden)
        q = b.op("Transpose", [b.op("Reshape", [q, heads_shape], f"{p}.q_heads")], f"{p}.q_t", perm=[0, 2, 1, 3])
        k = b.op("Transpose", [b.op("Reshape", [k, heads_shape], f"{p}.k_heads")], f"{p}.k_t", perm=[0, 2, 3, 1])
        v = b.op("Transpose", [b.op("Reshape", [v, heads_shape], f"{p}.v_heads")], f"{p}.v_t", perm=[0, 2, 1, 3])
        scores = b.op("Mul", [b.op("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scores")
        probs = b.op("Softmax", [scores], f"{p}.probs", axis=-1)
        context = b.op("Transpose", [b.op("MatMul", [probs, v], f"{p}.context")], f"{p}.context_t",
                       perm=[0, 2, 1, 3])
        context = b.op("Reshape", [context, merged_shape], f"{p}.merged")
        x = layer_norm(b.op("Add", [x, linear(context, f"{p}.out", hidden, hidden)], f"{p}.residual1"),
                       f"{p}.ln1")
        h = linear(x, f"{p}.fc1", hidden, ffn)
        erf = b.op("Erf", [b.op("Div", [h, sqrt2], f"{p}.gelu_scaled")], f"{p}.gelu_erf")
        gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [erf, one], f"{p}.gelu_1p")], f"{p}.gelu_x"), half],
                    f"{p}.gelu")
        x = layer_norm(b.op("Add", [x, linear(gelu, f"{p}.fc2", ffn, hidden)], f"{p}.residual2"), f"{p}.ln2")

    b.nodes[-1].output[0] = "hidden_states"
    model = b.model("bert_encoder", [helper.make_tensor_value_info("token_ids", TensorProto.INT64, [1, seq])],
                    [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, [1, seq, hidden])],
                    opset=17)
    return model, [rng.integers(0, vocab, (1, seq)).astype(np.int64)]


def mobilenet_v2(rng, size=224):
    b = Builder(rng)
    zero = b.const("relu6_min", np.array(0.0))
    six = b.const("relu6_max", np.array(6.0))

    def conv(x, name, c_in, c_out, kernel, stride=1, group=1, relu6=True):
        fan_in = (c_in // group) * kernel * kernel
        w = b.weight(f"{name}.weight", (c_out, c_in // group, kernel, kernel), np.sqrt(2.0 / fan_in))
        bias = b.weight(f"{name}.bias", (c_out,), 0.05)
        pad = kernel // 2
        y = b.op("Conv", [x, w, bias], name, kernel_shape=[kernel, kernel], strides=[stride, stride],
                 pads=[pad, pad, pad, pad], group=group)
        return b.op("Clip", [y, zero, six], f"{name}.relu6") if relu6 else y

    x = conv("image", "stem", 3, 32, 3, stride=2)
    channels = 32
    index = 0
    # (expansion t, output channels c, repeats n, first stride s), as in MobileNetV2.
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for repeat in range(n):
            stride = s if repeat == 0 else 1
            p = f"block{index}"
            hidden = channels * t
            h = conv(x, f"{p}.expand", channels, hidden, 1) if t != 1 else x
            h = conv(h, f"{p}.depthwise", hidden, hidden, 3, stride=stride, group=hidden)
            h = conv(h, f"{p}.project", hidden, c, 1, relu6=False)
            x = b.op("Add", [x, h], f"{p}.residual") if stride == 1 and channels == c else h
            channels = c
            index += 1
    x = conv(x, "head", channels, 1280, 1)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x], "pool")], "flatten", axis=1)
    b.op("Gemm", [x, b.weight("classifier.weight", (1000, 1280), np.sqrt(1.0 / 1280)),
                  b.weight("classifier.bias", (1000,), 0.01)], "logits", transB=1)
    f32 = TensorProto.FLOAT
    model = b.model("mobilenet_v2", [helper.make_tensor_value_info("image", f32, [1, 3, size, size])],
                    [helper.make_tensor_value_info("logits", f32, [1, 1000])], opset=13)
    return model, [rng.uniform(-1.0, 1.0, (1, 3, size, size)).astype(np.float32)]


# ----------------------------------------------------------------------------- light zoo graphs


def light_model(rng, light_dir, zoo_name):
    """A light zoo graph with its ConstantOfShape weights replaced by seeded random initializers."""
    path = os.path.join(light_dir, f"light_{zoo_name}.onnx")
    if not os.path.exists(path):
        raise SystemExit(f"bench-models: {path} is missing (tools/locate-light-models prints the folder)")
    model = onnx.load(path)
    graph = model.graph
    uses = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            uses.setdefault(name, []).append((node, position))
    initializers = {t.name: t for t in graph.initializer}

    kept_nodes = []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in initializers:
            kept_nodes.append(node)
            continue
        shape = tuple(int(d) for d in numpy_helper.to_array(initializers[node.input[0]]))
        consumers = uses.get(node.output[0], [])
        op, position = (consumers[0][0].op_type, consumers[0][1]) if consumers else ("", -1)
        if op in ("Conv", "Gemm") and position == 1:
            fan_in = int(np.prod(shape[1:])) if op == "Conv" else shape[-1]
            values = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif op == "BatchNormalization" and position == 1:  # scale
            # A branch that ends in a residual Sum/Add starts small (as in "zero-init residual"
            # training), so activations do not grow block by block and the Softmax stays unsaturated.
            bn_output = consumers[0][0].output[0]
            residual = any(user.op_type in ("Sum", "Add") for user, _ in uses.get(bn_output, []))
            values = rng.uniform(0.3, 0.4, shape) if residual else rng.uniform(0.8, 1.2, shape)
        elif op == "BatchNormalization" and position == 4:  # variance
            values = rng.uniform(0.5, 1.5, shape)
        else:  # biases, BatchNormalization bias and mean
            values = rng.normal(0.0, 0.05, shape)
        graph.initializer.append(numpy_helper.from_array(values.astype(np.float32), node.output[0]))
    del graph.node[:]
    graph.node.extend(kept_nodes)

    # Shape initializers nothing reads any more go; initializers leave the graph inputs.
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    live = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)
    constant = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constant and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 4)
    onnx.checker.check_model(model)

    feeds = []
    for value in graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds.append(rng.uniform(-1.0, 1.0, shape).astype(np.float32))
    return model, feeds


# ----------------------------------------------------------------------------- main


def build(name, light_dir):
    if name not in MODELS + EXTRA_MODELS:
        raise SystemExit(f"bench-models: unknown model '{name}' (known: {', '.join(MODELS + EXTRA_MODELS)})")
    seed = 1000 + (MODELS + EXTRA_MODELS).index(name)
    rng = np.random.default_rng(seed)
    if name == "gemm-1024":
        return gemm(rng, 1024)
    if name == "gemm-2048":
        return gemm(rng, 2048)
    if name == "gemm-4096":
        return gemm(rng, 4096)
    if name == "squeezenet":
        return light_model(rng, light_dir, "squeezenet")
    if name == "resnet50":
        return light_model(rng, light_dir, "resnet50")
    if name == "bert-encoder":
        return bert_encoder(rng)
    if name == "mobilenet-v2":
        return mobilenet_v2(rng)
    raise SystemExit(f"bench-models: no builder for '{name}'")


def default_light_dir():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def main(argv):
    parser = argparse.ArgumentParser(description="Writes the benchmark models for tools/compare.")
    parser.add_argument("out_dir")
    parser.add_argument("--light-dir", default=None,
                        help="folder of the light zoo graphs (default: the installed onnx package's)")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"models (default: all of {', '.join(MODELS)})")
    args = parser.parse_args(argv)
    light_dir = args.light_dir or default_light_dir()
    for name in args.names or MODELS:
        model, feeds = build(name, light_dir)
        folder = os.path.join(args.out_dir, name)
        os.makedirs(folder, exist_ok=True)
        onnx.save(model, os.path.join(folder, "model.onnx"))
        for index, feed in enumerate(feeds):
            np.save(os.path.join(folder, f"input_{index}.npy"), feed)
        with open(os.path.join(folder, "inputs.txt"), "w") as names:
            names.write("".join(value.name + "\n" for value in model.graph.input))
        print(f"bench-models: wrote {folder}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
