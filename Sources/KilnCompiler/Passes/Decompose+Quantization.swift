import KilnIR

// The quantized operators as integer MatMul/Conv plus float requantisation.
//
// Operands are widened to int32 and their zero points subtracted before the product, so the
// accumulation is exact (int32, as the spec allows it to wrap only there). The real-valued result
// (accumulator * a_scale * b_scale, in float32) is requantised as QuantizeLinear specifies:
// saturate(round_half_even(x / y_scale) + y_zero_point).

extension Decompose {
  /// The quantized ops this pass rewrites.
  static let quantizedOps: Set<String> = [
    "QLinearMatMul", "MatMulInteger", "ConvInteger", "QLinearConv", "DynamicQuantizeLinear",
  ]
}

extension Rewriter {
  /// Rewrites the source node, one of `Decompose.quantizedOps`.
  mutating func quantized() throws {
    switch source.op {
    case "MatMulInteger":
      try integerMatMul(
        a: try input(0), aZeroPoint: optionalInput(2), b: try input(1), bZeroPoint: optionalInput(3),
        output: source.outputs[0])
    case "QLinearMatMul": try qLinearMatMul()
    case "ConvInteger":
      try integerConv(
        x: try input(0), xZeroPoint: optionalInput(2), w: try input(1), wZeroPoint: optionalInput(3), bias: nil,
        output: source.outputs[0])
    case "QLinearConv": try qLinearConv()
    case "DynamicQuantizeLinear": try dynamicQuantizeLinear()
    default: throw error("\(source.op) is not a quantized op")
    }
  }

  /// A quantisation parameter (scale or zero point) of `x` viewed so that it broadcasts against
  /// a tensor of rank `rank`: one element becomes a scalar, a 1-D tensor runs along `axis`
  /// (length `x`'s dim there), and a tensor of higher rank is taken as it is.
  mutating func quantizationView(_ parameter: ValueID, along axis: Int, of shape: [Int], _ what: String) throws
    -> ValueID
  {
    let parameterShape = type(parameter).shape
    let count = parameterShape.reduce(1, *)
    let view: [Int]
    if count == 1 {
      view = []
    } else if parameterShape.count == 1 {
      guard count == shape[axis] else {
        throw error(
          "\(what) has \(count) values; per-axis quantization needs \(shape[axis]) (axis \(axis) of \(shape))")
      }
      view = [count] + Array(repeating: 1, count: shape.count - axis - 1)
    } else {
      guard Broadcast.canBroadcast(parameterShape, to: shape) else {
        throw error("\(what) of shape \(parameterShape) does not broadcast to \(shape)")
      }
      return parameter
    }
    if let data = graph.constants[parameter], let reshaped = data.reshaped(to: view) {
      return constant(reshaped, "\(what)_view")
    }
    return reshape(parameter, to: view)
  }

  /// `x` widened to int32 minus its zero point (viewed along `axis`; omitted means 0).
  mutating func widened(_ x: ValueID, zeroPoint: ValueID?, along axis: Int, _ what: String) throws -> ValueID {
    let wide = convert(x, to: .int32)
    guard let zeroPoint else { return wide }
    let view = try quantizationView(zeroPoint, along: axis, of: type(x).shape, what)
    return binary("Sub", wide, convert(view, to: .int32))
  }

  /// A float scale viewed along `axis` of `shape`, in float32.
  mutating func scaleView(_ scale: ValueID, along axis: Int, of shape: [Int], _ what: String) throws -> ValueID {
    convert(try quantizationView(scale, along: axis, of: shape, what), to: .float32)
  }

  /// MatMulInteger: (A - a_zero_point) @ (B - b_zero_point) in int32 into `output`; A's zero
  /// point is per tensor or per row, B's per tensor or per column.
  mutating func integerMatMul(a: ValueID, aZeroPoint: ValueID?, b: ValueID, bZeroPoint: ValueID?, output: ValueID)
    throws
  {
    let left = try widened(a, zeroPoint: aZeroPoint, along: Swift.max(type(a).rank - 2, 0), "a_zero_point")
    let right = try widened(b, zeroPoint: bZeroPoint, along: type(b).rank - 1, "b_zero_point")
    add("MatMul", version: 13, [left, right], type(output), output: output)
  }

  /// QLinearMatMul: the int32 product scaled by a_scale * b_scale, requantised to y.
  mutating func qLinearMatMul() throws {
    let a = try input(0)
    let b = try input(3)
    let outputShape = type(source.outputs[0]).shape
    let product = graph.addValue(name: uniqueName("product"), type: TensorType(.int32, outputShape))
    try integerMatMul(a: a, aZeroPoint: optionalInput(2), b: b, bZeroPoint: optionalInput(5), output: product)
    // Per-row scales of A run along the output's row axis, per-column scales of B along its last.
    let rank = outputShape.count
    let aScale = try scaleView(try input(1), along: Swift.max(rank - 2, 0), of: outputShape, "a_scale")
    let bScale = try scaleView(try input(4), along: rank - 1, of: outputShape, "b_scale")
    let real = binary("Mul", binary("Mul", convert(product, to: .float32), aScale), bScale)
    try requantize(real, scale: try input(6), zeroPoint: try input(7))
  }

  /// Writes saturate(round_half_even(real / scale) + zero_point) (per tensor) to output 0.
  mutating func requantize(_ real: ValueID, scale: ValueID, zeroPoint: ValueID) throws {
    for (id, what) in [(scale, "y_scale"), (zeroPoint, "y_zero_point")] where type(id).shape.reduce(1, *) != 1 {
      throw error("\(what) must have one element (per-tensor quantization), got shape \(type(id).shape)")
    }
    let output = source.outputs[0]
    add("QuantizeLinear", version: 19, [real, convert(scale, to: .float32), zeroPoint], type(output), output: output)
  }

  /// ConvInteger (and QLinearConv's accumulator): Conv of the widened operands in int32; x's
  /// zero point is per tensor, w's per tensor or per output channel.
  mutating func integerConv(
    x: ValueID, xZeroPoint: ValueID?, w: ValueID, wZeroPoint: ValueID?, bias: ValueID?, output: ValueID
  ) throws {
    if let xZeroPoint, type(xZeroPoint).shape.reduce(1, *) != 1 {
      throw error("x_zero_point must have one element (per-tensor quantization), got \(type(xZeroPoint).shape)")
    }
    let input = try widened(x, zeroPoint: xZeroPoint, along: 0, "x_zero_point")
    let weight = try widened(w, zeroPoint: wZeroPoint, along: 0, "w_zero_point")
    add("Conv", version: 11, [input, weight, bias], type(output), attributes: source.attributes, output: output)
  }

  /// QLinearConv: the int32 convolution (plus the int32 bias) scaled by x_scale * w_scale
  /// (w_scale per tensor or per output channel), requantised to y.
  mutating func qLinearConv() throws {
    let outputShape = type(source.outputs[0]).shape
    let accumulator = graph.addValue(name: uniqueName("accumulator"), type: TensorType(.int32, outputShape))
    try integerConv(
      x: try input(0), xZeroPoint: optionalInput(2), w: try input(3), wZeroPoint: optionalInput(5),
      bias: optionalInput(8), output: accumulator)
    let xScale = try scaleView(try input(1), along: 1, of: outputShape, "x_scale")
    let wScale = try scaleView(try input(4), along: 1, of: outputShape, "w_scale")
    let real = binary("Mul", binary("Mul", convert(accumulator, to: .float32), xScale), wScale)
    try requantize(real, scale: try input(6), zeroPoint: try input(7))
  }

  /// DynamicQuantizeLinear: uint8 quantisation with scale (max(0, max x) - min(0, min x)) / 255
  /// (1 / 255 when that range is 0) and zero point round(saturate(0 - min(0, min x) / scale)).
  mutating func dynamicQuantizeLinear() throws {
    let x = try input(0)
    let axes = Array(0..<type(x).rank)
    let zero = scalar(0, .float32, "zero")
    let high = add(
      "Max", version: 13, [reshape(reduce("ReduceMax", x, axes: axes), to: []), zero], TensorType(.float32, []))
    let low = add(
      "Min", version: 13, [reshape(reduce("ReduceMin", x, axes: axes), to: []), zero], TensorType(.float32, []))
    let range = binary("Sub", high, low)
    let empty = add("Equal", version: 13, [range, zero], TensorType(.bool, []))
    let divisor = add("Where", version: 16, [empty, scalar(1, .float32, "one"), range], TensorType(.float32, []))
    let scale = binary("Div", divisor, scalar(255, .float32, "levels"), output: hasOutput(1) ? source.outputs[1] : nil)
    let shifted = binary("Sub", zero, binary("Div", low, scale))
    let clipped = add(
      "Clip", version: 13, [shifted, zero, scalar(255, .float32, "levels")], TensorType(.float32, []))
    let zeroPoint = convert(unary("Round", clipped), to: .uint8, output: hasOutput(2) ? source.outputs[2] : nil)
    add("QuantizeLinear", version: 19, [x, scale, zeroPoint], type(x).with(dtype: .uint8), output: source.outputs[0])
  }
}
