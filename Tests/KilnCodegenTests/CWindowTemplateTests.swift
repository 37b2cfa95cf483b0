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
    let (row, column) = masked ? (clamp(ih, height), clamp(iw, width)) : (ih, iw)
    let x = Expr.load(input: 0, dtype: .float32, index: nn * (channels * height * width) + channel * (height * width) + row * width + column)
    let taps = kernel.h * kernel.w
    let w = Expr.load(input: 1, dtype: .float32, index: co * taps + kh * kernel.w + kw)
    let (sum, stated) = Contraction.sum(
      over: [.init(variable: 2, extent: kernel.h), .init(variable: 3, extent: kernel.w)], factors: [x, w],
      conditions: masked ? [inside] : [], type: .float32)
    var inputs: [Kernel.Operand] = [
      .init(dtype: .float32, elementCount: batch * channels * height * width), .init(dtype: .float32, elementCount: filters * taps),
    ]
    var body = sum
    if epilogue {
      let biased = Expr.binary(.add, sum, .load(input: 2, dtype: .float32, index: co))
      body = .binary(.minimum, .binary(.maximum, biased, .literal(.of(0, .float32))), .literal(.of(6, .float32)))
      inputs.append(.init(dtype: .float32, elementCount: filters))
    }
    return Kernel(
      name: "dw", inputs: inputs, output: .init(dtype: .float32, elementCount: batch * filters * outH * outW),
      shape: [batch, filters, outH, outW], body: body, sourceOps: ["dw"], region: .contraction(stated))
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
    // No padding, so no masks: the window's rows and columns come from the index alone.
    try expectWindowAgreement(depthwise(channels: 4, height: 9, width: 9, kernel: (3, 3), stride: (2, 2), pads: (0, 0, 0, 0), masked: false))
    // Dilated taps, and no epilogue.
    try expectWindowAgreement(depthwise(channels: 2, height: 12, width: 16, kernel: (3, 3), pads: (2, 2, 2, 2), dilation: (2, 2)))
    try expectWindowAgreement(depthwise(channels: 3, height: 9, width: 9, kernel: (5, 5), pads: (2, 2, 2, 2), epilogue: false))
  }

  @Test func windowsTheTemplateLeavesToOthers() {
    // A plane of fewer than eight positions, and one padded far wider than it is.
    #expect(CWindowTemplate.match(depthwise(channels: 4, height: 2, width: 2, kernel: (3, 3), pads: (1, 1, 1, 1))) == nil)
    #expect(CWindowTemplate.match(depthwise(channels: 4, height: 16, width: 1, kernel: (1, 7), pads: (0, 3, 0, 3))) == nil)
    // A channel multiplier reads the input channel as co / m, which is no affine index.
    #expect(CWindowTemplate.match(depthwise(channels: 3, multiplier: 2, height: 9, width: 9, kernel: (3, 3), pads: (1, 1, 1, 1))) == nil)
    // A convolution that also sums over input channels is a GEMM, not a window.
    let full = conv(batch: 1, channels: 3, filters: 8, size: 9, kernelSize: 3, stride: 1, pad: 1)
    #expect(CWindowTemplate.match(full) == nil)
  }

  /// A max pool over an NCHW input: `max` over the window, padding masked to -infinity.
  func maxPool(channels: Int, size: Int, kernelSize: Int, stride: Int, pad: Int) -> Kernel {
    let out = (size + 2 * pad - kernelSize) / stride + 1
    let (c, oh, ow) = (Expr.coordinate(1), Expr.coordinate(2), Expr.coordinate(3))
    let (kh, kw) = (Expr.variable(2), Expr.variable(3))
    let (ih, iw) = (oh * stride + kh - pad, ow * stride + kw - pad)
    func clamp(_ e: Expr) -> Expr { .binary(.maximum, .binary(.minimum, e, .index(size - 1)), .index(0)) }
    let x = Expr.load(input: 0, dtype: .float32, index: c * (size * size) + (pad > 0 ? clamp(ih) : ih) * size + (pad > 0 ? clamp(iw) : iw))
    let inside = Expr.binary(
      .logicalAnd, .binary(.logicalAnd, .binary(.greaterEqual, ih, .index(0)), .binary(.less, ih, .index(size))),
      .binary(.logicalAnd, .binary(.greaterEqual, iw, .index(0)), .binary(.less, iw, .index(size))))
    let element = pad > 0 ? Expr.select(inside, x, .literal(.of(-Double.infinity, .float32))) : x
    let body = Expr.reduce(.maximum, variable: 2, extent: kernelSize, body: .reduce(.maximum, variable: 3, extent: kernelSize, body: element))
    let stated = WindowMaximum(
      reduction: body, loops: [.init(variable: 2, extent: kernelSize), .init(variable: 3, extent: kernelSize)], element: x,
      conditions: pad > 0 ? [inside] : [])
    return Kernel(
      name: "pool", inputs: [.init(dtype: .float32, elementCount: channels * size * size)],
      output: .init(dtype: .float32, elementCount: channels * out * out), shape: [1, channels, out, out], body: body, sourceOps: ["pool"],
      region: Region(kind: .window, maxima: [stated]))
  }

  /// Max pools take the window path and give exactly the generic loop's values, NaN where it has
  /// NaN (one in every 37 inputs is NaN), in both objects.
  @Test func maxPoolWindows() throws {
    for kernel in [
      maxPool(channels: 3, size: 16, kernelSize: 3, stride: 2, pad: 1), maxPool(channels: 2, size: 23, kernelSize: 3, stride: 2, pad: 0),
      maxPool(channels: 2, size: 12, kernelSize: 2, stride: 2, pad: 0), maxPool(channels: 2, size: 9, kernelSize: 3, stride: 1, pad: 1),
    ] {
      #expect(CWindowTemplate.match(kernel) != nil, "\(kernel.shape) should use the window path")
      var input = random(kernel.inputs[0].elementCount)
      for index in stride(from: 5, to: input.count, by: 37) { input[index] = .nan }
      let reference = try run(kernel, gemm: false, inputs: [input])
      #expect(reference.contains { $0.isNaN })
      for flags in Self.variants {
        let fast = try run(kernel, gemm: true, inputs: [input], flags: flags)
        #expect(fast.count == reference.count)
        let differing = zip(fast, reference).filter { x, y in x.isNaN != y.isNaN || (!x.isNaN && x != y) }.count
        #expect(differing == 0, "\(kernel.shape) \(flags): \(differing) outputs differ")
      }
    }
  }
}
