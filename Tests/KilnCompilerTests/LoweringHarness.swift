import Foundation
import KilnCompiler
import KilnIR
import Testing

/// Lowers and evaluates graphs node by node with `ExprEvaluator`: every input element is a load
/// from the input's own (materialised) tensor, so each node is checked on its own.
enum LoweringHarness {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  /// The kernel computing output `output` of `graph.nodes[index]`.
  static func kernel(_ graph: Graph, node index: Int, output: Int = 0) throws -> Kernel {
    let node = graph.nodes[index]
    guard let lowering = try OpLowerings.lowering(for: node) else {
      throw Failure(description: "\(node.op) has no lowering")
    }
    let context = LoweringContext(node: node, graph: graph, variables: VariableCounter()) { slot, coordinates in
      guard let id = node.inputs[slot] else { throw Failure(description: "input \(slot) is absent") }
      return .load(input: slot, dtype: graph.type(of: id).dtype, index: Expr.linearIndex(coordinates, shape: graph.type(of: id).shape))
    }
    let shape = graph.type(of: node.outputs[output]).shape
    let outputType = graph.type(of: node.outputs[output])
    var body: Expr
    var region: Region?
    if let program = lowering.program {
      let programContext = LoweringContext(
        node: node, graph: graph, variables: VariableCounter(), element: { _, _ in throw Failure(description: "element of a custom op") },
        linear: { slot, index in
          guard let id = node.inputs[slot] else { throw Failure(description: "input \(slot) is absent") }
          return .load(input: slot, dtype: graph.type(of: id).dtype, index: index)
        })
      region = Region(kind: .custom, program: try program(programContext, output))
      body = .constant(0, .compute(outputType.dtype))
    } else {
      body = try lowering.lower(context, output, (0..<shape.count).map { .coordinate($0) })
    }
    let operands = node.inputs.map { id in
      id.map { Kernel.Operand(dtype: graph.type(of: $0).dtype, elementCount: graph.type(of: $0).elementCount ?? 0) }
        ?? Kernel.Operand(dtype: .float32, elementCount: 0)
    }
    return Kernel(
      name: node.name, inputs: operands,
      output: Kernel.Operand(dtype: outputType.dtype, elementCount: outputType.elementCount ?? 0),
      shape: shape, body: body, sourceOps: [node.name], region: region)
  }

  /// Every value of `graph` after evaluating all nodes in order, from constants and `inputs`.
  static func evaluate(_ graph: Graph, inputs: [ValueID: [Double]] = [:]) throws -> [ValueID: [Double]] {
    var values = inputs
    for (id, data) in graph.constants { values[id] = data.doubles() }
    for index in graph.nodes.indices {
      let node = graph.nodes[index]
      for output in node.outputs.indices {
        let kernel = try kernel(graph, node: index, output: output)
        let operands = try node.inputs.map { id -> [Double] in
          guard let id else { return [] }
          guard let data = values[id] else { throw Failure(description: "value \(graph[id].name) is not computed") }
          return data
        }
        var evaluator = ExprEvaluator(kernel: kernel, inputs: operands)
        do {
          values[node.outputs[output]] = try evaluator.run()
        } catch {
          throw Failure(description: "\(node.label) output \(output): \(error)")
        }
      }
    }
    return values
  }

  /// Builds a one-node graph: `inputs` become constants (so attribute-like inputs are known), the
  /// node gets `outputTypes`; returns the evaluated outputs.
  static func run(
    _ op: String, version: Int = 18, inputs: [TensorData?], outputs outputTypes: [TensorType],
    attributes: [String: AttributeValue] = [:]
  ) throws -> [[Double]] {
    var graph = Graph(opsetImports: ["": version])
    let ids = inputs.enumerated().map { slot, data in data.map { graph.addConstant($0, name: "in\(slot)") } }
    let outputs = graph.addNode(
      op, version: version, name: op.lowercased(), inputs: ids, outputTypes: outputTypes, attributes: attributes)
    // Ops that `Decompose` rewrites (TopK) are checked as it rewrites them.
    let values = try evaluate(try Decompose.run(graph))
    return outputs.map { values[$0] ?? [] }
  }

  /// `run` for a single output.
  static func run1(
    _ op: String, version: Int = 18, inputs: [TensorData?], output: TensorType,
    attributes: [String: AttributeValue] = [:]
  ) throws -> [Double] {
    try run(op, version: version, inputs: inputs, outputs: [output], attributes: attributes)[0]
  }
}

/// Elementwise closeness: |a - b| <= atol + rtol * |b|, NaNs equal, infinities equal.
func close(_ actual: [Double], _ expected: [Double], rtol: Double = 1e-4, atol: Double = 1e-5) -> Bool {
  guard actual.count == expected.count else { return false }
  for (a, b) in zip(actual, expected) {
    if a.isNaN && b.isNaN { continue }
    if a.isInfinite || b.isInfinite {
      if a != b { return false }
      continue
    }
    if Swift.abs(a - b) > atol + rtol * Swift.abs(b) { return false }
  }
  return true
}

/// Expects `actual` to match `expected` within tolerance, printing both on failure.
func expectClose(
  _ actual: [Double], _ expected: [Double], rtol: Double = 1e-4, atol: Double = 1e-5,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(
    close(actual, expected, rtol: rtol, atol: atol), "got \(actual), expected \(expected)",
    sourceLocation: sourceLocation)
}

/// Row-major float32 tensor with values 0, 1, 2, ... times `scale` plus `offset`.
func iota(_ shape: [Int], scale: Float = 1, offset: Float = 0) -> TensorData {
  TensorData((0..<shape.reduce(1, *)).map { Float($0) * scale + offset }, shape: shape)
}

/// Deterministic pseudo-random float32 values in [-1, 1).
func random(_ shape: [Int], seed: UInt64 = 1) -> TensorData {
  var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
  let values = (0..<shape.reduce(1, *)).map { _ -> Float in
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return Float((state >> 40) & 0xFFFF) / 32768 - 1
  }
  return TensorData(values, shape: shape)
}

/// Row-major multi-index iteration helper.
func forEachIndex(_ shape: [Int], _ body: ([Int]) -> Void) {
  let count = shape.reduce(1, *)
  var index = [Int](repeating: 0, count: shape.count)
  for _ in 0..<count {
    body(index)
    var axis = shape.count - 1
    while axis >= 0 {
      index[axis] += 1
      if index[axis] < shape[axis] { break }
      index[axis] = 0
      axis -= 1
    }
  }
}

/// Row-major offset of `index` in `shape`.
func offset(_ index: [Int], _ shape: [Int]) -> Int {
  var result = 0
  for (i, extent) in zip(index, shape) { result = result * extent + i }
  return result
}
