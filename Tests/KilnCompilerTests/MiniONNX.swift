import Foundation
import KilnIR

/// Just enough protobuf decoding to read the official ONNX node tests (model.onnx with one
/// node, input_N.pb / output_N.pb tensors) without depending on KilnONNX. Test-only.
enum MiniONNX {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  /// One decoded field: number, wire type, and its varint value or bytes.
  struct Field {
    var number: Int
    var varint: UInt64 = 0
    var bytes: ArraySlice<UInt8> = []
    var wireType: Int
  }

  static func fields(_ data: ArraySlice<UInt8>) throws -> [Field] {
    var result: [Field] = []
    var i = data.startIndex
    func varint() throws -> UInt64 {
      var value: UInt64 = 0
      var shift: UInt64 = 0
      while true {
        guard i < data.endIndex else { throw Failure(description: "truncated varint") }
        let byte = data[i]
        i += 1
        value |= UInt64(byte & 0x7f) << shift
        if byte & 0x80 == 0 { return value }
        shift += 7
        if shift > 63 { throw Failure(description: "varint too long") }
      }
    }
    while i < data.endIndex {
      let key = try varint()
      var field = Field(number: Int(key >> 3), wireType: Int(key & 7))
      switch field.wireType {
      case 0: field.varint = try varint()
      case 1:
        guard i + 8 <= data.endIndex else { throw Failure(description: "truncated fixed64") }
        field.bytes = data[i..<(i + 8)]
        i += 8
      case 2:
        let length = Int(try varint())
        guard i + length <= data.endIndex else { throw Failure(description: "truncated bytes") }
        field.bytes = data[i..<(i + length)]
        i += length
      case 5:
        guard i + 4 <= data.endIndex else { throw Failure(description: "truncated fixed32") }
        field.bytes = data[i..<(i + 4)]
        i += 4
      default: throw Failure(description: "wire type \(field.wireType)")
      }
      result.append(field)
    }
    return result
  }

  static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

  static func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var value: UInt64 = 0
    for (shift, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
    return value
  }

  /// Repeated varints, packed or not.
  static func varints(_ fields: [Field], _ number: Int) throws -> [UInt64] {
    var result: [UInt64] = []
    for field in fields where field.number == number {
      if field.wireType == 0 {
        result.append(field.varint)
      } else {
        var rest = field.bytes
        while !rest.isEmpty {
          var value: UInt64 = 0
          var shift: UInt64 = 0
          while let byte = rest.first {
            rest = rest.dropFirst()
            value |= UInt64(byte & 0x7f) << shift
            shift += 7
            if byte & 0x80 == 0 { break }
          }
          result.append(value)
        }
      }
    }
    return result
  }

  /// Repeated fixed-width values (4 or 8 bytes), packed or not.
  static func fixed(_ fields: [Field], _ number: Int, width: Int) -> [UInt64] {
    var result: [UInt64] = []
    for field in fields where field.number == number {
      var i = field.bytes.startIndex
      while i + width <= field.bytes.endIndex {
        result.append(littleEndian(field.bytes[i..<(i + width)]))
        i += width
      }
    }
    return result
  }

  // MARK: Tensors

  /// A TensorProto; nil data type codes Kiln does not support throw.
  static func tensor(_ bytes: ArraySlice<UInt8>) throws -> (name: String, data: TensorData) {
    let f = try fields(bytes)
    let dims = try varints(f, 1).map { Int(Int64(bitPattern: $0)) }
    let code = Int32(try varints(f, 2).first ?? 0)
    guard let dtype = DType(onnxCode: code) else { throw Failure(description: "unsupported tensor type \(code)") }
    let name = f.first { $0.number == 8 }.map { string($0.bytes) } ?? ""
    let type = TensorType(dtype, dims)
    guard dims.allSatisfy({ $0 >= 0 }), let count = type.elementCount else {
      throw Failure(description: "bad dims \(dims)")
    }
    func checked<T>(_ values: [T]) throws -> [T] {
      guard values.count == count else { throw Failure(description: "\(values.count) values for \(type)") }
      return values
    }
    if let raw = f.first(where: { $0.number == 9 }) {
      let bytes = Array(raw.bytes)
      return (
        name,
        try TensorData(
          type: type, bytes: dtype.isSubByte ? SubBytePacking.unpack(bytes, count: count, bits: dtype.bitWidth) : bytes)
      )
    }
    if dtype.isSubByte || dtype.isMiniFloat {
      // Bit patterns in int32_data, one (packed, for sub-byte types) byte per entry.
      let bytes = try varints(f, 5).map { UInt8(truncatingIfNeeded: $0) }
      let unpacked = dtype.isSubByte ? SubBytePacking.unpack(bytes, count: count, bits: dtype.bitWidth) : bytes
      return (name, try TensorData(type: type, bytes: try checked(unpacked)))
    }
    switch dtype {
    case .float32:
      let values = try checked(fixed(f, 4, width: 4).map { Float(bitPattern: UInt32($0)) })
      return (name, TensorData(type: type, doubles: values.map(Double.init)))
    case .float64:
      return (name, TensorData(type: type, doubles: try checked(fixed(f, 10, width: 8).map { Double(bitPattern: $0) })))
    case .int64:
      return (name, TensorData(type: type, int64s: try checked(varints(f, 7).map { Int64(bitPattern: $0) })))
    case .uint32, .uint64:
      return (name, TensorData(type: type, int64s: try checked(varints(f, 11).map { Int64(bitPattern: $0) })))
    case .float16, .bfloat16:
      let bits = try checked(varints(f, 5).map { UInt16(truncatingIfNeeded: $0) })
      var raw: [UInt8] = []
      for b in bits { raw += [UInt8(b & 0xff), UInt8(b >> 8)] }
      return (name, try TensorData(type: type, bytes: raw))
    default:
      let values = try checked(varints(f, 5).map { Int64(Int32(truncatingIfNeeded: $0)) })
      return (name, TensorData(type: type, int64s: values))
    }
  }

  static func tensor(file url: URL) throws -> TensorData {
    try tensor(ArraySlice(try Data(contentsOf: url))).data
  }

  // MARK: Models

  struct Model {
    var opset: Int
    var nodes: [Node]
    var nodeIO: [(inputs: [String], outputs: [String])]
    var inputs: [String]
    var outputs: [String]
    var initializers: [String: TensorData]
  }

  static func model(file url: URL) throws -> Model {
    let top = try fields(ArraySlice(try Data(contentsOf: url)))
    var opset = 0
    for field in top where field.number == 8 {
      let f = try fields(field.bytes)
      let domain = f.first { $0.number == 1 }.map { string($0.bytes) } ?? ""
      if domain == "" || domain == "ai.onnx" { opset = Int(try varints(f, 2).first ?? 0) }
    }
    guard let graphField = top.first(where: { $0.number == 7 }) else { throw Failure(description: "no graph") }
    let graph = try fields(graphField.bytes)
    var model = Model(opset: opset, nodes: [], nodeIO: [], inputs: [], outputs: [], initializers: [:])
    for field in graph {
      switch field.number {
      case 1:
        let f = try fields(field.bytes)
        let inputs = f.filter { $0.number == 1 }.map { string($0.bytes) }
        let outputs = f.filter { $0.number == 2 }.map { string($0.bytes) }
        let name = f.first { $0.number == 3 }.map { string($0.bytes) } ?? ""
        let op = f.first { $0.number == 4 }.map { string($0.bytes) } ?? ""
        let domain = f.first { $0.number == 7 }.map { string($0.bytes) } ?? ""
        var attributes: [String: AttributeValue] = [:]
        for a in f where a.number == 5 {
          let (key, value) = try attribute(a.bytes)
          attributes[key] = value
        }
        model.nodes.append(
          Node(
            name: name, op: op, domain: domain == "ai.onnx" ? "" : domain, version: opset, inputs: [], outputs: [],
            attributes: attributes))
        model.nodeIO.append((inputs, outputs))
      case 5:
        let (name, data) = try tensor(field.bytes)
        model.initializers[name] = data
      case 11, 12:
        let f = try fields(field.bytes)
        let name = f.first { $0.number == 1 }.map { string($0.bytes) } ?? ""
        if field.number == 11 { model.inputs.append(name) } else { model.outputs.append(name) }
      default: break
      }
    }
    return model
  }

  static func attribute(_ bytes: ArraySlice<UInt8>) throws -> (String, AttributeValue) {
    let f = try fields(bytes)
    let name = f.first { $0.number == 1 }.map { string($0.bytes) } ?? ""
    let type = Int(try varints(f, 20).first ?? 0)
    switch type {
    case 1: return (name, .float(Float(bitPattern: UInt32(fixed(f, 2, width: 4).first ?? 0))))
    case 2: return (name, .int(Int64(bitPattern: try varints(f, 3).first ?? 0)))
    case 3: return (name, .string(f.first { $0.number == 4 }.map { string($0.bytes) } ?? ""))
    case 4:
      guard let t = f.first(where: { $0.number == 5 }) else {
        throw Failure(description: "tensor attribute without tensor")
      }
      return (name, .tensor(try tensor(t.bytes).data))
    case 6: return (name, .floats(fixed(f, 7, width: 4).map { Float(bitPattern: UInt32($0)) }))
    case 7: return (name, .ints(try varints(f, 8).map { Int64(bitPattern: $0) }))
    case 8: return (name, .strings(f.filter { $0.number == 9 }.map { string($0.bytes) }))
    default: throw Failure(description: "attribute '\(name)' has unsupported type \(type)")
    }
  }
}
