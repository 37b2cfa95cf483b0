import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Result shapes of the sampling and rearranging ops, and the inputs they reject.
@Suite struct SamplingShapeInferenceTests {
  @Test func gridSampleTakesTheGridsSpatialShape() throws {
    #expect(
      try infer("GridSample", [f32([2, 3, 5, 6]), f32([2, 7, 4, 2])], opset: 22) == [
        TensorType(.float32, [2, 3, 7, 4])
      ])
    #expect(
      try infer("GridSample", [f32([1, 2, 3, 4, 5]), f32([1, 6, 7, 8, 3])], ["mode": .string("nearest")], opset: 22)
        == [TensorType(.float32, [1, 2, 6, 7, 8])])
    #expect(
      inferError("GridSample", [f32([1, 2, 3, 4, 5]), f32([1, 6, 7, 8, 3])], opset: 16)?.code == .shapeMismatch)
    #expect(inferError("GridSample", [f32([2, 3, 5, 6]), f32([2, 7, 4, 3])], opset: 22)?.code == .shapeMismatch)
    #expect(
      inferError("GridSample", [f32([2, 3, 5, 6]), f32([2, 7, 4, 2])], ["padding_mode": .string("wrap")], opset: 22)?
        .code == .unsupportedAttribute)
  }

  @Test func affineGridAndCol2ImReadTheirShapeOperands() throws {
    #expect(
      try infer("AffineGrid", [f32([2, 3, 4]), .constant(ints([2, 1, 4, 5, 6]))], opset: 20)
        == [TensorType(.float32, [2, 4, 5, 6, 3])])
    #expect(
      inferError("AffineGrid", [f32([2, 2, 3]), .constant(ints([2, 1, 4, 5, 6]))], opset: 20)?.code == .shapeMismatch)
    #expect(
      try infer(
        "Col2Im", [f32([1, 12, 8]), .constant(ints([3, 4])), .constant(ints([2, 2]))], ["pads": .ints([0, 1, 0, 0])],
        opset: 18) == [TensorType(.float32, [1, 3, 3, 4])])
    #expect(
      inferError("Col2Im", [f32([1, 12, 7]), .constant(ints([3, 4])), .constant(ints([2, 2]))], opset: 18)?.code
        == .shapeMismatch)
  }

  @Test func cropPadUnpoolAndDeformConvShapes() throws {
    #expect(
      try infer("CenterCropPad", [f32([20, 8, 3]), .constant(ints([10, 9]))], ["axes": .ints([-3, -2])], opset: 18)
        == [TensorType(.float32, [10, 9, 3])])
    #expect(
      try infer(
        "MaxUnpool", [f32([1, 1, 2, 2]), .input(.int64, [1, 1, 2, 2])],
        [
          "kernel_shape": .ints([2, 2]),
          "strides": .ints([2, 2]),
        ], opset: 22) == [TensorType(.float32, [1, 1, 4, 4])])
    #expect(
      try infer(
        "MaxUnpool", [f32([1, 1, 2, 2]), .input(.int64, [1, 1, 2, 2]), .constant(ints([1, 1, 5, 5]))],
        ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])], opset: 22) == [TensorType(.float32, [1, 1, 5, 5])])
    #expect(
      try infer(
        "DeformConv", [f32([1, 4, 5, 5]), f32([6, 2, 3, 3]), f32([1, 36, 3, 3])],
        [
          "group": .int(2),
          "offset_group": .int(2),
        ], opset: 22) == [TensorType(.float32, [1, 6, 3, 3])])
    #expect(
      inferError("DeformConv", [f32([1, 4, 5, 5]), f32([6, 4, 3, 3]), f32([1, 20, 3, 3])], opset: 22)?.code
        == .shapeMismatch)
  }
}
