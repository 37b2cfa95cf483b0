/// The 8-bit and 4-bit float formats of ONNX (see "Float stored in 8 bits" and "Float stored in
/// 4 bits" in the ONNX docs) and their exact conversions from and to `Float`.
///
/// Encoding from `Float` rounds to nearest, ties to even, and does NOT saturate: what does not fit
/// becomes infinity (E5M2), NaN (the FN and FNUZ formats) or the largest value (E2M1, which has
/// neither). This is ONNX's `Cast` with `saturate = 0` and NumPy `ml_dtypes`' conversion; Cast's
/// default saturating form clamps to `±largestFinite` first (`MiniFloat.saturated`). E8M0 (a bare
/// power-of-two exponent) has its own rounding modes, see `FloatConversion.float8e8m0Bits`.
public struct MiniFloat: Sendable, Hashable {
  /// How a format spends its special encodings.
  public enum Specials: Sendable, Hashable {
    /// IEEE-like: the all-ones exponent holds infinities and NaNs (E5M2).
    case ieee
    /// "Finite": only S.1111.111 is NaN, no infinities (E4M3FN).
    case finite
    /// "Finite, unsigned zero": 0x80 (negative zero's pattern) is the only NaN (the FNUZ formats).
    case unsignedZero
    /// Neither infinities nor NaN (E2M1).
    case none
  }

  public let exponentBits: Int
  public let mantissaBits: Int
  public let bias: Int
  public let specials: Specials

  /// The format of a mini-float dtype other than float8e8m0; nil otherwise.
  public init?(_ dtype: DType) {
    switch dtype {
    case .float8e4m3fn: self.init(exponentBits: 4, mantissaBits: 3, bias: 7, specials: .finite)
    case .float8e4m3fnuz: self.init(exponentBits: 4, mantissaBits: 3, bias: 8, specials: .unsignedZero)
    case .float8e5m2: self.init(exponentBits: 5, mantissaBits: 2, bias: 15, specials: .ieee)
    case .float8e5m2fnuz: self.init(exponentBits: 5, mantissaBits: 2, bias: 16, specials: .unsignedZero)
    case .float4e2m1: self.init(exponentBits: 2, mantissaBits: 1, bias: 1, specials: .none)
    default: return nil
    }
  }

  init(exponentBits: Int, mantissaBits: Int, bias: Int, specials: Specials) {
    self.exponentBits = exponentBits
    self.mantissaBits = mantissaBits
    self.bias = bias
    self.specials = specials
  }

  /// The sign bit's position.
  public var signShift: Int { exponentBits + mantissaBits }
  /// All bits of the magnitude.
  public var magnitudeMask: UInt32 { (1 << UInt32(signShift)) - 1 }

  /// The largest finite magnitude's bits.
  public var maxFiniteCode: UInt32 {
    let allOnesExponent = UInt32((1 << exponentBits) - 1) << UInt32(mantissaBits)
    let allOnesMantissa = UInt32((1 << mantissaBits) - 1)
    switch specials {
    case .ieee: return (allOnesExponent - (1 << UInt32(mantissaBits))) | allOnesMantissa
    case .finite: return allOnesExponent | (allOnesMantissa - 1)
    case .unsignedZero, .none: return magnitudeMask
    }
  }

  /// The largest finite value (448 for E4M3FN, 240 for E4M3FNUZ, 57344 for E5M2(FNUZ), 6 for E2M1).
  public var largestFinite: Float { value(ofBits: maxFiniteCode) }

  /// The bits of NaN with the given sign bit (ml_dtypes' choice: a quiet NaN for E5M2; E2M1 has no
  /// NaN and, like ml_dtypes, turns it into the zero of the opposite sign).
  public func nanCode(sign: UInt32) -> UInt32 {
    switch specials {
    case .ieee: return sign | (UInt32((1 << exponentBits) - 1) << UInt32(mantissaBits)) | (1 << UInt32(mantissaBits - 1))
    case .finite: return sign | magnitudeMask
    case .unsignedZero: return 1 << UInt32(signShift)
    case .none: return sign ^ (1 << UInt32(signShift))
    }
  }

  /// The bits a too-large magnitude (or an infinity) becomes when not saturating.
  public func overflowCode(sign: UInt32) -> UInt32 {
    switch specials {
    case .ieee: return sign | (UInt32((1 << exponentBits) - 1) << UInt32(mantissaBits))
    case .finite, .unsignedZero: return nanCode(sign: sign)
    case .none: return sign | maxFiniteCode
    }
  }

  /// The value of `bits` (exact).
  public func value(ofBits bits: UInt32) -> Float {
    let bits = bits & ((1 << UInt32(signShift + 1)) - 1)
    let negative = bits >> UInt32(signShift) != 0
    let magnitude = bits & magnitudeMask
    let exponent = Int(magnitude >> UInt32(mantissaBits))
    let mantissa = magnitude & ((1 << UInt32(mantissaBits)) - 1)
    let allOnes = (1 << exponentBits) - 1
    switch specials {
    case .ieee where exponent == allOnes:
      let special: Float = mantissa == 0 ? .infinity : .nan
      return negative ? -special : special
    case .finite where magnitude == magnitudeMask:
      return negative ? -.nan : .nan
    case .unsignedZero where negative && magnitude == 0:
      return .nan
    default: break
    }
    let scaled: Float =
      exponent == 0
      ? Float(mantissa) * Float(sign: .plus, exponent: 1 - bias - mantissaBits, significand: 1)
      : Float(sign: .plus, exponent: exponent - bias, significand: 1 + Float(mantissa) / Float(1 << mantissaBits))
    return negative ? -scaled : scaled
  }

  /// The bits of `value`: round to nearest even, no saturation (see the type's documentation).
  public func bits(of value: Float) -> UInt32 {
    let word = value.bitPattern
    let sign = (word >> 31) << UInt32(signShift)
    let magnitude = word & 0x7fff_ffff
    if magnitude > 0x7f80_0000 { return nanCode(sign: sign) }
    if magnitude == 0x7f80_0000 { return overflowCode(sign: sign) }
    var exponent = Int(magnitude >> 23) - 127
    var significand = magnitude & 0x7f_ffff
    if magnitude >> 23 == 0 { exponent = -126 } else { significand |= 0x80_0000 }
    let biased = exponent + bias
    let shift = 23 - mantissaBits + (biased < 1 ? 1 - biased : 0)
    var rounded: UInt32 = 0
    if shift <= 24 {
      rounded = significand >> UInt32(shift)
      let rest = significand & ((1 << UInt32(shift)) - 1)
      let halfway = UInt32(1) << UInt32(shift - 1)
      if rest > halfway || (rest == halfway && rounded & 1 == 1) { rounded += 1 }
    }
    // Subnormal results have biased exponent 0; a carry out of the mantissa bumps the exponent.
    let code = (max(biased, 1) - 1) << mantissaBits + Int(rounded)
    if code > Int(maxFiniteCode) { return overflowCode(sign: sign) }
    if code == 0 && specials == .unsignedZero { return 0 }
    return sign | UInt32(code)
  }

  /// `value` clamped to ±`largestFinite` (NaN stays NaN): ONNX Cast's `saturate = 1`.
  public func saturated(_ value: Float) -> Float {
    value.isNaN ? value : Swift.min(Swift.max(value, -largestFinite), largestFinite)
  }
}

/// ONNX Cast's `round_mode` for float8e8m0.
public enum E8M0RoundMode: String, Sendable, CaseIterable {
  /// Any fraction rounds up to the next power of two (the default).
  case up
  /// Truncates to the power of two below.
  case down
  /// To the nearest power of two, ties up.
  case nearest
}

extension FloatConversion {
  /// float8e8m0 bits (a biased exponent, 2^(bits - 127); 0xff is NaN) of `value`, as ONNX's
  /// reference `to_float8e8m0`: the sign is ignored, NaN and infinities become 0xff, zero and
  /// float32 subnormals below the rounding point become 0 (2^-127); `saturate` keeps rounding from
  /// carrying 0xfe into NaN.
  public static func float8e8m0Bits(from value: Float, saturate: Bool = true, roundMode: E8M0RoundMode = .up)
    -> UInt8
  {
    let word = value.bitPattern
    let exponent = (word >> 23) & 0xff
    if exponent == 0xff { return 0xff }
    var roundUp: Bool
    switch roundMode {
    case .up: roundUp = word & 0x7f_ffff != 0
    case .down: roundUp = false
    case .nearest: roundUp = word & 0x40_0000 != 0 && (word & 0x3f_ffff != 0 || exponent > 0)
    }
    if saturate && exponent == 0xfe { roundUp = false }
    return UInt8(exponent + (roundUp ? 1 : 0))
  }

  /// The value of float8e8m0 bits: 2^(bits - 127), NaN for 0xff (exact).
  public static func float(fromFloat8E8M0Bits bits: UInt8) -> Float {
    if bits == 0xff { return .nan }
    if bits == 0 { return Float(bitPattern: 0x40_0000) }
    return Float(bitPattern: UInt32(bits) << 23)
  }

  /// The bits of `value` in a mini-float dtype (non-saturating, see `MiniFloat`; e8m0 rounds up
  /// and saturates, Cast's default). Precondition: `dtype.isMiniFloat`.
  public static func miniFloatBits(from value: Float, as dtype: DType) -> UInt8 {
    if dtype == .float8e8m0 { return float8e8m0Bits(from: value) }
    guard let format = MiniFloat(dtype) else { preconditionFailure("\(dtype) is not a mini-float") }
    return UInt8(format.bits(of: value))
  }

  /// The value of mini-float bits (exact). Precondition: `dtype.isMiniFloat`.
  public static func float(fromMiniFloatBits bits: UInt8, as dtype: DType) -> Float {
    if dtype == .float8e8m0 { return float(fromFloat8E8M0Bits: bits) }
    guard let format = MiniFloat(dtype) else { preconditionFailure("\(dtype) is not a mini-float") }
    return format.value(ofBits: UInt32(bits))
  }
}

extension DType {
  /// The range of an integer type's values (bool: 0...1); nil for floats.
  public var integerRange: ClosedRange<Int64>? {
    guard let bits = integerBitWidth, self != .bool else { return self == .bool ? 0...1 : nil }
    if bits == 64 { return isSigned ? Int64.min...Int64.max : 0...Int64.max }
    return isSigned ? -(1 << (bits - 1))...((1 << (bits - 1)) - 1) : 0...((1 << bits) - 1)
  }

  /// An integer wrapped to this type's width (two's complement), as stored by Kiln: the low
  /// `bitWidth` bits (4-bit and 2-bit types keep the upper bits of their byte zero).
  public func wrappedStorageBits(_ value: Int64) -> UInt64 {
    let bits = UInt64(bitPattern: value)
    return bitWidth >= 64 ? bits : bits & ((1 << UInt64(bitWidth)) - 1)
  }

  /// The value of a stored integer element's low `bitWidth` bits (sign-extended when signed).
  public func integerValue(ofStorageBits bits: UInt64) -> Int64 {
    guard bitWidth < 64 else { return Int64(bitPattern: bits) }
    let masked = bits & ((1 << UInt64(bitWidth)) - 1)
    if isSigned && masked >> UInt64(bitWidth - 1) != 0 { return Int64(bitPattern: masked) - (1 << Int64(bitWidth)) }
    return Int64(bitPattern: masked)
  }
}
