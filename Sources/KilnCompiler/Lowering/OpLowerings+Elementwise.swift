import KilnIR

// Elementwise ops: each output element depends only on the inputs' elements at the same
// (broadcast) coordinates.

extension OpLowerings {
  static let elementwiseOps = [
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift",
    "Sqrt", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
    "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
    "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Gelu", "Softplus", "Softsign",
    "Mish", "ThresholdedRelu", "Shrink", "Swish", "PRelu", "Clip", "IsNaN", "IsInf",
    "Where", "Cast", "CastLike", "Identity", "Dropout", "BatchNormalization", "Trilu",
    "QuantizeLinear", "DequantizeLinear",
  ]

  static func elementwiseLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "Add": return binary(.add)
    case "Sub": return binary(.subtract)
    case "Mul": return binary(.multiply)
    case "Div": return binary(.divide)
    case "Pow": return pow
    case "Mod": return mod
    case "Equal": return binary(.equal)
    case "Less": return binary(.less)
    case "Greater": return binary(.greater)
    case "LessOrEqual": return binary(.lessEqual)
    case "GreaterOrEqual": return binary(.greaterEqual)
    case "And": return binary(.logicalAnd)
    case "Or": return binary(.logicalOr)
    case "Xor": return binary(.logicalXor)
    case "BitwiseAnd": return binary(.bitwiseAnd)
    case "BitwiseOr": return binary(.bitwiseOr)
    case "BitwiseXor": return binary(.bitwiseXor)
    case "BitShift": return bitShift
    case "Max": return variadic(.maximum)
    case "Min": return variadic(.minimum)
    case "Sum": return variadic(.add)
    case "Mean": return mean
    case "Not": return unary(.logicalNot)
    case "BitwiseNot": return unary(.bitwiseNot)
    case "Sqrt": return unary(.sqrt)
    case "Exp": return unary(.exp)
    case "Log": return unary(.log)
    case "Erf": return unary(.erf)
    case "Tanh": return unary(.tanh)
    case "Sigmoid": return unary(.sigmoid)
    case "Neg": return unary(.negate)
    case "Reciprocal": return unary(.reciprocal)
    case "Floor": return unary(.floor)
    case "Ceil": return unary(.ceil)
    case "Round": return unary(.round)
    case "Sign": return unary(.sign)
    case "Sin": return unary(.sin)
    case "Cos": return unary(.cos)
    case "Tan": return unary(.tan)
    case "Asin": return unary(.asin)
    case "Acos": return unary(.acos)
    case "Atan": return unary(.atan)
    case "Sinh": return unary(.sinh)
    case "Cosh": return unary(.cosh)
    case "Asinh": return unary(.asinh)
    case "Acosh": return unary(.acosh)
    case "Atanh": return unary(.atanh)
    case "Abs": return abs
    case "IsNaN": return unary(.isNaN)
    case "IsInf": return isInf
    case "Relu", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Gelu", "Softplus", "Softsign",
      "Mish", "ThresholdedRelu", "Shrink", "Swish":
      return try activation(node)
    case "PRelu": return prelu
    case "Clip": return clip
    case "Where": return whereOp
    case "Cast", "CastLike": return cast
    case "Identity": return identity
    case "Dropout": return dropout
    case "BatchNormalization": return try batchNormalization(node)
    case "Trilu": return trilu
    case "QuantizeLinear": return quantize
    case "DequantizeLinear": return dequantize
    default: return nil
    }
  }

  // MARK: Building blocks

  /// A unary op on input 0 (which has the output's shape).
  static func unary(_ op: UnaryOp) -> OpLowering {
    OpLowering(.elementwise) { ctx, _, coordinates in
      .unary(op, try ctx.broadcastElement(0, at: coordinates))
    }
  }

  /// A formula of input 0's element and its compute type.
  static func mapped(_ formula: @escaping @Sendable (LoweringContext, Expr, ValueType) throws -> Expr) -> OpLowering {
    OpLowering(.elementwise) { ctx, _, coordinates in
      try formula(ctx, try ctx.broadcastElement(0, at: coordinates), try ctx.computeType(0))
    }
  }

  /// A broadcasting binary op; the second operand is converted to the first one's type.
  static func binary(_ op: BinaryOp) -> OpLowering {
    OpLowering(.elementwise) { ctx, _, coordinates in
      let type = try ctx.computeType(0)
      return .binary(
        op, try ctx.broadcastElement(0, at: coordinates), try ctx.broadcastElement(1, at: coordinates, as: type))
    }
  }

  /// A broadcasting fold of any number of operands.
  static func variadic(_ op: BinaryOp) -> OpLowering {
    OpLowering(.elementwise) { ctx, _, coordinates in
      try fold(ctx, op, coordinates)
    }
  }

  static func fold(_ ctx: LoweringContext, _ op: BinaryOp, _ coordinates: [Expr]) throws -> Expr {
    guard ctx.inputCount > 0 else { throw ctx.error("needs at least one input") }
    let type = try ctx.computeType(0)
    var result = try ctx.broadcastElement(0, at: coordinates)
    for i in 1..<ctx.inputCount where ctx.hasInput(i) {
      result = .binary(op, result, try ctx.broadcastElement(i, at: coordinates, as: type))
    }
    return result
  }

  // MARK: Arithmetic

  static let mean = OpLowering(.elementwise) { ctx, _, coordinates in
    let count = (0..<ctx.inputCount).filter(ctx.hasInput).count
    let sum = try fold(ctx, .add, coordinates)
    return count == 1 ? sum : .binary(.divide, sum, .constant(Double(count), try ctx.computeType(0)))
  }

  /// Pow: the result has the base's type. Integer bases with a float exponent compute in the
  /// exponent's float type and truncate back; integer exponents of float bases are converted.
  static let pow = OpLowering(.elementwise) { ctx, _, coordinates in
    let baseType = try ctx.computeType(0)
    let exponentType = try ctx.computeType(1)
    let base = try ctx.broadcastElement(0, at: coordinates)
    let exponent = try ctx.broadcastElement(1, at: coordinates)
    if baseType.isInteger && exponentType.isFloat {
      return .cast(.binary(.power, .cast(base, exponentType), exponent), baseType)
    }
    return .binary(.power, base, exponentType == baseType ? exponent : .cast(exponent, baseType))
  }

  /// Mod: fmod = 1 is C fmod/remainder (sign of the dividend); fmod = 0 is Python's modulo
  /// (sign of the divisor).
  static let mod = OpLowering(.elementwise) { ctx, _, coordinates in
    let fmod = try ctx.intAttribute("fmod", default: 0)
    guard fmod == 0 || fmod == 1 else { throw ctx.error("attribute 'fmod' must be 0 or 1, got \(fmod)") }
    let type = try ctx.computeType(0)
    let a = try ctx.broadcastElement(0, at: coordinates)
    let b = try ctx.broadcastElement(1, at: coordinates, as: type)
    return .binary(fmod == 1 ? .remainder : .modulo, a, b)
  }

  static let bitShift = OpLowering(.elementwise) { ctx, _, coordinates in
    let direction = try ctx.stringAttribute("direction", default: "")
    let op: BinaryOp
    switch direction {
    case "LEFT": op = .shiftLeft
    case "RIGHT": op = .shiftRight
    default: throw ctx.error("attribute 'direction' must be LEFT or RIGHT, got '\(direction)'")
    }
    let type = try ctx.computeType(0)
    return .binary(
      op, try ctx.broadcastElement(0, at: coordinates), try ctx.broadcastElement(1, at: coordinates, as: type))
  }

  static let abs = mapped { _, x, type in
    if case .scalar(let dtype) = type, !dtype.isSigned { return x }
    return .unary(.abs, x)
  }

  static let isInf = mapped { ctx, x, _ in
    let positive = try ctx.intAttribute("detect_positive", default: 1) != 0
    let negative = try ctx.intAttribute("detect_negative", default: 1) != 0
    var tests: [Expr] = []
    if positive { tests.append(.unary(.isPositiveInfinity, x)) }
    if negative { tests.append(.unary(.isNegativeInfinity, x)) }
    return .any(tests)
  }

  // MARK: Activations

  static func activation(_ node: Node) throws -> OpLowering {
    let op = node.op
    return mapped { ctx, x, type in
      func c(_ value: Double) -> Expr { .constant(value, type) }
      func mul(_ a: Expr, _ b: Expr) -> Expr { .binary(.multiply, a, b) }
      func add(_ a: Expr, _ b: Expr) -> Expr { .binary(.add, a, b) }
      func sub(_ a: Expr, _ b: Expr) -> Expr { .binary(.subtract, a, b) }
      func clamp01(_ a: Expr) -> Expr { .binary(.maximum, .binary(.minimum, a, c(1)), c(0)) }
      /// log(1 + exp(x)) without overflow.
      func softplus(_ x: Expr) -> Expr {
        let positive = add(x, .unary(.log, add(c(1), .unary(.exp, .unary(.negate, x)))))
        let negative = Expr.unary(.log, add(c(1), .unary(.exp, x)))
        return .select(.binary(.greater, x, c(0)), positive, negative)
      }
      switch op {
      case "Relu":
        // NaN stays NaN: only negative values become 0.
        return .select(.binary(.less, x, c(0)), c(0), x)
      case "LeakyRelu":
        let alpha = try ctx.floatAttribute("alpha", default: 0.01)
        return .select(.binary(.less, x, c(0)), mul(c(alpha), x), x)
      case "Elu":
        let alpha = try ctx.floatAttribute("alpha", default: 1)
        return .select(.binary(.less, x, c(0)), mul(c(alpha), sub(.unary(.exp, x), c(1))), x)
      case "Selu":
        let alpha = try ctx.floatAttribute("alpha", default: 1.67326319217681884765625)
        let gamma = try ctx.floatAttribute("gamma", default: 1.05070102214050292968750)
        let negative = mul(c(gamma), sub(mul(c(alpha), .unary(.exp, x)), c(alpha)))
        return .select(.binary(.lessEqual, x, c(0)), negative, mul(c(gamma), x))
      case "Celu":
        let alpha = try ctx.floatAttribute("alpha", default: 1)
        guard alpha != 0 else { throw ctx.error("attribute 'alpha' must not be 0") }
        let negative = mul(c(alpha), sub(.unary(.exp, .binary(.divide, x, c(alpha))), c(1)))
        return .select(.binary(.less, x, c(0)), negative, x)
      case "HardSigmoid":
        let alpha = try ctx.floatAttribute("alpha", default: 0.2)
        let beta = try ctx.floatAttribute("beta", default: 0.5)
        return clamp01(add(mul(c(alpha), x), c(beta)))
      case "HardSwish":
        return mul(x, clamp01(add(mul(c(1.0 / 6.0), x), c(0.5))))
      case "Gelu":
        let approximate = try ctx.stringAttribute("approximate", default: "none")
        switch approximate {
        case "none":
          let erf = Expr.unary(.erf, mul(x, c(1 / 2.0.squareRoot())))
          return mul(mul(c(0.5), x), add(c(1), erf))
        case "tanh":
          let cube = mul(mul(x, x), x)
          let inner = mul(c((2 / Double.pi).squareRoot()), add(x, mul(c(0.044715), cube)))
          return mul(mul(c(0.5), x), add(c(1), .unary(.tanh, inner)))
        default:
          throw ctx.error("attribute 'approximate' must be none or tanh, got '\(approximate)'")
        }
      case "Softplus":
        return softplus(x)
      case "Softsign":
        return .binary(.divide, x, add(c(1), .unary(.abs, x)))
      case "Mish":
        return mul(x, .unary(.tanh, softplus(x)))
      case "Swish":
        let alpha = try ctx.floatAttribute("alpha", default: 1)
        return mul(x, .unary(.sigmoid, mul(c(alpha), x)))
      case "ThresholdedRelu":
        let alpha = try ctx.floatAttribute("alpha", default: 1)
        return .select(.binary(.greater, x, c(alpha)), x, c(0))
      case "Shrink":
        let lambd = try ctx.floatAttribute("lambd", default: 0.5)
        let bias = try ctx.floatAttribute("bias", default: 0)
        let above = Expr.select(.binary(.greater, x, c(lambd)), sub(x, c(bias)), c(0))
        return .select(.binary(.less, x, c(-lambd)), add(x, c(bias)), above)
      default:
        throw ctx.error("internal: no activation formula")
      }
    }
  }

  /// PRelu: the slope broadcasts (unidirectionally) to X.
  static let prelu = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = try ctx.computeType(0)
    let x = try ctx.broadcastElement(0, at: coordinates)
    let xShape = try ctx.shape(0)
    // Before opset 7 a 1-D slope holds one value per channel (axis 1).
    let slopeShape = try ctx.shape(1)
    let perChannel = ctx.opset < 7 && xShape.count >= 2 && slopeShape == [xShape[1]]
    let slope =
      perChannel
      ? try ctx.element(1, at: [coordinates[1]], as: type) : try ctx.broadcastElement(1, at: coordinates, as: type)
    return .select(.binary(.less, x, .constant(0, type)), .binary(.multiply, slope, x), x)
  }

  /// Clip: min/max attributes before opset 11 (defaulting to the float range), optional scalar
  /// inputs from then on (which may be computed at run time). NaN stays NaN; min > max gives max.
  static let clip = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = try ctx.computeType(0)
    var result = try ctx.broadcastElement(0, at: coordinates)
    var lower: Expr?
    var upper: Expr?
    if ctx.opset < 11 {
      lower = .constant(try ctx.floatAttribute("min", default: -Double(Float.greatestFiniteMagnitude)), type)
      upper = .constant(try ctx.floatAttribute("max", default: Double(Float.greatestFiniteMagnitude)), type)
    } else {
      if ctx.hasInput(1) { lower = try ctx.scalarOperand(1, as: type) }
      if ctx.hasInput(2) { upper = try ctx.scalarOperand(2, as: type) }
    }
    if let lower { result = .select(.binary(.less, result, lower), lower, result) }
    if let upper { result = .select(.binary(.greater, result, upper), upper, result) }
    return result
  }

  static let whereOp = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = ctx.outputComputeType()
    return .select(
      try ctx.broadcastElement(0, at: coordinates, as: .bool),
      try ctx.broadcastElement(1, at: coordinates, as: type),
      try ctx.broadcastElement(2, at: coordinates, as: type))
  }

  /// Cast and CastLike: C conversion semantics (float to integer truncates, anything to bool is
  /// `!= 0`); float16/bfloat16 results are rounded on store; low-precision results follow
  /// `castResult` (saturate, round_mode).
  static let cast = OpLowering(.elementwise) { ctx, _, coordinates in
    let value = try ctx.broadcastElement(0, at: coordinates, as: ctx.outputComputeType())
    return try castResult(ctx, value, to: ctx.outputType().dtype)
  }

  static let identity = OpLowering(.elementwise) { ctx, _, coordinates in
    try ctx.broadcastElement(0, at: coordinates)
  }

  /// Dropout at inference: output 0 is the input, output 1 (the mask) is all true (or all one
  /// before opset 10, where it has the input's type).
  static let dropout = OpLowering(.elementwise) { ctx, output, coordinates in
    if ctx.opset >= 12, let training = ctx.constant(2), training.scalarBool == true {
      throw ctx.error("training_mode = true is not supported (Kiln compiles for inference)")
    }
    if ctx.opset >= 12, ctx.hasInput(2), ctx.constant(2) == nil {
      throw ctx.error("input 2 (training_mode) must be a compile-time constant")
    }
    if output == 1 { return .constant(1, ctx.outputComputeType(1)) }
    return try ctx.broadcastElement(0, at: coordinates)
  }

  /// BatchNormalization in inference form: (x - mean) / sqrt(var + epsilon) * scale + B, with the
  /// per-channel inputs indexed by axis 1.
  static func batchNormalization(_ node: Node) throws -> OpLowering {
    if case .int(let training) = node.attributes["training_mode"], training != 0 {
      throw LoweringError(node, "training_mode = \(training) is not supported (Kiln compiles for inference)")
    }
    if node.outputs.count > 1 {
      throw LoweringError(node, "the training statistics outputs (\(node.outputs.count) outputs) are not supported")
    }
    return OpLowering(.elementwise) { ctx, _, coordinates in
      let type = try ctx.computeType(0)
      guard coordinates.count >= 2 else { throw ctx.error("input has rank \(coordinates.count); 2 or more is needed") }
      let epsilon = try ctx.floatAttribute("epsilon", default: 1e-5)
      let channel = [coordinates[1]]
      func parameter(_ i: Int) throws -> Expr {
        let shape = try ctx.shape(i)
        guard shape.reduce(1, *) == ctx.outputShape()[1] || shape.reduce(1, *) == 1 else {
          throw ctx.error("input \(i) has shape \(shape); [\(ctx.outputShape()[1])] is needed")
        }
        let index = shape.reduce(1, *) == 1 ? Expr.index(0) : channel[0]
        let coordinates = shape.map { $0 == 1 ? Expr.index(0) : index }
        return try ctx.element(i, at: coordinates, as: type)
      }
      let x = try ctx.element(0, at: coordinates)
      let deviation = Expr.unary(.sqrt, .binary(.add, try parameter(4), .constant(epsilon, type)))
      let normalized = Expr.binary(.divide, .binary(.subtract, x, try parameter(3)), deviation)
      return .binary(.add, .binary(.multiply, normalized, try parameter(1)), try parameter(2))
    }
  }

  /// Trilu: keeps the upper (or lower) triangle of the last two axes relative to diagonal k.
  static let trilu = OpLowering(.elementwise) { ctx, _, coordinates in
    guard coordinates.count >= 2 else { throw ctx.error("input must have rank 2 or more") }
    let upper = try ctx.intAttribute("upper", default: 1) != 0
    let row = coordinates[coordinates.count - 2]
    let column = coordinates[coordinates.count - 1]
    // upper: keep column - row >= k; lower: keep column - row <= k. A run-time k compares in int64.
    let offset: Expr
    let k: Expr
    if ctx.hasInput(1) {
      offset = .cast(column - row, .int64)
      k = try ctx.scalarOperand(1, as: .int64)
    } else {
      offset = column - row
      k = .index(0)
    }
    let keep: Expr = upper ? .binary(.greaterEqual, offset, k) : .binary(.lessEqual, offset, k)
    return .select(keep, try ctx.element(0, at: coordinates), .constant(0, ctx.outputComputeType()))
  }

  // MARK: Quantisation

  /// The element of a quantisation parameter (scale or zero point, input `i`) for output
  /// `coordinates`: one value per tensor, one per index of `axis`, or one per block of
  /// `block_size` along `axis` (a parameter of the data's rank).
  static func quantizationParameter(_ ctx: LoweringContext, _ i: Int, _ coordinates: [Expr], as type: ValueType) throws
    -> Expr
  {
    let shape = try ctx.shape(i)
    let rank = coordinates.count
    if shape.reduce(1, *) == 1 { return try ctx.scalarElement(i, as: type) }
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: 1), rank: rank)
    let block = try ctx.intAttribute("block_size", default: 0)
    if block > 0 {
      guard shape.count == rank else { throw ctx.error("blocked input \(i) must have rank \(rank), got \(shape)") }
      var mapped = coordinates
      mapped[axis] = coordinates[axis].floorDivided(by: block)
      return try ctx.element(i, at: mapped.enumerated().map { shape[$0.offset] == 1 ? .index(0) : $0.element }, as: type)
    }
    guard shape.count == 1 else { throw ctx.error("input \(i) must be a scalar or 1-D, got \(shape)") }
    return try ctx.element(i, at: [coordinates[axis]], as: type)
  }

  /// QuantizeLinear: saturate(round_half_even(x / scale) + zero_point) in an integer output type;
  /// for a float output (8-bit or 4-bit), x / scale + zero_point converted as Cast does (the
  /// 8-bit formats clamp when `saturate`; E2M1 always does).
  static let quantize = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = try ctx.computeType(1)
    let outputType = ctx.outputComputeType()
    let dtype = ctx.outputType().dtype
    let x = try ctx.element(0, at: coordinates, as: type)
    let scale = try quantizationParameter(ctx, 1, coordinates, as: type)
    var value = Expr.binary(.divide, x, scale)
    if !dtype.isFloat { value = .unary(.round, value) }
    if ctx.hasInput(2) { value = .binary(.add, value, try quantizationParameter(ctx, 2, coordinates, as: type)) }
    guard !outputType.isFloat else {
      guard dtype != .float8e8m0 else { throw ctx.error("quantizing to float8e8m0 is not supported") }
      return try castResult(ctx, .cast(value, outputType), to: dtype)
    }
    let low = Expr.cast(TypeBounds.lowest(outputType, storage: dtype), type)
    let high = Expr.cast(TypeBounds.highest(outputType, storage: dtype), type)
    return .cast(.binary(.minimum, .binary(.maximum, value, low), high), outputType)
  }

  /// DequantizeLinear: (x - zero_point) * scale in the scale's (or output_dtype's) type.
  static let dequantize = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = ctx.outputComputeType()
    var x = try ctx.element(0, at: coordinates, as: type)
    if ctx.hasInput(2) { x = .binary(.subtract, x, try quantizationParameter(ctx, 2, coordinates, as: type)) }
    return .binary(.multiply, x, try quantizationParameter(ctx, 1, coordinates, as: type))
  }
}
