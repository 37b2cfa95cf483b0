/// Element types of tensors. Raw values are the names used by the printer and by Codable.
///
/// The low-precision types (8-bit and 4-bit floats, 4-bit and 2-bit integers) are stored by Kiln
/// one element per byte, the element's bits in the low bits of the byte and the rest zero (the
/// layout of NumPy's `ml_dtypes`). ONNX packs 4-bit and 2-bit elements two or four to a byte,
/// low bits first; that packing exists only in serialized tensors (TensorProto, .pb files) and is
/// undone when they are read. One byte per element keeps every kernel store a whole byte, so no
/// two GPU invocations ever write the same byte.
public enum DType: String, Sendable, CaseIterable, Codable {
  case float32, float16, bfloat16, float64
  case int8, int16, int32, int64
  case uint8, uint16, uint32, uint64
  case bool
  /// 8-bit floats (ONNX FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT8E8M0).
  case float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz, float8e8m0
  /// The 4-bit float E2M1 (no infinities, no NaN).
  case float4e2m1
  /// 4-bit and 2-bit integers.
  case int4, uint4, int2, uint2

  /// Bytes per element in Kiln's buffers and `TensorData` (bool is one byte, as in ONNX; 4-bit
  /// and 2-bit types take a whole byte each, see the type's documentation).
  public var byteSize: Int {
    switch self {
    case .int8, .uint8, .bool: 1
    case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: 1
    case .int4, .uint4, .int2, .uint2: 1
    case .float16, .bfloat16, .int16, .uint16: 2
    case .float32, .int32, .uint32: 4
    case .float64, .int64, .uint64: 8
    }
  }

  /// Bits of one element's value: `byteSize * 8` except for the 4-bit and 2-bit types.
  public var bitWidth: Int {
    switch self {
    case .float4e2m1, .int4, .uint4: 4
    case .int2, .uint2: 2
    default: byteSize * 8
    }
  }

  /// The formats ONNX packs several to a byte (4-bit and 2-bit).
  public var isSubByte: Bool { bitWidth < 8 }

  /// The 8-bit and 4-bit float formats, which kernels compute in float32.
  public var isMiniFloat: Bool {
    switch self {
    case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: true
    default: false
    }
  }

  public var isFloat: Bool {
    switch self {
    case .float32, .float16, .bfloat16, .float64: true
    default: isMiniFloat
    }
  }

  /// Signed and unsigned integers; bool is neither integer nor float.
  public var isInteger: Bool {
    switch self {
    case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: true
    case .int4, .uint4, .int2, .uint2: true
    default: false
    }
  }

  /// Floats and signed integers.
  public var isSigned: Bool {
    switch self {
    case .int8, .int16, .int32, .int64, .int4, .int2: true
    default: isFloat
    }
  }

  /// Short spelling used by the textual IR: `f32`, `bf16`, `i64`, `u8`, `bool`.
  public var shortName: String {
    switch self {
    case .float32: "f32"
    case .float16: "f16"
    case .bfloat16: "bf16"
    case .float64: "f64"
    case .int8: "i8"
    case .int16: "i16"
    case .int32: "i32"
    case .int64: "i64"
    case .uint8: "u8"
    case .uint16: "u16"
    case .uint32: "u32"
    case .uint64: "u64"
    case .bool: "bool"
    case .float8e4m3fn: "f8e4m3fn"
    case .float8e4m3fnuz: "f8e4m3fnuz"
    case .float8e5m2: "f8e5m2"
    case .float8e5m2fnuz: "f8e5m2fnuz"
    case .float8e8m0: "f8e8m0"
    case .float4e2m1: "f4e2m1"
    case .int4: "i4"
    case .uint4: "u4"
    case .int2: "i2"
    case .uint2: "u2"
    }
  }

  /// Parses `shortName`.
  public init?(shortName: String) {
    guard let match = DType.allCases.first(where: { $0.shortName == shortName }) else { return nil }
    self = match
  }

  /// The ONNX `TensorProto.DataType` number.
  public var onnxCode: Int32 {
    switch self {
    case .float32: 1
    case .uint8: 2
    case .int8: 3
    case .uint16: 4
    case .int16: 5
    case .int32: 6
    case .int64: 7
    case .bool: 9
    case .float16: 10
    case .float64: 11
    case .uint32: 12
    case .uint64: 13
    case .bfloat16: 16
    case .float8e4m3fn: 17
    case .float8e4m3fnuz: 18
    case .float8e5m2: 19
    case .float8e5m2fnuz: 20
    case .uint4: 21
    case .int4: 22
    case .float4e2m1: 23
    case .float8e8m0: 24
    case .uint2: 25
    case .int2: 26
    }
  }

  /// Maps an ONNX `TensorProto.DataType` number; nil for types Kiln does not support
  /// (string, complex, 6-bit floats, undefined).
  public init?(onnxCode: Int32) {
    switch onnxCode {
    case 1: self = .float32
    case 2: self = .uint8
    case 3: self = .int8
    case 4: self = .uint16
    case 5: self = .int16
    case 6: self = .int32
    case 7: self = .int64
    case 9: self = .bool
    case 10: self = .float16
    case 11: self = .float64
    case 12: self = .uint32
    case 13: self = .uint64
    case 16: self = .bfloat16
    case 17: self = .float8e4m3fn
    case 18: self = .float8e4m3fnuz
    case 19: self = .float8e5m2
    case 20: self = .float8e5m2fnuz
    case 21: self = .uint4
    case 22: self = .int4
    case 23: self = .float4e2m1
    case 24: self = .float8e8m0
    case 25: self = .uint2
    case 26: self = .int2
    default: return nil
    }
  }

  /// Bits of an integer type (bool counts as 8); nil for floats.
  public var integerBitWidth: Int? {
    isInteger || self == .bool ? bitWidth : nil
  }
}
