import KilnIR
import Testing

@testable import KilnONNX

/// The folded value of a single node whose operands are all constants (nil when it was kept).
func folded(
  _ op: String, _ operands: [Operand], _ attributes: [String: AttributeValue] = [:], opset: Int = 17,
  outputs: Int = 1, index: Int = 0
) throws -> TensorData? {
  let graph = try singleNodeModel(op, operands, attributes, opset: opset, outputs: outputs).importGraph()
  return graph.constants[graph.outputs[index]]
}

@Suite struct FoldingChainTests {
  /// The PyTorch flatten idiom: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
  @Test func shapeGatherConcatReshapeFoldsToOneReshape() throws {
    var builder = ModelBuilder(opset: 13)
    builder.input("x", .float32, [2, 3, 4, 5])
    builder.initializer("zero", .scalar(Int64(0)))
    builder.initializer("axes", TensorData([0] as [Int64]))
    builder.initializer("minus_one", TensorData([-1] as [Int64]))
    builder.node("Shape", ["x"], ["shape"])
    builder.node("Gather", ["shape", "zero"], ["batch"], ["axis": .int(0)])
    builder.node("Unsqueeze", ["batch", "axes"], ["batch1"])
    builder.node("Concat", ["batch1", "minus_one"], ["target"], ["axis": .int(0)])
    builder.node("Reshape", ["x", "target"], ["y"])
    builder.output("y")
    let graph = try builder.importGraph()
    let target = TensorData([2, -1] as [Int64])
    let expected = """
      graph "test" opset(ai.onnx=13) {
        input %0: f32[2,3,4,5]
        const %1: i64[2] #\(target.contentHash) = [2,-1]
        %2: f32[2,60] = Reshape(%0, %1)
        output %2
      }

      """
    #expect(GraphPrinter(showNames: false).print(graph) == expected)
    #expect(graph.description.contains("const %1: i64[2] #\(target.contentHash) = [2,-1] \"target\""))
    try graph.verify()
  }

  @Test func foldingCanBeTurnedOffButShapeStillFolds() throws {
    var builder = ModelBuilder(opset: 13)
    builder.input("x", .float32, [2, 3])
    builder.node("Shape", ["x"], ["shape"])
    builder.node("Cast", ["shape"], ["shape_f"], ["to": .int(1)])
    builder.output("shape_f")
    let graph = try builder.importGraph(options: ImportOptions(foldConstants: false))
    #expect(graph.nodes.map(\.op) == ["Cast"])
    #expect(graph.constants.values.first?.int64s() == [2, 3])
    let foldedGraph = try builder.importGraph()
    #expect(foldedGraph.nodes.isEmpty)
    #expect(foldedGraph.constants[foldedGraph.outputs[0]]?.floats() == [2, 3])
  }

  @Test func largeResultsAreNotFolded() throws {
    let builder = singleNodeModel("ConstantOfShape", [.constant(ints([1000, 1000]))])
    let small = try builder.importGraph()
    #expect(small.nodes.isEmpty)
    let limited = try builder.importGraph(options: ImportOptions(foldingElementLimit: 999_999))
    #expect(limited.nodes.map(\.op) == ["ConstantOfShape"])
    #expect(outputType(limited) == TensorType(.float32, [1000, 1000]))
  }
}

@Suite struct FoldedValueTests {
  func c(_ values: [Int64], _ shape: [Int]? = nil) -> Operand { .constant(TensorData(values, shape: shape)) }
  func cf(_ values: [Float], _ shape: [Int]? = nil) -> Operand { .constant(TensorData(values, shape: shape)) }

  @Test func arithmetic() throws {
    #expect(try folded("Add", [c([1, 2, 3]), c([10])])?.int64s() == [11, 12, 13])
    #expect(try folded("Sub", [cf([1.5]), cf([0.5, 1])])?.floats() == [1, 0.5])
    #expect(try folded("Mul", [c([2, 3], [2, 1]), c([1, 10])])?.int64s() == [2, 20, 3, 30])
    #expect(try folded("Div", [c([-7, 7]), c([2])])?.int64s() == [-3, 3])
    #expect(try folded("Div", [cf([1]), cf([4])])?.floats() == [0.25])
    #expect(try folded("Div", [c([1]), c([0])]) == nil)  // integer division by zero is left to run time
    #expect(try folded("Pow", [c([2, 3]), c([3])])?.int64s() == [8, 27])
    #expect(try folded("Max", [c([1, 5]), c([3]), c([2, 2])])?.int64s() == [3, 5])
    #expect(try folded("Neg", [c([4])])?.int64s() == [-4])
    #expect(try folded("Sqrt", [cf([9, 2.25])])?.floats() == [3, 1.5])
    #expect(
      try folded("Clip", [cf([-1, 0.5, 9]), .constant(.scalar(Float(0))), .constant(.scalar(Float(6)))])?.floats() == [
        0, 0.5, 6,
      ])
    #expect(
      try folded(
        "Add",
        [
          .constant(TensorData(type: TensorType(.int8, [1]), int64s: [127])),
          .constant(TensorData(type: TensorType(.int8, [1]), int64s: [1])),
        ])?.int64s() == [-128])
  }

  @Test func comparisonsAndSelection() throws {
    #expect(try folded("Equal", [c([1, 2, 3]), c([2])])?.bools() == [false, true, false])
    #expect(try folded("Less", [cf([1, 2]), cf([1.5])])?.bools() == [true, false])
    #expect(try folded("Not", [.constant(TensorData([true, false]))])?.bools() == [false, true])
    #expect(try folded("Where", [.constant(TensorData([true, false])), c([1, 2]), c([9])])?.int64s() == [1, 9])
    #expect(try folded("Cast", [cf([1.9, -1.9])], ["to": .int(7)])?.int64s() == [1, -1])
    #expect(try folded("Cast", [c([0, 3])], ["to": .int(9)])?.bools() == [false, true])
  }

  @Test func dataMovement() throws {
    let matrix = c([1, 2, 3, 4, 5, 6], [2, 3])
    #expect(try folded("Transpose", [matrix])?.int64s() == [1, 4, 2, 5, 3, 6])
    #expect(
      try folded("Slice", [matrix, c([0, 2]), c([2, -4]), c([0, 1]), c([1, -1])])?.int64s() == [3, 2, 1, 6, 5, 4])
    #expect(try folded("Gather", [matrix, c([-1, 0])], ["axis": .int(1)])?.int64s() == [3, 1, 6, 4])
    #expect(
      try folded("Concat", [matrix, c([7, 8], [2, 1])], ["axis": .int(1)])?.int64s() == [1, 2, 3, 7, 4, 5, 6, 8])
    #expect(try folded("Expand", [c([1, 2], [2, 1]), c([2, 2])])?.int64s() == [1, 1, 2, 2])
    #expect(try folded("Tile", [c([1, 2]), c([3])])?.int64s() == [1, 2, 1, 2, 1, 2])
    #expect(try folded("Reshape", [matrix, c([3, -1])])?.shape == [3, 2])
    #expect(try folded("Squeeze", [c([5], [1, 1]), c([0])], opset: 13)?.shape == [1])
    #expect(try folded("Unsqueeze", [c([5]), c([0])], opset: 13)?.shape == [1, 1])
    #expect(try folded("Flatten", [matrix], ["axis": .int(0)])?.shape == [1, 6])
    #expect(try folded("Split", [c([1, 2, 3, 4, 5])], opset: 18, outputs: 2, index: 1)?.int64s() == [4, 5])
    #expect(try folded("Identity", [matrix])?.int64s() == [1, 2, 3, 4, 5, 6])
  }

  @Test func generators() throws {
    #expect(
      try folded(
        "Range", [.constant(.scalar(Int64(10))), .constant(.scalar(Int64(1))), .constant(.scalar(Int64(-3)))])?.int64s()
        == [10, 7, 4])
    #expect(
      try folded(
        "Range", [.constant(.scalar(Float(0))), .constant(.scalar(Float(1))), .constant(.scalar(Float(0.25)))])?
        .floats() == [0, 0.25, 0.5, 0.75])
    let fill = try folded("ConstantOfShape", [c([2, 2])], ["value": .tensor(TensorData([7] as [Int32]))])
    #expect(fill?.type == TensorType(.int32, [2, 2]))
    #expect(fill?.int64s() == [7, 7, 7, 7])
    #expect(try folded("ConstantOfShape", [c([])])?.type == TensorType(.float32, []))
    #expect(try folded("Size", [f32([3, 4])])?.scalarInt64 == 12)
    #expect(try folded("Shape", [f32([3, 4, 5])], ["end": .int(-1)], opset: 15)?.int64s() == [3, 4])
    #expect(try folded("ReduceProd", [c([2, 3, 4])], ["keepdims": .int(0)], opset: 13)?.int64s() == [24])
    #expect(try folded("ReduceSum", [cf([1, 2, 3, 4], [2, 2]), c([1])], opset: 13)?.floats() == [3, 7])
  }
}

@Suite struct CleanupTests {
  @Test func cseMergesDuplicateNodesAndConstants() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [4])
    builder.initializer("w1", TensorData([1, 2, 3, 4] as [Float]))
    builder.initializer("w2", TensorData([1, 2, 3, 4] as [Float]))
    builder.node("Mul", ["x", "w1"], ["a"])
    builder.node("Mul", ["x", "w2"], ["b"])
    builder.node("Relu", ["a"], ["ra"])
    builder.node("Relu", ["b"], ["rb"])
    builder.node("Add", ["ra", "rb"], ["y"])
    builder.output("y")
    let graph = try builder.importGraph()
    #expect(graph.nodes.map(\.op) == ["Mul", "Relu", "Add"])
    #expect(graph.constants.count == 1)
    #expect(graph.nodes[2].inputs[0] == graph.nodes[2].inputs[1])
    let uncleaned = try builder.importGraph(options: ImportOptions(cleanup: false))
    #expect(uncleaned.nodes.count == 5)
  }

  @Test func cseRespectsAttributes() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [4])
    builder.node("LeakyRelu", ["x"], ["a"], ["alpha": .float(0.1)])
    builder.node("LeakyRelu", ["x"], ["b"], ["alpha": .float(0.2)])
    builder.node("Add", ["a", "b"], ["y"])
    builder.output("y")
    #expect(try builder.importGraph().nodes.count == 3)
  }

  @Test func deadCodeIsRemovedBeforeAndAfterFolding() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2, 3])
    builder.node("FancyUnsupportedOp", ["x"], ["dead"])  // never reaches an output: ignored
    builder.node("Relu", ["x"], ["r"])
    builder.node("Shape", ["r"], ["s"])  // folds; Relu then only feeds nothing
    builder.output("s")
    let graph = try builder.importGraph()
    #expect(graph.nodes.isEmpty)
    #expect(graph.constants[graph.outputs[0]]?.int64s() == [2, 3])
    #expect(graph.inputs.count == 1)  // the signature keeps its input
  }

  @Test func identityAndDropoutAreAliases() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2])
    builder.node("Identity", ["x"], ["i"])
    builder.node("Dropout", ["i"], ["d", "mask"])  // mask unused: dropped
    builder.node("Relu", ["d"], ["y"])
    builder.output("y")
    let graph = try builder.importGraph()
    #expect(graph.nodes.map(\.op) == ["Relu"])
    #expect(graph.nodes[0].inputs == [graph.inputs[0]])
  }
}
