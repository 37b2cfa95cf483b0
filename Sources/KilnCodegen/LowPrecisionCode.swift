import KilnCompiler
import KilnIR

/// Loads, stores and helper functions for the low-precision element types in both kernel
/// languages. Every such element occupies one byte of its buffer (see `DType`), so a kernel
/// reads and writes whole bytes, stored as `uint8_t`, and no two invocations share a byte:
/// 8-bit and 4-bit floats decode to float32 with `kiln_<type>_load` and encode with
/// `kiln_<type>_store` (round to nearest even, not saturating; see `MiniFloat`); 4-bit and 2-bit
/// integers keep their bits in the low bits of the byte and sign-extend (or mask) on load.
enum LowPrecisionCode {
  /// The two kernel languages' spellings of what the helpers need.
  struct Syntax: Sendable {
    let uint: String
    let prefix: String
    let floatBits: String
    let bitsFloat: String
    let toInt: @Sendable (String) -> String
    let toUint: @Sendable (String) -> String
    let toFloat: @Sendable (String) -> String

    static let glsl = Syntax(
      uint: "uint", prefix: "", floatBits: "floatBitsToUint", bitsFloat: "uintBitsToFloat",
      toInt: { "int(\($0))" }, toUint: { "uint(\($0))" }, toFloat: { "float(\($0))" })
    static let c = Syntax(
      uint: "uint32_t", prefix: "static inline ", floatBits: "kiln_f32_bits", bitsFloat: "kiln_f32_value",
      toInt: { "((int32_t)(\($0)))" }, toUint: { "((uint32_t)(\($0)))" }, toFloat: { "((float)(\($0)))" })
  }

  /// Whether a dtype needs more than a plain typed load/store.
  static func isLowPrecision(_ dtype: DType) -> Bool { dtype.isMiniFloat || dtype.isSubByte }

  /// The helper functions for every mini-float dtype among `dtypes`, in a stable order.
  static func helpers(for dtypes: some Sequence<DType>, _ syntax: Syntax) -> String {
    let used = Set(dtypes)
    return DType.allCases.filter { used.contains($0) && $0.isMiniFloat }.map { helpers($0, syntax) }.joined()
  }

  /// `value` (a `uint8_t` storage element or bits) decoded to its compute type.
  static func load(_ element: String, dtype: DType, _ syntax: Syntax) -> String {
    let byte = syntax.toUint(element)
    if dtype.isMiniFloat { return "kiln_\(dtype.shortName)_load(\(byte))" }
    let mask = (1 << dtype.bitWidth) - 1
    if dtype.isSigned {
      let shift = 32 - dtype.bitWidth
      let extended = "(\(syntax.toInt("\(byte) << \(shift)")) >> \(shift))"
      return syntax.uint == "uint" ? "int8_t(\(extended))" : "((int8_t)\(extended))"
    }
    let masked = "(\(byte) & \(mask)u)"
    return syntax.uint == "uint" ? "uint8_t(\(masked))" : "((uint8_t)\(masked))"
  }

  /// `value` (of the compute type) encoded as the storage byte.
  static func store(_ value: String, dtype: DType, _ syntax: Syntax) -> String {
    let bits: String
    if dtype.isMiniFloat {
      bits = "kiln_\(dtype.shortName)_store(\(value))"
    } else {
      let word = syntax.toUint(syntax.toInt(value))
      bits = "(\(word) & \((1 << dtype.bitWidth) - 1)u)"
    }
    return syntax.uint == "uint" ? "uint8_t(\(bits))" : "((uint8_t)\(bits))"
  }

  private static func hex(_ value: UInt32) -> String { "0x\(String(value, radix: 16))u" }

  private static func helpers(_ dtype: DType, _ s: Syntax) -> String {
    let name = "kiln_\(dtype.shortName)"
    guard let format = MiniFloat(dtype) else { return e8m0Helpers(name, s) }
    let u = s.uint
    let m = format.mantissaBits
    let signShift = format.signShift
    let mask = hex(format.magnitudeMask)
    let allOnes = hex(UInt32((1 << format.exponentBits) - 1))
    let subnormalUnit = Float(sign: .plus, exponent: 1 - format.bias - m, significand: 1).bitPattern
    let special: String
    switch format.specials {
    case .ieee:
      special = "if (e == \(allOnes)) return \(s.bitsFloat)((sign << 31) | (f == 0u ? 0x7f800000u : 0x7fc00000u));"
    case .finite: special = "if (mag == \(mask)) return \(s.bitsFloat)((sign << 31) | 0x7fc00000u);"
    case .unsignedZero: special = "if (c == \(hex(1 << UInt32(signShift)))) return \(s.bitsFloat)(0x7fc00000u);"
    case .none: special = ""
    }
    func code(_ sign: String, _ bits: UInt32) -> String {
      let plain = bits & format.magnitudeMask
      switch format.specials {
      case .unsignedZero where bits == 1 << UInt32(signShift): return hex(bits)
      case .none where plain == 0: return "(\(sign) ^ \(hex(1 << UInt32(signShift))))"
      default: return "(\(sign) | \(hex(plain)))"
      }
    }
    let nan = code("sign", format.nanCode(sign: 0))
    let overflow = code("sign", format.overflowCode(sign: 0))
    let zero = format.specials == .unsignedZero ? "  if (code == 0u) return 0u;\n" : ""
    return """
      \(s.prefix)float \(name)_load(\(u) c) {
        \(u) sign = (c >> \(signShift)) & 1u;
        \(u) mag = c & \(mask);
        \(u) e = mag >> \(m);
        \(u) f = mag & \(hex(UInt32((1 << m) - 1)));
        \(special)
        float v = (e == 0u) ? \(s.toFloat("f")) * \(s.bitsFloat)(\(hex(subnormalUnit)))
          : \(s.bitsFloat)(((e + \(127 - format.bias)u) << 23) | (f << \(23 - m)));
        return sign != 0u ? -v : v;
      }
      \(s.prefix)\(u) \(name)_store(float value) {
        \(u) w = \(s.floatBits)(value);
        \(u) sign = (w >> 31) << \(signShift);
        \(u) a = w & 0x7fffffffu;
        if (a > 0x7f800000u) return \(nan);
        if (a == 0x7f800000u) return \(overflow);
        int e = \(s.toInt("a >> 23")) - 127;
        \(u) significand = a & 0x7fffffu;
        if ((a >> 23) == 0u) e = -126; else significand |= 0x800000u;
        int biased = e + \(format.bias);
        int shift = \(23 - m) + (biased < 1 ? 1 - biased : 0);
        \(u) r = 0u;
        if (shift <= 24) {
          r = significand >> shift;
          \(u) rest = significand & ((1u << shift) - 1u);
          \(u) halfway = 1u << (shift - 1);
          if (rest > halfway || (rest == halfway && (r & 1u) == 1u)) r += 1u;
        }
        \(u) code = (\(s.toUint("(biased > 1 ? biased : 1) - 1")) << \(m)) + r;
        if (code > \(hex(format.maxFiniteCode))) return \(overflow);
      \(zero)  return sign | code;
      }

      """
  }

  /// float8e8m0: the store keeps the float32 exponent field, which is exact for every e8m0 value
  /// (2^-127 included); lowerings round first (`OpLowerings.castResult`).
  private static func e8m0Helpers(_ name: String, _ s: Syntax) -> String {
    let u = s.uint
    return """
      \(s.prefix)float \(name)_load(\(u) c) {
        if (c == 0xffu) return \(s.bitsFloat)(0x7fc00000u);
        return \(s.bitsFloat)(c == 0u ? 0x400000u : (c << 23));
      }
      \(s.prefix)\(u) \(name)_store(float value) {
        \(u) w = \(s.floatBits)(value);
        return (w >> 23) & 0xffu;
      }

      """
  }
}
