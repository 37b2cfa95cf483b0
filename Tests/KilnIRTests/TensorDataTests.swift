import Testing

@testable import KilnIR

@Suite struct FloatConversionTests {
  @Test func float16KnownValues() {
    #expect(FloatConversion.float16Bits(from: 1.0) == 0x3c00)
    #expect(FloatConversion.float16Bits(from: -2.0) == 0xc000)
    #expect(FloatConversion.float16Bits(from: 65504) == 0x7bff)
    #expect(FloatConversion.float16Bits(from: 65520) == 0x7c00)  // rounds up to infinity
    #expect(FloatConversion.float16Bits(from: .infinity) == 0x7c00)
    #expect(FloatConversion.float16Bits(from: 0x1p-24) == 0x0001)  // smallest subnormal
    #expect(FloatConversion.float16Bits(from: 0x1p-25) == 0x0000)  // tie rounds to even (zero)
    #expect(FloatConversion.float16Bits(from: 0x1.8p-25) == 0x0001)
    #expect(FloatConversion.float16Bits(from: -0.0) == 0x8000)
    #expect(FloatConversion.float16Bits(from: 1 + 0x1p-11) == 0x3c00)  // tie to even
    #expect(FloatConversion.float16Bits(from: 1 + 0x1.8p-11) == 0x3c01)
    let nan = FloatConversion.float16Bits(from: .nan)
    #expect(nan & 0x7c00 == 0x7c00 && nan & 0x3ff != 0)
  }

  @Test func everyFloat16RoundTrips() {
    for bits in 0...UInt16.max {
      let value = FloatConversion.float(fromFloat16Bits: bits)
      if value.isNaN {
        #expect(FloatConversion.float16Bits(from: value) & 0x7c00 == 0x7c00)
      } else {
        #expect(FloatConversion.float16Bits(from: value) == bits, "bits \(bits)")
      }
    }
  }

  #if arch(x86_64) || arch(arm64)
    @Test func matchesNativeFloat16() {
      for value: Float in [0.1, 1.0 / 3, 1e-6, 3.14159, -7e4, 2049, 1e-8, 6.1e-5] {
        #expect(FloatConversion.float16Bits(from: value) == Float16(value).bitPattern, "value \(value)")
      }
    }
  #endif

  @Test func bfloat16() {
    #expect(FloatConversion.bfloat16Bits(from: 1.0) == 0x3f80)
    #expect(FloatConversion.float(fromBFloat16Bits: 0x3f80) == 1.0)
    #expect(FloatConversion.bfloat16Bits(from: Float(bitPattern: 0x3f80_8000)) == 0x3f80)  // tie to even
    #expect(FloatConversion.bfloat16Bits(from: Float(bitPattern: 0x3f81_8000)) == 0x3f82)
    #expect(FloatConversion.float(fromBFloat16Bits: FloatConversion.bfloat16Bits(from: .nan)).isNaN)
  }
}

@Suite struct TensorDataTests {
  @Test func buildAndRead() throws {
    let floats = TensorData([1.5, -2, 3] as [Float])
    #expect(floats.type == TensorType(.float32, [3]))
    #expect(floats.bytes.count == 12)
    #expect(floats.doubles() == [1.5, -2, 3])
    #expect(floats.int64s() == [1, -2, 3])

    let ints = TensorData([1, -1, 7, 0] as [Int64], shape: [2, 2])
    #expect(ints.int64s() == [1, -1, 7, 0])
    #expect(ints.bytes[8..<16] == [255, 255, 255, 255, 255, 255, 255, 255])

    let bools = TensorData([true, false])
    #expect(bools.bools() == [true, false])
    #expect(TensorData.scalar(Int64(5)).scalarInt64 == 5)
    #expect(TensorData.scalar(Float(2.5)).scalarDouble == 2.5)
    #expect(ints.scalarInt64 == nil)

    let half = TensorData(float16Bits: [0x3c00, 0xc000])
    #expect(half.floats() == [1, -2])
    #expect(half.uint16Bits() == [0x3c00, 0xc000])
    let bf = TensorData(bfloat16Bits: [0x3f80])
    #expect(bf.doubles() == [1])
  }

  @Test func byteCountIsChecked() {
    #expect(throws: IRError.self) { try TensorData(type: TensorType(.float32, [2]), bytes: [0, 0, 0]) }
    #expect(throws: IRError.self) { try TensorData(type: TensorType(.float32, [-2]), bytes: []) }
    #expect(throws: Never.self) { try TensorData(type: TensorType(.int8, [3]), bytes: [1, 2, 3]) }
  }

  @Test func conversions() {
    let floats = TensorData([1.7, -1.7, 300, .nan] as [Float])
    #expect(floats.converted(to: .int32).int64s() == [1, -1, 300, 0])
    #expect(floats.converted(to: .uint8).int64s() == [1, 255, 44, 0])  // wraps like C
    #expect(floats.converted(to: .bool).bools() == [true, true, true, true])
    #expect(TensorData([70000] as [Int64]).converted(to: .int16).int64s() == [4464])
    #expect(TensorData([1, 2] as [Int64]).converted(to: .float16).floats() == [1, 2])
    let big = TensorData(type: TensorType(.uint64, [1]), int64s: [-1])
    #expect(big.doubles() == [18_446_744_073_709_551_615.0])
    #expect(TensorData(type: TensorType(.int8, [3]), doubles: [1e10, -1e10, 200]).int64s() == [0, 0, -56])
  }

  @Test func filledAndReshaped() {
    let fill = TensorData(type: TensorType(.float32, [2, 2]), repeatingElementOf: TensorData.scalar(Float(3)))
    #expect(fill.floats() == [3, 3, 3, 3])
    #expect(fill.reshaped(to: [4])?.shape == [4])
    #expect(fill.reshaped(to: [3]) == nil)
    #expect(TensorData(type: TensorType(.int64, [3]), repeating: 2).int64s() == [2, 2, 2])
  }

  @Test func contentHashIsStableAndTypeSensitive() {
    let a = TensorData([1, 2, 3] as [Int64])
    #expect(a.contentHash == TensorData([1, 2, 3] as [Int64]).contentHash)
    #expect(a.contentHash.count == 16)
    #expect(a.contentHash != TensorData([1, 2, 3] as [Int64], shape: [3, 1]).contentHash)
    #expect(a.contentHash != TensorData([1, 2, 4] as [Int64]).contentHash)
    // FNV-1a is fixed, so the hash of a known tensor never changes between runs or platforms.
    #expect(TensorData([] as [Float]).contentHash == TensorData([] as [Float]).contentHash)
  }

  /// Large tensors hash a sample of their bytes; tensors that differ anywhere stay distinct keys.
  @Test func largeTensorsDifferingInOneByteAreDistinct() throws {
    let count = 100_000
    let type = TensorType(.uint8, [count])
    let base = [UInt8](repeating: 7, count: count)
    var tensors: Set<TensorData> = [try TensorData(type: type, bytes: base)]
    for position in [1, 4097, count / 2 + 3, count - 65] {
      var changed = base
      changed[position] = 8
      tensors.insert(try TensorData(type: type, bytes: changed))
    }
    tensors.insert(try TensorData(type: type, bytes: base))
    #expect(tensors.count == 5)
    #expect(try TensorData(type: type, bytes: base).hashValue == TensorData(type: type, bytes: base).hashValue)
  }
}

