import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnIR
import Testing

/// The CPU path for padded windows over the output plane (`CWindowTemplate`, depthwise
/// convolutions): recognition, and results on the CPU device, in the baseline and the native
/// object, against the generic per-element C loop of the same kernel.
extension CMatMulTemplateTests {
  /// A depthwise NCHW convolution, `channels x multiplier` outputs, with per-side padding,
  /// strides and dilations, then bias and Relu6 (or nothing with `epilogue` false).
  func depthwise(
    batch: Int = 1, channels: Int, multiplier: Int = 1, height: Int, width: Int, kernel: (h: Int, w: Int),
    stride: (h: Int, w: Int) = (1, 1), pads: (top: Int, left: Int, bottom: Int, right: Int), dilation: (h: Int, w: Int) = (1, 1),
    epilogue: Bool = true, masked: Bool = true
  ) -> Kernel {
    let outH = (height + pads.top + pads.bottom - dilation.h * (kernel.h - 1) - 1) / stride.h + 1
    let outW = (width + pads.left + pads.right - dilation.w * (kernel.w - 1) - 1) / stride.w + 1
    let filters = channels * multiplier
    let (nn, co, oh, ow) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.coordinate(3))
    let (kh, kw) = (Expr.variable(2), Expr.variable(3))
    let ih = oh * stride.h + kh * dilation.h - pads.top
    let iw = ow * stride.w + kw * dilation.w - pads.left
    func clamp(_ e: Expr, _ size: Int) -> Expr { .binary(.maximum, .binary(.minimum, e, .index(size - 1)), .index(0)) }
    let inside = Expr.binary(
      .logicalAnd, .binary(.logicalAnd, .binary(.greaterEqual, ih, .index(0)), .binary(.less, ih, .index(height))),
      .binary(.logicalAnd, .binary(.greaterEqual, iw, .index(0)), .binary(.less, iw, .index(width))))
    let channel = multiplier == 1 ? co : Expr.binary(.divide, co, .index(multiplier))
    let x = Expr.load(input: 0, index: nn * (channels * height * width) + channel * (height * width) + clamp(ih, height) * width + clamp(iw, width))
    let taps = kernel.h * kernel.w
    let w = Expr.load(input: 1, index: co * taps + kh * kernel.w + kw)
    let product = Expr.binary(.multiply, x, w)
    var sum = Expr.reduce(.sum, variable: 3, extent: kernel.w, body: masked ? .select(inside, product, .literal(.of(0, .float32))) : product)
    sum = .reduce(.sum, variable: 2, extent: kernel.h, body: sum)
    var inputs: [Kernel.Operand] = [
      .init(dtype: .float32, elementCount: batch * channels * height * width), .init(dtype: .float32, elementCount: filters * taps),
    ]
    var body = sum
    if epilogue {
      let biased = Expr.binary(.add, sum, .load(input: 2, index: co))
      body = .binary(.minimum, .binary(.maximum, biased, .literal(.of(0, .float32))), .literal(.of(6, .float32)))
      inputs.append(.init(dtype: .float32, elementCount: filters))
    }
    return Kernel(
      name: "dw", inputs: inputs, output: .init(dtype: .float32, elementCount: batch * filters * outH * outW),
      shape: [batch, filters, outH, outW], body: body, sourceOps: ["dw"])
  }

  /// Checks that `kernel` takes the window path and agrees with the generic loop.
  func expectWindowAgreement(_ kernel: Kernel, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(CMatMulTemplate.match(kernel) == nil, sourceLocation: sourceLocation)
    #expect(CWindowTemplate.match(kernel) != nil, "\(kernel.shape) should use the window path", sourceLocation: sourceLocation)
    try expectTemplatesAgreeWithGenericLoop(kernel, tolerance: 1e-5, sourceLocation: sourceLocation)
  }

  @Test func depthwiseWindowsOfEveryShape() throws {
    // MobileNet's: 3x3, padding 1, stride 1 and 2, planes of 7 to 28.
    try expectWindowAgreement(depthwise(channels: 5, height: 7, width: 7, kernel: (3, 3), pads: (1, 1, 1, 1)))
    try expectWindowAgreement(depthwise(batch: 2, channels: 3, height: 28, width: 28, kernel: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)))
    // Odd, non-square planes and kernels; strides that differ per axis; padding on some sides.
    try expectWindowAgreement(depthwise(channels: 4, height: 13, width: 11, kernel: (3, 5), stride: (1, 2), pads: (1, 2, 1, 2)))
    try expectWindowAgreement(depthwise(channels: 3, height: 10, width: 9, kernel: (3, 3), stride: (2, 3), pads: (0, 1, 2, 0)))
    // Dilated taps, and no epilogue.
    try expectWindowAgreement(depthwise(channels: 2, height: 12, width: 16, kernel: (3, 3), pads: (2, 2, 2, 2), dilation: (2, 2)))
    try expectWindowAgreement(depthwise(channels: 3, height: 9, width: 9, kernel: (5, 5), pads: (2, 2, 2, 2), epilogue: false))
  }

  @Test func windowsTheTemplateLeavesToOthers() {
    // Without masks (no padding) nothing says where the window's rows are: the generic loops run it.
    #expect(CWindowTemplate.match(depthwise(channels: 4, height: 9, width: 9, kernel: (3, 3), pads: (0, 0, 0, 0), masked: false)) == nil)
    // A plane of fewer than eight positions, and one padded far wider than it is.
    #expect(CWindowTemplate.match(depthwise(channels: 4, height: 2, width: 2, kernel: (3, 3), pads: (1, 1, 1, 1))) == nil)
    #expect(CWindowTemplate.match(depthwise(channels: 4, height: 16, width: 1, kernel: (1, 7), pads: (0, 3, 0, 3))) == nil)
    // A channel multiplier reads the input channel as co / m, which is no affine index.
    #expect(CWindowTemplate.match(depthwise(channels: 3, multiplier: 2, height: 9, width: 9, kernel: (3, 3), pads: (1, 1, 1, 1))) == nil)
    // A convolution that also sums over input channels is a GEMM, not a window.
    let full = conv(batch: 1, channels: 3, filters: 8, size: 9, kernelSize: 3, stride: 1, pad: 1)
    #expect(CWindowTemplate.match(full) == nil)
  }
}
