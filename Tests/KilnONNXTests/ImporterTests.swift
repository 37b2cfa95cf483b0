import Foundation
import KilnIR
import Testing

@testable import KilnONNX

@Suite struct ImporterTests {
  @Test func initializersListedAsInputsAreConstants() throws {
    var builder = ModelBuilder(opset: 7)
    builder.irVersion = 3
    builder.input("x", .float32, [2])
    builder.input("w", .float32, [2])
    builder.initializer("w", TensorData([1, 2] as [Float]))
    builder.node("Mul", ["x", "w"], ["y"])
    builder.output("y")
    let graph = try builder.importGraph()
    #expect(graph.inputs.count == 1)
    #expect(graph[graph.inputs[0]].name == "x")
    #expect(graph.constants.count == 1)
    #expect(graph.nodes[0].version == 7)
    #expect(graph.opsetImports == ["": 7])
  }

  @Test func constantNodesBecomeConstants() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2])
    builder.node("Constant", [], ["c"], ["value": .tensor(TensorData([3, 4] as [Float]))])
    builder.node("Constant", [], ["k"], ["value_int": .int(5)])
    builder.node("Add", ["x", "c"], ["y"])
    builder.output("y")
    builder.output("k")
    let graph = try builder.importGraph()
    #expect(graph.nodes.map(\.op) == ["Add"])
    #expect(graph.constants[graph.nodes[0].inputs[1]!]?.floats() == [3, 4])
    #expect(graph.constants[graph.outputs[1]] == .scalar(Int64(5)))
    #expect(graph.nodes[0].domain == "")
  }

  @Test func explicitAiOnnxDomain() throws {
    var builder = ModelBuilder()
    builder.opsets = [("ai.onnx", 15), ("ai.onnx.ml", 3)]
    builder.input("x", .float32, [2])
    builder.node("Relu", ["x"], ["y"], domain: "ai.onnx")
    builder.output("y")
    let graph = try builder.importGraph()
    #expect(graph.nodes[0].domain == "")
    #expect(graph.nodes[0].version == 15)
  }

  @Test func typedTensorFields() throws {
    func decode(_ configure: (inout Onnx_TensorProto) -> Void) throws -> TensorData {
      var tensor = Onnx_TensorProto()
      tensor.name = "t"
      configure(&tensor)
      var decoder = TensorDecoder(externalData: ExternalDataReader(baseDirectory: nil), budget: 1 << 20)
      return try decoder.decode(tensor, what: "t")
    }
    let floats = try decode {
      $0.dataType = 1; $0.dims = [2]; $0.floatData = [1.5, -2]
    }
    #expect(floats.floats() == [1.5, -2])
    let halves = try decode {
      $0.dataType = 10; $0.dims = [2]; $0.int32Data = [0x3c00, 0xc000]
    }
    #expect(halves.floats() == [1, -2])
    let bf16 = try decode {
      $0.dataType = 16; $0.dims = [1]; $0.int32Data = [0x3f80]
    }
    #expect(bf16.floats() == [1])
    let bools = try decode {
      $0.dataType = 9; $0.dims = [3]; $0.int32Data = [1, 0, 5]
    }
    #expect(bools.bytes == [1, 0, 1])
    let int8s = try decode {
      $0.dataType = 3; $0.dims = [2]; $0.int32Data = [-1, 127]
    }
    #expect(int8s.int64s() == [-1, 127])
    let uint16s = try decode {
      $0.dataType = 4; $0.dims = [1]; $0.int32Data = [65535]
    }
    #expect(uint16s.int64s() == [65535])
    let int64s = try decode {
      $0.dataType = 7; $0.dims = [2, 1]; $0.int64Data = [Int64.min, 3]
    }
    #expect(int64s.int64s() == [Int64.min, 3] && int64s.shape == [2, 1])
    let doubles = try decode {
      $0.dataType = 11; $0.dims = []; $0.doubleData = [0.1]
    }
    #expect(doubles.doubles() == [0.1])
    let uint64s = try decode {
      $0.dataType = 13; $0.dims = [1]; $0.uint64Data = [UInt64.max]
    }
    #expect(uint64s.doubles() == [Double(UInt64.max)])
    let uint32s = try decode {
      $0.dataType = 12; $0.dims = [1]; $0.uint64Data = [4_000_000_000]
    }
    #expect(uint32s.int64s() == [4_000_000_000])
    let empty = try decode {
      $0.dataType = 1; $0.dims = [0, 3]
    }
    #expect(empty.elementCount == 0)
    #expect(throws: ONNXImportError.self) {
      try decode {
        $0.dataType = 1; $0.dims = [1]; $0.segment = .init()
      }
    }
  }

  @Test func unusedOptionalOutputsAreDropped() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [1, 1, 4, 4])
    builder.node("MaxPool", ["x"], ["p", "indices"], ["kernel_shape": .ints([2, 2])])
    builder.output("p")
    let graph = try builder.importGraph()
    #expect(graph.nodes[0].outputs.count == 1)

    var norm = ModelBuilder(opset: 9)
    let c = TensorData([1, 1] as [Float])
    norm.input("x", .float32, [1, 2, 3])
    for name in ["s", "b", "m", "v"] { norm.initializer(name, c) }
    norm.node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "mean", "var", "saved_mean", "saved_var"])
    norm.output("y")
    #expect(try norm.importGraph().nodes[0].outputs.count == 1)
    norm.output("mean")
    #expect(importError(norm)?.code == .unsupportedAttribute)
  }

  @Test func constantInputsOption() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2, 6])
    builder.input("shape", .int64, [2])
    builder.node("Reshape", ["x", "shape"], ["y"])
    builder.output("y")
    #expect(importError(builder)?.code == .dynamicShape)
    let graph = try builder.importGraph(
      options: ImportOptions(constantInputs: ["shape": TensorData([3, 4] as [Int64])]))
    #expect(outputType(graph) == TensorType(.float32, [3, 4]))
    #expect(graph.inputs.count == 1)
    let wrong = ImportOptions(constantInputs: ["shape": TensorData([3, 4] as [Int32])])
    #expect(importError(builder, options: wrong)?.message.contains("is int32") == true)
  }

  @Test func graphOutputsMayBeInputsOrConstants() throws {
    var builder = ModelBuilder()
    builder.input("x", .float32, [2])
    builder.initializer("c", TensorData([1] as [Float]))
    builder.node("Identity", ["x"], ["y"])
    builder.output("y")
    builder.output("c")
    builder.output("x")
    let graph = try builder.importGraph()
    #expect(graph.outputs == [graph.inputs[0], graph.outputs[1], graph.inputs[0]])
    #expect(graph.isConstant(graph.outputs[1]))
    try graph.verify()
  }

  @Test func importFromFileNamesThePath() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-import-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    var builder = ModelBuilder()
    builder.input("x", .float32, [1])
    builder.node("Bar", ["x"], ["y"], name: "foo")
    builder.output("y")
    let url = folder.appendingPathComponent("model.onnx")
    try builder.serialized().write(to: url)
    do {
      _ = try ONNXImporter().importModel(at: url)
      Issue.record("expected an error")
    } catch let error as ONNXImportError {
      #expect(error.description == "\(url.path): node 'foo' (Bar, opset 17): unsupported op")
      #expect(error.nodeName == "foo" && error.op == "Bar" && error.opset == 17)
    }
    do {
      _ = try ONNXImporter().importModel(at: folder.appendingPathComponent("missing.onnx"))
    } catch let error as ONNXImportError {
      #expect(error.code == .io)
    }
  }

  @Test func supportedOpsListCoversTheBrief() {
    let required = """
      Conv ConvTranspose Gemm MatMul Add Sub Mul Div Pow Sqrt Exp Log Erf Tanh Sigmoid Relu LeakyRelu Clip
      HardSigmoid HardSwish Gelu Neg Abs Reciprocal Floor Ceil Max Min Sum Mean Not And Or BatchNormalization
      LayerNormalization InstanceNormalization LRN MaxPool AveragePool GlobalAveragePool GlobalMaxPool Softmax
      LogSoftmax ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd Concat Split Slice Pad Reshape Flatten
      Transpose Squeeze Unsqueeze Expand Gather Where Cast Equal Less Greater LessOrEqual GreaterOrEqual Dropout
      Identity Resize ArgMax ArgMin Shape Size ConstantOfShape Constant Range Tile
      """.split(whereSeparator: \.isWhitespace).map(String.init)
    let supported = Set(ONNXImporter.supportedOps)
    #expect(required.filter { !supported.contains($0) } == [])
  }
}
