import Testing

@testable import KilnIR

@Suite struct DTypeTests {
  @Test func onnxCodesRoundTrip() {
    for dtype in DType.allCases {
      #expect(DType(onnxCode: dtype.onnxCode) == dtype)
      #expect(DType(shortName: dtype.shortName) == dtype)
    }
    #expect(DType(onnxCode: 1) == .float32)
    #expect(DType(onnxCode: 7) == .int64)
    #expect(DType(onnxCode: 10) == .float16)
    #expect(DType(onnxCode: 16) == .bfloat16)
    #expect(DType(onnxCode: 8) == nil)  // string
    #expect(DType(onnxCode: 17) == .float8e4m3fn)
    #expect(DType(onnxCode: 27) == nil)  // float6e2m3
    #expect(DType(onnxCode: 0) == nil)
    #expect(DType(onnxCode: -3) == nil)
  }

  @Test func properties() {
    #expect(DType.float16.byteSize == 2)
    #expect(DType.bool.byteSize == 1)
    #expect(DType.uint64.byteSize == 8)
    #expect(DType.bfloat16.isFloat && !DType.bfloat16.isInteger)
    #expect(DType.uint8.isInteger && !DType.uint8.isSigned)
    #expect(DType.int8.isSigned && DType.float32.isSigned)
    #expect(!DType.bool.isInteger && !DType.bool.isFloat && !DType.bool.isSigned)
  }
}

@Suite struct TensorTypeTests {
  @Test func counts() {
    let type = TensorType(.float32, [2, 3, 4])
    #expect(type.rank == 3)
    #expect(type.elementCount == 24)
    #expect(type.byteCount == 96)
    #expect(type.strides == [12, 4, 1])
    #expect(TensorType.scalar(.int64).elementCount == 1)
    #expect(TensorType(.float32, [0, 5]).elementCount == 0)
    #expect(type.description == "f32[2,3,4]")
    #expect(TensorType.scalar(.bool).description == "bool[]")
  }

  @Test func overflowAndNegativeDimsAreNil() {
    #expect(TensorType(.float32, [1 << 40, 1 << 40]).elementCount == nil)
    #expect(TensorType(.float32, [1 << 31, 1 << 31]).byteCount == nil)
    #expect(TensorType(.float32, [-1, 3]).elementCount == nil)
    #expect(throws: IRError.self) { try TensorType(.int8, [Int.max, 2]).checkedElementCount() }
  }
}

@Suite struct BroadcastTests {
  @Test func shapes() {
    #expect(Broadcast.shape([2, 3, 4], [4]) == [2, 3, 4])
    #expect(Broadcast.shape([2, 1, 4], [3, 1]) == [2, 3, 4])
    #expect(Broadcast.shape([], [5]) == [5])
    #expect(Broadcast.shape([0, 3], [1, 3]) == [0, 3])
    #expect(Broadcast.shape([2, 3], [3, 2]) == nil)
    #expect(Broadcast.shape([[1, 5], [4, 1], [1]]) == [4, 5])
    #expect(Broadcast.canBroadcast([3, 1], to: [2, 3, 4]))
    #expect(!Broadcast.canBroadcast([2, 3, 4], to: [3, 4]))
  }

  @Test func sourceIndices() {
    #expect(Broadcast.sourceIndices(from: [3], to: [2, 3]) == [0, 1, 2, 0, 1, 2])
    #expect(Broadcast.sourceIndices(from: [2, 1], to: [2, 3]) == [0, 0, 0, 1, 1, 1])
    #expect(Broadcast.sourceIndices(from: [], to: [2]) == [0, 0])
    #expect(Broadcast.sourceIndices(from: [2, 2], to: [2, 2]) == [0, 1, 2, 3])
  }
}
