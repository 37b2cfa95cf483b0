/// Element types of tensors. Raw values are the names used by the printer and by Codable.
public enum DType: String, Sendable, CaseIterable, Codable {
  case float32, float16, bfloat16, float64
  case int8, int16, int32, int64
  case uint8, uint16, uint32, uint64
  case bool

  /// Bytes per element (bool is one byte, as in ONNX).
  public var byteSize: Int {
    switch self {
    case .int8, .uint8, .bool: 1
    case .float16, .bfloat16, .int16, .uint16: 2
    case .float32, .int32, .uint32: 4
    case .float64, .int64, .uint64: 8
    }
  }

  public var isFloat: Bool {
    switch self {
    case .float32, .float16, .bfloat16, .float64: true
    default: false
    }
  }

  /// Signed and unsigned integers; bool is neither integer nor float.
  public var isInteger: Bool {
    switch self {
    case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: true
    default: false
    }
  }

  /// Floats and signed integers.
  public var isSigned: Bool {
    switch self {
    case .int8, .int16, .int32, .int64: true
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
    }
  }

  /// Maps an ONNX `TensorProto.DataType` number; nil for types Kiln does not support
  /// (string, complex, float8, 4-bit and 2-bit types, undefined).
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
    default: return nil
    }
  }

  /// Bits of an integer type (bool counts as 8); nil for floats.
  public var integerBitWidth: Int? {
    isInteger || self == .bool ? byteSize * 8 : nil
  }
}
