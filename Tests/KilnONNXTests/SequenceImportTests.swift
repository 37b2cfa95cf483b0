import KilnIR
import Testing

@testable import KilnONNX

/// Sequences and optionals resolve at import into compile-time lists of tensors.
@Suite struct SequenceImportTests {
  func error(_ builder: ModelBuilder) -> ONNXImportError? { importError(builder) }

  @Test func constructInsertEraseAtAndLength() throws {
    var builder = ModelBuilder(opset: 17)
    builder.input("a", .float32, [2])
    builder.input("b", .float32, [3])
    builder.input("c", .float32, [4])
    builder.initializer("front", TensorData([Int64(0)], shape: []))
    builder.initializer("last", TensorData([Int64(-1)], shape: []))
    builder.node("SequenceConstruct", ["a", "b"], ["s"])
    builder.node("SequenceInsert", ["s", "c", "front"], ["s2"])  // [c, a, b]
    builder.node("SequenceErase", ["s2", "last"], ["s3"])  // [c, a]
    builder.node("SequenceAt", ["s3", "last"], ["y"])  // a
    builder.node("SequenceLength", ["s2"], ["n"])
    builder.output("y")
    builder.output("n", .int64)
    let graph = try builder.importGraph()
    #expect(graph.outputs[0] == graph.inputs[0], "SequenceAt aliases the element")
    #expect(graph.constants[graph.outputs[1]]?.int64s() == [3])
  }

  @Test func concatFromSequenceWithAndWithoutNewAxis() throws {
    for (newAxis, axis, shape) in [(0, 1, [2, 7]), (1, 0, [2, 2, 3]), (1, -1, [2, 3, 2])] {
      var builder = ModelBuilder(opset: 17)
      builder.input("a", .float32, [2, 3])
      builder.input("b", .float32, [2, newAxis == 1 ? 3 : 4])
      builder.node("SequenceConstruct", ["a", "b"], ["s"])
      builder.node("ConcatFromSequence", ["s"], ["y"], ["axis": .int(Int64(axis)), "new_axis": .int(Int64(newAxis))])
      builder.output("y")
      #expect(outputType(try builder.importGraph()).shape == shape, "new_axis \(newAxis) axis \(axis)")
    }
  }

  @Test func splitToSequenceForms() throws {
    // No split: size-1 pieces, squeezed without keepdims; a scalar split leaves a shorter tail.
    var builder = ModelBuilder(opset: 17)
    builder.input("x", .float32, [5, 2])
    builder.initializer("two", TensorData([Int64(2)], shape: []))
    builder.initializer("at", TensorData([Int64(2)], shape: []))
    builder.node("SplitToSequence", ["x"], ["pieces"], ["keepdims": .int(0)])
    builder.node("SequenceLength", ["pieces"], ["n"])
    builder.node("SequenceAt", ["pieces", "at"], ["p"])
    builder.node("SplitToSequence", ["x", "two"], ["chunks"])
    builder.node("SequenceAt", ["chunks", "at"], ["tail"])
    builder.output("n", .int64)
    builder.output("p")
    builder.output("tail")
    let graph = try builder.importGraph()
    #expect(graph.constants[graph.outputs[0]]?.int64s() == [5])
    #expect(outputType(graph, 1).shape == [2])
    #expect(outputType(graph, 2).shape == [1, 2])
  }

  @Test func optionals() throws {
    var builder = ModelBuilder(opset: 18)
    builder.input("x", .float32, [2])
    builder.node("Optional", ["x"], ["o"])
    builder.node("OptionalHasElement", ["o"], ["has"])
    builder.node("OptionalHasElement", [""], ["none"])
    builder.node("OptionalGetElement", ["o"], ["y"])
    builder.output("has", .bool)
    builder.output("none", .bool)
    builder.output("y")
    let graph = try builder.importGraph()
    #expect(graph.constants[graph.outputs[0]]?.bytes == [1])
    #expect(graph.constants[graph.outputs[1]]?.bytes == [0])
    #expect(graph.outputs[2] == graph.inputs[0])
  }

  @Test func errorsNameTheCause() {
    var base = ModelBuilder(opset: 17)
    base.input("a", .float32, [2])
    base.input("i", .int64, [])
    base.node("SequenceConstruct", ["a", "a"], ["s"])

    var output = base
    output.output("s")
    #expect(error(output)?.description.contains("graph output 's' is a sequence") == true)

    var dynamic = base
    dynamic.node("SequenceAt", ["s", "i"], ["y"])
    dynamic.output("y")
    let dynamicError = error(dynamic)
    #expect(dynamicError?.code == .dynamicShape)
    #expect(dynamicError?.requiredInputs == ["i"])

    var outOfRange = base
    outOfRange.initializer("five", TensorData([Int64(5)], shape: []))
    outOfRange.node("SequenceAt", ["s", "five"], ["y"])
    outOfRange.output("y")
    #expect(error(outOfRange)?.description.contains("position 5 is out of range for a sequence of 2") == true)

    var tensorOp = base
    tensorOp.node("Relu", ["s"], ["y"])
    tensorOp.output("y")
    #expect(error(tensorOp)?.description.contains("input 's' is a sequence") == true)

    var empty = ModelBuilder(opset: 17)
    empty.node("SequenceEmpty", [], ["s"])
    empty.node("ConcatFromSequence", ["s"], ["y"], ["axis": .int(0)])
    empty.output("y")
    #expect(error(empty)?.description.contains("cannot concatenate an empty sequence") == true)
  }
}
