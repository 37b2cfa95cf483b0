import Foundation
import Testing

@testable import KilnRuntime

/// TensorProto files written by onnx's Python helpers (tools/make-fixtures.py, part `pb`).
@Suite struct ONNXTensorFileTests {
  static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/pb")

  func read(_ name: String) throws -> (name: String, tensor: HostTensor) {
    try ONNXTensorFile.read(contentsOf: Self.folder.appendingPathComponent(name))
  }

  @Test func rawFloat32() throws {
    let (name, tensor) = try read("f32_raw_2x3.pb")
    #expect(name == "x")
    #expect(tensor == HostTensor(dtype: "float32", shape: [2, 3], bytes: floatBytes([-1, -0.5, 0, 0.5, 1, 1.5])))
  }

  @Test func typedFields() throws {
    #expect(
      try read("i64_typed_4.pb").tensor
        == HostTensor(dtype: "int64", shape: [4], bytes: littleEndianBytes([1, -2, 3, 1 << 40] as [Int64])))
    #expect(
      try read("f32_typed_2.pb").tensor == HostTensor(dtype: "float32", shape: [2], bytes: floatBytes([1.5, -0.25])))
    #expect(
      try read("f64_typed_3.pb").tensor
        == HostTensor(dtype: "float64", shape: [3], bytes: doubleBytes([1.5, -0.25, 1e300])))
    #expect(try read("bool_typed_3.pb").tensor == HostTensor(dtype: "bool", shape: [3], bytes: [1, 0, 1]))
    #expect(
      try read("f16_typed_2.pb").tensor
        == HostTensor(dtype: "float16", shape: [2], bytes: littleEndianBytes([0x3C00, 0xC000] as [UInt16])))
    #expect(try read("i8_typed_3.pb").tensor == HostTensor(dtype: "int8", shape: [3], bytes: [0xFF, 0x7F, 0x80]))
    #expect(
      try read("u32_typed_2.pb").tensor
        == HostTensor(dtype: "uint32", shape: [2], bytes: littleEndianBytes([4_000_000_000, 7] as [UInt32])))
  }

  @Test func stringsAreUnsupported() {
    let error = #expect(throws: RuntimeError.self) { try read("string_1.pb") }
    #expect(error?.code == .unsupported)
    #expect(error?.message.contains("string_1.pb") == true)
  }

  @Test func encodeMatchesOnnxAndRoundTrips() throws {
    let tensor = HostTensor(dtype: "float32", shape: [2, 3], bytes: floatBytes([-1, -0.5, 0, 0.5, 1, 1.5]))
    let bytes = try ONNXTensorFile.encode(tensor, name: "x")
    #expect(bytes == [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent("f32_raw_2x3.pb"))))
    for dtype in ["float16", "bfloat16", "int64", "uint64", "bool", "uint8", "int32"] {
      let size = HostTensor.elementSize(dtype) ?? 0
      let value = HostTensor(dtype: dtype, shape: [3, 1], bytes: (0..<(3 * size)).map { UInt8($0 % 2) })
      let decoded = try ONNXTensorFile.decode(try ONNXTensorFile.encode(value, name: "t_\(dtype)"))
      #expect(decoded.name == "t_\(dtype)")
      #expect(decoded.tensor == value)
    }
    let scalar = HostTensor(dtype: "int64", shape: [], bytes: littleEndianBytes([-5] as [Int64]))
    #expect(try ONNXTensorFile.decode(try ONNXTensorFile.encode(scalar, name: "")).tensor == scalar)
  }

  /// From tools/fuzz (Tests/FuzzCorpus/pb/crash-zero-dim-after-huge-dims.pb): an empty bfloat16
  /// tensor whose other dimensions times the element size pass Int.max. It decodes, and element
  /// count first, then bytes, stays in range (the fuzz harness trapped multiplying bytes first).
  @Test func emptyTensorWithHugeDimensions() throws {
    let dims = [Int](repeating: 16, count: 13) + [38, 37, 0]
    var bytes: [UInt8] = [0x10, 0x10, 0x0A, UInt8(dims.count)] + dims.map { UInt8($0) }
    let (_, tensor) = try ONNXTensorFile.decode(bytes)
    #expect(tensor.shape == dims && tensor.bytes.isEmpty)
    #expect(tensor.elementCount == 0)
    bytes = try ONNXTensorFile.encode(tensor, name: "")
    #expect(try ONNXTensorFile.decode(bytes).tensor == tensor)
  }

  @Test func malformedMessagesAreRejected() {
    let cases: [([UInt8], String)] = [
      ([], "no 'data_type'"),
      ([0x08, 0x02], "no 'data_type'"),
      ([0x08, 0x02, 0x10, 0x01, 0x4A, 0x04, 0, 0, 0, 0], "needs 8 bytes"),
      ([0x10, 0x01, 0x4A, 0x05, 0, 0], "runs past the end"),
      ([0x08, 0xFF], "truncated varint"),
      ([0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], "longer than 64 bits"),
      ([0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x10, 0x01], "negative dimension"),
      ([0x10, 0x01, 0x22, 0x03, 0, 0, 0], "packed 'float_data' has 3 bytes"),
      ([0x10, 0x07, 0x22, 0x04, 0, 0, 0, 0], "stores its values in int64_data, not float_data"),
      ([0x10, 0x01, 0x22, 0x04, 0, 0, 0, 0, 0x4A, 0x04, 0, 0, 0, 0], "both raw_data and float_data"),
      ([0x10, 0x01, 0x0B], "wire type 3"),
      ([0x10, 0x01, 0x72, 0x00], "wire type 2"),
      ([0x10, 0x01, 0x00], "bad field number 0"),
      (
        [
          0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F,
          0x10, 0x01,
        ], "too many elements"
      ),
    ]
    for (bytes, reason) in cases {
      let error = #expect(throws: RuntimeError.self) { try ONNXTensorFile.decode(bytes) }
      #expect(error?.message.contains(reason) == true, "\(bytes): '\(error?.message ?? "")' should mention '\(reason)'")
    }
    // Types Kiln does not handle: string, complex, float6; external data; segments.
    for bytes: [UInt8] in [
      [0x10, 0x08], [0x10, 0x0E], [0x10, 0x1B], [0x10, 0x01, 0x70, 0x01], [0x10, 0x01, 0x1A, 0x00],
    ] {
      let error = #expect(throws: RuntimeError.self) { try ONNXTensorFile.decode(bytes) }
      #expect(error?.code == .unsupported)
    }
  }

  @Test func mutatedMessagesNeverCrash() throws {
    var generator = SplitMix64(seed: 0x7E57)
    let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".pb") }
      .sorted()
    for name in names {
      let original = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(name)))
      for length in 0..<original.count { _ = try? ONNXTensorFile.decode(Array(original.prefix(length))) }
      for _ in 0..<500 {
        var bytes = original
        for _ in 0..<Int(generator.next() % 3 + 1) where !bytes.isEmpty {
          let index = Int(generator.next() % UInt64(bytes.count))
          if generator.next() % 4 == 0 {
            bytes.remove(at: index)
          } else {
            bytes[index] = UInt8(truncatingIfNeeded: generator.next())
          }
        }
        if let (_, tensor) = try? ONNXTensorFile.decode(bytes) {
          #expect(tensor.bytes.count == tensor.shape.reduce(1, *) * (HostTensor.elementSize(tensor.dtype) ?? 0))
        }
      }
    }
  }
}
