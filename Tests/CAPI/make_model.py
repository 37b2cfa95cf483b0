"""Writes Tests/CAPI/double_relu.onnx: y = relu(x * 2 - 1) over float x[2, 3] (the C API test's model)."""
import pathlib

import onnx
from onnx import TensorProto, helper

graph = helper.make_graph(
    [
        helper.make_node("Mul", ["x", "two"], ["doubled"]),
        helper.make_node("Sub", ["doubled", "one"], ["shifted"]),
        helper.make_node("Relu", ["shifted"], ["y"]),
    ],
    "double_relu",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]), helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, pathlib.Path(__file__).with_name("double_relu.onnx"))
