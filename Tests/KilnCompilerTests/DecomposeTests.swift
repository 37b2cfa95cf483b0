import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Decompose pass")
struct DecomposeTests {
  /// One node over a runtime input `x`, decomposed, verified and evaluated.
  static func decomposeAndRun(
    _ op: String, version: Int, x: TensorData, extra: [TensorData?] = [], outputs: [TensorType],
    attributes: [String: AttributeValue] = [:]
  ) throws -> (graph: Graph, values: [[Double]]) {
    var graph = Graph(opsetImports: ["": version])
    let input = graph.addInput(name: "x", type: x.type)
    let others = extra.enumerated().map { i, data in data.map { graph.addConstant($0, name: "p\(i)") } }
    let results = graph.addNode(
      op, version: version, name: "n", inputs: [input] + others, outputTypes: outputs, attributes: attributes)
    graph.outputs = results
    let decomposed = try Decompose.run(graph)
    try decomposed.verify()
    #expect(!decomposed.nodes.contains { $0.op == op })
    let names = decomposed.values.map(\.name)
    #expect(Set(names).count == names.count, "value names are unique")
    let values = try LoweringHarness.evaluate(decomposed, inputs: [input: x.doubles()])
    return (decomposed, results.map { values[$0] ?? [] })
  }

  static func softmaxRows(_ values: [Double], rows: Int, log logarithm: Bool = false) -> [Double] {
    let width = values.count / rows
    return (0..<rows).flatMap { r -> [Double] in
      let row = Array(values[(r * width)..<((r + 1) * width)])
      let m = row.max() ?? 0
      let sum = row.map { exp($0 - m) }.reduce(0, +)
      return row.map { logarithm ? ($0 - m) - log(sum) : exp($0 - m) / sum }
    }
  }

  @Test func softmaxOpset13UsesOneAxis() throws {
    let x = random([2, 3, 4], seed: 1)
    let (_, values) = try Self.decomposeAndRun(
      "Softmax", version: 13, x: x, outputs: [x.type], attributes: ["axis": .int(1)])
    // Reference over axis 1: transpose to put it last.
    let xv = x.doubles()
    var expected = [Double](repeating: 0, count: 24)
    for a in 0..<2 {
      for c in 0..<4 {
        let column = (0..<3).map { xv[offset([a, $0, c], [2, 3, 4])] }
        for (b, v) in Self.softmaxRows(column, rows: 1).enumerated() { expected[offset([a, b, c], [2, 3, 4])] = v }
      }
    }
    expectClose(values[0], expected)
  }

  @Test func softmaxBeforeOpset13CoercesTo2D() throws {
    let x = random([2, 3, 4], seed: 2)
    let (_, values) = try Self.decomposeAndRun("Softmax", version: 11, x: x, outputs: [x.type])
    expectClose(values[0], Self.softmaxRows(x.doubles(), rows: 2))
    let (_, logs) = try Self.decomposeAndRun(
      "LogSoftmax", version: 11, x: x, outputs: [x.type], attributes: ["axis": .int(2)])
    expectClose(logs[0], Self.softmaxRows(x.doubles(), rows: 6, log: true))
  }

  @Test func softmaxIsStableForLargeInputs() throws {
    let x = TensorData([Float(1000), 1001, 1002])
    let (_, values) = try Self.decomposeAndRun("Softmax", version: 13, x: x, outputs: [x.type])
    expectClose(values[0], Self.softmaxRows([0, 1, 2], rows: 1))
  }

  @Test func layerNormalizationWithStatistics() throws {
    let x = random([2, 3, 4], seed: 3)
    let scale = random([3, 4], seed: 4)
    let bias = random([4], seed: 5)
    let statistics = TensorType(.float32, [2, 1, 1])
    let (graph, values) = try Self.decomposeAndRun(
      "LayerNormalization", version: 17, x: x, extra: [scale, bias], outputs: [x.type, statistics, statistics],
      attributes: ["axis": .int(1), "epsilon": .float(1e-3)])
    #expect(graph.nodes.allSatisfy { $0.version == 13 || $0.version == 14 || $0.version == 18 })
    let xv = x.doubles()
    let sv = scale.doubles()
    let bv = bias.doubles()
    var expected: [Double] = []
    var means: [Double] = []
    var inverses: [Double] = []
    for n in 0..<2 {
      let group = Array(xv[(n * 12)..<(n * 12 + 12)])
      let mean = group.reduce(0, +) / 12
      let variance = group.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12
      let deviation = (variance + Double(Float(1e-3))).squareRoot()
      means.append(mean)
      inverses.append(1 / deviation)
      for i in 0..<12 { expected.append((group[i] - mean) / deviation * sv[i] + bv[i % 4]) }
    }
    expectClose(values[0], expected)
    expectClose(values[1], means)
    expectClose(values[2], inverses)
  }

  @Test func instanceNormalization() throws {
    let x = random([2, 3, 5], seed: 6)
    let scale = TensorData([Float(1), 2, 3])
    let bias = TensorData([Float(0), -1, 1])
    let (_, values) = try Self.decomposeAndRun(
      "InstanceNormalization", version: 6, x: x, extra: [scale, bias], outputs: [x.type])
    let xv = x.doubles()
    var expected: [Double] = []
    for n in 0..<2 {
      for c in 0..<3 {
        let group = (0..<5).map { xv[offset([n, c, $0], [2, 3, 5])] }
        let mean = group.reduce(0, +) / 5
        let variance = group.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 5
        expected += group.map {
          ($0 - mean) / (variance + Double(Float(1e-5))).squareRoot() * Double(c + 1) + [0, -1, 1][c]
        }
      }
    }
    expectClose(values[0], expected)
  }

  @Test func hardmaxPicksFirstMaximum() throws {
    let x = TensorData([Float(1), 3, 3, 0, 2, 2, 1, 0], shape: [2, 4])
    let (_, modern) = try Self.decomposeAndRun("Hardmax", version: 13, x: x, outputs: [x.type])
    #expect(modern[0] == [0, 1, 0, 0, 1, 0, 0, 0])
    let (_, legacy) = try Self.decomposeAndRun(
      "Hardmax", version: 11, x: x, outputs: [x.type], attributes: ["axis": .int(0)])
    #expect(legacy[0] == [0, 1, 0, 0, 0, 0, 0, 0])
  }

  @Test func meanVarianceNormalizationAndRMS() throws {
    let x = random([2, 2, 2, 3], seed: 8)
    let (_, mvn) = try Self.decomposeAndRun("MeanVarianceNormalization", version: 13, x: x, outputs: [x.type])
    let xv = x.doubles()
    var expected = [Double](repeating: 0, count: 24)
    for c in 0..<2 {
      var indices: [Int] = []
      forEachIndex([2, 1, 2, 3]) { i in indices.append(offset([i[0], c, i[2], i[3]], [2, 2, 2, 3])) }
      let group = indices.map { xv[$0] }
      let mean = group.reduce(0, +) / Double(group.count)
      let deviation = (group.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(group.count)).squareRoot()
      for i in indices { expected[i] = (xv[i] - mean) / (deviation + 1e-9) }
    }
    expectClose(mvn[0], expected)
    let (_, rms) = try Self.decomposeAndRun(
      "RMSNormalization", version: 23, x: x, extra: [TensorData([Float(2), 1, 0.5])], outputs: [x.type])
    var rmsExpected: [Double] = []
    for row in 0..<8 {
      let values = Array(xv[(row * 3)..<(row * 3 + 3)])
      let scale = (values.map { $0 * $0 }.reduce(0, +) / 3 + Double(Float(1e-5))).squareRoot()
      rmsExpected += values.enumerated().map { $0.element / scale * [2, 1, 0.5][$0.offset] }
    }
    expectClose(rms[0], rmsExpected)
  }

  @Test func reduceLogSumExpIsStable() throws {
    let x = TensorData([Float(1000), 1000, -5, -5], shape: [2, 2])
    let (_, values) = try Self.decomposeAndRun(
      "ReduceLogSumExp", version: 18, x: x, extra: [TensorData([Int64(1)])], outputs: [TensorType(.float32, [2])],
      attributes: ["keepdims": .int(0)])
    expectClose(values[0], [1000 + log(2.0), -5 + log(2.0)])
  }

  @Test func otherNodesAreKeptInOrder() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [2, 3]))
    let a = graph.addNode("Relu", version: 14, inputs: [x], outputTypes: [TensorType(.float32, [2, 3])])[0]
    let s = graph.addNode("Softmax", version: 13, inputs: [a], outputTypes: [TensorType(.float32, [2, 3])])[0]
    let y = graph.addNode("Neg", version: 13, inputs: [s], outputTypes: [TensorType(.float32, [2, 3])])[0]
    graph.outputs = [y]
    let decomposed = try Decompose.run(graph)
    try decomposed.verify()
    #expect(decomposed.nodes.first?.op == "Relu")
    #expect(decomposed.nodes.last?.op == "Neg")
    #expect(decomposed.nodes.last?.inputs == [s])
  }
}
