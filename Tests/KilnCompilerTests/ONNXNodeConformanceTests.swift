import Foundation
import KilnCompiler
import KilnIR
import Testing

/// The official ONNX node tests (../shared/onnx-tests/node next to the repository, or the
/// directory in KILN_ONNX_NODE_TESTS) whose model is one node of an op that Kiln lowers or
/// decomposes: every input becomes a constant, the graph is decomposed, lowered node by node,
/// evaluated with `ExprEvaluator`, and compared with the expected outputs. Without the
/// directory the suite has no cases. Ops whose result sizes depend on data are left out: their
/// kernels write the importer's maximum shapes, not the test's exact ones (KilnConformanceTests
/// runs them through the importer and the runtime).
enum NodeTestSuite {
  static let directory: URL? = {
    let manager = FileManager.default
    if let path = ProcessInfo.processInfo.environment["KILN_ONNX_NODE_TESTS"], manager.fileExists(atPath: path) {
      return URL(fileURLWithPath: path)
    }
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let candidate = repository.deletingLastPathComponent().appendingPathComponent("shared/onnx-tests/node")
    return manager.fileExists(atPath: candidate.path) ? candidate : nil
  }()

  /// Tests whose expected failure is a deliberate limitation, with the reason.
  static let unsupported: [String: String] = [
    "test_batchnorm_epsilon_training_mode": "training mode",
    "test_batchnorm_example_training_mode": "training mode",
    "test_training_dropout": "training mode",
    "test_training_dropout_default": "training mode",
    "test_training_dropout_default_mask": "training mode",
    "test_training_dropout_mask": "training mode",
    "test_training_dropout_zero_ratio": "training mode",
    "test_training_dropout_zero_ratio_mask": "training mode",
    "test_dynamicquantizelinear": "x / y_scale is the float32 tie 25.5, which the double-precision evaluator misses",
  ]

  struct Case: Sendable, CustomStringConvertible {
    var name: String
    var description: String { name }
  }

  /// Supported single-node tests, sorted.
  static let cases: [Case] = {
    guard let directory else { return [] }
    let supported = Set(OpLowerings.supportedOps).union(Decompose.rewrittenOps)
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.sorted().compactMap { name -> Case? in
      guard name.hasPrefix("test_"), unsupported[name] == nil else { return nil }
      let folder = directory.appendingPathComponent(name)
      guard let model = try? MiniONNX.model(file: folder.appendingPathComponent("model.onnx")),
        model.nodes.count == 1, supported.contains(model.nodes[0].op), model.nodes[0].domain.isEmpty,
        !OpLowerings.dataDependentOps.contains(model.nodes[0].op),
        (try? load(folder, model)) != nil
      else { return nil }
      return Case(name: name)
    }
  }()

  /// The test's graph (inputs as constants) and expected outputs.
  static func load(_ folder: URL, _ model: MiniONNX.Model) throws -> (graph: Graph, outputs: [(ValueID, TensorData)]) {
    let data = folder.appendingPathComponent("test_data_set_0")
    var graph = Graph(name: folder.lastPathComponent, opsetImports: ["": model.opset])
    var ids: [String: ValueID] = [:]
    var fileIndex = 0
    for name in model.inputs {
      if let initializer = model.initializers[name] {
        ids[name] = graph.addConstant(initializer, name: name)
        continue
      }
      let tensor = try MiniONNX.tensor(file: data.appendingPathComponent("input_\(fileIndex).pb"))
      fileIndex += 1
      ids[name] = graph.addConstant(tensor, name: name)
    }
    for (name, tensor) in model.initializers where ids[name] == nil {
      ids[name] = graph.addConstant(tensor, name: name)
    }
    var expected: [String: TensorData] = [:]
    for (i, name) in model.outputs.enumerated() {
      expected[name] = try MiniONNX.tensor(file: data.appendingPathComponent("output_\(i).pb"))
    }
    let io = model.nodeIO[0]
    var outputNames = io.outputs
    while let last = outputNames.last, expected[last] == nil { outputNames.removeLast() }
    guard outputNames.allSatisfy({ expected[$0] != nil }) else {
      throw MiniONNX.Failure(description: "an output in the middle has no expected data")
    }
    var node = model.nodes[0]
    node.inputs = try io.inputs.map { name in
      if name.isEmpty { return nil }
      guard let id = ids[name] else { throw MiniONNX.Failure(description: "unknown input \(name)") }
      return id
    }
    while node.inputs.last == .some(nil) { node.inputs.removeLast() }
    node.outputs = outputNames.map { name in
      graph.addValue(name: name, type: expected[name]?.type ?? TensorType(.float32, []))
    }
    graph.nodes.append(node)
    graph.outputs = node.outputs
    return (graph, node.outputs.compactMap { id in expected[graph[id].name].map { (id, $0) } })
  }
}

@Suite("ONNX node tests")
struct ONNXNodeConformanceTests {
  @Test(arguments: NodeTestSuite.cases)
  func nodeTest(_ testCase: NodeTestSuite.Case) throws {
    guard let directory = NodeTestSuite.directory else { return }
    let folder = directory.appendingPathComponent(testCase.name)
    let model = try MiniONNX.model(file: folder.appendingPathComponent("model.onnx"))
    let (graph, expected) = try NodeTestSuite.load(folder, model)
    let decomposed = try Decompose.run(graph)
    let values = try LoweringHarness.evaluate(decomposed)
    for (id, data) in expected {
      let actual = try #require(values[id])
      let reference = data.doubles()
      let exact = !data.dtype.isFloat
      let tolerance = data.dtype == .float16 || data.dtype == .bfloat16 ? 1e-2 : 1e-4
      let ok = exact ? actual == reference : close(actual, reference, rtol: tolerance, atol: tolerance)
      #expect(ok, "\(graph[id].name): got \(actual.prefix(16)), expected \(reference.prefix(16))")
    }
  }
}
