import KilnIR

// Results in the low-precision types (8-bit and 4-bit floats, 4-bit and 2-bit integers). They
// compute as float32 / int8 / uint8 (`ValueType.compute`); the store encodes. A result is also
// rounded to its format right away (`roundedToStorage`), so that a consumer fused into the same
// kernel sees the stored value, not the wider one.

extension OpLowerings {
  /// `value` (of `ValueType.compute(dtype)`) as `dtype` would store and load it: encoded and
  /// decoded again (floats round to nearest even, integers wrap). Other dtypes: `value`.
  static func roundedToStorage(_ value: Expr, _ dtype: DType) -> Expr {
    guard dtype.isMiniFloat || dtype.isSubByte else { return value }
    return .bitcast(.bitcast(value, from: dtype, to: .uint8), from: .uint8, to: dtype)
  }

  /// ONNX Cast's result in `dtype` from `value` (already converted to `ValueType.compute(dtype)`):
  /// the 8-bit floats other than e8m0 clamp to their largest finite value when `saturate` (else
  /// what does not fit becomes NaN or infinity), e8m0 rounds by `round_mode`, and everything in a
  /// low-precision type is rounded to it.
  static func castResult(_ ctx: LoweringContext, _ value: Expr, to dtype: DType) throws -> Expr {
    let saturate = try ctx.intAttribute("saturate", default: 1) != 0
    let modeName = try ctx.stringAttribute("round_mode", default: "up")
    guard let roundMode = E8M0RoundMode(rawValue: modeName) else {
      throw ctx.error("round_mode '\(modeName)' is not supported (up, down or nearest)")
    }
    if dtype == .float8e8m0 { return roundedToStorage(e8m0(value, saturate: saturate, roundMode: roundMode), dtype) }
    if saturate, dtype.bitWidth == 8, let format = MiniFloat(dtype) {
      return roundedToStorage(saturated(value, to: format.largestFinite), dtype)
    }
    return roundedToStorage(value, dtype)
  }

  /// `value` clamped to ±`limit`; NaN stays NaN.
  static func saturated(_ value: Expr, to limit: Float) -> Expr {
    let bound = Double(limit)
    return .binary(.minimum, .binary(.maximum, value, .constant(-bound, .float32)), .constant(bound, .float32))
  }

  /// The power of two float8e8m0 stores for float32 `value`, as ONNX's reference conversion
  /// (`FloatConversion.float8e8m0Bits`): the biased exponent of `value`, plus one when rounding up,
  /// returned as the float32 with that exponent field (0.0 for code 0, infinity for NaN's code
  /// 0xff), which the e8m0 store encodes exactly.
  static func e8m0(_ value: Expr, saturate: Bool, roundMode: E8M0RoundMode) -> Expr {
    let u32 = ValueType.scalar(.uint32)
    let bits = Expr.bitcast(value, from: .float32, to: .uint32)
    func literal(_ v: Int64) -> Expr { .literal(.integer(v, u32)) }
    func masked(_ mask: Int64) -> Expr { .binary(.bitwiseAnd, bits, literal(mask)) }
    func nonzero(_ e: Expr) -> Expr { .binary(.notEqual, e, literal(0)) }
    let exponent = Expr.binary(.bitwiseAnd, .binary(.shiftRight, bits, literal(23)), literal(0xff))
    var roundUp: Expr
    switch roundMode {
    case .up: roundUp = nonzero(masked(0x7f_ffff))
    case .down: roundUp = .falseValue
    case .nearest:
      let rest = Expr.binary(.logicalOr, nonzero(masked(0x3f_ffff)), .binary(.greater, exponent, literal(0)))
      roundUp = .binary(.logicalAnd, nonzero(masked(0x40_0000)), rest)
    }
    if saturate { roundUp = .binary(.logicalAnd, roundUp, .binary(.notEqual, exponent, literal(0xfe))) }
    let rounded = Expr.binary(.add, exponent, .select(roundUp, literal(1), literal(0)))
    let code = Expr.select(.binary(.equal, exponent, literal(0xff)), literal(0xff), rounded)
    return .bitcast(.binary(.shiftLeft, code, literal(23)), from: .uint32, to: .float32)
  }
}
