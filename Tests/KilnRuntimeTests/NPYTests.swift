import Foundation
import Testing

@testable import KilnRuntime

/// Files written by numpy (tools/make-fixtures.py, part `npy`) live in Tests/Fixtures/npy.
enum NPYFixtures {
  static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/npy")

  static func bytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
  }
}

func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
  values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

func floatBytes(_ values: [Float]) -> [UInt8] { littleEndianBytes(values.map(\.bitPattern)) }
func doubleBytes(_ values: [Double]) -> [UInt8] { littleEndianBytes(values.map(\.bitPattern)) }

/// A `.npy` file with `header` as its dictionary (padded as numpy does) and `data`.
func npyFile(_ header: String, data: [UInt8] = [], version: UInt8 = 1) -> [UInt8] {
  let lengthBytes = version == 1 ? 2 : 4
  var text = Array(header.utf8)
  let padding = 64 - ((8 + lengthBytes + text.count + 1) % 64)
  text += [UInt8](repeating: 0x20, count: padding) + [0x0A]
  var file: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0]
  for index in 0..<lengthBytes { file.append(UInt8(truncatingIfNeeded: text.count >> (8 * index))) }
  return file + text + data
}

@Suite struct NPYReadTests {
  @Test func float32FromNumpy() throws {
    let tensor = try NPY.decode(try NPYFixtures.bytes("f32_2x3.npy"))
    #expect(tensor.dtype == "float32")
    #expect(tensor.shape == [2, 3])
    #expect(tensor.bytes == floatBytes([-1, -0.5, 0, 0.5, 1, 1.5]))
  }

  @Test func bigEndianFortranFloat64IsSwappedAndTransposed() throws {
    let tensor = try NPY.decode(try NPYFixtures.bytes("f64_big_fortran_3x4.npy"))
    #expect(tensor.dtype == "float64")
    #expect(tensor.shape == [3, 4])
    #expect(tensor.bytes == doubleBytes((0..<12).map { Double($0) * 1.25 }))
  }

  @Test func fortranRank3IsTransposed() throws {
    let tensor = try NPY.decode(try NPYFixtures.bytes("i32_fortran_2x3x4.npy"))
    #expect(tensor.dtype == "int32")
    #expect(tensor.shape == [2, 3, 4])
    #expect(tensor.bytes == littleEndianBytes((0..<24).map(Int32.init)))
  }

  @Test func scalarInt8() throws {
    let tensor = try NPY.decode(try NPYFixtures.bytes("i8_scalar.npy"))
    #expect(tensor == HostTensor(dtype: "int8", shape: [], bytes: [UInt8(bitPattern: -7)]))
  }

  @Test func bigEndianUInt16() throws {
    let tensor = try NPY.decode(try NPYFixtures.bytes("u16_big_5.npy"))
    #expect(
      tensor == HostTensor(dtype: "uint16", shape: [5], bytes: littleEndianBytes([1, 256, 65535, 0, 4660] as [UInt16])))
  }

  @Test func boolAndFloat16AndEmpty() throws {
    #expect(
      try NPY.decode(try NPYFixtures.bytes("bool_2x2.npy"))
        == HostTensor(dtype: "bool", shape: [2, 2], bytes: [1, 0, 0, 1]))
    let half = try NPY.decode(try NPYFixtures.bytes("f16_2x2x2.npy"))
    #expect(half.dtype == "float16" && half.shape == [2, 2, 2])
    // 0.5, -2, 65504, 1e-7 (subnormal 0x0002), inf, -0, 3.140625, 1
    #expect(
      half.bytes == littleEndianBytes([0x3800, 0xC000, 0x7BFF, 0x0002, 0x7C00, 0x8000, 0x4248, 0x3C00] as [UInt16]))
    #expect(
      try NPY.decode(try NPYFixtures.bytes("i64_0x3.npy")) == HostTensor(dtype: "int64", shape: [0, 3], bytes: []))
    #expect(
      try NPY.decode(try NPYFixtures.bytes("u64_3.npy"))
        == HostTensor(dtype: "uint64", shape: [3], bytes: littleEndianBytes([0, (1 << 63) + 5, .max] as [UInt64])))
  }

  @Test func versions2And3() throws {
    #expect(
      try NPY.decode(try NPYFixtures.bytes("u8_v2_4.npy"))
        == HostTensor(dtype: "uint8", shape: [4], bytes: [1, 2, 3, 250]))
    #expect(
      try NPY.decode(try NPYFixtures.bytes("i16_v3_2x2.npy"))
        == HostTensor(dtype: "int16", shape: [2, 2], bytes: littleEndianBytes([-1, 2, 300, -32768] as [Int16])))
  }

  @Test func readsFromDiskAndNamesTheFileInErrors() throws {
    let url = NPYFixtures.folder.appendingPathComponent("f32_2x3.npy")
    #expect(try NPY.read(contentsOf: url).shape == [2, 3])
    let missing = NPYFixtures.folder.appendingPathComponent("does-not-exist.npy")
    let error = #expect(throws: RuntimeError.self) { try NPY.read(contentsOf: missing) }
    #expect(error?.message.contains("does-not-exist.npy") == true)
  }

  @Test(arguments: [
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", [2]),
    ("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,),}", [2]),
    ("  {'shape':(1,2),'fortran_order':False,'descr':'<f4'}", [1, 2]),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", [2]),
    ("{'descr': 'f4', 'fortran_order': False, 'shape': ( 1 , 1 , 2 , ), }", [1, 1, 2]),
  ])
  func acceptedHeaderSpellings(header: String, shape: [Int]) throws {
    let tensor = try NPY.decode(npyFile(header, data: floatBytes([1, 2])))
    #expect(tensor.shape == shape)
    #expect(tensor.dtype == "float32")
  }
}

@Suite struct NPYRejectTests {
  static let cases: [(String, String)] = [
    ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
    ("{'descr': '<f4', 'shape': (2,)}", "no 'fortran_order'"),
    ("{'fortran_order': False, 'shape': (2,)}", "no 'descr'"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"),
    ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "duplicate key 'descr'"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "not a tuple"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", "expected a tuple"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", "non-negative integer"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (02,)}", "leading zero"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", "expected ',' or ')'"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", "non-negative integer"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,,)}", "non-negative integer"),
    ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "True or False"),
    ("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}", "True or False"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", "after the dictionary"),
    ("{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", "expected ',' or '}'"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "expected ',' or '}'"),
    ("{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}", "expected ':'"),
    ("{'descr': '<f\\4', 'fortran_order': False, 'shape': (2,)}", "escapes"),
    ("['descr', '<f4']", "expected '{'"),
    ("", "expected '{'"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "64 bits"),
    ("{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}", "only valid for 1-byte"),
  ]

  @Test(arguments: cases)
  func malformedHeaderIsRejected(header: String, reason: String) {
    let error = #expect(throws: RuntimeError.self) { try NPY.decode(npyFile(header, data: floatBytes([1, 2]))) }
    #expect(error?.code == .invalidInput)
    #expect(error?.message.contains(reason) == true, "\(error?.message ?? "") should mention \(reason)")
  }

  @Test(arguments: ["<c8", "|O", "<U3", "<M8[s]", "<V2", "<f16", "<i3", "xyz"])
  func unsupportedDtypeIsRejected(descr: String) {
    let error = #expect(throws: RuntimeError.self) {
      try NPY.decode(
        npyFile("{'descr': '\(descr)', 'fortran_order': False, 'shape': (1,)}", data: [0, 0, 0, 0, 0, 0, 0, 0]))
    }
    #expect(error?.code == .unsupported)
    #expect(error?.message.contains(descr) == true)
  }

  @Test func structuredDtypeIsRejected() {
    let error = #expect(throws: RuntimeError.self) {
      try NPY.decode(npyFile("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", data: [0, 0, 0, 0]))
    }
    #expect(error?.code == .unsupported)
  }

  @Test func dataLengthMustMatchExactly() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}"
    let short = #expect(throws: RuntimeError.self) { try NPY.decode(npyFile(header, data: floatBytes([1, 2]))) }
    #expect(short?.message.contains("truncated") == true)
    let long = #expect(throws: RuntimeError.self) { try NPY.decode(npyFile(header, data: floatBytes([1, 2, 3, 4]))) }
    #expect(long?.message.contains("longer") == true)
  }

  @Test func hugeShapesAreRejectedWithoutAllocating() {
    for shape in ["(4611686018427387904, 4)", "(9223372036854775807,)", "(3037000500, 3037000500)", "(1000000000000,)"]
    {
      let error = #expect(throws: RuntimeError.self) {
        try NPY.decode(npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': \(shape)}", data: [0]))
      }
      #expect(error?.code == .invalidInput)
    }
  }

  @Test func tooManyDimensionsAreRejected() {
    let shape = "(" + String(repeating: "1, ", count: 65) + ")"
    let error = #expect(throws: RuntimeError.self) {
      try NPY.decode(npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape)}", data: [0, 0, 0, 0]))
    }
    #expect(error?.message.contains("more than 64") == true)
  }

  @Test func preludeErrors() {
    let valid = npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", data: [0, 0, 0, 0])
    var badMagic = valid
    badMagic[1] = 0x4F
    #expect(throws: RuntimeError.self) { try NPY.decode(badMagic) }
    var badVersion = valid
    badVersion[6] = 4
    let version = #expect(throws: RuntimeError.self) { try NPY.decode(badVersion) }
    #expect(version?.code == .unsupported)
    var longHeader = valid
    longHeader[8] = 0xFF
    longHeader[9] = 0xFF
    #expect(throws: RuntimeError.self) { try NPY.decode(longHeader) }
    for length in 0..<12 {
      #expect(throws: RuntimeError.self) { try NPY.decode(Array(valid.prefix(length))) }
    }
    var nonASCII = valid
    nonASCII[12] = 0xE9
    #expect(throws: RuntimeError.self) { try NPY.decode(nonASCII) }
    // A version 2 file claiming a 4 GiB header.
    var hugeHeader = npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", data: [0, 0, 0, 0], version: 2)
    hugeHeader[8...11] = [0xFF, 0xFF, 0xFF, 0xFF]
    let huge = #expect(throws: RuntimeError.self) { try NPY.decode(hugeHeader) }
    #expect(huge?.message.contains("limit") == true)
  }

  /// Every truncation and thousands of random mutations of real files either decode to a
  /// consistent tensor or throw; none crashes.
  @Test func mutatedFilesNeverCrash() throws {
    var generator = SplitMix64(seed: 0x5EED)
    let names = try FileManager.default.contentsOfDirectory(atPath: NPYFixtures.folder.path).filter {
      $0.hasSuffix(".npy")
    }.sorted()
    #expect(names.count >= 10)
    for name in names {
      let original = try NPYFixtures.bytes(name)
      for length in 0..<original.count { _ = try? NPY.decode(Array(original.prefix(length))) }
      for _ in 0..<400 {
        var bytes = original
        for _ in 0..<Int(generator.next() % 4 + 1) {
          let index = Int(generator.next() % UInt64(bytes.count))
          switch generator.next() % 3 {
          case 0: bytes[index] = UInt8(truncatingIfNeeded: generator.next())
          case 1:
            bytes[index] = [0x27, 0x28, 0x29, 0x2C, 0x30, 0x39, 0x3A, 0x7B, 0x7D, 0x20][Int(generator.next() % 10)]
          default: bytes.remove(at: index)
          }
          if bytes.isEmpty { break }
        }
        if let tensor = try? NPY.decode(bytes) {
          let size = HostTensor.elementSize(tensor.dtype) ?? 0
          #expect(tensor.bytes.count == tensor.shape.reduce(1, *) * size)
        }
      }
    }
  }
}

@Suite struct NPYWriteTests {
  @Test func writesExactlyWhatNumpyWrites() throws {
    let tensor = HostTensor(dtype: "float32", shape: [2, 3], bytes: floatBytes([-1, -0.5, 0, 0.5, 1, 1.5]))
    #expect(try NPY.encode(tensor) == (try NPYFixtures.bytes("f32_2x3.npy")))
    let scalar = HostTensor(dtype: "int8", shape: [], bytes: [UInt8(bitPattern: -7)])
    #expect(try NPY.encode(scalar) == (try NPYFixtures.bytes("i8_scalar.npy")))
    let empty = HostTensor(dtype: "int64", shape: [0, 3], bytes: [])
    #expect(try NPY.encode(empty) == (try NPYFixtures.bytes("i64_0x3.npy")))
    let flags = HostTensor(dtype: "bool", shape: [2, 2], bytes: [1, 0, 0, 1])
    #expect(try NPY.encode(flags) == (try NPYFixtures.bytes("bool_2x2.npy")))
  }

  @Test(arguments: [
    "float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool",
  ])
  func roundTrip(dtype: String) throws {
    let size = HostTensor.elementSize(dtype) ?? 0
    var generator = SplitMix64(seed: UInt64(size))
    for shape in [[], [0], [7], [3, 5], [2, 1, 4, 3]] as [[Int]] {
      let count = shape.reduce(1, *)
      let bytes = (0..<(count * size)).map { _ in
        dtype == "bool" ? UInt8(generator.next() % 2) : UInt8(truncatingIfNeeded: generator.next())
      }
      let tensor = HostTensor(dtype: dtype, shape: shape, bytes: bytes)
      let file = try NPY.encode(tensor)
      #expect(file.count % 64 == bytes.count % 64)
      #expect(try NPY.decode(file) == tensor)
    }
  }

  @Test func bfloat16IsWrittenAsFloat32() throws {
    // 1.0, -2.5, the smallest normal, NaN
    let bits: [UInt16] = [0x3F80, 0xC020, 0x0080, 0x7FC0]
    let file = try NPY.encode(HostTensor(dtype: "bfloat16", shape: [4], bytes: littleEndianBytes(bits)))
    let tensor = try NPY.decode(file)
    #expect(tensor.dtype == "float32")
    #expect(tensor.bytes == littleEndianBytes(bits.map { UInt32($0) << 16 }))
  }

  @Test func rank64FitsVersion1() throws {
    // The largest header a valid tensor can need (64 dimensions) still fits version 1.0.
    let shape = [Int](repeating: 1, count: 64)
    let file = try NPY.encode(HostTensor(dtype: "uint8", shape: shape, bytes: [9]))
    #expect(file[6] == 1)
    #expect(try NPY.decode(file) == HostTensor(dtype: "uint8", shape: shape, bytes: [9]))
  }

  @Test func inconsistentTensorsAreRefused() {
    #expect(throws: RuntimeError.self) {
      try NPY.encode(HostTensor(dtype: "float32", shape: [2], bytes: [0, 0, 0, 0]))
    }
    #expect(throws: RuntimeError.self) { try NPY.encode(HostTensor(dtype: "float32", shape: [-1], bytes: [])) }
    #expect(throws: RuntimeError.self) { try NPY.encode(HostTensor(dtype: "complex64", shape: [1], bytes: [0])) }
    #expect(throws: RuntimeError.self) {
      try NPY.encode(HostTensor(dtype: "float64", shape: [Int.max, 2], bytes: []))
    }
  }
}

/// A small deterministic generator for reproducible mutations.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
