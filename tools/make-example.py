#!/usr/bin/env python3
"""Builds Examples/tiny-cnn: a small seeded CNN (opset 17) with an input and the output ONNX Runtime
computes for it.

    Conv+BatchNormalization+Relu -> MaxPool -> [Conv+BatchNormalization+Relu, + residual Add]
    -> Conv (stride 2)+Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax

Input `image` float32 [1, 3, 32, 32]; output `probabilities` float32 [1, 10].
Writes model.onnx, input.npy and expected.npy. Needs: pip install onnx onnxruntime numpy.
The output is deterministic: running it again rewrites identical files.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Examples", "tiny-cnn")


def build(rng):
    initializers = []

    def weight(name, array):
        initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv_bn_relu(x, prefix, cin, cout, stride=1):
        w = weight(f"{prefix}.weight", rng.normal(0, np.sqrt(2.0 / (cin * 9)), (cout, cin, 3, 3)))
        b = weight(f"{prefix}.bias", rng.normal(0, 0.05, cout))
        scale = weight(f"{prefix}.bn.scale", rng.uniform(0.8, 1.2, cout))
        shift = weight(f"{prefix}.bn.bias", rng.normal(0, 0.1, cout))
        mean = weight(f"{prefix}.bn.mean", rng.normal(0, 0.1, cout))
        var = weight(f"{prefix}.bn.var", rng.uniform(0.5, 1.5, cout))
        return [
            helper.make_node("Conv", [x, w, b], [f"{prefix}.conv"], name=f"{prefix}/conv",
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]),
            helper.make_node("BatchNormalization", [f"{prefix}.conv", scale, shift, mean, var],
                             [f"{prefix}.bn"], name=f"{prefix}/bn", epsilon=1e-5),
            helper.make_node("Relu", [f"{prefix}.bn"], [f"{prefix}.relu"], name=f"{prefix}/relu"),
        ], f"{prefix}.relu"

    nodes = []
    stem, x = conv_bn_relu("image", "stem", 3, 16)
    nodes += stem
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
    block, y = conv_bn_relu("pool", "block", 16, 16)
    nodes += block
    nodes.append(helper.make_node("Add", ["pool", y], ["residual"], name="residual"))
    down, z = conv_bn_relu("residual", "down", 16, 32, stride=2)
    nodes += down
    nodes.append(helper.make_node("GlobalAveragePool", [z], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"], name="flatten", axis=1))
    fc_w = weight("fc.weight", rng.normal(0, np.sqrt(1.0 / 32), (10, 32)))
    fc_b = weight("fc.bias", rng.normal(0, 0.1, 10))
    nodes.append(helper.make_node("Gemm", ["features", fc_w, fc_b], ["logits"], name="fc", transB=1))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1))

    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
        initializers)
    model = helper.make_model(graph, producer_name="kiln tools/make-example.py",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    import onnxruntime as ort

    rng = np.random.default_rng(20240917)
    model = build(rng)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "model.onnx")
    onnx.save(model, path)
    image = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"image": image})
    np.save(os.path.join(OUT, "input.npy"), image)
    np.save(os.path.join(OUT, "expected.npy"), expected)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"make-example: wrote {OUT} ({total} bytes); top class {int(expected.argmax())} "
          f"p={float(expected.max()):.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
