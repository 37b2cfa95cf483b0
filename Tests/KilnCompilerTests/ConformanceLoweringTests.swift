import Foundation
import KilnCompiler
import KilnIR
import Testing

/// Lowerings added for ONNX conformance: quantisation, cumulative products, run-time Trilu k,
/// OneHot, EyeLike, Swish and cubic Resize.
@Suite("Conformance lowerings")
struct ConformanceLoweringTests {
  @Test func quantizeRoundsHalfToEvenAndSaturates() throws {
    let x = TensorData([Float(-300), -2.5, 0.5, 1.5, 2.5, 400])
    let result = try LoweringHarness.run1(
      "QuantizeLinear", version: 21, inputs: [x, TensorData([Float(1)], shape: []), TensorData([UInt8(10)], shape: [])],
      output: TensorType(.uint8, [6]))
    #expect(result == [0, 8, 10, 12, 12, 255])
  }

  @Test func dequantizePerAxisAndBlocked() throws {
    let x = TensorData([UInt8(10), 20, 30, 40], shape: [2, 2])
    let perAxis = try LoweringHarness.run1(
      "DequantizeLinear", version: 21, inputs: [x, TensorData([Float(0.5), 2]), TensorData([UInt8(10), 0])],
      output: TensorType(.float32, [2, 2]), attributes: ["axis": .int(1)])
    #expect(perAxis == [0, 40, 10, 80])
    let blocked = try LoweringHarness.run1(
      "DequantizeLinear", version: 21, inputs: [x, TensorData([Float(1), 2], shape: [2, 1])],
      output: TensorType(.float32, [2, 2]), attributes: ["axis": .int(1), "block_size": .int(2)])
    #expect(blocked == [10, 20, 60, 80])
  }

  @Test func cumProdWithExclusiveAndReverse() throws {
    let x = TensorData([Float(1), 2, 3, 4])
    let axis = TensorData([Int64(0)], shape: [])
    #expect(try LoweringHarness.run1("CumProd", version: 26, inputs: [x, axis], output: x.type) == [1, 2, 6, 24])
    #expect(
      try LoweringHarness.run1(
        "CumProd", version: 26, inputs: [x, axis], output: x.type, attributes: ["exclusive": .int(1), "reverse": .int(1)])
        == [24, 12, 4, 1])
  }

  @Test func triluReadsARunTimeK() throws {
    var graph = Graph(opsetImports: ["": 14])
    let x = graph.addConstant(iota([3, 3]), name: "x")
    let k = graph.addInput(name: "k", type: TensorType(.int64, []))
    let y = graph.addNode(
      "Trilu", version: 14, inputs: [x, k], outputTypes: [TensorType(.float32, [3, 3])], attributes: ["upper": .int(0)])
    let values = try LoweringHarness.evaluate(graph, inputs: [k: [-1]])
    #expect(values[y[0]] == [0, 0, 0, 3, 0, 0, 6, 7, 0])
  }

  @Test func oneHotWrapsNegativeIndicesAndDropsOutOfRangeOnes() throws {
    let indices = TensorData([Int64(0), -1, 5])
    let result = try LoweringHarness.run1(
      "OneHot", version: 11, inputs: [indices, TensorData([Int64(3)], shape: []), TensorData([Float(2), 7])],
      output: TensorType(.float32, [3, 3]))
    #expect(result == [7, 2, 2, 2, 2, 7, 2, 2, 2])
  }

  @Test func eyeLikeOffsetDiagonal() throws {
    let result = try LoweringHarness.run1(
      "EyeLike", version: 22, inputs: [TensorData([Int32](repeating: 5, count: 6), shape: [2, 3])],
      output: TensorType(.int32, [2, 3]), attributes: ["k": .int(1)])
    #expect(result == [0, 1, 0, 0, 0, 1])
  }

  @Test func swishIsXTimesSigmoidOfAlphaX() throws {
    let x = TensorData([Float(-1), 0, 2])
    let result = try LoweringHarness.run1(
      "Swish", version: 24, inputs: [x], output: x.type, attributes: ["alpha": .float(0.5)])
    expectClose(result, [-1, 0, 2].map { $0 / (1 + exp(-0.5 * $0)) })
  }

  /// The reference's 1-D cubic interpolation (edge-clamped taps, A = -0.75, half_pixel).
  static func cubic(_ data: [Double], outputLength: Int) -> [Double] {
    let a = -0.75
    let scale = Double(outputLength) / Double(data.count)
    func weights(_ t: Double) -> [Double] {
      func outer(_ s: Double) -> Double { ((a * s - 5 * a) * s + 8 * a) * s - 4 * a }
      func inner(_ s: Double) -> Double { ((a + 2) * s - (a + 3)) * s * s + 1 }
      return [outer(t + 1), inner(t), inner(1 - t), outer(2 - t)]
    }
    return (0..<outputLength).map { x in
      let position = (Double(x) + 0.5) / scale - 0.5
      let base = position.rounded(.down)
      let w = weights(position - base)
      return (0..<4).map { k in
        let index = Swift.min(Swift.max(Int(base) - 1 + k, 0), data.count - 1)
        return w[k] * data[index]
      }.reduce(0, +)
    }
  }

  @Test func cubicResizeMatchesTheReference() throws {
    let data: [Float] = [1, 4, 2, 8, 5]
    let result = try LoweringHarness.run1(
      "Resize", version: 19,
      inputs: [TensorData(data, shape: [1, 5]), nil, TensorData([Float(1), 1.6])],
      output: TensorType(.float32, [1, 8]), attributes: ["mode": .string("cubic")])
    expectClose(result, Self.cubic(data.map(Double.init), outputLength: 8))
  }
}
