import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Reduction lowering")
struct ReductionLoweringTests {
  /// Reference reduction of a [2, 3, 4] tensor over `axes` with keepdims.
  static func reference(_ x: TensorData, axes: Set<Int>, _ fold: ([Double]) -> Double) -> [Double] {
    let shape = x.shape
    let values = x.doubles()
    var groups: [[Int]: [Double]] = [:]
    var order: [[Int]] = []
    forEachIndex(shape) { i in
      let key = i.enumerated().map { axes.contains($0.offset) ? 0 : $0.element }
      if groups[key] == nil { order.append(key) }
      groups[key, default: []].append(values[offset(i, shape)])
    }
    return order.sorted { offset($0, shape) < offset($1, shape) }.map { fold(groups[$0] ?? []) }
  }

  static let folds: [String: @Sendable ([Double]) -> Double] = [
    "ReduceSum": { $0.reduce(0, +) },
    "ReduceMean": { $0.reduce(0, +) / Double($0.count) },
    "ReduceMax": { $0.max() ?? 0 },
    "ReduceMin": { $0.min() ?? 0 },
    "ReduceProd": { $0.reduce(1, *) },
    "ReduceL1": { $0.map(abs).reduce(0, +) },
    "ReduceL2": { $0.map { $0 * $0 }.reduce(0, +).squareRoot() },
    "ReduceSumSquare": { $0.map { $0 * $0 }.reduce(0, +) },
    "ReduceLogSumExp": { log($0.map(exp).reduce(0, +)) },
  ]

  @Test(arguments: folds.keys.sorted())
  func reduceOverTwoAxes(_ op: String) throws {
    let fold = try #require(Self.folds[op])
    let x = random([2, 3, 4], seed: 3)
    let expected = Self.reference(x, axes: [0, 2], fold)
    // Axes as an attribute (opset 13, or 11 for ReduceSum) and as an input (18).
    let legacy = try LoweringHarness.run1(
      op, version: op == "ReduceSum" ? 11 : 13, inputs: [x], output: TensorType(.float32, [1, 3, 1]),
      attributes: ["axes": .ints([0, -1])])
    expectClose(legacy, expected)
    let modern = try LoweringHarness.run1(
      op, version: 18, inputs: [x, TensorData([Int64(0), 2])], output: TensorType(.float32, [3]),
      attributes: ["keepdims": .int(0)])
    expectClose(modern, expected)
  }

  @Test func emptyAxesReduceEverythingOrNothing() throws {
    let x = iota([2, 3])
    #expect(
      try LoweringHarness.run1("ReduceSum", version: 13, inputs: [x], output: TensorType(.float32, [1, 1])) == [15])
    let noop = try LoweringHarness.run1(
      "ReduceSum", version: 13, inputs: [x, TensorData([Int64]())], output: x.type,
      attributes: ["noop_with_empty_axes": .int(1)])
    #expect(noop == (0..<6).map(Double.init))
  }

  @Test func argMaxSelectLastIndex() throws {
    let x = TensorData([Float(1), 3, 3, 2, 5, 5, 5, 0], shape: [2, 4])
    let first = try LoweringHarness.run1(
      "ArgMax", version: 13, inputs: [x], output: TensorType(.int64, [2, 1]), attributes: ["axis": .int(1)])
    #expect(first == [1, 0])
    let last = try LoweringHarness.run1(
      "ArgMax", version: 13, inputs: [x], output: TensorType(.int64, [2]),
      attributes: ["axis": .int(-1), "keepdims": .int(0), "select_last_index": .int(1)])
    #expect(last == [2, 2])
    let minimum = try LoweringHarness.run1(
      "ArgMin", version: 13, inputs: [x], output: TensorType(.int64, [1, 4]), attributes: ["select_last_index": .int(1)]
    )
    #expect(minimum == [0, 0, 0, 1])
  }

  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func cumSumVariants(_ exclusive: Bool, _ reverse: Bool) throws {
    let x = TensorData([Float(1), 2, 3, 4, 5, 6], shape: [2, 3])
    let result = try LoweringHarness.run1(
      "CumSum", version: 14, inputs: [x, TensorData([Int32(1)], shape: [])], output: x.type,
      attributes: ["exclusive": .int(exclusive ? 1 : 0), "reverse": .int(reverse ? 1 : 0)])
    var expected: [Double] = []
    for row in [[1.0, 2, 3], [4.0, 5, 6]] {
      for j in 0..<3 {
        let range = reverse ? (exclusive ? (j + 1)..<3 : j..<3) : (exclusive ? 0..<j : 0..<(j + 1))
        expected.append(row[range].reduce(0, +))
      }
    }
    #expect(result == expected)
  }

  @Test func matMulBroadcastsBatchAxes() throws {
    let a = random([2, 1, 3, 4], seed: 1)
    let b = random([3, 4, 2], seed: 2)
    let result = try LoweringHarness.run1("MatMul", inputs: [a, b], output: TensorType(.float32, [2, 3, 3, 2]))
    let av = a.doubles()
    let bv = b.doubles()
    var expected: [Double] = []
    forEachIndex([2, 3, 3, 2]) { i in
      var sum = 0.0
      for k in 0..<4 {
        sum += av[offset([i[0], 0, i[2], k], [2, 1, 3, 4])] * bv[offset([i[1], k, i[3]], [3, 4, 2])]
      }
      expected.append(sum)
    }
    expectClose(result, expected)
  }

  @Test func matMulWithVectors() throws {
    let m = iota([2, 3])
    let v = TensorData([Float(1), 10, 100])
    #expect(try LoweringHarness.run1("MatMul", inputs: [m, v], output: TensorType(.float32, [2])) == [210, 543])
    let w = TensorData([Float(1), 10])
    #expect(try LoweringHarness.run1("MatMul", inputs: [w, m], output: TensorType(.float32, [3])) == [30, 41, 52])
    #expect(try LoweringHarness.run1("MatMul", inputs: [v, v], output: TensorType(.float32, [])) == [10101])
    let batched = iota([2, 3, 2])
    #expect(
      try LoweringHarness.run1(
        "MatMul", inputs: [TensorData([Float(1), 1, 1]), batched], output: TensorType(.float32, [2, 2])) == [
          6, 9, 24, 27,
        ])
  }

  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func gemmTransposes(_ transA: Bool, _ transB: Bool) throws {
    let a = random(transA ? [4, 3] : [3, 4], seed: 5)
    let b = random(transB ? [2, 4] : [4, 2], seed: 6)
    let c = TensorData([Float(1), -1])
    let result = try LoweringHarness.run1(
      "Gemm", version: 13, inputs: [a, b, c], output: TensorType(.float32, [3, 2]),
      attributes: [
        "transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0), "alpha": .float(0.5), "beta": .float(2),
      ])
    let av = a.doubles()
    let bv = b.doubles()
    var expected: [Double] = []
    for m in 0..<3 {
      for n in 0..<2 {
        var sum = 0.0
        for k in 0..<4 {
          sum += av[transA ? k * 3 + m : m * 4 + k] * bv[transB ? n * 4 + k : k * 2 + n]
        }
        expected.append(0.5 * sum + 2 * (n == 0 ? 1 : -1))
      }
    }
    expectClose(result, expected)
  }

  @Test func lrnSumsSquaresOverChannelWindow() throws {
    let x = random([1, 5, 2, 1], seed: 9)
    let result = try LoweringHarness.run1(
      "LRN", inputs: [x], output: x.type,
      attributes: ["size": .int(3), "alpha": .float(0.01), "beta": .float(0.75), "bias": .float(1)])
    let xv = x.doubles()
    var expected: [Double] = []
    forEachIndex([1, 5, 2, 1]) { i in
      var sum = 0.0
      for c in max(0, i[1] - 1)...min(4, i[1] + 1) {
        let v = xv[offset([0, c, i[2], 0], [1, 5, 2, 1])]
        sum += v * v
      }
      expected.append(xv[offset(i, [1, 5, 2, 1])] / pow(1 + Double(Float(0.01)) / 3 * sum, 0.75))
    }
    expectClose(result, expected)
  }

  @Test func einsumContractsAndTraces() throws {
    let a = iota([2, 3])
    let b = iota([3, 2])
    let product = try LoweringHarness.run1(
      "Einsum", version: 12, inputs: [a, b], output: TensorType(.float32, [2, 2]),
      attributes: ["equation": .string("ij,jk->ik")])
    #expect(product == [10, 13, 28, 40])
    let trace = try LoweringHarness.run1(
      "Einsum", version: 12, inputs: [iota([3, 3])], output: TensorType(.float32, []),
      attributes: ["equation": .string("ii")])
    #expect(trace == [12])
    let implicit = try LoweringHarness.run1(
      "Einsum", version: 12, inputs: [a], output: TensorType(.float32, [3, 2]), attributes: ["equation": .string("ji")])
    #expect(implicit == [0, 3, 1, 4, 2, 5])
  }

  @Test func constantAxesAreRequired() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [2, 3]))
    let axes = graph.addInput(name: "axes", type: TensorType(.int64, [1]))
    graph.addNode("ReduceMean", version: 18, inputs: [x, axes], outputTypes: [TensorType(.float32, [2, 1])])
    #expect(throws: LoweringError.self) { try LoweringHarness.kernel(graph, node: 0) }
  }
}
