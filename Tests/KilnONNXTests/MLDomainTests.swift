import KilnIR
import Testing

@testable import KilnONNX

/// The ai.onnx.ml domain: models that import only it, its opset range, and TreeEnsemble's checks.
@Suite struct MLDomainTests {
  func treeModel(truenodeids: [Int64] = [1, 0, 1], leafTargets: [Int64] = [0, 1, 0, 1]) -> ModelBuilder {
    var builder = ModelBuilder()
    builder.opsets = [("ai.onnx.ml", 5)]
    builder.input("X", .float32, [3, 2])
    builder.node(
      "TreeEnsemble", ["X"], ["Y"],
      [
        "n_targets": .int(2), "tree_roots": .ints([0]), "nodes_featureids": .ints([0, 0, 0]),
        "nodes_modes": .tensor(TensorData([UInt8(0), 0, 0])), "nodes_splits": .tensor(TensorData([Float(3.14), 1.2, 4.2])),
        "nodes_truenodeids": .ints(truenodeids), "nodes_trueleafs": .ints([0, 1, 1]),
        "nodes_falsenodeids": .ints([2, 2, 3]), "nodes_falseleafs": .ints([0, 1, 1]),
        "leaf_targetids": .ints(leafTargets), "leaf_weights": .tensor(TensorData([Float(5.23), 12.12, -12.23, 7.21])),
      ], domain: "ai.onnx.ml")
    builder.output("Y")
    return builder
  }

  @Test func treeEnsembleImportsWithoutAnAiOnnxOpset() throws {
    let graph = try treeModel().importGraph()
    #expect(outputType(graph) == TensorType(.float32, [3, 2]))
    #expect(graph.nodes.first?.domain == "ai.onnx.ml")
  }

  @Test func badTreesAreErrors() {
    // Node 0's true branch points at itself: a cycle.
    #expect(importError(treeModel(truenodeids: [0, 0, 1]))?.description.contains("cycle") == true)
    #expect(importError(treeModel(leafTargets: [0, 1, 0, 7]))?.description.contains("n_targets") == true)
  }

  @Test func opsetsAndUnknownOps() {
    var future = treeModel()
    future.opsets = [("ai.onnx.ml", 9)]
    #expect(importError(future)?.description.contains("ai.onnx.ml opset 9 is not supported") == true)
    var unknown = ModelBuilder()
    unknown.opsets = [("ai.onnx.ml", 3)]
    unknown.input("X", .float32, [2])
    unknown.node("SVMClassifier", ["X"], ["Y"], domain: "ai.onnx.ml")
    unknown.output("Y")
    let error = importError(unknown)
    #expect(error?.code == .unsupportedOp)
    #expect(error?.description.contains("(SVMClassifier, opset 3): unsupported op") == true)
  }
}
