import Foundation
import KilnIR

/// Turns `TensorProto`s into `TensorData`, enforcing the memory budget.
struct TensorDecoder {
  var externalData: ExternalDataReader
  /// Bytes still available under `ImportOptions.memoryBudget`.
  var remainingBudget: Int
  let budget: Int

  init(externalData: ExternalDataReader, budget: Int) {
    self.externalData = externalData
    self.remainingBudget = budget
    self.budget = budget
  }

  /// Charges `bytes` against the budget, throwing when it is exhausted.
  mutating func charge(_ bytes: Int, for what: String) throws {
    guard bytes <= remainingBudget else {
      throw ONNXImportError.budget(
        "\(what) needs \(bytes) bytes, more than the \(remainingBudget) bytes left of the \(budget)-byte memory budget")
    }
    remainingBudget -= bytes
  }

  /// Decodes `proto`; `what` names it in messages (e.g. "initializer 'conv1.weight'").
  mutating func decode(_ proto: Onnx_TensorProto, what: String) throws -> TensorData {
    guard let dtype = DType(onnxCode: proto.dataType) else {
      throw ONNXImportError(
        .unsupportedType, "\(what) has element type \(Self.typeName(proto.dataType)), which Kiln does not support")
    }
    var shape: [Int] = []
    for dim in proto.dims {
      guard dim >= 0 else {
        throw ONNXImportError(.invalidTensor, "\(what) has negative dimension \(dim) in \(proto.dims)")
      }
      shape.append(Int(dim))
    }
    let type = TensorType(dtype, shape)
    guard let count = type.elementCount, let byteCount = type.byteCount else {
      throw ONNXImportError.budget("\(what) has shape \(proto.dims), whose size overflows")
    }
    guard !proto.hasSegment else {
      throw ONNXImportError(.unsupportedType, "\(what) is a segment of a larger tensor, which Kiln does not support")
    }
    try charge(byteCount, for: what)
    // 4-bit and 2-bit elements are packed in serialized tensors, unpacked in TensorData.
    let serializedCount = SubBytePacking.packedCount(count, bits: dtype.bitWidth) ?? byteCount

    if proto.dataLocation == .external {
      var location: String?
      var offset = 0
      var length: Int?
      for entry in proto.externalData {
        switch entry.key {
        case "location": location = entry.value
        case "offset":
          guard let value = Int(entry.value) else {
            throw ONNXImportError(.externalData, "\(what): external data offset '\(entry.value)' is not an integer")
          }
          offset = value
        case "length":
          guard let value = Int(entry.value) else {
            throw ONNXImportError(.externalData, "\(what): external data length '\(entry.value)' is not an integer")
          }
          length = value
        default: break  // "checksum" and others are informative.
        }
      }
      guard let location else {
        throw ONNXImportError(.externalData, "\(what) is stored externally but has no 'location'")
      }
      let bytes = try externalData.read(
        location: location, offset: offset, length: length, expectedCount: serializedCount, tensor: proto.name)
      return try TensorData(type: type, bytes: SubBytePacking.unpack(bytes, count: count, bits: dtype.bitWidth))
    }

    if proto.hasRawData {
      guard proto.rawData.count == serializedCount else {
        throw ONNXImportError(
          .invalidTensor,
          "\(what) of type \(type) needs \(serializedCount) bytes of raw_data, has \(proto.rawData.count)")
      }
      return try TensorData(
        type: type, bytes: SubBytePacking.unpack([UInt8](proto.rawData), count: count, bits: dtype.bitWidth))
    }

    func checkCount(_ actual: Int, _ field: String) throws {
      guard actual == count else {
        throw ONNXImportError(.invalidTensor, "\(what) of type \(type) needs \(count) values, \(field) has \(actual)")
      }
    }
    switch dtype {
    case .float32:
      try checkCount(proto.floatData.count, "float_data")
      return TensorData(proto.floatData, shape: shape)
    case .float64:
      try checkCount(proto.doubleData.count, "double_data")
      return TensorData(proto.doubleData, shape: shape)
    case .int64:
      try checkCount(proto.int64Data.count, "int64_data")
      return TensorData(proto.int64Data, shape: shape)
    case .uint32, .uint64:
      try checkCount(proto.uint64Data.count, "uint64_data")
      return TensorData(type: type, int64s: proto.uint64Data.map { Int64(bitPattern: $0) })
    case .int4, .uint4, .int2, .uint2, .float4e2m1:
      // One packed byte per int32_data entry.
      guard proto.int32Data.count == serializedCount else {
        throw ONNXImportError(
          .invalidTensor,
          "\(what) of type \(type) needs \(serializedCount) packed bytes, int32_data has \(proto.int32Data.count)")
      }
      let packed = proto.int32Data.map { UInt8(truncatingIfNeeded: $0) }
      return try TensorData(type: type, bytes: SubBytePacking.unpack(packed, count: count, bits: dtype.bitWidth))
    case .int32, .int16, .int8, .uint16, .uint8, .bool, .float16, .bfloat16, .float8e4m3fn, .float8e4m3fnuz,
      .float8e5m2, .float8e5m2fnuz, .float8e8m0:
      try checkCount(proto.int32Data.count, "int32_data")
      // float16/bfloat16 store their bit patterns; narrower integers their values.
      var bytes = [UInt8]()
      bytes.reserveCapacity(byteCount)
      for value in proto.int32Data {
        let bits = UInt32(bitPattern: value)
        if dtype == .bool {
          bytes.append(value != 0 ? 1 : 0)
        } else {
          for i in 0..<dtype.byteSize { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt32(i)))) }
        }
      }
      return try TensorData(type: type, bytes: bytes)
    }
  }

  static func typeName(_ code: Int32) -> String {
    if let known = Onnx_TensorProto.DataType(rawValue: Int(code)) { return "\(known) (\(code))".uppercased() }
    return "\(code)"
  }
}
