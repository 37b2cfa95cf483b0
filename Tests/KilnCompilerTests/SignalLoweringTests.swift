import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Signal lowering")
struct SignalLoweringTests {
  /// Naive DFT of complex samples, zero-padded or truncated to `length`.
  static func naiveDFT(_ samples: [(Double, Double)], length: Int, inverse: Bool = false) -> [Double] {
    let sign = inverse ? 1.0 : -1.0
    return (0..<length).flatMap { k -> [Double] in
      var (re, im) = (0.0, 0.0)
      for (n, (a, b)) in samples.prefix(length).enumerated() {
        let theta = sign * 2 * Double.pi * Double(k * n) / Double(length)
        re += a * cos(theta) - b * sin(theta)
        im += a * sin(theta) + b * cos(theta)
      }
      return inverse ? [re / Double(length), im / Double(length)] : [re, im]
    }
  }

  @Test func complexDFTZeroPadsToTheGivenLength() throws {
    let x = random([1, 5, 2], seed: 31)
    let values = x.doubles()
    let samples = (0..<5).map { (values[2 * $0], values[2 * $0 + 1]) }
    for inverse in [false, true] {
      let output = try LoweringHarness.run1(
        "DFT", version: 17, inputs: [x, TensorData([Int64(6)], shape: [])], output: TensorType(.float32, [1, 6, 2]),
        attributes: ["inverse": .int(inverse ? 1 : 0)])
      expectClose(output, Self.naiveDFT(samples, length: 6, inverse: inverse))
    }
  }

  /// An rfft (onesided, opset 20 axis input) followed by an irfft gives back the real signal.
  @Test func onesidedTransformsRoundTrip() throws {
    let x = random([2, 8, 1], seed: 32)
    let axis = TensorData([Int64(1)], shape: [])
    let spectrum = try LoweringHarness.run1(
      "DFT", version: 20, inputs: [x, nil, axis], output: TensorType(.float32, [2, 5, 2]),
      attributes: ["onesided": .int(1)])
    let signal = try LoweringHarness.run1(
      "DFT", version: 20, inputs: [TensorData(spectrum.map { Float($0) }, shape: [2, 5, 2]), nil, axis],
      output: TensorType(.float32, [2, 8, 1]), attributes: ["inverse": .int(1), "onesided": .int(1)])
    expectClose(signal, x.doubles(), atol: 1e-5)
  }

  @Test func stftFramesWindowsAndTransforms() throws {
    let signal = random([1, 10, 1], seed: 33)
    let window = TensorData([Float(0.5), 1, 1, 0.5])
    let output = try LoweringHarness.run1(
      "STFT", version: 17, inputs: [signal, TensorData([Int64(3)], shape: []), window],
      output: TensorType(.float32, [1, 3, 3, 2]))
    let values = signal.doubles()
    let expected = (0..<3).flatMap { f -> [Double] in
      let frame = (0..<4).map { (values[3 * f + $0] * Double(window.floats()[$0]), 0.0) }
      return Array(Self.naiveDFT(frame, length: 4).prefix(6))
    }
    expectClose(output, expected)
  }

  /// The ONNX test_melweightmatrix case: edges at DFT bins [0, 0, 0, 1, 1, 2, 3, 4, 5, 6].
  @Test func melWeightMatrixBuildsTriangularFilters() throws {
    let output = try LoweringHarness.run1(
      "MelWeightMatrix", version: 17,
      inputs: [
        TensorData([Int32(8)], shape: []), TensorData([Int32(16)], shape: []), TensorData([Int32(8192)], shape: []),
        TensorData([Float(0)], shape: []), TensorData([Float(4096)], shape: []),
      ],
      output: TensorType(.float32, [9, 8]))
    var expected = [Double](repeating: 0, count: 72)
    for (row, column) in [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7)] {
      expected[row * 8 + column] = 1
    }
    #expect(output == expected)
  }
}
