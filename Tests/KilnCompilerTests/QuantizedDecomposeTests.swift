import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Decompose pass: quantized ops")
struct QuantizedDecomposeTests {
  /// Per-row a_scale, rounding half to even (0.5 -> 0, 99.5 -> 100) and saturation at 255.
  @Test func qLinearMatMulRoundsHalfToEvenAndSaturates() throws {
    let a = TensorData([UInt8(3), 5, 200, 1], shape: [2, 2])
    let b = TensorData([UInt8(2), 0, 1, 0, 2, 1], shape: [2, 3])
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "QLinearMatMul", version: 21, x: a,
      extra: [
        TensorData([Float(0.5), 1]), TensorData([UInt8(1)]), b, TensorData([Float(0.25)]), TensorData([UInt8(0)]),
        TensorData([Float(1)]), TensorData([UInt8(160)]),
      ],
      outputs: [TensorType(.uint8, [2, 3])])
    // Real values: [0.5, 1, 0.75; 99.5, 0, 49.75].
    #expect(values[0] == [160, 161, 161, 255, 160, 210])
  }

  @Test func matMulIntegerSubtractsZeroPointsExactly() throws {
    let a = TensorData([Int8(-128), 127, 5, -7], shape: [2, 2])
    let b = TensorData([Int8(127), -128, 1, 2], shape: [2, 2])
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "MatMulInteger", version: 10, x: a, extra: [b, TensorData([Int8(-1)]), TensorData([Int8(2)])],
      outputs: [TensorType(.int32, [2, 2])])
    // (A + 1) @ (B - 2) = [-127, 128; 6, -6] @ [125, -130; -1, 0].
    let expected: [Double] = [-15_875 - 128, 16_510, 750 + 6, -780]
    #expect(values[0] == expected)
  }

  /// The ONNX test_convinteger_with_padding case: per-channel weight zero points.
  @Test func convIntegerWithPerChannelZeroPoints() throws {
    let x = TensorData((2...10).map { UInt8($0) }, shape: [1, 1, 3, 3])
    let w = TensorData([UInt8](repeating: 1, count: 8), shape: [2, 1, 2, 2])
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "ConvInteger", version: 10, x: x, extra: [w, TensorData([UInt8(1)], shape: []), TensorData([UInt8(0), 1])],
      outputs: [TensorType(.int32, [1, 2, 4, 4])], attributes: ["pads": .ints([1, 1, 1, 1])])
    #expect(values[0] == [1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9] + Array(repeating: 0, count: 16))
  }

  @Test func qLinearConvAddsBiasAndRequantizes() throws {
    let x = TensorData([UInt8(10), 20, 30, 40], shape: [1, 1, 2, 2])
    let w = TensorData([UInt8(3), 5], shape: [2, 1, 1, 1])
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "QLinearConv", version: 10, x: x,
      extra: [
        TensorData([Float(0.5)], shape: []), TensorData([UInt8(10)], shape: []), w, TensorData([Float(1), 0.25]),
        TensorData([UInt8(1)]), TensorData([Float(2)], shape: []), TensorData([UInt8(5)], shape: []),
        TensorData([Int32(1), -4]),
      ],
      outputs: [TensorType(.uint8, [1, 2, 2, 2])])
    // Channel 0: (2 * (x - 10) + 1) * 0.5 / 2 = [0.25, 5.25, 10.25, 15.25]; channel 1:
    // (4 * (x - 10) - 4) * 0.125 / 2 = [-0.25, 2.25, 4.75, 7.25].
    #expect(values[0] == [5, 10, 15, 20, 5, 7, 10, 12])
  }

  /// The example of the ONNX operator documentation, with 0.6 for its 0.5 (whose quotient is
  /// the float32 tie 25.5, which the double-precision evaluator does not reproduce).
  @Test func dynamicQuantizeLinearMatchesTheSpecExample() throws {
    let x = TensorData([Float(0), 2, -3, -2.5, 1.34, 0.6])
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "DynamicQuantizeLinear", version: 11, x: x,
      outputs: [TensorType(.uint8, [6]), TensorType(.float32, []), TensorType(.uint8, [])])
    #expect(values[0] == [153, 255, 0, 26, 221, 184])
    expectClose(values[1], [Double(Float(5) / 255)])
    #expect(values[2] == [153])
  }
}
