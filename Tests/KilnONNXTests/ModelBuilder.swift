import Foundation
import KilnIR

@testable import KilnONNX

/// Builds ONNX models in memory from SwiftProtobuf messages, so tests need no Python.
struct ModelBuilder {
  var graph = Onnx_GraphProto()
  var opsets: [(String, Int64)]
  var irVersion: Int64 = 8

  init(opset: Int = 17, name: String = "test") {
    opsets = [("", Int64(opset))]
    graph.name = name
  }

  static func valueInfo(_ name: String, _ dtype: DType, _ dims: [Dim]) -> Onnx_ValueInfoProto {
    var info = Onnx_ValueInfoProto()
    info.name = name
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = dtype.onnxCode
    var shape = Onnx_TensorShapeProto()
    shape.dim = dims.map { dim in
      var d = Onnx_TensorShapeProto.Dimension()
      switch dim {
      case .value(let v): d.dimValue = Int64(v)
      case .param(let p): d.dimParam = p
      case .unknown: break
      }
      return d
    }
    tensor.shape = shape
    info.type.tensorType = tensor
    return info
  }

  enum Dim: ExpressibleByIntegerLiteral {
    case value(Int)
    case param(String)
    case unknown
    init(integerLiteral value: Int) { self = .value(value) }
  }

  mutating func input(_ name: String, _ dtype: DType, _ shape: [Int]) {
    graph.input.append(Self.valueInfo(name, dtype, shape.map { .value($0) }))
  }

  mutating func input(_ name: String, _ dtype: DType, dims: [Dim]) {
    graph.input.append(Self.valueInfo(name, dtype, dims))
  }

  mutating func output(_ name: String, _ dtype: DType = .float32) {
    var info = Onnx_ValueInfoProto()
    info.name = name
    var tensor = Onnx_TypeProto.Tensor()
    tensor.elemType = dtype.onnxCode
    info.type.tensorType = tensor
    graph.output.append(info)
  }

  static func tensorProto(_ name: String, _ data: TensorData) -> Onnx_TensorProto {
    var tensor = Onnx_TensorProto()
    tensor.name = name
    tensor.dataType = data.dtype.onnxCode
    tensor.dims = data.shape.map { Int64($0) }
    tensor.rawData = Data(data.bytes)
    return tensor
  }

  mutating func initializer(_ name: String, _ data: TensorData) {
    graph.initializer.append(Self.tensorProto(name, data))
  }

  mutating func initializer(_ tensor: Onnx_TensorProto) {
    graph.initializer.append(tensor)
  }

  static func attribute(_ name: String, _ value: AttributeValue) -> Onnx_AttributeProto {
    var a = Onnx_AttributeProto()
    a.name = name
    switch value {
    case .int(let v):
      a.type = .int
      a.i = v
    case .float(let v):
      a.type = .float
      a.f = v
    case .string(let v):
      a.type = .string
      a.s = Data(v.utf8)
    case .ints(let v):
      a.type = .ints
      a.ints = v
    case .floats(let v):
      a.type = .floats
      a.floats = v
    case .strings(let v):
      a.type = .strings
      a.strings = v.map { Data($0.utf8) }
    case .tensor(let t):
      a.type = .tensor
      a.t = tensorProto("", t)
    }
    return a
  }

  mutating func node(
    _ op: String, _ inputs: [String], _ outputs: [String], name: String? = nil,
    _ attributes: [String: AttributeValue] = [:], domain: String = ""
  ) {
    var node = Onnx_NodeProto()
    node.opType = op
    node.name = name ?? outputs.first ?? op
    node.domain = domain
    node.input = inputs
    node.output = outputs
    node.attribute = attributes.keys.sorted().map { Self.attribute($0, attributes[$0]!) }
    graph.node.append(node)
  }

  var model: Onnx_ModelProto {
    var model = Onnx_ModelProto()
    model.irVersion = irVersion
    model.producerName = "kiln-tests"
    model.opsetImport = opsets.map { domain, version in
      var entry = Onnx_OperatorSetIdProto()
      entry.domain = domain
      entry.version = version
      return entry
    }
    model.graph = graph
    return model
  }

  func serialized() throws -> Data { try model.serializedData() }

  func importGraph(options: ImportOptions = .init(), baseDirectory: URL? = nil) throws -> Graph {
    try ONNXImporter(options: options).importModel(
      data: try serialized(), baseDirectory: baseDirectory, modelPath: "test.onnx")
  }
}

/// Imports and returns the error, or nil when the import succeeded.
func importError(_ builder: ModelBuilder, options: ImportOptions = .init(), baseDirectory: URL? = nil)
  -> ONNXImportError?
{
  do {
    _ = try builder.importGraph(options: options, baseDirectory: baseDirectory)
    return nil
  } catch let error as ONNXImportError {
    return error
  } catch {
    return ONNXImportError(.internalError, "unexpected error type: \(error)")
  }
}

/// The type of graph output `index`.
func outputType(_ graph: Graph, _ index: Int = 0) -> TensorType {
  graph.type(of: graph.outputs[index])
}

/// Root of the Kiln package (two folders above this file's folder).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

/// One operand of a single-node test model.
enum Operand {
  /// A runtime graph input.
  case input(DType, [Int])
  /// An initializer.
  case constant(TensorData)
  /// An omitted optional operand (empty name).
  case omitted
}

/// A model holding one `op` node whose every output is a graph output.
func singleNodeModel(
  _ op: String, _ operands: [Operand], _ attributes: [String: AttributeValue] = [:], opset: Int = 17,
  outputs: Int = 1
) -> ModelBuilder {
  var builder = ModelBuilder(opset: opset)
  var names: [String] = []
  for (index, operand) in operands.enumerated() {
    switch operand {
    case .input(let dtype, let shape):
      builder.input("in\(index)", dtype, shape)
      names.append("in\(index)")
    case .constant(let data):
      builder.initializer("in\(index)", data)
      names.append("in\(index)")
    case .omitted:
      names.append("")
    }
  }
  let outputNames = (0..<outputs).map { "out\($0)" }
  builder.node(op, names, outputNames, name: "n", attributes)
  for name in outputNames { builder.output(name) }
  return builder
}

/// Output types of a single `op` node (constant folding off, so the node is kept when possible).
func infer(
  _ op: String, _ operands: [Operand], _ attributes: [String: AttributeValue] = [:], opset: Int = 17,
  outputs: Int = 1
) throws -> [TensorType] {
  let graph = try singleNodeModel(op, operands, attributes, opset: opset, outputs: outputs)
    .importGraph(options: ImportOptions(foldConstants: false))
  return graph.outputs.map { graph.type(of: $0) }
}

/// The import error of a single `op` node.
func inferError(
  _ op: String, _ operands: [Operand], _ attributes: [String: AttributeValue] = [:], opset: Int = 17,
  outputs: Int = 1
) -> ONNXImportError? {
  importError(singleNodeModel(op, operands, attributes, opset: opset, outputs: outputs))
}

func ints(_ values: [Int64]) -> TensorData { TensorData(values) }
func f32(_ shape: [Int]) -> Operand { .input(.float32, shape) }
