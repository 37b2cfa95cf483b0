import Foundation
import KilnTensor

/// Kiln's one comparison of outputs with references (tests, `kiln run --expect`, conformance):
/// floats match when |got - expected| <= atol + rtol * |expected|, with
/// atol = absoluteScale * max(1, max |expected|) over finite expected values and rtol 1e-3 by
/// default (at least 5e-3 for float16, 2e-2 for bfloat16); NaN matches NaN, infinities match
/// exactly; integers and bools must be equal. Float tensors of different float dtypes compare by
/// value (a bfloat16 output against a float32 reference file).
public struct Tolerance: Sendable {
  public var relative: Double
  public var absoluteScale: Double

  public init(relative: Double = 1e-3, absoluteScale: Double = 1e-4) {
    self.relative = relative
    self.absoluteScale = absoluteScale
  }

  static let floatTypes: Set<String> = Set(["float32", "float64", "float16", "bfloat16"] + miniFloatTypes.keys)
  /// The 8-bit and 4-bit floats by name; they compare by value like the other floats.
  static let miniFloatTypes: [String: DType] = Dictionary(
    uniqueKeysWithValues: DType.allCases.filter(\.isMiniFloat).map { ($0.rawValue, $0) })

  /// nil when `got` matches `expected`, else what differs: shape, dtype, or how many elements and
  /// the worst one.
  public func compare(_ got: HostTensor, _ expected: HostTensor) -> String? {
    guard got.shape == expected.shape else { return "shape \(got.shape), expected \(expected.shape)" }
    let floats = Self.floatTypes.contains(got.dtype) && Self.floatTypes.contains(expected.dtype)
    guard floats || got.dtype == expected.dtype else { return "dtype \(got.dtype), expected \(expected.dtype)" }
    guard floats else {
      guard got.bytes.count == expected.bytes.count else { return "\(got.bytes.count) bytes, expected \(expected.bytes.count)" }
      if got.bytes == expected.bytes { return nil }
      let size = HostTensor.elementSize(expected.dtype) ?? 1
      let differing = stride(from: 0, to: got.bytes.count, by: size).filter { got.bytes[$0..<$0 + size] != expected.bytes[$0..<$0 + size] }
      return "\(differing.count) of \(got.bytes.count / size) elements differ (exact comparison for \(expected.dtype)); first at \(Self.multiIndex((differing.first ?? 0) / size, shape: got.shape))"
    }
    let a = Self.doubles(got)
    let b = Self.doubles(expected)
    guard a.count == b.count else { return "\(a.count) elements, expected \(b.count)" }
    let lowest = [got.dtype, expected.dtype]
    let rtol = lowest.contains("bfloat16") ? max(relative, 2e-2) : lowest.contains("float16") ? max(relative, 5e-3) : relative
    let atol = absoluteScale * b.reduce(1.0) { $1.isFinite ? max($0, abs($1)) : $0 }
    var count = 0
    var worst = -1
    var worstExcess = 0.0
    for index in b.indices {
      let (x, y) = (a[index], b[index])
      let ok = x.isNaN || y.isNaN ? (x.isNaN && y.isNaN) : (x.isInfinite || y.isInfinite ? x == y : abs(x - y) <= atol + rtol * abs(y))
      guard !ok else { continue }
      count += 1
      let excess = x.isFinite && y.isFinite ? abs(x - y) / (atol + rtol * abs(y)) : .infinity
      if worst < 0 || excess > worstExcess { (worst, worstExcess) = (index, excess) }
    }
    guard count > 0 else { return nil }
    return "\(count) of \(b.count) elements differ (rtol \(rtol), atol \(String(format: "%.3g", atol))); worst at "
      + "\(Self.multiIndex(worst, shape: got.shape)): got \(a[worst]), expected \(b[worst])"
  }

  /// The largest |got - expected| over finite pairs of two float tensors (for reports), NaN otherwise.
  public static func maxAbsoluteError(_ got: HostTensor, _ expected: HostTensor) -> Double {
    let a = doubles(got)
    let b = doubles(expected)
    guard !a.isEmpty || !b.isEmpty, a.count == b.count else { return .nan }
    var worst = 0.0
    for (x, y) in zip(a, b) where x.isFinite && y.isFinite { worst = max(worst, abs(x - y)) }
    return worst
  }

  /// `[i, j, k]` of a row-major flat index.
  public static func multiIndex(_ flat: Int, shape: [Int]) -> String {
    var rest = flat
    var index = [Int](repeating: 0, count: shape.count)
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] > 0 {
      index[axis] = rest % shape[axis]
      rest /= shape[axis]
    }
    return "[\(index.map(String.init).joined(separator: ", "))]"
  }

  /// The values of a float tensor as doubles (empty for other dtypes).
  static func doubles(_ tensor: HostTensor) -> [Double] {
    tensor.bytes.withUnsafeBytes { raw in
      switch tensor.dtype {
      case "float32": return (0..<raw.count / 4).map { Double(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self)) }
      case "float64": return (0..<raw.count / 8).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
      case "float16":
        return (0..<raw.count / 2).map { Double(Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
      case "bfloat16":
        return (0..<raw.count / 2).map {
          Double(Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16))
        }
      default:
        guard let dtype = miniFloatTypes[tensor.dtype] else { return [] }
        return raw.map { Double(FloatConversion.float(fromMiniFloatBits: $0, as: dtype)) }
      }
    }
  }
}
