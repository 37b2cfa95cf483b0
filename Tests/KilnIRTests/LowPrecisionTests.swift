import Testing

@testable import KilnIR

@Suite struct MiniFloatTests {
  static let formats: [DType] = [.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1]

  /// Every bit pattern decodes and encodes back to itself; NaN patterns decode to NaN and encode
  /// to the format's NaN (E2M1 has none).
  @Test(arguments: formats) func everyBitPatternRoundTrips(dtype: DType) throws {
    let format = try #require(MiniFloat(dtype))
    for bits in UInt32(0)..<(1 << UInt32(dtype.bitWidth)) {
      let value = format.value(ofBits: bits)
      if value.isNaN {
        #expect(format.specials != .none)
        #expect(format.value(ofBits: format.bits(of: value)).isNaN, "\(dtype) \(bits)")
        continue
      }
      #expect(format.bits(of: value) == bits, "\(dtype) bits \(bits) value \(value)")
      #expect(FloatConversion.float(fromMiniFloatBits: UInt8(bits), as: dtype).bitPattern == value.bitPattern)
    }
  }

  @Test func largestValuesAndSpecials() throws {
    let e4m3fn = try #require(MiniFloat(.float8e4m3fn))
    let e4m3fnuz = try #require(MiniFloat(.float8e4m3fnuz))
    let e5m2 = try #require(MiniFloat(.float8e5m2))
    let e5m2fnuz = try #require(MiniFloat(.float8e5m2fnuz))
    let e2m1 = try #require(MiniFloat(.float4e2m1))
    #expect([e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e2m1].map(\.largestFinite) == [448, 240, 57344, 57344, 6])
    // Overflow without saturation: NaN (FN, FNUZ), infinity (E5M2), the largest value (E2M1).
    #expect(e4m3fn.bits(of: 1e6) == 0x7f && e4m3fn.bits(of: -.infinity) == 0xff)
    #expect(e4m3fnuz.bits(of: 1e6) == 0x80 && e5m2fnuz.bits(of: .infinity) == 0x80)
    #expect(e5m2.bits(of: 1e6) == 0x7c && e5m2.bits(of: -.infinity) == 0xfc && e5m2.bits(of: .nan) == 0x7e)
    #expect(e2m1.bits(of: .infinity) == 0x7 && e2m1.bits(of: -100) == 0xf)
    // Past the largest value: 464 is the midpoint of 448 and (NaN) 480, and ties to even (448).
    #expect(e4m3fn.bits(of: 464) == 0x7e && e4m3fn.bits(of: 464.1) == 0x7f)
    // FNUZ has no negative zero.
    #expect(e4m3fnuz.bits(of: -0.0) == 0 && e4m3fn.bits(of: -0.0) == 0x80)
    #expect(e4m3fnuz.bits(of: -1e-30) == 0)
    #expect(e4m3fn.saturated(1e6) == 448 && e4m3fn.saturated(-.infinity) == -448 && e4m3fn.saturated(.nan).isNaN)
  }

  @Test func roundsToNearestEven() throws {
    let e4m3fn = try #require(MiniFloat(.float8e4m3fn))
    #expect(e4m3fn.bits(of: 1.0625) == 0x38)  // tie between 1 and 1.125: even (1)
    #expect(e4m3fn.bits(of: 1.1875) == 0x3a)  // tie between 1.125 and 1.25: even (1.25)
    #expect(e4m3fn.bits(of: 1.07) == 0x39)
    // Subnormals: the smallest is 2^-9; half of it is a tie that rounds to zero.
    #expect(e4m3fn.bits(of: 0x1p-9) == 0x01 && e4m3fn.bits(of: 0x1p-10) == 0x00)
    #expect(e4m3fn.bits(of: 0x1.8p-10) == 0x01 && e4m3fn.bits(of: 0x1.8p-9) == 0x02)
    // A subnormal rounding up into the smallest normal (2^-6).
    #expect(e4m3fn.bits(of: 0x1.fp-7) == 0x08)
    let e2m1 = try #require(MiniFloat(.float4e2m1))
    #expect([0.25, 0.75, 1.25, 2.5, 3.5, 5].map { e2m1.bits(of: $0) } == [0, 2, 2, 4, 6, 6])
  }

  @Test func e8m0RoundingModes() {
    func bits(_ value: Float, _ mode: E8M0RoundMode, saturate: Bool = true) -> UInt8 {
      FloatConversion.float8e8m0Bits(from: value, saturate: saturate, roundMode: mode)
    }
    #expect([bits(1.5, .up), bits(1.5, .down), bits(1.5, .nearest), bits(1.25, .nearest)] == [128, 127, 128, 127])
    #expect(bits(.nan, .up) == 0xff && bits(.infinity, .down) == 0xff)
    #expect(bits(.greatestFiniteMagnitude, .up) == 0xfe && bits(.greatestFiniteMagnitude, .up, saturate: false) == 0xff)
    #expect(bits(0, .up) == 0 && bits(0.125, .up) == 124)
    for code in UInt8(1)...254 {
      let value = FloatConversion.float(fromFloat8E8M0Bits: code)
      for mode in E8M0RoundMode.allCases { #expect(bits(value, mode) == code) }
    }
    #expect(FloatConversion.float(fromFloat8E8M0Bits: 0) == 0x1p-127)
    #expect(FloatConversion.float(fromFloat8E8M0Bits: 0xff).isNaN)
  }
}

@Suite struct LowPrecisionTensorTests {
  @Test func subByteIntegersWrapAndSignExtend() throws {
    let int4 = TensorData(type: TensorType(.int4, [5]), int64s: [-9, -8, -1, 7, 8])
    #expect(int4.bytes == [0x7, 0x8, 0xf, 0x7, 0x8])
    #expect(int4.int64s() == [7, -8, -1, 7, -8])
    let uint2 = TensorData(type: TensorType(.uint2, [4]), int64s: [-3, -1, 3, 4])
    #expect(uint2.int64s() == [1, 3, 3, 0])
    #expect(DType.int2.integerRange == -2...1 && DType.uint4.integerRange == 0...15)
  }

  @Test func packingIsLowBitsFirst() {
    #expect(SubBytePacking.pack([0x1, 0x2, 0x3], bits: 4) == [0x21, 0x03])
    #expect(SubBytePacking.unpack([0x21, 0x03], count: 3, bits: 4) == [0x1, 0x2, 0x3])
    #expect(SubBytePacking.pack([1, 2, 3, 0, 1], bits: 2) == [0b00_11_10_01, 0b01])
    #expect(SubBytePacking.unpack([0b00_11_10_01, 0b01], count: 5, bits: 2) == [1, 2, 3, 0, 1])
    #expect(SubBytePacking.packedCount(5, bits: 4) == 3 && SubBytePacking.packedCount(5, bits: 8) == nil)
  }

  @Test func castSaturatesOnlyWhenAsked() {
    let x = TensorData([Float(1e6), -1e6, .nan, 0.3])
    let saturated = x.cast(to: .float8e4m3fn, saturate: true, roundMode: .up)
    let plain = x.cast(to: .float8e4m3fn, saturate: false, roundMode: .up)
    #expect(saturated.bytes == [0x7e, 0xfe, 0x7f, 0x2a])
    #expect(plain.bytes == [0x7f, 0xff, 0x7f, 0x2a])
    #expect(saturated.floats()[0] == 448 && plain.floats()[0].isNaN)
    let e8m0 = TensorData([Float(3)]).cast(to: .float8e8m0, saturate: true, roundMode: .down)
    #expect(e8m0.floats() == [2])
  }
}
