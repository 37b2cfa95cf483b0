import Foundation
import KilnRuntime

/// The house comparison: floats |got - expected| <= atol + rtol * |expected| with
/// atol = 1e-4 * max(1, max |expected|), rtol 1e-3 (5e-3 for float16, 2e-2 for bfloat16); NaN equals
/// NaN; infinities exactly; integers and bools exactly.
public struct Tolerance: Sendable {
  public var relative: Double
  public var absoluteScale: Double

  public init(relative: Double = 1e-3, absoluteScale: Double = 1e-4) {
    self.relative = relative
    self.absoluteScale = absoluteScale
  }

  /// nil when `got` matches `expected`, else what differs (shape, dtype or the first element).
  public func compare(_ got: HostTensor, _ expected: HostTensor) -> String? {
    guard got.shape == expected.shape else { return "shape \(got.shape), expected \(expected.shape)" }
    guard got.dtype == expected.dtype else { return "dtype \(got.dtype), expected \(expected.dtype)" }
    guard got.bytes.count == expected.bytes.count else { return "\(got.bytes.count) bytes, expected \(expected.bytes.count)" }
    switch expected.dtype {
    case "float32", "float64", "float16", "bfloat16":
      let a = Self.doubles(got)
      let b = Self.doubles(expected)
      let rtol = expected.dtype == "float16" ? 5e-3 : expected.dtype == "bfloat16" ? 2e-2 : relative
      let scale = b.reduce(1.0) { $1.isFinite ? max($0, abs($1)) : $0 }
      let atol = absoluteScale * scale
      for index in b.indices {
        let x = a[index]
        let y = b[index]
        if y.isNaN { if x.isNaN { continue } else { return "element \(index): \(x), expected NaN" } }
        if y.isInfinite { if x == y { continue } else { return "element \(index): \(x), expected \(y)" } }
        if !(abs(x - y) <= atol + rtol * abs(y)) { return "element \(index): \(x), expected \(y) (atol \(atol), rtol \(rtol))" }
      }
      return nil
    default:
      if got.bytes == expected.bytes { return nil }
      let size = HostTensor.elementSize(expected.dtype) ?? 1
      let first = stride(from: 0, to: got.bytes.count, by: size).first { got.bytes[$0..<$0 + size] != expected.bytes[$0..<$0 + size] } ?? 0
      return "element \(first / size) differs (exact comparison for \(expected.dtype))"
    }
  }

  static func doubles(_ tensor: HostTensor) -> [Double] {
    tensor.bytes.withUnsafeBytes { raw in
      switch tensor.dtype {
      case "float32": return (0..<raw.count / 4).map { Double(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)) }
      case "float64": return (0..<raw.count / 8).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
      case "float16": return (0..<raw.count / 2).map { Double(Float(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Float16.self))) }
      case "bfloat16":
        return (0..<raw.count / 2).map {
          Double(Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16))
        }
      default: return []
      }
    }
  }
}
