import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnIR
import Testing

/// The CPU path for 3x3 stride-1 convolutions as Winograd F(4x4, 3x3) (`CWinogradTemplate`):
/// recognition, the shape rule, and results on the CPU device, in the baseline and the native
/// object, with weights transformed as `WeightPrepacking` does, against the generic per-element
/// C loop of the same kernel on the original weights.
extension CMatMulTemplateTests {
  /// An NCHW convolution as the ONNX lowering builds it: a mask (and a clamp) only on the axes
  /// whose window leaves the input, then the epilogue.
  func convolution(
    batch: Int = 1, channels: Int, filters: Int, height: Int, width: Int, kernelSize: Int = 3, stride: Int = 1, dilation: Int = 1,
    pads: (top: Int, left: Int, bottom: Int, right: Int), epilogue: Epilogue = .biasRelu
  ) -> Kernel {
    let reach = dilation * (kernelSize - 1)
    let outH = (height + pads.top + pads.bottom - reach - 1) / stride + 1
    let outW = (width + pads.left + pads.right - reach - 1) / stride + 1
    let (nn, co, oh, ow) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.coordinate(3))
    let (ci, kh, kw) = (Expr.variable(1), Expr.variable(2), Expr.variable(3))
    let ih = oh * stride + kh * dilation - pads.top
    let iw = ow * stride + kw * dilation - pads.left
    func clamp(_ e: Expr, _ size: Int) -> Expr { .binary(.maximum, .binary(.minimum, e, .index(size - 1)), .index(0)) }
    let leavesH = pads.top > 0 || (outH - 1) * stride + reach - pads.top > height - 1
    let leavesW = pads.left > 0 || (outW - 1) * stride + reach - pads.left > width - 1
    var conditions: [Expr] = []
    if leavesH { conditions += [.binary(.greaterEqual, ih, .index(0)), .binary(.less, ih, .index(height))] }
    if leavesW { conditions += [.binary(.greaterEqual, iw, .index(0)), .binary(.less, iw, .index(width))] }
    let row = leavesH ? clamp(ih, height) : ih
    let column = leavesW ? clamp(iw, width) : iw
    let x = Expr.load(input: 0, dtype: .float32, index: nn * (channels * height * width) + ci * (height * width) + row * width + column)
    let taps = kernelSize * kernelSize
    let w = Expr.load(input: 1, dtype: .float32, index: co * (channels * taps) + ci * taps + kh * kernelSize + kw)
    let (sum, stated) = Contraction.sum(
      over: [.init(variable: 1, extent: channels), .init(variable: 2, extent: kernelSize), .init(variable: 3, extent: kernelSize)],
      factors: [x, w], conditions: conditions, type: .float32)
    let outputs = batch * filters * outH * outW
    var inputs: [Kernel.Operand] = [
      .init(dtype: .float32, elementCount: batch * channels * height * width), .init(dtype: .float32, elementCount: filters * channels * taps),
    ]
    var body = sum
    switch epilogue {
    case .none: break
    case .biasRelu:
      let biased = Expr.binary(.add, sum, .load(input: 2, dtype: .float32, index: co))
      body = .binary(.maximum, biased, .literal(.of(0, .float32)))
      inputs.append(.init(dtype: .float32, elementCount: filters))
    case .residual:
      let residual = Expr.load(input: 2, dtype: .float32, index: nn * (filters * outH * outW) + co * (outH * outW) + oh * outW + ow)
      body = .binary(.maximum, .binary(.add, .binary(.add, sum, .load(input: 3, dtype: .float32, index: co)), residual), .literal(.of(0, .float32)))
      inputs += [.init(dtype: .float32, elementCount: outputs), .init(dtype: .float32, elementCount: filters)]
    }
    return Kernel(
      name: "wconv", inputs: inputs, output: .init(dtype: .float32, elementCount: outputs), shape: [batch, filters, outH, outW],
      body: body, sourceOps: ["wconv"], region: .contraction(stated))
  }

  /// Runs `kernel` as a Winograd convolution (weights transformed by the template's `prepack`) in
  /// both objects and checks it against the generic loop on the original weights.
  func expectWinogradAgreement(_ kernel: Kernel, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let template = try #require(CWinogradTemplate.match(kernel), "\(kernel.shape) should match", sourceLocation: sourceLocation)
    #expect(template.source().contains("cpu winograd F(4x4,3x3)"), sourceLocation: sourceLocation)
    let inputs = kernel.inputs.map { random($0.elementCount) }
    var transformed = inputs
    transformed[template.weightInput] = try #require(template.prepack(values: inputs[template.weightInput]), sourceLocation: sourceLocation)
    var kernelWithTransformed = kernel
    kernelWithTransformed.inputs[template.weightInput].elementCount = transformed[template.weightInput].count
    let reference = try run(kernel, gemm: false, inputs: inputs)
    for flags in Self.variants {
      let got = try run(kernelWithTransformed, gemm: true, inputs: transformed, flags: flags, prepacked: [CWinogradTemplate.weightsOperand])
      // Differences against the outputs' scale (Winograd's rounding grows with the sums, not with
      // each output: F(4x4, 3x3) multiplies by up to 8 and 1/24 in its transforms).
      let scale = max(1, reference.map(abs).max() ?? 0)
      var worst: Float = 0
      for (x, y) in zip(got, reference) { worst = max(worst, abs(x - y) / scale) }
      #expect(got.count == reference.count, sourceLocation: sourceLocation)
      #expect(worst < 2e-5, "\(kernel.shape) \(flags): largest difference \(worst) of the largest output", sourceLocation: sourceLocation)
    }
  }

  @Test func winogradConvolutionsOfEveryShape() throws {
    // Odd planes (tiles cut by the output's edge), channel counts no multiple of 8, padding 1.
    try expectWinogradAgreement(convolution(channels: 5, filters: 7, height: 9, width: 11, pads: (1, 1, 1, 1)))
    // Two images; 81 tiles in two blocks; output channels split into groups; a residual epilogue.
    try expectWinogradAgreement(convolution(batch: 2, channels: 20, filters: 70, height: 35, width: 33, pads: (1, 1, 1, 1), epilogue: .residual))
    // No padding (no masks), and no epilogue.
    try expectWinogradAgreement(convolution(channels: 8, filters: 12, height: 14, width: 15, pads: (0, 0, 0, 0), epilogue: .none))
    // Asymmetric padding, and padding wider than the window's overhang.
    try expectWinogradAgreement(convolution(channels: 3, filters: 6, height: 17, width: 10, pads: (0, 1, 2, 1)))
    try expectWinogradAgreement(convolution(channels: 4, filters: 9, height: 8, width: 8, pads: (2, 2, 2, 2), epilogue: .residual))
    // More input channels than one GEMM call's block (256): two accumulating calls per position.
    try expectWinogradAgreement(convolution(channels: 260, filters: 13, height: 10, width: 10, pads: (1, 1, 1, 1)))
    // One tile, partly outside the 2x2 output.
    try expectWinogradAgreement(convolution(channels: 3, filters: 6, height: 4, width: 4, pads: (0, 0, 0, 0)))
  }

  @Test func convolutionsWinogradLeavesToOthers() {
    // Stride 2, dilation 2, a 5x5 or 1x1 window, a depthwise convolution: no F(4x4, 3x3).
    #expect(CWinogradTemplate.match(convolution(channels: 16, filters: 64, height: 28, width: 28, stride: 2, pads: (1, 1, 1, 1))) == nil)
    #expect(CWinogradTemplate.match(convolution(channels: 16, filters: 64, height: 28, width: 28, dilation: 2, pads: (2, 2, 2, 2))) == nil)
    #expect(CWinogradTemplate.match(convolution(channels: 16, filters: 64, height: 28, width: 28, kernelSize: 5, pads: (2, 2, 2, 2))) == nil)
    #expect(CWinogradTemplate.match(convolution(channels: 16, filters: 64, height: 28, width: 28, kernelSize: 1, pads: (0, 0, 0, 0))) == nil)
    #expect(CWinogradTemplate.match(conv(batch: 1, channels: 16, filters: 16, size: 28, kernelSize: 3, stride: 1, pad: 1, depthwise: true)) == nil)
    // A matrix product is no convolution.
    #expect(CWinogradTemplate.match(matmul(batch: 1, m: 64, n: 64, k: 64)) == nil)
  }

  /// The shape rule (`CWinogradTemplate.isProfitable`): ResNet-50's and SqueezeNet's 3x3 stride-1
  /// convolutions from 13x13 up run as Winograd; 7x7 outputs and very few channels do not.
  @Test func winogradShapeRule() {
    func profitable(_ channels: Int, _ filters: Int, _ size: Int) -> Bool {
      CWinogradTemplate.match(convolution(channels: channels, filters: filters, height: size, width: size, pads: (1, 1, 1, 1)), profitable: true) != nil
    }
    #expect(profitable(64, 64, 56) && profitable(128, 128, 28) && profitable(256, 256, 14))
    #expect(profitable(16, 64, 55) && profitable(32, 128, 27) && profitable(48, 192, 13) && profitable(64, 256, 13))
    #expect(!profitable(512, 512, 7))
    #expect(!profitable(3, 64, 56) && !profitable(64, 16, 56))
    // Matched but not chosen: the template itself still runs them (the tests above do).
    #expect(CWinogradTemplate.match(convolution(channels: 512, filters: 512, height: 7, width: 7, pads: (1, 1, 1, 1))) != nil)
  }
}
