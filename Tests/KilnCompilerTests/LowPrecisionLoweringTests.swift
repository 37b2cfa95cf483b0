import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Low-precision lowering")
struct LowPrecisionLoweringTests {
  let x = TensorData([Float(1e6), -1e6, 0.3, .nan, -0.0])

  @Test func castToFloat8SaturatesByDefault() throws {
    let type = TensorType(.float8e4m3fn, [5])
    let saturated = try LoweringHarness.run1("Cast", version: 19, inputs: [x], output: type, attributes: ["to": .int(17)])
    #expect(Array(saturated.prefix(3)) == [448, -448, 0.3125] && saturated[3].isNaN)
    let plain = try LoweringHarness.run1(
      "Cast", version: 19, inputs: [x], output: type, attributes: ["to": .int(17), "saturate": .int(0)])
    #expect(plain[0].isNaN && plain[1].isNaN && plain[2] == 0.3125)
    let e5m2 = try LoweringHarness.run1(
      "Cast", version: 19, inputs: [x], output: TensorType(.float8e5m2, [5]), attributes: ["to": .int(19), "saturate": .int(0)])
    #expect(e5m2[0] == .infinity && e5m2[1] == -.infinity)
  }

  /// A fused consumer must see the rounded value, so the result is encoded and decoded at once.
  @Test func castResultIsRoundedBeforeAnyConsumer() throws {
    var graph = Graph(opsetImports: ["": 19])
    let input = graph.addInput(name: "x", type: TensorType(.float32, [5]))
    graph.addNode(
      "Cast", version: 19, inputs: [input], outputTypes: [TensorType(.float8e4m3fn, [5])], attributes: ["to": .int(17)])
    let body = try LoweringHarness.kernel(graph, node: 0).body
    guard case .bitcast(let inner, .uint8, .float8e4m3fn) = body.kind, case .bitcast(_, .float8e4m3fn, .uint8) = inner.kind else {
      Issue.record("Cast to float8 is not rounded in place: \(body)")
      return
    }
  }

  @Test func castToSubByteIntegersWraps() throws {
    let values = TensorData([Float(-9), 8, 7.9, -2])
    let int4 = try LoweringHarness.run1("Cast", inputs: [values], output: TensorType(.int4, [4]), attributes: ["to": .int(22)])
    #expect(int4 == [7, -8, 7, -2])
    let uint2 = try LoweringHarness.run1("Cast", inputs: [values], output: TensorType(.uint2, [4]), attributes: ["to": .int(25)])
    #expect(uint2 == [3, 0, 3, 2])
  }

  @Test func castToE8M0HonoursRoundMode() throws {
    let values = TensorData([Float(1.5), 3, 0.2, 0])
    func run(_ mode: String) throws -> [Double] {
      try LoweringHarness.run1(
        "Cast", version: 25, inputs: [values], output: TensorType(.float8e8m0, [4]),
        attributes: ["to": .int(24), "round_mode": .string(mode)])
    }
    #expect(try run("up") == [2, 4, 0.25, 0x1p-127])
    #expect(try run("down") == [1, 2, 0.125, 0x1p-127])
    #expect(try run("nearest") == [2, 4, 0.25, 0x1p-127])
    #expect(throws: (any Error).self) { try run("sideways") }
  }

  @Test func quantizeLinearSaturatesToSubByteRangeAndFloat8() throws {
    let data = TensorData([Float(0), 2.5, -30, 40])
    let scale = TensorData.scalar(Float(2))
    let int4 = try LoweringHarness.run1(
      "QuantizeLinear", version: 21, inputs: [data, scale, TensorData(type: TensorType(.int4, []), int64s: [1])],
      output: TensorType(.int4, [4]))
    #expect(int4 == [1, 2, -8, 7])
    let e4m3 = try LoweringHarness.run1(
      "QuantizeLinear", version: 21, inputs: [TensorData([Float(1000), 0.3]), TensorData.scalar(Float(1))],
      output: TensorType(.float8e4m3fn, [2]), attributes: ["output_dtype": .int(17)])
    #expect(e4m3 == [448, 0.3125])
  }

  @Test func dequantizeLinearDecodesFloat8() throws {
    let data = TensorData([Float(0.3125), -448, 1]).cast(to: .float8e4m3fn, saturate: true, roundMode: .up)
    let result = try LoweringHarness.run1(
      "DequantizeLinear", version: 21, inputs: [data, TensorData.scalar(Float(2))], output: TensorType(.float32, [3]))
    #expect(result == [0.625, -896, 2])
  }
}
