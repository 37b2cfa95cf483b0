/// A constant tensor: its type and its elements as little-endian, row-major bytes.
/// `bytes.count` always equals `type.byteCount`.
public struct TensorData: Hashable, Sendable {
  public let type: TensorType
  public let bytes: [UInt8]

  /// Hashes the bytes in bulk (the synthesised hash feeds them one at a time: seconds for a
  /// model's weights when constants are deduplicated). Past 4 KiB only 65 windows of 64 bytes,
  /// spread over the tensor and its end, are hashed: equal tensors still hash equally, `==`
  /// compares every byte, and hashing all of BERT-base's 436 MB took 4% of its compile.
  public func hash(into hasher: inout Hasher) {
    hasher.combine(type)
    hasher.combine(bytes.count)
    bytes.withUnsafeBytes { raw in
      guard raw.count > 4096 else {
        hasher.combine(bytes: raw)
        return
      }
      let (windows, width) = (64, 64)
      let stride = raw.count / windows
      for index in 0..<windows {
        hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: raw[(index * stride)..<(index * stride + width)]))
      }
      hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: raw[(raw.count - width)...]))
    }
  }

  /// Wraps raw bytes; throws when their count is not `type.byteCount`.
  public init(type: TensorType, bytes: [UInt8]) throws {
    guard let expected = type.byteCount else {
      throw IRError(.invalidType, "tensor type \(type) has a negative dimension or overflows")
    }
    guard bytes.count == expected else {
      throw IRError(.invalidData, "tensor of type \(type) needs \(expected) bytes, got \(bytes.count)")
    }
    self.type = type
    self.bytes = bytes
  }

  /// For callers that already checked the count.
  init(uncheckedType type: TensorType, bytes: [UInt8]) {
    self.type = type
    self.bytes = bytes
  }

  public var dtype: DType { type.dtype }
  public var shape: [Int] { type.shape }
  /// Number of elements (bytes.count / byteSize, so it never fails).
  public var elementCount: Int { bytes.count / type.dtype.byteSize }

  /// The same bytes viewed with another shape of equal element count; nil otherwise.
  public func reshaped(to shape: [Int]) -> TensorData? {
    let newType = TensorType(type.dtype, shape)
    guard newType.elementCount == elementCount else { return nil }
    return TensorData(uncheckedType: newType, bytes: bytes)
  }
}

// MARK: - Building from Swift arrays

extension TensorData {
  private static func checkedType(_ dtype: DType, _ shape: [Int], count: Int) -> TensorType {
    let type = TensorType(dtype, shape)
    precondition(type.elementCount == count, "TensorData: \(count) values do not fill shape \(shape)")
    return type
  }

  private static func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    let size = MemoryLayout<T>.size
    // One copy of the values' memory, each value stored little-endian (a no-op on x86-64 and
    // arm64): weights of a hundred megabytes are converted at memory speed.
    return [UInt8](unsafeUninitializedCapacity: values.count * size) { buffer, initialized in
      let raw = UnsafeMutableRawBufferPointer(buffer)
      for (index, value) in values.enumerated() { raw.storeBytes(of: value.littleEndian, toByteOffset: index * size, as: T.self) }
      initialized = values.count * size
    }
  }

  /// float32 elements. Precondition: `values.count` fills `shape` (default: a vector).
  public init(_ values: [Float], shape: [Int]? = nil) {
    let type = Self.checkedType(.float32, shape ?? [values.count], count: values.count)
    #if _endian(little)
      // The values' memory is already the little-endian storage: one copy.
      self.init(uncheckedType: type, bytes: values.withUnsafeBytes { [UInt8]($0) })
    #else
      self.init(uncheckedType: type, bytes: Self.littleEndianBytes(values.map(\.bitPattern)))
    #endif
  }

  /// float64 elements.
  public init(_ values: [Double], shape: [Int]? = nil) {
    let type = Self.checkedType(.float64, shape ?? [values.count], count: values.count)
    self.init(uncheckedType: type, bytes: Self.littleEndianBytes(values.map(\.bitPattern)))
  }

  /// int64 elements.
  public init(_ values: [Int64], shape: [Int]? = nil) {
    let type = Self.checkedType(.int64, shape ?? [values.count], count: values.count)
    self.init(uncheckedType: type, bytes: Self.littleEndianBytes(values))
  }

  /// int32 elements.
  public init(_ values: [Int32], shape: [Int]? = nil) {
    let type = Self.checkedType(.int32, shape ?? [values.count], count: values.count)
    self.init(uncheckedType: type, bytes: Self.littleEndianBytes(values))
  }

  /// int8 elements.
  public init(_ values: [Int8], shape: [Int]? = nil) {
    let type = Self.checkedType(.int8, shape ?? [values.count], count: values.count)
    self.init(uncheckedType: type, bytes: values.map { UInt8(bitPattern: $0) })
  }

  /// uint8 elements.
  public init(_ values: [UInt8], shape: [Int]? = nil) {
    let type = Self.checkedType(.uint8, shape ?? [values.count], count: values.count)
    self.init(uncheckedType: type, bytes: values)
  }

  /// bool elements (one byte each, 0 or 1).
  public init(_ values: [Bool], shape: [Int]? = nil) {
    let type = Self.checkedType(.bool, shape ?? [values.count], count: values.count)
    self.init(uncheckedType: type, bytes: values.map { $0 ? 1 : 0 })
  }

  /// float16 elements given as binary16 bit patterns.
  public init(float16Bits: [UInt16], shape: [Int]? = nil) {
    let type = Self.checkedType(.float16, shape ?? [float16Bits.count], count: float16Bits.count)
    self.init(uncheckedType: type, bytes: Self.littleEndianBytes(float16Bits))
  }

  /// bfloat16 elements given as bit patterns.
  public init(bfloat16Bits: [UInt16], shape: [Int]? = nil) {
    let type = Self.checkedType(.bfloat16, shape ?? [bfloat16Bits.count], count: bfloat16Bits.count)
    self.init(uncheckedType: type, bytes: Self.littleEndianBytes(bfloat16Bits))
  }

  /// Elements of any dtype from doubles: floats round to nearest; integers truncate toward zero
  /// and saturate (NaN becomes 0); bool is `value != 0`. Precondition: the count fills `type`.
  public init(type: TensorType, doubles values: [Double]) {
    precondition(type.elementCount == values.count, "TensorData: \(values.count) values do not fill \(type)")
    var bytes = [UInt8]()
    bytes.reserveCapacity(values.count * type.dtype.byteSize)
    for value in values { Self.append(double: value, as: type.dtype, to: &bytes) }
    self.init(uncheckedType: type, bytes: bytes)
  }

  /// Elements of any dtype from integers: integer types wrap to their width (two's complement);
  /// floats round to nearest; bool is `value != 0`. uint64 values above `Int64.max` are passed
  /// as their bit pattern. Precondition: the count fills `type`.
  public init(type: TensorType, int64s values: [Int64]) {
    precondition(type.elementCount == values.count, "TensorData: \(values.count) values do not fill \(type)")
    var bytes = [UInt8]()
    bytes.reserveCapacity(values.count * type.dtype.byteSize)
    for value in values {
      if type.dtype.isFloat {
        Self.append(double: Double(value), as: type.dtype, to: &bytes)
      } else {
        Self.append(integer: value, as: type.dtype, to: &bytes)
      }
    }
    self.init(uncheckedType: type, bytes: bytes)
  }

  /// A tensor of `type` whose every element is `value` (converted as in `init(type:doubles:)`).
  public init(type: TensorType, repeating value: Double) {
    precondition(type.elementCount != nil, "TensorData: \(type) cannot be counted")
    var element = [UInt8]()
    Self.append(double: value, as: type.dtype, to: &element)
    let count = type.elementCount ?? 0
    var bytes = [UInt8]()
    bytes.reserveCapacity(count * element.count)
    for _ in 0..<count { bytes.append(contentsOf: element) }
    self.init(uncheckedType: type, bytes: bytes)
  }

  /// A tensor of `type` whose every element is `element`'s single element, copied bit for bit.
  /// Precondition: `element` has `type`'s dtype and exactly one element.
  public init(type: TensorType, repeatingElementOf element: TensorData) {
    precondition(
      element.dtype == type.dtype && element.elementCount == 1, "TensorData: fill value must be one \(type.dtype)")
    let count = type.elementCount ?? 0
    var bytes = [UInt8]()
    bytes.reserveCapacity(count * element.bytes.count)
    for _ in 0..<count { bytes.append(contentsOf: element.bytes) }
    self.init(uncheckedType: type, bytes: bytes)
  }

  /// A rank-0 float32 tensor.
  public static func scalar(_ value: Float) -> TensorData { TensorData([value], shape: []) }
  /// A rank-0 int64 tensor.
  public static func scalar(_ value: Int64) -> TensorData { TensorData([value], shape: []) }
  /// A rank-0 bool tensor.
  public static func scalar(_ value: Bool) -> TensorData { TensorData([value], shape: []) }

  /// Integer conversion from a double that never traps: truncation toward zero, saturating at the
  /// Int64 range, NaN to 0.
  public static func saturatingInt64(_ value: Double) -> Int64 {
    if value.isNaN { return 0 }
    if value >= 9_223_372_036_854_775_807.0 { return .max }
    if value <= -9_223_372_036_854_775_808.0 { return .min }
    return Int64(value.rounded(.towardZero))
  }

  private static func append(double value: Double, as dtype: DType, to bytes: inout [UInt8]) {
    switch dtype {
    case .float32:
      withUnsafeBytes(of: Float(value).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    case .float64:
      withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    case .float16:
      withUnsafeBytes(of: FloatConversion.float16Bits(from: Float(value)).littleEndian) {
        bytes.append(contentsOf: $0)
      }
    case .bfloat16:
      withUnsafeBytes(of: FloatConversion.bfloat16Bits(from: Float(value)).littleEndian) {
        bytes.append(contentsOf: $0)
      }
    case .bool:
      bytes.append(value != 0 ? 1 : 0)
    case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
      bytes.append(FloatConversion.miniFloatBits(from: Float(value), as: dtype))
    case .uint64:
      let unsigned: UInt64 =
        value.isNaN || value <= 0 ? 0 : value >= 18_446_744_073_709_551_615.0 ? .max : UInt64(value)
      append(integer: Int64(bitPattern: unsigned), as: dtype, to: &bytes)
    default:
      append(integer: saturatingInt64(value), as: dtype, to: &bytes)
    }
  }

  private static func append(integer value: Int64, as dtype: DType, to bytes: inout [UInt8]) {
    let bits = dtype.wrappedStorageBits(value)
    switch dtype {
    case .bool:
      bytes.append(value != 0 ? 1 : 0)
    default:
      for i in 0..<dtype.byteSize { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
    }
  }
}

// MARK: - Reading elements

extension TensorData {
  private func load<T: FixedWidthInteger>(_: T.Type) -> [T] {
    let size = MemoryLayout<T>.size
    let count = bytes.count / size
    return bytes.withUnsafeBytes { raw in
      [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        for index in 0..<count { buffer[index] = T(littleEndian: raw.loadUnaligned(fromByteOffset: index * size, as: T.self)) }
        initialized = count
      }
    }
  }

  /// Every element as a Double (exact for all types except 64-bit integers beyond 2^53).
  public func doubles() -> [Double] {
    switch type.dtype {
    case .float32: load(UInt32.self).map { Double(Float(bitPattern: $0)) }
    case .float64: load(UInt64.self).map { Double(bitPattern: $0) }
    case .float16: load(UInt16.self).map { Double(FloatConversion.float(fromFloat16Bits: $0)) }
    case .bfloat16: load(UInt16.self).map { Double(FloatConversion.float(fromBFloat16Bits: $0)) }
    case .int8: load(Int8.self).map { Double($0) }
    case .int16: load(Int16.self).map { Double($0) }
    case .int32: load(Int32.self).map { Double($0) }
    case .int64: load(Int64.self).map { Double($0) }
    case .uint8: bytes.map { Double($0) }
    case .uint16: load(UInt16.self).map { Double($0) }
    case .uint32: load(UInt32.self).map { Double($0) }
    case .uint64: load(UInt64.self).map { Double($0) }
    case .bool: bytes.map { $0 != 0 ? 1 : 0 }
    case .int4, .uint4, .int2, .uint2: bytes.map { Double(type.dtype.integerValue(ofStorageBits: UInt64($0))) }
    case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
      bytes.map { Double(FloatConversion.float(fromMiniFloatBits: $0, as: type.dtype)) }
    }
  }

  /// Every element as a Float.
  public func floats() -> [Float] {
    switch type.dtype {
    case .float32:
      #if _endian(little)
        return [Float](unsafeUninitializedCapacity: bytes.count / 4) { buffer, initialized in
          bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<(buffer.count * 4)])) }
          initialized = buffer.count
        }
      #else
        return load(UInt32.self).map { Float(bitPattern: $0) }
      #endif
    case .float16: return load(UInt16.self).map(FloatConversion.float(fromFloat16Bits:))
    case .bfloat16: return load(UInt16.self).map(FloatConversion.float(fromBFloat16Bits:))
    default: return doubles().map { Float($0) }
    }
  }

  /// Every element as an Int64: integers exactly (uint64 as its bit pattern), floats truncated
  /// toward zero and saturated, bool as 0 or 1.
  public func int64s() -> [Int64] {
    switch type.dtype {
    case .int8: load(Int8.self).map { Int64($0) }
    case .int16: load(Int16.self).map { Int64($0) }
    case .int32: load(Int32.self).map { Int64($0) }
    case .int64: load(Int64.self)
    case .uint8: bytes.map { Int64($0) }
    case .uint16: load(UInt16.self).map { Int64($0) }
    case .uint32: load(UInt32.self).map { Int64($0) }
    case .uint64: load(UInt64.self).map { Int64(bitPattern: $0) }
    case .bool: bytes.map { $0 != 0 ? 1 : 0 }
    case .int4, .uint4, .int2, .uint2: bytes.map { type.dtype.integerValue(ofStorageBits: UInt64($0)) }
    default: doubles().map(Self.saturatingInt64)
    }
  }

  /// Every element as a Bool (`!= 0`).
  public func bools() -> [Bool] {
    switch type.dtype {
    case .bool, .uint8, .int8: bytes.map { $0 != 0 }
    case .float16, .bfloat16, .float32, .float64: doubles().map { $0 != 0 }
    case let dtype where dtype.isMiniFloat: doubles().map { $0 != 0 }
    default: int64s().map { $0 != 0 }
    }
  }

  /// The raw 16-bit patterns of a float16/bfloat16 (or any 2-byte) tensor; nil for other sizes.
  public func uint16Bits() -> [UInt16]? {
    type.dtype.byteSize == 2 ? load(UInt16.self) : nil
  }

  /// The only element as a Double; nil unless there is exactly one element.
  public var scalarDouble: Double? { elementCount == 1 ? doubles().first : nil }
  /// The only element as an Int64; nil unless there is exactly one element.
  public var scalarInt64: Int64? { elementCount == 1 ? int64s().first : nil }
  /// The only element as a Bool; nil unless there is exactly one element.
  public var scalarBool: Bool? { elementCount == 1 ? bools().first : nil }

  /// Converts to `dtype` element by element, with ONNX Cast semantics for finite values
  /// (float to integer truncates toward zero; integers wrap; anything to bool is `!= 0`).
  public func converted(to dtype: DType) -> TensorData {
    if dtype == type.dtype { return self }
    let target = TensorType(dtype, type.shape)
    if type.dtype.isFloat || dtype.isFloat {
      return TensorData(type: target, doubles: doubles())
    }
    return TensorData(type: target, int64s: int64s())
  }

  /// ONNX Cast to `dtype`: `converted(to:)`, except that the 8-bit float targets other than e8m0
  /// first clamp to their largest finite value when `saturate`, and e8m0 rounds by `roundMode`.
  public func cast(to dtype: DType, saturate: Bool, roundMode: E8M0RoundMode) -> TensorData {
    if dtype == type.dtype { return self }
    let target = TensorType(dtype, type.shape)
    if dtype == .float8e8m0 {
      let bits = floats().map { FloatConversion.float8e8m0Bits(from: $0, saturate: saturate, roundMode: roundMode) }
      return TensorData(uncheckedType: target, bytes: bits)
    }
    if saturate, dtype.bitWidth == 8, let format = MiniFloat(dtype) {
      return TensorData(uncheckedType: target, bytes: floats().map { UInt8(format.bits(of: format.saturated($0))) })
    }
    return converted(to: dtype)
  }

  /// A short, stable content hash (FNV-1a 64 over dtype, shape and bytes), as 16 hex digits.
  public var contentHash: String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ byte: UInt8) {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    for byte in type.dtype.rawValue.utf8 { mix(byte) }
    for dim in type.shape {
      withUnsafeBytes(of: Int64(dim).littleEndian) { for byte in $0 { mix(byte) } }
    }
    for byte in bytes { mix(byte) }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
  }
}
