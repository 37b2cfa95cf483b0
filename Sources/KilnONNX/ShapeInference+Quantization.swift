import KilnIR

// Quantized operators: QLinearMatMul, MatMulInteger, ConvInteger, QLinearConv and
// DynamicQuantizeLinear. The Decompose pass rewrites each into integer MatMul/Conv (exact int32
// accumulation) and float requantisation.

extension OpRegistry {
  static func quantizationSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]
    let convAttributes: Set<String> = ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]

    specs["MatMulInteger"] = OpSpec(
      attributes: [], inputs: 2...4, outputs: 1...1,
      infer: { ctx in
        let a = try ctx.type(0)
        let b = try ctx.type(1)
        try requireEightBit(a, "A")
        try requireEightBit(b, "B")
        return [TensorType(.int32, try matMulShape(a.shape, b.shape))]
      })

    specs["QLinearMatMul"] = OpSpec(
      attributes: [], inputs: 8...8, outputs: 1...1,
      infer: { ctx in
        let a = try ctx.type(0)
        let b = try ctx.type(3)
        try requireEightBit(a, "a")
        try requireEightBit(b, "b")
        let zeroPoint = try qlinearScalesAndZeroPoint(ctx, [(1, "a_scale"), (4, "b_scale"), (6, "y_scale")])
        return [TensorType(zeroPoint.dtype, try matMulShape(a.shape, b.shape))]
      })

    specs["ConvInteger"] = OpSpec(
      attributes: convAttributes, inputs: 2...4, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let w = try ctx.type(1)
        try requireEightBit(x, "x")
        try requireEightBit(w, "w")
        return [TensorType(.int32, try integerConvolutionShape(ctx.node, x, w))]
      })

    specs["QLinearConv"] = OpSpec(
      attributes: convAttributes, inputs: 8...9, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let w = try ctx.type(3)
        try requireEightBit(x, "x")
        try requireEightBit(w, "w")
        let zeroPoint = try qlinearScalesAndZeroPoint(ctx, [(1, "x_scale"), (4, "w_scale"), (6, "y_scale")])
        let shape = try integerConvolutionShape(ctx.node, x, w)
        if let bias = ctx.optionalType(8), bias.shape != [shape[1]] || bias.dtype != .int32 {
          throw ONNXImportError.shape("bias must be int32 of shape [\(shape[1])], got \(bias)")
        }
        return [TensorType(zeroPoint.dtype, shape)]
      })

    specs["DynamicQuantizeLinear"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...3,
      infer: { ctx in
        let x = try ctx.type(0)
        guard x.dtype == .float32 else {
          throw ONNXImportError(
            .unsupportedType, "x has element type \(x.dtype.rawValue); DynamicQuantizeLinear needs float32")
        }
        let types = [x.with(dtype: .uint8), TensorType(.float32, []), TensorType(.uint8, [])]
        return Array(types.prefix(ctx.outputCount))
      })
    return specs
  }

  /// The 8-bit integer types the quantized operators take.
  static func requireEightBit(_ type: TensorType, _ what: String) throws {
    guard type.dtype == .int8 || type.dtype == .uint8 else {
      throw ONNXImportError(
        .unsupportedType, "\(what) has element type \(type.dtype.rawValue); int8 or uint8 is needed")
    }
  }

  /// The output shape of ConvInteger/QLinearConv: Conv's geometry on integer operands.
  static func integerConvolutionShape(_ node: Node, _ x: TensorType, _ w: TensorType) throws -> [Int] {
    try Shapes.requireRank(x, atLeast: 3, "x")
    guard w.rank == x.rank else {
      throw ONNXImportError.shape("weight shape \(w.shape) does not match input rank \(x.rank)")
    }
    let kernel = Array(w.shape.dropFirst(2))
    if let declared = try node.ints("kernel_shape"), declared != kernel {
      throw ONNXImportError.shape("kernel_shape \(declared) does not match weight shape \(w.shape)")
    }
    let group = try node.int("group", default: 1)
    guard group >= 1, try Shapes.multiply(w.shape[1], group) == x.shape[1], w.shape[0] % group == 0 else {
      throw ONNXImportError.shape(
        "group \(group) does not fit input channels \(x.shape[1]) and weight shape \(w.shape)")
    }
    let spatial = try Window(node, kernel: kernel).outputShape(Array(x.shape.dropFirst(2)))
    return [x.shape[0], w.shape[0]] + spatial
  }
}

extension OpRegistry {
  /// QLinearMatMul/QLinearConv: the scales are floats and y_zero_point (slot 7) is 8-bit; returns
  /// y_zero_point's type, which is the result's dtype.
  static func qlinearScalesAndZeroPoint(_ ctx: OpContext, _ scales: [(Int, String)]) throws -> TensorType {
    for (slot, what) in scales { try Shapes.requireFloat(ctx.type(slot), what) }
    let zeroPoint = try ctx.type(7)
    try requireEightBit(zeroPoint, "y_zero_point")
    return zeroPoint
  }
}
