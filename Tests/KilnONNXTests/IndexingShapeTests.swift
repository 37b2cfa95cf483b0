import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Shape inference of the scatters, TopK, BitCast and TfIdfVectorizer.
@Suite struct IndexingShapeTests {
  @Test func scattersKeepTheDataType() throws {
    let elements = try infer(
      "ScatterElements", [f32([3, 4]), .input(.int64, [2, 4]), f32([2, 4])], ["axis": .int(-2)], opset: 18)
    #expect(elements == [TensorType(.float32, [3, 4])])
    let nd = try infer("ScatterND", [f32([4, 5, 6]), .input(.int32, [2, 3, 2]), f32([2, 3, 6])], opset: 16)
    #expect(nd == [TensorType(.float32, [4, 5, 6])])
    #expect(inferError("ScatterND", [f32([4, 5]), .input(.int64, [2, 1]), f32([2, 4])], opset: 16) != nil)
    // max/min reductions arrive in opset 18.
    let early = inferError(
      "ScatterElements", [f32([3]), .input(.int64, [2]), f32([2])], ["reduction": .string("max")], opset: 16)
    #expect(early?.code == .invalidAttribute)
  }

  @Test func topKShapeFollowsK() throws {
    let types = try infer("TopK", [f32([3, 7]), .constant(ints([4]))], ["axis": .int(-1)], opset: 11, outputs: 2)
    #expect(types == [TensorType(.float32, [3, 4]), TensorType(.int64, [3, 4])])
    let legacy = try infer("TopK", [f32([5, 2])], ["axis": .int(0), "k": .int(2)], opset: 1, outputs: 2)
    #expect(legacy == [TensorType(.float32, [2, 2]), TensorType(.int64, [2, 2])])
    #expect(inferError("TopK", [f32([3, 7]), .input(.int64, [1])], opset: 11, outputs: 2)?.code == .dynamicShape)
    #expect(inferError("TopK", [f32([3, 7]), .constant(ints([8]))], opset: 11, outputs: 2) != nil)
  }

  @Test func bitCastNeedsEqualWidths() throws {
    #expect(try infer("BitCast", [f32([2, 3])], ["to": .int(12)], opset: 26) == [TensorType(.uint32, [2, 3])])
    #expect(inferError("BitCast", [f32([2])], ["to": .int(7)], opset: 26)?.code == .shapeMismatch)
  }

  @Test func tfIdfVectorizerOutputWidth() throws {
    let attributes: [String: AttributeValue] = [
      "mode": .string("TF"), "min_gram_length": .int(1), "max_gram_length": .int(1), "max_skip_count": .int(0),
      "ngram_counts": .ints([0]), "ngram_indexes": .ints([2, 0, 4]), "pool_int64s": .ints([7, 8, 9]),
    ]
    #expect(
      try infer("TfIdfVectorizer", [.input(.int64, [3, 10])], attributes, opset: 9) == [TensorType(.float32, [3, 5])])
    #expect(try infer("TfIdfVectorizer", [.input(.int32, [10])], attributes, opset: 9) == [TensorType(.float32, [5])])
  }
}
