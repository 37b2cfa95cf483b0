import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Shape inference of RotaryEmbedding, TensorScatter, LinearAttention and CausalConvWithState.
@Suite struct SequenceShapeInferenceTests {
  @Test func rotaryEmbeddingKeepsTheInputType() throws {
    let positions = Operand.input(.int64, [2, 3])
    #expect(
      try infer("RotaryEmbedding", [f32([2, 4, 3, 8]), f32([50, 4]), f32([50, 4]), positions], opset: 23)
        == [TensorType(.float32, [2, 4, 3, 8])])
    #expect(
      try infer(
        "RotaryEmbedding", [f32([2, 3, 32]), f32([2, 3, 2]), f32([2, 3, 2])],
        ["num_heads": .int(4), "rotary_embedding_dim": .int(4)], opset: 23) == [TensorType(.float32, [2, 3, 32])])
    // 3-D input without num_heads; a cache that does not fit the rotary dimension.
    #expect(
      inferError("RotaryEmbedding", [f32([2, 3, 32]), f32([50, 4]), f32([50, 4]), positions], opset: 23) != nil)
    #expect(
      inferError("RotaryEmbedding", [f32([2, 4, 3, 8]), f32([50, 3]), f32([50, 3]), positions], opset: 23)?.code
        == .shapeMismatch)
  }

  @Test func tensorScatterChecksTheUpdateAgainstTheCache() throws {
    let indices = Operand.input(.int64, [2])
    #expect(
      try infer("TensorScatter", [f32([2, 1, 4, 5]), f32([2, 1, 2, 5]), indices], opset: 24)
        == [TensorType(.float32, [2, 1, 4, 5])])
    #expect(
      inferError("TensorScatter", [f32([2, 1, 4, 5]), f32([2, 1, 5, 5]), indices], opset: 24)?.code == .shapeMismatch)
    #expect(
      inferError("TensorScatter", [f32([2, 4, 5]), f32([2, 4, 5])], ["axis": .int(0)], opset: 24)?.code
        == .invalidAttribute)
  }

  @Test func linearAttentionGivesOutputAndState() throws {
    let attributes: [String: AttributeValue] = ["q_num_heads": .int(8), "kv_num_heads": .int(4)]
    let operands = [f32([2, 4, 64]), f32([2, 4, 32]), f32([2, 4, 24]), .omitted, f32([2, 4, 4]), f32([2, 4, 1])]
    #expect(
      try infer("LinearAttention", operands, attributes, opset: 27, outputs: 2)
        == [TensorType(.float32, [2, 4, 48]), TensorType(.float32, [2, 4, 8, 6])])
    // gated_delta (the default) needs beta; linear forbids decay.
    #expect(
      inferError("LinearAttention", Array(operands.prefix(5)), attributes, opset: 27, outputs: 2)?.code
        == .shapeMismatch)
    var linear = attributes
    linear["update_rule"] = .string("linear")
    #expect(inferError("LinearAttention", Array(operands.prefix(5)), linear, opset: 27, outputs: 2) != nil)
  }

  @Test func causalConvolutionStateHoldsKernelMinusOnePositions() throws {
    #expect(
      try infer("CausalConvWithState", [f32([2, 4, 8]), f32([4, 1, 5])], opset: 27, outputs: 2)
        == [TensorType(.float32, [2, 4, 8]), TensorType(.float32, [2, 4, 4])])
    #expect(
      inferError(
        "CausalConvWithState", [f32([2, 4, 8]), f32([4, 1, 5]), .omitted, f32([2, 4, 3])], opset: 27, outputs: 2)?
        .code == .shapeMismatch)
    #expect(
      inferError(
        "CausalConvWithState", [f32([2, 4, 8]), f32([4, 1, 5])], ["activation": .string("relu")], opset: 27)?
        .code == .unsupportedAttribute)
  }
}
