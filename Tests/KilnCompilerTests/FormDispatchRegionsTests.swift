import KilnCompiler
import KilnIR
import Testing

@Suite("FormDispatchRegions pass")
struct FormDispatchRegionsTests {
  /// x -> MatMul(w1) = t -> t * (1 + f(t / c)) -> MatMul(w2) -> output: GELU's shape, where t has
  /// two uses and so is materialised, and the chain after it either feeds fc2 or not.
  static func graph(function: String) -> Graph {
    var graph = Graph(opsetImports: ["": 17])
    let type = TensorType(.float32, [4, 8])
    let x = graph.addInput(name: "x", type: type)
    let w1 = graph.addConstant(random([8, 8], seed: 1), name: "w1")
    let w2 = graph.addConstant(random([8, 8], seed: 2), name: "w2")
    let c = graph.addConstant(TensorData(type: TensorType(.float32, []), doubles: [1.4142135]), name: "c")
    let one = graph.addConstant(TensorData(type: TensorType(.float32, []), doubles: [1]), name: "one")
    let t = graph.addNode("MatMul", name: "fc1", inputs: [x, w1], outputTypes: [type])[0]
    let scaled = graph.addNode("Div", name: "scaled", inputs: [t, c], outputTypes: [type])[0]
    let f = graph.addNode(function, name: "f", inputs: [scaled], outputTypes: [type])[0]
    let shifted = graph.addNode("Add", name: "shifted", inputs: [f, one], outputTypes: [type])[0]
    let gated = graph.addNode("Mul", name: "gated", inputs: [t, shifted], outputTypes: [type])[0]
    graph.outputs = [graph.addNode("MatMul", name: "fc2", inputs: [gated, w2], outputTypes: [type])[0]]
    return graph
  }

  /// A transcendental chain before a contraction gets its own kernel (computed once, not once per
  /// use inside the contraction's operand); a cheap one is still fused into the contraction.
  @Test func transcendentalChainsBeforeAContractionAreMaterialised() throws {
    let erf = try FormDispatchRegions.run(Self.graph(function: "Erf"))
    #expect(erf.kernels.map(\.sourceOps.count) == [1, 4, 1])
    #expect(erf.kernels[1].sourceOps.contains("f") && erf.kernels[2].sourceOps == ["fc2"])
    let relu = try FormDispatchRegions.run(Self.graph(function: "Relu"))
    #expect(relu.kernels.count == 2)
    #expect(relu.kernels[1].sourceOps.contains("f") && relu.kernels[1].sourceOps.contains("fc2"))
  }

  /// Inception's block: branches concatenated along channels, then a 3x3 max pool. With three or
  /// more computed operands the concatenation gets its own kernel and the pool reads it from
  /// memory (one body, not one per operand and border); with two it stays fused.
  static func concatPool(branches: Int) -> Graph {
    var graph = Graph(opsetImports: ["": 17])
    let x = graph.addInput(name: "x", type: TensorType(.float32, [1, 2, 6, 6]))
    let branchType = TensorType(.float32, [1, 2, 6, 6])
    let outputs = (0..<branches).map { index in
      graph.addNode(index % 2 == 0 ? "Relu" : "Neg", name: "b\(index)", inputs: [x], outputTypes: [branchType])[0]
    }
    let joined = graph.addNode(
      "Concat", name: "concat", inputs: outputs, outputTypes: [TensorType(.float32, [1, 2 * branches, 6, 6])],
      attributes: ["axis": .int(1)])[0]
    graph.outputs = graph.addNode(
      "MaxPool", name: "pool", inputs: [joined], outputTypes: [TensorType(.float32, [1, 2 * branches, 6, 6])],
      attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])
    return graph
  }

  @Test func concatenationsOfThreeOrMoreBranchesBeforeAPoolAreMaterialised() throws {
    let four = try FormDispatchRegions.run(Self.concatPool(branches: 4))
    #expect(four.kernels.count == 2)
    #expect(four.kernels.first?.sourceOps.contains("concat") == true && four.kernels.last?.sourceOps == ["pool"])
    let two = try FormDispatchRegions.run(Self.concatPool(branches: 2))
    #expect(two.kernels.count == 1)
    #expect(two.kernels.first?.sourceOps.contains("concat") == true && two.kernels.first?.sourceOps.contains("pool") == true)
  }
}
