import KilnCompiler
import KilnIR
import Testing

@Suite("FoldBatchNorm pass")
struct FoldBatchNormTests {
  /// x -> Conv(W, B?) -> BatchNormalization -> output, with optional extra use of the conv.
  static func graph(weight: TensorData, bias: TensorData?, extraUse: Bool = false) -> (Graph, ValueID) {
    var graph = Graph(opsetImports: ["": 15])
    let x = graph.addInput(name: "x", type: TensorType(weight.dtype, [1, 2, 4, 4]))
    let w = graph.addConstant(weight, name: "w")
    let b = bias.map { graph.addConstant($0, name: "b") }
    let conv = graph.addNode(
      "Conv", name: "conv", inputs: [x, w, b], outputTypes: [TensorType(weight.dtype, [1, 3, 4, 4])],
      attributes: ["pads": .ints([1, 1, 1, 1])])[0]
    func parameter(_ values: [Double], _ name: String) -> ValueID {
      graph.addConstant(TensorData(type: TensorType(weight.dtype, [3]), doubles: values), name: name)
    }
    let scale = parameter([1.5, -0.5, 2], "scale")
    let shift = parameter([0.1, 0.2, -0.3], "shift")
    let mean = parameter([0.05, -0.1, 0.2], "mean")
    let variance = parameter([0.9, 1.1, 0.4], "var")
    let y = graph.addNode(
      "BatchNormalization", name: "bn", inputs: [conv, scale, shift, mean, variance],
      outputTypes: [TensorType(weight.dtype, [1, 3, 4, 4])], attributes: ["epsilon": .float(1e-3)])[0]
    graph.outputs = extraUse ? [y, conv] : [y]
    return (graph, x)
  }

  @Test(arguments: [true, false])
  func foldsIntoConvAndKeepsResults(_ withBias: Bool) throws {
    let (graph, x) = Self.graph(weight: random([3, 2, 3, 3], seed: 1), bias: withBias ? random([3], seed: 2) : nil)
    let folded = FoldBatchNorm.run(graph)
    try folded.verify()
    #expect(folded.nodes.map(\.op) == ["Conv"])
    #expect(folded.nodes[0].outputs == graph.outputs)
    let input = random([1, 2, 4, 4], seed: 3).doubles()
    let before = try LoweringHarness.evaluate(graph, inputs: [x: input])
    let after = try LoweringHarness.evaluate(folded, inputs: [x: input])
    let output = graph.outputs[0]
    expectClose(after[output] ?? [], before[output] ?? [], rtol: 1e-5, atol: 1e-5)
  }

  @Test func float64WeightsFold() throws {
    let weight = TensorData(
      type: TensorType(.float64, [3, 2, 3, 3]), doubles: random([3, 2, 3, 3], seed: 4).doubles())
    let (graph, x) = Self.graph(weight: weight, bias: nil)
    let folded = FoldBatchNorm.run(graph)
    #expect(folded.nodes.count == 1)
    let input = random([1, 2, 4, 4], seed: 5).doubles()
    let output = graph.outputs[0]
    expectClose(
      try LoweringHarness.evaluate(folded, inputs: [x: input])[output] ?? [],
      try LoweringHarness.evaluate(graph, inputs: [x: input])[output] ?? [], rtol: 1e-9, atol: 1e-9)
  }

  @Test func convWithAnotherUseIsLeftAlone() {
    let (graph, _) = Self.graph(weight: random([3, 2, 3, 3], seed: 1), bias: nil, extraUse: true)
    #expect(FoldBatchNorm.run(graph).nodes.map(\.op) == ["Conv", "BatchNormalization"])
  }

  @Test func float16WeightsAreSkipped() {
    let weight = TensorData(
      type: TensorType(.float16, [3, 2, 3, 3]), doubles: random([3, 2, 3, 3], seed: 1).doubles())
    let (graph, _) = Self.graph(weight: weight, bias: nil)
    #expect(FoldBatchNorm.run(graph).nodes.count == 2)
  }

  @Test func runtimeWeightsAreSkipped() {
    var graph = Graph(opsetImports: ["": 15])
    let x = graph.addInput(name: "x", type: TensorType(.float32, [1, 1, 2, 2]))
    let w = graph.addInput(name: "w", type: TensorType(.float32, [1, 1, 1, 1]))
    let conv = graph.addNode("Conv", inputs: [x, w], outputTypes: [TensorType(.float32, [1, 1, 2, 2])])[0]
    let p = graph.addConstant(TensorData([Float(1)]), name: "p")
    graph.outputs = graph.addNode(
      "BatchNormalization", inputs: [conv, p, p, p, p], outputTypes: [TensorType(.float32, [1, 1, 2, 2])])
    #expect(FoldBatchNorm.run(graph).nodes.count == 2)
  }
}
