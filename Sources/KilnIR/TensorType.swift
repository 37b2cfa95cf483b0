/// A tensor's element type and static shape. Kiln shapes are fully static: every dimension is a
/// concrete non-negative integer (an empty shape is a scalar).
public struct TensorType: Hashable, Sendable, Codable, CustomStringConvertible {
  public var dtype: DType
  public var shape: [Int]

  public init(_ dtype: DType, _ shape: [Int]) {
    self.dtype = dtype
    self.shape = shape
  }

  public init(dtype: DType, shape: [Int]) {
    self.init(dtype, shape)
  }

  /// A rank-0 tensor of `dtype`.
  public static func scalar(_ dtype: DType) -> TensorType { TensorType(dtype, []) }

  public var rank: Int { shape.count }

  /// Product of the dimensions; nil when a dimension is negative or the product overflows `Int`.
  public var elementCount: Int? {
    var count = 1
    for dim in shape {
      guard dim >= 0 else { return nil }
      let (product, overflow) = count.multipliedReportingOverflow(by: dim)
      if overflow { return nil }
      count = product
    }
    return count
  }

  /// `elementCount * dtype.byteSize`; nil on a negative dimension or overflow.
  public var byteCount: Int? {
    guard let count = elementCount else { return nil }
    let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
    return overflow ? nil : bytes
  }

  /// Like `elementCount`, but throws an `IRError` naming the type when it cannot be counted.
  public func checkedElementCount() throws -> Int {
    guard let count = elementCount else {
      throw IRError(.invalidType, "type \(self) has a negative dimension or more elements than Int can count")
    }
    return count
  }

  /// Row-major strides in elements; nil when they overflow.
  public var strides: [Int]? {
    var result = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in shape.indices.reversed() {
      result[axis] = running
      let (next, overflow) = running.multipliedReportingOverflow(by: max(shape[axis], 1))
      if overflow { return nil }
      running = next
    }
    return result
  }

  /// The same dtype with another shape.
  public func with(shape newShape: [Int]) -> TensorType { TensorType(dtype, newShape) }

  /// The same shape with another dtype.
  public func with(dtype newType: DType) -> TensorType { TensorType(newType, shape) }

  /// `f32[1,3,224,224]`, `i64[]` for a scalar.
  public var description: String {
    "\(dtype.shortName)[\(shape.map(String.init).joined(separator: ","))]"
  }
}
