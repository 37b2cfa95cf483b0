#!/usr/bin/env python3
"""Builds the test fixtures under Tests/Fixtures (deterministic: every run writes identical files).

    tools/make-fixtures.py [models] [npy] [pb]      (default: all three)

models: seeded ONNX models (opset 17), each in Tests/Fixtures/<name>/ with model.onnx, input_N.npy
        and output_N.npy computed by ONNX Runtime (CPU execution provider, graph optimisations off):
        - transformer-encoder: int64 token ids [2, 16] -> Gather embeddings + positions, 2 layers of
          LayerNorm, Q/K/V MatMul, heads (4 x 32) via Reshape/Transpose, scaled batched-MatMul
          attention, Softmax, output projection, residual, LayerNorm, GELU MLP (Erf form), residual.
        - causal-decoder: the same at batch 1, sequence 7 (a prime), with a causal mask (Where in
          layer 0, Add of a large negative in layer 1) and a tied-embedding LM head -> logits.
        - single-op models with odd shapes (MatMul 3x37x53 @ 53x29, strided Conv over 7 channels,
          depthwise Conv, Gemm, pools, Softmax on a middle axis, reductions, broadcasting, ...).
npy:    small .npy files written by numpy (byte orders, Fortran order, versions 1-3) for NPY tests.
pb:     small TensorProto files written by onnx's helpers for the .pb reader tests.

Needs: pip install onnx onnxruntime numpy.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
OPSET = 17


# ----------------------------------------------------------------------------- graph building


class Builder:
    """Collects nodes and initializers with unique names."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.initializers = []
        self.counter = 0

    def const(self, name, array, dtype=np.float32):
        self.initializers.append(numpy_helper.from_array(np.asarray(array).astype(dtype), name))
        return name

    def weight(self, name, shape, scale):
        return self.const(name, self.rng.normal(0.0, scale, shape))

    def op(self, op_type, inputs, name, **attributes):
        self.counter += 1
        output = f"{name}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output

    def model(self, name, inputs, outputs):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name="kiln tools/make-fixtures.py",
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def transformer(rng, name, batch, seq, causal):
    vocab, heads, head_dim, hidden = 50, 4, 32, 128
    d = heads * head_dim
    b = Builder(rng)
    embed = b.weight("embedding", (vocab, d), 1.0)
    pos = b.weight("positions", (seq, d), 0.5)
    x = b.op("Gather", [embed, "token_ids"], "embed", axis=0)
    x = b.op("Add", [x, pos], "embed_pos")
    scale = b.const("attention_scale", np.array(1.0 / np.sqrt(head_dim)))
    sqrt2 = b.const("sqrt2", np.array(np.sqrt(2.0)))
    one = b.const("one", np.array(1.0))
    half = b.const("half", np.array(0.5))
    # The encoder lets Reshape infer dimensions (0 copies, -1 infers); the decoder spells them out.
    heads_shape = b.const("heads_shape", [0, -1, heads, head_dim] if not causal else [batch, seq, heads, head_dim],
                          np.int64)
    merged_shape = b.const("merged_shape", [0, 0, d] if not causal else [batch, seq, d], np.int64)
    if causal:
        upper = np.triu(np.ones((seq, seq), dtype=bool), k=1)
        mask_bool = b.const("causal_mask", upper, np.bool_)
        mask_add = b.const("causal_bias", np.where(upper, -1e9, 0.0))
        neg = b.const("masked_score", np.array(-1e9))

    def layer_norm(x, prefix):
        gamma = b.const(f"{prefix}.gamma", rng.uniform(0.8, 1.2, d))
        beta = b.const(f"{prefix}.beta", rng.normal(0, 0.1, d))
        return b.op("LayerNormalization", [x, gamma, beta], f"{prefix}", axis=-1, epsilon=1e-5)

    def linear(x, prefix, fan_in, fan_out):
        w = b.weight(f"{prefix}.weight", (fan_in, fan_out), 1.0 / np.sqrt(fan_in))
        bias = b.weight(f"{prefix}.bias", (fan_out,), 0.02)
        return b.op("Add", [b.op("MatMul", [x, w], f"{prefix}.matmul"), bias], f"{prefix}")

    for layer in range(2):
        p = f"layer{layer}"
        h = layer_norm(x, f"{p}.ln1")
        q = linear(h, f"{p}.q", d, d)
        k = linear(h, f"{p}.k", d, d)
        v = linear(h, f"{p}.v", d, d)
        q = b.op("Transpose", [b.op("Reshape", [q, heads_shape], f"{p}.q_heads")], f"{p}.q_t", perm=[0, 2, 1, 3])
        k = b.op("Transpose", [b.op("Reshape", [k, heads_shape], f"{p}.k_heads")], f"{p}.k_t", perm=[0, 2, 3, 1])
        v = b.op("Transpose", [b.op("Reshape", [v, heads_shape], f"{p}.v_heads")], f"{p}.v_t", perm=[0, 2, 1, 3])
        scores = b.op("Mul", [b.op("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scores")
        if causal and layer == 0:
            scores = b.op("Where", [mask_bool, neg, scores], f"{p}.masked")
        elif causal:
            scores = b.op("Add", [scores, mask_add], f"{p}.masked")
        probs = b.op("Softmax", [scores], f"{p}.probs", axis=-1)
        context = b.op("Transpose", [b.op("MatMul", [probs, v], f"{p}.context")], f"{p}.context_t",
                       perm=[0, 2, 1, 3])
        context = b.op("Reshape", [context, merged_shape], f"{p}.merged")
        x = b.op("Add", [x, linear(context, f"{p}.out", d, d)], f"{p}.residual1")
        h = linear(layer_norm(x, f"{p}.ln2"), f"{p}.fc1", d, hidden)
        erf = b.op("Erf", [b.op("Div", [h, sqrt2], f"{p}.gelu_scaled")], f"{p}.gelu_erf")
        gelu_x = b.op("Mul", [h, b.op("Add", [erf, one], f"{p}.gelu_1p")], f"{p}.gelu_x")
        gelu = b.op("Mul", [gelu_x, half], f"{p}.gelu")
        x = b.op("Add", [x, linear(gelu, f"{p}.fc2", hidden, d)], f"{p}.residual2")

    x = layer_norm(x, "final_ln")
    inputs = [helper.make_tensor_value_info("token_ids", TensorProto.INT64, [batch, seq])]
    if causal:
        head = b.op("Transpose", [embed], "lm_head", perm=[1, 0])
        b.op("MatMul", [x, head], "logits")
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, seq, vocab])]
    else:
        b.nodes[-1].output[0] = "hidden_states"
        outputs = [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, [batch, seq, d])]
    model = b.model(name.replace("-", "_"), inputs, outputs)
    feeds = [rng.integers(0, vocab, (batch, seq)).astype(np.int64)]
    return model, feeds


def single_op_models(rng):
    """Small models with awkward shapes: (name, model, inputs)."""
    f32 = TensorProto.FLOAT
    info = helper.make_tensor_value_info
    models = []

    def add(name, build, inputs, outputs, feeds):
        b = Builder(rng)
        build(b)
        models.append((name, b.model(name.replace("-", "_"), inputs, outputs),
                       [np.asarray(f) for f in feeds]))

    add("matmul-batched-odd",
        lambda b: b.op("MatMul", ["a", "b"], "y"),
        [info("a", f32, [3, 37, 53]), info("b", f32, [53, 29])], [info("y", f32, [3, 37, 29])],
        [rng.standard_normal((3, 37, 53)).astype(np.float32), rng.standard_normal((53, 29)).astype(np.float32)])

    add("conv-strided-odd",
        lambda b: b.op("Conv", ["x", b.weight("w", (5, 7, 3, 3), 0.3), b.weight("bias", (5,), 0.1)], "y",
                       kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], group=1),
        [info("x", f32, [1, 7, 13, 11])], [info("y", f32, [1, 5, 7, 6])],
        [rng.standard_normal((1, 7, 13, 11)).astype(np.float32)])

    add("conv-depthwise",
        lambda b: b.op("Conv", ["x", b.weight("w", (6, 1, 3, 3), 0.5), b.weight("bias", (6,), 0.1)], "y",
                       kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=6),
        [info("x", f32, [2, 6, 15, 9])], [info("y", f32, [2, 6, 15, 9])],
        [rng.standard_normal((2, 6, 15, 9)).astype(np.float32)])

    add("conv-dilated-asymmetric",
        lambda b: b.op("Conv", ["x", b.weight("w", (4, 3, 3, 2), 0.4)], "y",
                       kernel_shape=[3, 2], pads=[2, 0, 1, 1], dilations=[2, 1], strides=[1, 3]),
        [info("x", f32, [1, 3, 10, 17])], [info("y", f32, [1, 4, 9, 6])],
        [rng.standard_normal((1, 3, 10, 17)).astype(np.float32)])

    add("gemm-transb",
        lambda b: b.op("Gemm", ["a", b.weight("w", (29, 37), 0.2), b.weight("c", (29,), 0.5)], "y",
                       transB=1, alpha=0.5, beta=2.0),
        [info("a", f32, [5, 37])], [info("y", f32, [5, 29])],
        [rng.standard_normal((5, 37)).astype(np.float32)])

    def pools(b):
        b.op("MaxPool", ["x"], "max", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        b.op("AveragePool", ["x"], "average", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
             count_include_pad=0)
    add("pools-odd", pools,
        [info("x", f32, [1, 3, 13, 11])], [info("max", f32, [1, 3, 7, 6]), info("average", f32, [1, 3, 7, 6])],
        [rng.standard_normal((1, 3, 13, 11)).astype(np.float32)])

    add("softmax-middle-axis",
        lambda b: b.op("Softmax", ["x"], "y", axis=1),
        [info("x", f32, [3, 17, 5])], [info("y", f32, [3, 17, 5])],
        [(rng.standard_normal((3, 17, 5)) * 4).astype(np.float32)])

    def reductions(b):
        b.op("ReduceMean", ["x"], "mean", axes=[1], keepdims=0)
        b.op("ReduceMax", ["x"], "max", axes=[0, 2], keepdims=1)
        b.op("ReduceSum", ["x", b.const("sum_axes", [-1], np.int64)], "sum", keepdims=0)
    add("reductions-odd", reductions,
        [info("x", f32, [3, 7, 11])],
        [info("mean", f32, [3, 11]), info("max", f32, [1, 7, 1]), info("sum", f32, [3, 7])],
        [rng.standard_normal((3, 7, 11)).astype(np.float32)])

    def broadcast(b):
        product = b.op("Mul", ["a", "b"], "product")
        shifted = b.op("Sub", [product, "a"], "shifted")
        squashed = b.op("Sigmoid", [shifted], "squashed")
        b.op("Add", [squashed, b.op("Max", ["a", "b"], "larger")], "y")
    add("broadcast-elementwise", broadcast,
        [info("a", f32, [5, 1, 7]), info("b", f32, [1, 3, 1])], [info("y", f32, [5, 3, 7])],
        [rng.standard_normal((5, 1, 7)).astype(np.float32), rng.standard_normal((1, 3, 1)).astype(np.float32)])

    add("transpose-odd",
        lambda b: b.op("Transpose", ["x"], "y", perm=[2, 0, 1]),
        [info("x", f32, [3, 5, 7])], [info("y", f32, [7, 3, 5])],
        [rng.standard_normal((3, 5, 7)).astype(np.float32)])

    def concat_slice(b):
        joined = b.op("Concat", ["a", "b"], "joined", axis=1)
        b.op("Slice", [joined, b.const("starts", [1], np.int64), b.const("ends", [6], np.int64),
                       b.const("axes", [1], np.int64), b.const("steps", [2], np.int64)], "y")
    add("concat-slice", concat_slice,
        [info("a", f32, [2, 3, 5]), info("b", f32, [2, 4, 5])], [info("y", f32, [2, 3, 5])],
        [rng.standard_normal((2, 3, 5)).astype(np.float32), rng.standard_normal((2, 4, 5)).astype(np.float32)])

    def argmax_compare(b):
        b.op("ArgMax", ["x"], "index", axis=1, keepdims=0)
        b.op("Greater", ["x", b.const("zero", np.array(0.0))], "positive")
    add("argmax-compare", argmax_compare,
        [info("x", f32, [4, 9])],
        [info("index", TensorProto.INT64, [4]), info("positive", TensorProto.BOOL, [4, 9])],
        [rng.standard_normal((4, 9)).astype(np.float32)])

    return models


def run_reference(path, feeds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds)))


def save_case(name, model, feeds):
    folder = os.path.join(FIXTURES, name)
    os.makedirs(folder, exist_ok=True)
    for stale in os.listdir(folder):
        if stale.endswith(".npy") or stale.endswith(".onnx"):
            os.remove(os.path.join(folder, stale))
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    outputs = run_reference(path, feeds)
    for index, value in enumerate(feeds):
        np.save(os.path.join(folder, f"input_{index}.npy"), value)
    for index, value in enumerate(outputs):
        np.save(os.path.join(folder, f"output_{index}.npy"), value)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"  {name}: {len(model.graph.node)} nodes, {len(feeds)} inputs, {len(outputs)} outputs, {size} bytes",
          file=sys.stderr)
    return size


def make_models():
    total = 0
    rng = np.random.default_rng(1234)
    model, feeds = transformer(rng, "transformer-encoder", batch=2, seq=16, causal=False)
    total += save_case("transformer-encoder", model, feeds)
    rng = np.random.default_rng(5678)
    model, feeds = transformer(rng, "causal-decoder", batch=1, seq=7, causal=True)
    total += save_case("causal-decoder", model, feeds)
    for name, model, feeds in single_op_models(np.random.default_rng(91011)):
        total += save_case(name, model, feeds)
    print(f"make-fixtures: models total {total} bytes", file=sys.stderr)


# ----------------------------------------------------------------------------- npy and pb files


def make_npy():
    out = os.path.join(FIXTURES, "npy")
    os.makedirs(out, exist_ok=True)

    def save(name, array, version=None):
        with open(os.path.join(out, name), "wb") as f:
            if version is None:
                np.save(f, array)
            else:
                np.lib.format.write_array(f, array, version=version)

    save("f32_2x3.npy", np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1)
    save("f64_big_fortran_3x4.npy", np.asfortranarray((np.arange(12).reshape(3, 4) * 1.25).astype(">f8")))
    save("i8_scalar.npy", np.array(-7, dtype=np.int8))
    save("u16_big_5.npy", np.array([1, 256, 65535, 0, 4660], dtype=">u2"))
    save("bool_2x2.npy", np.array([[True, False], [False, True]]))
    save("f16_2x2x2.npy",
         np.array([0.5, -2, 65504, 1e-7, np.inf, -0.0, 3.140625, 1], dtype=np.float16).reshape(2, 2, 2))
    save("i64_0x3.npy", np.zeros((0, 3), dtype=np.int64))
    save("i32_fortran_2x3x4.npy", np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)))
    save("u8_v2_4.npy", np.array([1, 2, 3, 250], dtype=np.uint8), version=(2, 0))
    save("i16_v3_2x2.npy", np.array([[-1, 2], [300, -32768]], dtype=np.int16), version=(3, 0))
    save("u64_3.npy", np.array([0, 2**63 + 5, 2**64 - 1], dtype=np.uint64))
    print(f"make-fixtures: wrote {out}", file=sys.stderr)


def make_pb():
    out = os.path.join(FIXTURES, "pb")
    os.makedirs(out, exist_ok=True)

    def save(name, tensor):
        with open(os.path.join(out, name), "wb") as f:
            f.write(tensor.SerializeToString())

    save("f32_raw_2x3.pb", numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1, name="x"))
    save("i64_typed_4.pb", helper.make_tensor("ids", TensorProto.INT64, [4], [1, -2, 3, 2**40], raw=False))
    save("f32_typed_2.pb", helper.make_tensor("f", TensorProto.FLOAT, [2], [1.5, -0.25], raw=False))
    save("f64_typed_3.pb", helper.make_tensor("d", TensorProto.DOUBLE, [3], [1.5, -0.25, 1e300], raw=False))
    save("bool_typed_3.pb", helper.make_tensor("b", TensorProto.BOOL, [3], [True, False, True], raw=False))
    save("f16_typed_2.pb",
         helper.make_tensor("h", TensorProto.FLOAT16, [2], np.array([1.0, -2.0], dtype=np.float16), raw=False))
    save("i8_typed_3.pb", helper.make_tensor("i8", TensorProto.INT8, [3], [-1, 127, -128], raw=False))
    save("u32_typed_2.pb", helper.make_tensor("u32", TensorProto.UINT32, [2], [4000000000, 7], raw=False))
    save("string_1.pb", helper.make_tensor("s", TensorProto.STRING, [1], [b"hi"]))
    print(f"make-fixtures: wrote {out}", file=sys.stderr)


def main():
    parts = sys.argv[1:] or ["models", "npy", "pb"]
    for part in parts:
        {"models": make_models, "npy": make_npy, "pb": make_pb}[part]()


if __name__ == "__main__":
    main()
