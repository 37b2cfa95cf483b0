/// Bit-exact conversions between `Float` and the 16-bit float formats, written out so that they
/// behave the same on every platform (Swift's `Float16` is missing on some).
/// Narrowing rounds to nearest, ties to even; NaN stays NaN; overflow becomes infinity.
public enum FloatConversion {
  /// IEEE 754 binary16 bits for `value`.
  public static func float16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xff)
    var mantissa = bits & 0x7f_ffff
    if exponent == 0xff {
      // Infinity keeps a zero mantissa; NaN keeps its top payload bits and stays quiet.
      return mantissa == 0 ? sign | 0x7c00 : sign | 0x7e00 | UInt16(truncatingIfNeeded: mantissa >> 13)
    }
    let halfExponent = exponent - 127 + 15
    if halfExponent >= 0x1f { return sign | 0x7c00 }
    if halfExponent <= 0 {
      // Subnormal half (or zero): value = m * 2^-24.
      if halfExponent < -10 { return sign }
      mantissa |= 0x80_0000
      let shift = UInt32(14 - halfExponent)
      let kept = mantissa >> shift
      let rest = mantissa & ((1 << shift) - 1)
      let halfway = UInt32(1) << (shift - 1)
      var rounded = kept
      if rest > halfway || (rest == halfway && kept & 1 == 1) { rounded += 1 }
      return sign | UInt16(truncatingIfNeeded: rounded)
    }
    var half = UInt32(halfExponent) << 10 | (mantissa >> 13)
    let rest = mantissa & 0x1fff
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if rest > 0x1000 || (rest == 0x1000 && half & 1 == 1) { half += 1 }
    return sign | UInt16(truncatingIfNeeded: half)
  }

  /// The `Float` value of IEEE 754 binary16 bits (exact).
  public static func float(fromFloat16Bits bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32((bits >> 10) & 0x1f)
    let mantissa = UInt32(bits & 0x3ff)
    if exponent == 0 {
      let magnitude = Float(mantissa) * 0x1p-24
      return sign != 0 ? -magnitude : magnitude
    }
    if exponent == 0x1f {
      return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
    }
    return Float(bitPattern: sign | ((exponent + 127 - 15) << 23) | (mantissa << 13))
  }

  /// bfloat16 bits (the top half of a binary32) for `value`.
  public static func bfloat16Bits(from value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    let roundingBias = UInt32(0x7fff) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
  }

  /// The `Float` value of bfloat16 bits (exact).
  public static func float(fromBFloat16Bits bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
  }
}
