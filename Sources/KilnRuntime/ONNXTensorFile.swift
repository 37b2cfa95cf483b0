// ONNX TensorProto files (`input_0.pb`, `output_0.pb` of the ONNX test data) <-> HostTensor.

import Foundation
import KilnTensor

/// Reads and writes single serialized ONNX `TensorProto` messages, the `.pb` files of ONNX test
/// data sets, as `HostTensor`s.
///
/// The protobuf wire format is decoded by hand (the runtime does not link a protobuf library):
/// only `TensorProto`'s fields are interpreted and every length is bounds-checked, so hostile
/// bytes produce an error, never a crash or an oversized allocation. Values may be in `raw_data`
/// or in the typed field the ONNX spec assigns to the element type (packed or not). Strings,
/// complex and float8 tensors, segments and external data are rejected as unsupported.
///
/// Writing produces `dims`, `data_type`, `name` and `raw_data` (little-endian), in field order,
/// as `onnx.numpy_helper.from_array` does.
public enum ONNXTensorFile {
  /// The highest rank accepted.
  public static let maxRank = 64

  /// Reads the `.pb` file at `url`. Errors name the file.
  public static func read(contentsOf url: URL) throws -> (name: String, tensor: HostTensor) {
    let data: Data
    do {
      data = try Data(contentsOf: url, options: .mappedIfSafe)
    } catch {
      throw RuntimeError(.invalidInput, "cannot read '\(url.path)': \(NPY.describeIOError(error))")
    }
    do {
      return try data.withUnsafeBytes { try decode($0) }
    } catch let error as RuntimeError {
      throw RuntimeError(error.code, "'\(url.path)': \(error.message)")
    }
  }

  /// Decodes a serialized TensorProto.
  public static func decode(_ bytes: [UInt8]) throws -> (name: String, tensor: HostTensor) {
    try bytes.withUnsafeBytes { try decode($0) }
  }

  /// Decodes a serialized TensorProto.
  public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> (name: String, tensor: HostTensor) {
    var reader = WireReader(bytes: bytes)
    var dims: [Int] = []
    var dataType: UInt64?
    var name = ""
    var raw: Range<Int>?
    var floats: [UInt32] = []
    var doubles: [UInt64] = []
    var int32s: [UInt64] = []
    var int64s: [UInt64] = []
    var uint64s: [UInt64] = []
    var stringCount = 0

    while !reader.atEnd {
      let (field, wireType) = try reader.key()
      switch field {
      case 1:
        try reader.repeatedVarints(wireType, field: "dims") { value in
          let dim = Int64(bitPattern: value)
          guard dim >= 0 else { throw invalid("negative dimension \(dim) in 'dims'") }
          guard dims.count < maxRank else { throw invalid("more than \(maxRank) dimensions") }
          dims.append(Int(dim))
        }
      case 2:
        guard wireType == 0 else { throw invalid("'data_type' has wire type \(wireType)") }
        dataType = try reader.varint()
      case 3:
        try reader.skip(wireType)
        throw RuntimeError(.unsupported, "tensor segments are not supported")
      case 4:
        try reader.repeatedFixed32(wireType, field: "float_data") { floats.append($0) }
      case 5:
        try reader.repeatedVarints(wireType, field: "int32_data") { int32s.append($0) }
      case 6:
        try reader.skip(wireType)
        stringCount += 1
      case 7:
        try reader.repeatedVarints(wireType, field: "int64_data") { int64s.append($0) }
      case 8:
        guard wireType == 2 else { throw invalid("'name' has wire type \(wireType)") }
        let range = try reader.lengthDelimited()
        name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
      case 9:
        guard wireType == 2 else { throw invalid("'raw_data' has wire type \(wireType)") }
        raw = try reader.lengthDelimited()
      case 10:
        try reader.repeatedFixed64(wireType, field: "double_data") { doubles.append($0) }
      case 11:
        try reader.repeatedVarints(wireType, field: "uint64_data") { uint64s.append($0) }
      case 13:
        try reader.skip(wireType)
        throw RuntimeError(.unsupported, "tensors with external data are not supported in .pb tensor files")
      case 14:
        guard wireType == 0 else { throw invalid("'data_location' has wire type \(wireType)") }
        if try reader.varint() != 0 {
          throw RuntimeError(.unsupported, "tensors with external data are not supported in .pb tensor files")
        }
      default:
        try reader.skip(wireType)
      }
    }

    guard let dataType else { throw invalid("the tensor has no 'data_type' (is this a TensorProto?)") }
    guard let (dtype, size) = elementType(dataType) else {
      throw RuntimeError(.unsupported, "unsupported TensorProto data_type \(dataType)\(typeHint(dataType))")
    }
    var count = 1
    for dim in dims {
      let (product, overflow) = count.multipliedReportingOverflow(by: dim)
      guard !overflow else { throw invalid("dims \(dims) have too many elements") }
      count = product
    }
    var (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow else { throw invalid("dims \(dims) of \(dtype) are too large") }
    // 4-bit and 2-bit elements are packed (in raw_data, and one byte per int32_data entry).
    let bits = DType(rawValue: dtype)?.bitWidth ?? 8
    if let packed = SubBytePacking.packedCount(count, bits: bits) { byteCount = packed }

    let typedFields = [
      ("float_data", floats.count), ("int32_data", int32s.count), ("int64_data", int64s.count),
      ("double_data", doubles.count), ("uint64_data", uint64s.count), ("string_data", stringCount),
    ].filter { $0.1 > 0 }
    let tensorName = name.isEmpty ? "tensor" : "tensor '\(name)'"

    if let raw {
      guard typedFields.isEmpty else {
        throw invalid("\(tensorName) has both raw_data and \(typedFields[0].0)")
      }
      guard raw.count == byteCount else {
        throw invalid("\(tensorName): \(dtype) of shape \(dims) needs \(byteCount) bytes of raw_data, has \(raw.count)")
      }
      var values = SubBytePacking.unpack(
        [UInt8](UnsafeRawBufferPointer(rebasing: bytes[raw])), count: count, bits: bits)
      if dtype == "bool" { for index in values.indices where values[index] > 1 { values[index] = 1 } }
      return (name, HostTensor(dtype: dtype, shape: dims, bytes: values))
    }

    // Typed fields: which one holds the values depends on the element type.
    let field: String
    let words: [UInt64]
    switch dtype {
    case "float32": (field, words) = ("float_data", floats.map(UInt64.init))
    case "float64": (field, words) = ("double_data", doubles)
    case "int64": (field, words) = ("int64_data", int64s)
    case "uint32", "uint64": (field, words) = ("uint64_data", uint64s)
    default: (field, words) = ("int32_data", int32s)
    }
    if let wrong = typedFields.first(where: { $0.0 != field }) {
      throw invalid("\(tensorName): a \(dtype) tensor stores its values in \(field), not \(wrong.0)")
    }
    let wordCount = bits < 8 ? byteCount : count
    guard words.count == wordCount else {
      throw invalid("\(tensorName): \(dtype) of shape \(dims) needs \(wordCount) values, \(field) has \(words.count)")
    }
    var values = [UInt8]()
    values.reserveCapacity(byteCount)
    for word in words {
      if dtype == "bool" {
        values.append(word != 0 ? 1 : 0)
      } else {
        for byte in 0..<size { values.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(byte)))) }
      }
    }
    values = SubBytePacking.unpack(values, count: count, bits: bits)
    return (name, HostTensor(dtype: dtype, shape: dims, bytes: values))
  }

  /// A serialized TensorProto holding `tensor` in `raw_data`.
  public static func encode(_ tensor: HostTensor, name: String) throws -> [UInt8] {
    guard let code = dataTypeCode(tensor.dtype), let size = HostTensor.elementSize(tensor.dtype) else {
      throw RuntimeError(.unsupported, "cannot write dtype '\(tensor.dtype)' to a TensorProto")
    }
    let count = try HostTensor.checkedElementCount(tensor.shape, what: "cannot write shape")
    let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow, byteCount == tensor.bytes.count else {
      throw RuntimeError(
        .invalidInput,
        "\(tensor.dtype) tensor of shape \(tensor.shape) needs \(count) elements of \(size) bytes, has \(tensor.bytes.count) bytes"
      )
    }
    var output: [UInt8] = []
    output.reserveCapacity(tensor.bytes.count + name.utf8.count + 16 + 11 * tensor.shape.count)
    for dim in tensor.shape {
      output.append(0x08)  // field 1, varint
      appendVarint(UInt64(dim), to: &output)
    }
    output.append(0x10)  // field 2, varint
    appendVarint(code, to: &output)
    if !name.isEmpty {
      output.append(0x42)  // field 8, length-delimited
      appendVarint(UInt64(name.utf8.count), to: &output)
      output += name.utf8
    }
    let raw = SubBytePacking.pack(tensor.bytes, bits: DType(rawValue: tensor.dtype)?.bitWidth ?? 8)
    output.append(0x4A)  // field 9, length-delimited
    appendVarint(UInt64(raw.count), to: &output)
    output += raw
    return output
  }

  // MARK: Types

  static func elementType(_ code: UInt64) -> (String, Int)? {
    switch code {
    case 1: ("float32", 4)
    case 2: ("uint8", 1)
    case 3: ("int8", 1)
    case 4: ("uint16", 2)
    case 5: ("int16", 2)
    case 6: ("int32", 4)
    case 7: ("int64", 8)
    case 9: ("bool", 1)
    case 10: ("float16", 2)
    case 11: ("float64", 8)
    case 12: ("uint32", 4)
    case 13: ("uint64", 8)
    case 16: ("bfloat16", 2)
    default:
      // The low-precision types, one byte per element once read (see `DType`).
      DType(onnxCode: Int32(clamping: code)).flatMap { $0.byteSize == 1 && code >= 17 ? ($0.rawValue, 1) : nil }
    }
  }

  static func dataTypeCode(_ dtype: String) -> UInt64? {
    (1...26).first { elementType(UInt64($0))?.0 == dtype }.map(UInt64.init)
  }

  private static func typeHint(_ code: UInt64) -> String {
    switch code {
    case 0: " (UNDEFINED)"
    case 8: " (STRING)"
    case 14, 15: " (complex)"
    case 27, 28: " (float6)"
    default: ""
    }
  }

  static func invalid(_ message: String) -> RuntimeError {
    RuntimeError(.invalidInput, "invalid TensorProto: \(message)")
  }

  static func appendVarint(_ value: UInt64, to output: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
      output.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    output.append(UInt8(value))
  }

  // MARK: Wire format

  /// Reads protobuf wire-format values from a bounds-checked buffer.
  struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    var end: Int

    init(bytes: UnsafeRawBufferPointer) {
      self.bytes = bytes
      self.end = bytes.count
    }

    var atEnd: Bool { position >= end }

    mutating func varint() throws -> UInt64 {
      var value: UInt64 = 0
      for index in 0..<10 {
        guard position < end else { throw ONNXTensorFile.invalid("truncated varint at byte \(position)") }
        let byte = bytes[position]
        position += 1
        if index == 9 && byte > 1 { throw ONNXTensorFile.invalid("varint longer than 64 bits at byte \(position - 1)") }
        value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
        if byte & 0x80 == 0 { return value }
      }
      throw ONNXTensorFile.invalid("varint longer than 10 bytes at byte \(position)")
    }

    /// A field key: its number and wire type.
    mutating func key() throws -> (Int, Int) {
      let start = position
      let key = try varint()
      let field = key >> 3
      guard field > 0 && field < (1 << 29) else {
        throw ONNXTensorFile.invalid("bad field number \(field) at byte \(start)")
      }
      return (Int(field), Int(key & 7))
    }

    mutating func lengthDelimited() throws -> Range<Int> {
      let start = position
      let length = try varint()
      guard length <= UInt64(end - position) else {
        throw ONNXTensorFile.invalid("length \(length) at byte \(start) runs past the end")
      }
      let range = position..<(position + Int(length))
      position = range.upperBound
      return range
    }

    mutating func fixed(_ width: Int) throws -> UInt64 {
      guard end - position >= width else {
        throw ONNXTensorFile.invalid("truncated fixed\(width * 8) at byte \(position)")
      }
      var value: UInt64 = 0
      for index in 0..<width { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
      position += width
      return value
    }

    mutating func skip(_ wireType: Int) throws {
      switch wireType {
      case 0: _ = try varint()
      case 1: _ = try fixed(8)
      case 2: _ = try lengthDelimited()
      case 5: _ = try fixed(4)
      default: throw ONNXTensorFile.invalid("unsupported wire type \(wireType) at byte \(position)")
      }
    }

    /// A repeated varint field, packed (wire type 2) or not (wire type 0).
    mutating func repeatedVarints(_ wireType: Int, field: String, _ body: (UInt64) throws -> Void) throws {
      switch wireType {
      case 0: try body(varint())
      case 2:
        let range = try lengthDelimited()
        var inner = WireReader(bytes: bytes)
        inner.position = range.lowerBound
        inner.end = range.upperBound
        while !inner.atEnd { try body(inner.varint()) }
      default: throw ONNXTensorFile.invalid("'\(field)' has wire type \(wireType)")
      }
    }

    mutating func repeatedFixed32(_ wireType: Int, field: String, _ body: (UInt32) throws -> Void) throws {
      switch wireType {
      case 5: try body(UInt32(truncatingIfNeeded: fixed(4)))
      case 2:
        let range = try lengthDelimited()
        guard range.count % 4 == 0 else { throw ONNXTensorFile.invalid("packed '\(field)' has \(range.count) bytes") }
        var inner = WireReader(bytes: bytes)
        inner.position = range.lowerBound
        inner.end = range.upperBound
        while !inner.atEnd { try body(UInt32(truncatingIfNeeded: inner.fixed(4))) }
      default: throw ONNXTensorFile.invalid("'\(field)' has wire type \(wireType)")
      }
    }

    mutating func repeatedFixed64(_ wireType: Int, field: String, _ body: (UInt64) throws -> Void) throws {
      switch wireType {
      case 1: try body(fixed(8))
      case 2:
        let range = try lengthDelimited()
        guard range.count % 8 == 0 else { throw ONNXTensorFile.invalid("packed '\(field)' has \(range.count) bytes") }
        var inner = WireReader(bytes: bytes)
        inner.position = range.lowerBound
        inner.end = range.upperBound
        while !inner.atEnd { try body(inner.fixed(8)) }
      default: throw ONNXTensorFile.invalid("'\(field)' has wire type \(wireType)")
      }
    }
  }
}
