import Foundation
import KilnCompiler
import KilnIR
import Testing

/// GridSample, AffineGrid, DeformConv, Col2Im, CenterCropPad, ReverseSequence and MaxUnpool,
/// evaluated by the ExprEvaluator (which rejects any load outside its tensor).
@Suite("Sampling lowerings")
struct SamplingLoweringTests {
  /// One GridSample configuration and the ONNX reference's output (op_grid_sample.py) for the
  /// points of `gridSamplePoints` on a 2 x 3 image 0...5.
  struct GridSampleCase: CustomTestStringConvertible, Sendable {
    var mode: String
    var padding: String
    var alignCorners: Int
    var expected: [Double]
    var testDescription: String { "\(mode) \(padding) align_corners=\(alignCorners)" }
  }

  /// (x, y) points: the centre, a corner, outside right, outside left and below, off-centre.
  static let gridSamplePoints: [Float] = [0, 0, 1, -1, 2.2, 0.3, -1.6, 1.4, -0.5, 0.25]

  static let gridSampleCases: [GridSampleCase] = [
    .init(mode: "nearest", padding: "zeros", alignCorners: 0, expected: [1, 2, 0, 0, 3]),
    .init(mode: "nearest", padding: "border", alignCorners: 1, expected: [1, 2, 5, 3, 3]),
    .init(mode: "nearest", padding: "reflection", alignCorners: 0, expected: [1, 2, 4, 3, 3]),
    .init(mode: "nearest", padding: "reflection", alignCorners: 1, expected: [1, 2, 4, 4, 3]),
    .init(mode: "linear", padding: "zeros", alignCorners: 0, expected: [2.5, 0.5, 0, 0, 2.5]),
    .init(mode: "linear", padding: "zeros", alignCorners: 1, expected: [2.5, 2, 0, 0.96, 2.375]),
    .init(mode: "linear", padding: "border", alignCorners: 0, expected: [2.5, 2, 4.4, 3, 2.5]),
    .init(mode: "linear", padding: "reflection", alignCorners: 0, expected: [2.5, 2, 3.1, 3.4, 2.5]),
    .init(mode: "linear", padding: "reflection", alignCorners: 1, expected: [2.5, 2, 2.75, 3, 2.375]),
    .init(mode: "cubic", padding: "zeros", alignCorners: 0, expected: [2.96875, 0.40625, 0, -0.02876, 3.13313]),
    .init(mode: "cubic", padding: "zeros", alignCorners: 1, expected: [2.96875, 2, -0.44881, 1.01155, 2.937]),
    .init(mode: "cubic", padding: "border", alignCorners: 0, expected: [2.5, 1.8125, 4.472, 3, 2.51172]),
    .init(mode: "cubic", padding: "border", alignCorners: 1, expected: [2.5, 2, 4.00119, 3, 2.3252]),
    .init(mode: "cubic", padding: "reflection", alignCorners: 0, expected: [2.5, 1.625, 3.08275, 3.5185, 2.51172]),
    .init(mode: "cubic", padding: "reflection", alignCorners: 1, expected: [2.5, 2, 2.85875, 3.12, 2.36328]),
  ]

  @Test(arguments: gridSampleCases)
  func gridSampleMatchesTheReference(_ test: GridSampleCase) throws {
    let image = TensorData([Float(0), 1, 2, 3, 4, 5], shape: [1, 1, 2, 3])
    let grid = TensorData(Self.gridSamplePoints, shape: [1, 1, 5, 2])
    let result = try LoweringHarness.run1(
      "GridSample", version: 22, inputs: [image, grid], output: TensorType(.float32, [1, 1, 1, 5]),
      attributes: [
        "mode": .string(test.mode), "padding_mode": .string(test.padding),
        "align_corners": .int(Int64(test.alignCorners)),
      ])
    for (got, want) in zip(result, test.expected) {
      #expect(abs(got - want) < 1e-4, "\(result) vs \(test.expected)")
    }
  }

  @Test func affineGridAppliesThetaToPixelCentres() throws {
    // Identity plus a shift of x by 1; H = 2, W = 3.
    let theta = TensorData([Float(1), 0, 1, 0, 1, 0], shape: [1, 2, 3])
    let size = TensorData([Int64(1), 1, 2, 3])
    let output = TensorType(.float32, [1, 2, 3, 2])
    let edges = try LoweringHarness.run1("AffineGrid", version: 20, inputs: [theta, size], output: output)
    let third = 2.0 / 3
    let expectedEdges: [Double] = [
      1 - third, -0.5, 1, -0.5, 1 + third, -0.5, 1 - third, 0.5, 1, 0.5, 1 + third, 0.5,
    ]
    let corners = try LoweringHarness.run1(
      "AffineGrid", version: 20, inputs: [theta, size], output: output, attributes: ["align_corners": .int(1)])
    let expectedCorners: [Double] = [0, -1, 1, -1, 2, -1, 0, 1, 1, 1, 2, 1]
    #expect(zip(edges, expectedEdges).allSatisfy { abs($0 - $1) < 1e-6 }, "\(edges)")
    #expect(zip(corners, expectedCorners).allSatisfy { abs($0 - $1) < 1e-6 }, "\(corners)")
  }

  @Test func deformConvSamplesAtOffsetPositions() throws {
    // A 1x1 kernel reading half a pixel further down: rows blend, the last row half leaves the
    // image (zero); then mask 2 and bias 1.
    let x = TensorData([Float(1), 2, 3, 4], shape: [1, 1, 2, 2])
    let w = TensorData([Float(1)], shape: [1, 1, 1, 1])
    let offset = TensorData([Float](repeating: 0.5, count: 4) + [Float](repeating: 0, count: 4), shape: [1, 2, 2, 2])
    let bias = TensorData([Float(1)])
    let mask = TensorData([Float](repeating: 2, count: 4), shape: [1, 1, 2, 2])
    let result = try LoweringHarness.run1(
      "DeformConv", version: 22, inputs: [x, w, offset, bias, mask], output: TensorType(.float32, [1, 1, 2, 2]))
    #expect(result == [5, 7, 4, 5])
  }

  @Test func col2ImSumsOverlappingBlocks() throws {
    // image [4], block [2]: out[p] = rows[0][p] + rows[1][p - 1].
    let x = TensorData([Float(1), 2, 3, 10, 20, 30], shape: [1, 2, 3])
    let result = try LoweringHarness.run1(
      "Col2Im", version: 18, inputs: [x, TensorData([Int64(4)]), TensorData([Int64(2)])],
      output: TensorType(.float32, [1, 1, 4]))
    #expect(result == [1, 12, 23, 30])
    // Stride 2 with a begin pad of 1: p = 2b - 1 + k.
    let strided = try LoweringHarness.run1(
      "Col2Im", version: 18,
      inputs: [
        TensorData([Float(1), 2, 10, 20], shape: [1, 2, 2]),
        TensorData([Int64(3)]), TensorData([Int64(2)]),
      ],
      output: TensorType(.float32, [1, 1, 3]), attributes: ["strides": .ints([2]), "pads": .ints([1, 0])])
    #expect(strided == [10, 2, 20])
  }

  @Test func centerCropPadCropsLowAndPadsHigh() throws {
    let x = TensorData([Float(1), 2, 3, 4, 5, 6], shape: [6])
    let crop = try LoweringHarness.run1(
      "CenterCropPad", inputs: [x, TensorData([Int64(3)])], output: TensorType(.float32, [3]))
    #expect(crop == [2, 3, 4])
    let pad = try LoweringHarness.run1(
      "CenterCropPad", inputs: [x, TensorData([Int64(9)])], output: TensorType(.float32, [9]))
    #expect(pad == [0, 1, 2, 3, 4, 5, 6, 0, 0])
  }

  @Test func reverseSequenceReversesEachPrefix() throws {
    let x = TensorData((0..<16).map { Float($0) }, shape: [4, 4])
    let result = try LoweringHarness.run1(
      "ReverseSequence", version: 10, inputs: [x, TensorData([Int64(1), 2, 3, 4])],
      output: TensorType(.float32, [4, 4]), attributes: ["batch_axis": .int(0), "time_axis": .int(1)])
    #expect(result == [0, 1, 2, 3, 5, 4, 6, 7, 10, 9, 8, 11, 15, 14, 13, 12])
  }

  @Test func maxUnpoolScattersWithTheLastWriteWinning() throws {
    // Unpooled shape 4 (kernel 2, stride 2); index 1 is written twice; output_shape pads to 5.
    let x = TensorData([Float(7), 8], shape: [1, 1, 2])
    let indices = TensorData([Int64(1), 1], shape: [1, 1, 2])
    let attributes: [String: AttributeValue] = ["kernel_shape": .ints([2]), "strides": .ints([2])]
    let result = try LoweringHarness.run1(
      "MaxUnpool", version: 22, inputs: [x, indices], output: TensorType(.float32, [1, 1, 4]),
      attributes: attributes)
    #expect(result == [0, 8, 0, 0])
    let wider = try LoweringHarness.run1(
      "MaxUnpool", version: 22,
      inputs: [x, TensorData([Int64(3), 0], shape: [1, 1, 2]), TensorData([Int64(1), 1, 5])],
      output: TensorType(.float32, [1, 1, 5]), attributes: attributes)
    #expect(wider == [8, 0, 0, 7, 0])
  }
}
