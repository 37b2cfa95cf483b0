#!/usr/bin/env python3
"""Writes the ONNX light model-zoo graphs with real-size random weights, and their references.

    tools/make-real-size-zoo.py [--out DIR] [--seed N] [MODEL...]   (default: alexnet zfnet512 vgg19)

The light graphs in the onnx pip package (onnx/backend/test/data/light) make each weight with
ConstantOfShape from a shape initializer: one value splatted over the real shape, which Kiln folds
to a literal, so their weights never reach a device. This script replaces every such splat with an
initializer of the real shape, seeded normal values scaled by 1/sqrt(fan-in) (so activations stay
in range through the network), and writes DIR/<model>/model.onnx, input_0.npy (seeded) and
output_0.npy computed by ONNX Runtime (CPU, graph optimisations off). AlexNet's fully connected
weights are 151 MB, ZFNet-512's 302 MB and VGG-19's 411 MB: more than the 2^27 bytes a Vulkan
binding is guaranteed to cover.

Default DIR: .build/real-size-zoo (git-ignored: the models are 240 to 550 MB each).
Needs: pip install onnx onnxruntime numpy.
"""
import argparse
import os

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"alexnet": "light_bvlc_alexnet.onnx", "zfnet512": "light_zfnet512.onnx", "vgg19": "light_vgg19.onnx"}


def light_directory():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def with_real_weights(model, rng):
    graph = model.graph
    shapes = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept = []
    replaced = {}
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = [int(d) for d in shapes[node.input[0]]]
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            scale = 1.0 / np.sqrt(max(fan_in, 1)) if len(shape) > 1 else 0.01
            values = (rng.standard_normal(shape) * scale).astype(np.float32)
            replaced[node.output[0]] = numpy_helper.from_array(values, node.output[0])
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input}
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [init for init in graph.initializer if init.name in used] + list(replaced.values())
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    names = {init.name for init in initializers}
    inputs = [i for i in graph.input if i.name not in names and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "real-size-zoo"))
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    import onnxruntime as ort

    for name in args.models:
        rng = np.random.default_rng(args.seed)
        model = with_real_weights(onnx.load(os.path.join(light_directory(), MODELS[name])), rng)
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "model.onnx")
        onnx.save(model, path)
        (data,) = [i for i in model.graph.input]
        shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
        x = rng.standard_normal(shape).astype(np.float32)
        np.save(os.path.join(folder, "input_0.npy"), x)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {data.name: x})
        np.save(os.path.join(folder, "output_0.npy"), y)
        largest = max(int(np.prod(i.dims)) * 4 for i in model.graph.initializer)
        print(f"{name}: {os.path.getsize(path) / 1e6:.0f} MB, largest weight {largest / 1e6:.0f} MB -> {folder}")


if __name__ == "__main__":
    main()
