import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// SplitMix64: a tiny deterministic generator so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9e37_79b9_7f4a_7c15
    var z = state
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
  }
}

/// A valid model with several op kinds, constants and attributes, used as fuzzing seed.
func seedModel() -> ModelBuilder {
  var builder = ModelBuilder(opset: 13)
  builder.input("x", .float32, [1, 3, 8, 8])
  builder.initializer("w", TensorData(type: TensorType(.float32, [4, 3, 3, 3]), repeating: 0.1))
  builder.initializer("shape", TensorData([1, -1] as [Int64]))
  builder.node("Conv", ["x", "w"], ["c"], ["pads": .ints([1, 1, 1, 1])])
  builder.node("Relu", ["c"], ["r"])
  builder.node("MaxPool", ["r"], ["p"], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
  builder.node("Reshape", ["p", "shape"], ["y"])
  builder.output("y")
  return builder
}

/// Imports `data`; only `ONNXImportError` may come out.
func expectOnlyImportErrors(_ data: Data, _ what: String) {
  do {
    let graph = try ONNXImporter(options: ImportOptions(memoryBudget: 64 << 20)).importModel(data: data)
    #expect(throws: Never.self, "\(what): imported graph must verify") { try graph.verify() }
  } catch is ONNXImportError {
  } catch {
    Issue.record("\(what): unexpected error type \(error)")
  }
}

@Suite struct HostileBytesTests {
  @Test func randomBytes() {
    var generator = SplitMix64(state: 1)
    for round in 0..<300 {
      let count = Int.random(in: 0..<512, using: &generator)
      let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
      expectOnlyImportErrors(Data(bytes), "random round \(round)")
    }
    #expect(throws: ONNXImportError.self) { try ONNXImporter().importModel(data: Data()) }
    do {
      _ = try ONNXImporter().importModel(data: Data([0xff, 0xff, 0xff]))
    } catch let error as ONNXImportError {
      #expect(error.code == .invalidProtobuf)
    } catch {}
  }

  @Test func everyTruncation() throws {
    let data = try seedModel().serialized()
    for length in 0..<data.count {
      expectOnlyImportErrors(data.prefix(length), "prefix \(length)")
    }
  }

  @Test func byteMutations() throws {
    let data = try seedModel().serialized()
    var generator = SplitMix64(state: 7)
    for round in 0..<1500 {
      var bytes = [UInt8](data)
      for _ in 0..<Int.random(in: 1...4, using: &generator) {
        let index = Int.random(in: 0..<bytes.count, using: &generator)
        bytes[index] = UInt8.random(in: 0...255, using: &generator)
      }
      expectOnlyImportErrors(Data(bytes), "mutation round \(round)")
    }
  }
}

@Suite struct HostileGraphTests {
  func expectError(
    _ builder: ModelBuilder, _ code: ONNXImportError.Code, _ fragment: String, options: ImportOptions = .init()
  ) {
    guard let error = importError(builder, options: options) else {
      Issue.record("expected \(code) containing '\(fragment)', but the import succeeded")
      return
    }
    #expect(error.code == code, "\(error)")
    #expect(error.description.contains(fragment), "\(error)")
  }

  @Test func cycle() {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2])
    builder.node("Add", ["x", "b"], ["a"], name: "first")
    builder.node("Relu", ["a"], ["b"], name: "second")
    builder.output("b")
    expectError(builder, .invalidModel, "cycle")
    var selfLoop = ModelBuilder()
    selfLoop.input("x", .float32, [2])
    selfLoop.node("Add", ["x", "y"], ["y"])
    selfLoop.output("y")
    expectError(selfLoop, .invalidModel, "cycle")
  }

  @Test func outOfOrderNodesAreSorted() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2])
    builder.node("Neg", ["r"], ["y"])
    builder.node("Relu", ["x"], ["r"])
    builder.output("y")
    #expect(try builder.importGraph().nodes.map(\.op) == ["Relu", "Neg"])
  }

  @Test func danglingAndDuplicateNames() {
    var dangling = ModelBuilder()
    dangling.input("x", .float32, [2])
    dangling.node("Add", ["x", "nobody"], ["y"], name: "adder")
    dangling.output("y")
    expectError(dangling, .invalidModel, "node 'adder' (Add): input 'nobody' is not defined")

    var duplicate = ModelBuilder()
    duplicate.input("x", .float32, [2])
    duplicate.node("Relu", ["x"], ["y"])
    duplicate.node("Neg", ["x"], ["y"])
    duplicate.output("y")
    expectError(duplicate, .invalidModel, "value 'y' is defined twice")

    var shadow = ModelBuilder()
    shadow.input("x", .float32, [2])
    shadow.node("Relu", ["x"], ["x"])
    shadow.output("x")
    expectError(shadow, .invalidModel, "value 'x' is defined twice")

    var twoInitializers = ModelBuilder()
    twoInitializers.input("x", .float32, [1])
    twoInitializers.initializer("w", .scalar(Float(1)))
    twoInitializers.initializer("w", .scalar(Float(2)))
    twoInitializers.node("Add", ["x", "w"], ["y"])
    twoInitializers.output("y")
    expectError(twoInitializers, .invalidModel, "'w' is defined twice")

    var undefinedOutput = ModelBuilder()
    undefinedOutput.input("x", .float32, [1])
    undefinedOutput.output("ghost")
    expectError(undefinedOutput, .invalidModel, "graph output 'ghost' is not defined")

    var noOutputs = ModelBuilder()
    noOutputs.input("x", .float32, [1])
    expectError(noOutputs, .invalidModel, "no outputs")
  }

  @Test func missingGraphAndOpsets() throws {
    var empty = Onnx_ModelProto()
    empty.irVersion = 8
    #expect(throws: ONNXImportError.self) { try ONNXImporter().importModel(data: try empty.serializedData()) }

    var builder = ModelBuilder(opset: 29)
    builder.input("x", .float32, [1])
    builder.node("Relu", ["x"], ["y"])
    builder.output("y")
    expectError(builder, .unsupportedOpset, "ai.onnx opset 29 is not supported")
    builder.opsets = [("com.example", 1)]
    expectError(builder, .unsupportedOpset, "imports no ai.onnx opset")
    builder.opsets = [("", 17), ("ai.onnx", 17)]
    expectError(builder, .invalidModel, "imported twice")
  }

  @Test func unsupportedOpsNameTheNode() {
    var builder = ModelBuilder()
    builder.input("x", .float32, [1])
    builder.node("Bar", ["x"], ["y"], name: "foo")
    builder.output("y")
    #expect(importError(builder)?.description == "test.onnx: node 'foo' (Bar, opset 17): unsupported op")

    var custom = ModelBuilder()
    custom.opsets.append(("com.microsoft", 1))
    custom.input("x", .float32, [1])
    custom.node("FusedGemm", ["x"], ["y"], name: "f", domain: "com.microsoft")
    custom.output("y")
    expectError(custom, .unsupportedOp, "domain 'com.microsoft'")
    custom.opsets.removeLast()
    expectError(custom, .unsupportedOpset, "domain 'com.microsoft' is not imported")

    expectError(
      singleNodeModel("Relu", [f32([2])], ["bogus": .int(1)]), .unsupportedAttribute, "unsupported attribute 'bogus'")
    expectError(
      singleNodeModel("Conv", [f32([1, 1, 3, 3]), f32([1, 1, 1, 1])], ["group": .float(1)]), .invalidAttribute,
      "node 'n' (Conv, opset 17): attribute 'group' is float, expected int")
  }

  @Test func misplacedSubgraphAttributesAreRejected() throws {
    var builder = singleNodeModel("Relu", [f32([2])])
    var attribute = Onnx_AttributeProto()
    attribute.name = "body"
    attribute.type = .graph
    attribute.g = Onnx_GraphProto()
    builder.graph.node[0].attribute.append(attribute)
    expectError(builder, .unsupportedAttribute, "unsupported attribute 'body'")
    builder.graph.node[0].opType = "If"
    expectError(builder, .unsupportedAttribute, "node 'n' (If, opset 17): unsupported attribute 'body'")
  }

  @Test func negativeAndAbsurdDimensions() {
    var negative = ModelBuilder()
    negative.input("x", .float32, [2, -3])
    negative.node("Relu", ["x"], ["y"])
    negative.output("y")
    expectError(negative, .invalidModel, "input 'x' has negative dimension -3")

    var huge = ModelBuilder()
    huge.input("x", .float32, [1 << 62, 4])
    huge.node("Relu", ["x"], ["y"])
    huge.output("y")
    expectError(huge, .budgetExceeded, "input 'x'")

    var tensor = Onnx_TensorProto()
    tensor.name = "w"
    tensor.dataType = 1
    tensor.dims = [1 << 40, 1 << 40]
    var overflowing = ModelBuilder()
    overflowing.input("x", .float32, [1])
    overflowing.initializer(tensor)
    overflowing.node("Add", ["x", "w"], ["y"])
    overflowing.output("y")
    expectError(overflowing, .budgetExceeded, "initializer 'w'")

    tensor.dims = [4, -1]
    var negativeInitializer = overflowing
    negativeInitializer.graph.initializer = [tensor]
    expectError(negativeInitializer, .invalidTensor, "negative dimension -1")
  }

  @Test func elementCountsBeyondTheBudget() {
    expectError(singleNodeModel("ConstantOfShape", [.constant(ints([1 << 50]))]), .budgetExceeded, "memory budget")
    expectError(
      singleNodeModel("ConstantOfShape", [.constant(ints([1 << 40, 1 << 40]))]), .budgetExceeded, "overflows")
    expectError(singleNodeModel("ConstantOfShape", [.constant(ints([-5]))]), .shapeMismatch, "negative")
    expectError(
      singleNodeModel("Expand", [f32([1]), .constant(ints([1 << 31, 1 << 31]))]), .budgetExceeded, "(Expand, opset 17)")
    expectError(singleNodeModel("Tile", [f32([1 << 20]), .constant(ints([1 << 45]))]), .budgetExceeded, "Tile")
    expectError(
      singleNodeModel(
        "Range", [.constant(.scalar(Int64(0))), .constant(.scalar(Int64.max)), .constant(.scalar(Int64(1)))]),
      .budgetExceeded, "Range")
    expectError(
      singleNodeModel(
        "Range", [.constant(.scalar(Int64.min)), .constant(.scalar(Int64.max)), .constant(.scalar(Int64(1)))]),
      .budgetExceeded, "overflows")
    expectError(
      singleNodeModel(
        "Range", [.constant(.scalar(Float(0))), .constant(.scalar(Float.infinity)), .constant(.scalar(Float(1)))]),
      .shapeMismatch, "finite")
    expectError(
      singleNodeModel("Pad", [f32([2]), .constant(ints([Int64.max, 1]))], opset: 13), .budgetExceeded, "overflows")
    expectError(
      singleNodeModel("Concat", [f32([1 << 29]), f32([1 << 29]), f32([1 << 29])], ["axis": .int(0)]), .budgetExceeded,
      "output 0 (f32[1610612736]) needs 6442450944 bytes")

    var small = ModelBuilder()
    small.input("x", .float32, [1])
    small.initializer("w", TensorData([Float](repeating: 1, count: 1000)))
    small.node("Add", ["x", "w"], ["y"])
    small.output("y")
    expectError(small, .budgetExceeded, "initializer 'w' needs 4000 bytes", options: ImportOptions(memoryBudget: 3000))
  }

  @Test func outOfRangeGatherIndices() {
    expectError(
      singleNodeModel("Gather", [f32([3, 2]), .constant(ints([0, 3]))]), .shapeMismatch,
      "index 3 is out of range for axis 0 of size 3")
    expectError(singleNodeModel("Gather", [f32([3, 2]), .constant(ints([-4]))]), .shapeMismatch, "index -4")
    expectError(
      singleNodeModel("Gather", [.constant(TensorData([1, 2, 3] as [Int64])), .constant(ints([Int64.min]))]),
      .shapeMismatch,
      "out of range")
  }

  @Test func badTensorData() {
    func model(_ tensor: Onnx_TensorProto) -> ModelBuilder {
      var builder = ModelBuilder()
      builder.input("x", .float32, [2])
      builder.initializer(tensor)
      builder.node("Add", ["x", "w"], ["y"])
      builder.output("y")
      return builder
    }
    var tensor = Onnx_TensorProto()
    tensor.name = "w"
    tensor.dataType = 1
    tensor.dims = [2]
    tensor.rawData = Data([0, 0, 0])
    expectError(model(tensor), .invalidTensor, "needs 8 bytes of raw_data, has 3")
    tensor.clearRawData()
    tensor.floatData = [1]
    expectError(model(tensor), .invalidTensor, "needs 2 values, float_data has 1")
    tensor.floatData = []
    expectError(model(tensor), .invalidTensor, "float_data has 0")
    tensor.dataType = 8
    expectError(model(tensor), .unsupportedType, "STRING (8)")
    tensor.dataType = 99
    expectError(model(tensor), .unsupportedType, "element type 99")
  }

  @Test func symbolicDimensions() throws {
    var builder = ModelBuilder()
    builder.input("tokens", .int64, dims: [.param("batch"), 16])
    builder.node("Identity", ["tokens"], ["y"])
    builder.output("y")
    expectError(builder, .dynamicShape, "input 'tokens' has symbolic dimension 'batch' at axis 0")
    let graph = try builder.importGraph(options: ImportOptions(symbolicDimensions: ["batch": 4]))
    #expect(graph.type(of: graph.inputs[0]) == TensorType(.int64, [4, 16]))
    let overridden = try builder.importGraph(options: ImportOptions(inputShapes: ["tokens": [2, 16]]))
    #expect(overridden.type(of: overridden.inputs[0]).shape == [2, 16])
    expectError(builder, .invalidModel, "rank 1", options: ImportOptions(inputShapes: ["tokens": [2]]))
    expectError(builder, .invalidModel, "'nope'", options: ImportOptions(inputShapes: ["nope": [2]]))

    var unknown = ModelBuilder()
    unknown.input("x", .float32, dims: [.unknown, 3])
    unknown.node("Relu", ["x"], ["y"])
    unknown.output("y")
    expectError(unknown, .dynamicShape, "input 'x' has an unknown dimension at axis 0")
    var noShape = ModelBuilder()
    var info = Onnx_ValueInfoProto()
    info.name = "x"
    info.type.tensorType.elemType = 1
    noShape.graph.input = [info]
    noShape.node("Relu", ["x"], ["y"])
    noShape.output("y")
    expectError(noShape, .dynamicShape, "input 'x' has no shape")
    var sequence = noShape
    sequence.graph.input[0].type.sequenceType = Onnx_TypeProto.Sequence()
    expectError(sequence, .unsupportedType, "not a tensor")
  }

  /// A shape operand computed from runtime inputs names those inputs, and binding them compiles.
  @Test func shapeOperandFromRuntimeInputs() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2, 6])
    builder.input("shape", .int64, [2])
    builder.input("offset", .int64, [2])
    builder.input("unrelated", .int64, [2])
    builder.node("Add", ["shape", "offset"], ["target"])
    builder.node("Reshape", ["x", "target"], ["y"])
    builder.node("Identity", ["unrelated"], ["z"])
    builder.output("y")
    builder.output("z", .int64)
    let error = try #require(importError(builder))
    #expect(error.code == .dynamicShape)
    #expect(error.requiredInputs == ["offset", "shape"])
    #expect(error.description.contains("bind graph inputs 'offset', 'shape'"))
    let bound = try builder.importGraph(
      options: ImportOptions(constantInputs: ["shape": TensorData([Int64(1), 4]), "offset": TensorData([Int64(2), 0])]))
    #expect(outputType(bound) == TensorType(.float32, [3, 4]))
    #expect(bound.inputs.map { bound.values[$0.index].name } == ["x", "unrelated"])
  }
}
