import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Shape inference of the ops the compiler lowers that the importer used to reject, the folds
/// that shape computations of function-expanded models need, and the naming of unnamed nodes.
@Suite struct OpRegistryCoverageTests {
  @Test func unaryMathKeepsTheOperandType() throws {
    let ops = [
      "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cos", "Cosh", "Sin", "Sinh", "Tan", "Round", "Softplus",
      "Softsign", "Mish", "Elu", "Selu", "Celu", "ThresholdedRelu", "Sign", "Shrink",
    ]
    for op in ops {
      #expect(try infer(op, [.input(.float32, [2, 3])], opset: 22) == [TensorType(.float32, [2, 3])], "\(op)")
    }
    #expect(try infer("Sign", [.input(.int32, [4])], opset: 13) == [TensorType(.int32, [4])])
    #expect(inferError("Acos", [.input(.int32, [4])], opset: 22)?.code == .unsupportedType)
  }

  @Test func predicatesAndLogic() throws {
    #expect(try infer("IsNaN", [.input(.float32, [3])], opset: 20) == [TensorType(.bool, [3])])
    #expect(
      try infer("IsInf", [.input(.float64, [3])], ["detect_negative": .int(0)], opset: 20) == [TensorType(.bool, [3])])
    #expect(
      try infer("Xor", [.input(.bool, [3, 1]), .input(.bool, [4])], opset: 7) == [TensorType(.bool, [3, 4])])
    #expect(try infer("BitwiseNot", [.input(.uint8, [3])], opset: 18) == [TensorType(.uint8, [3])])
    #expect(
      try infer("BitwiseAnd", [.input(.int16, [2, 1]), .input(.int16, [3])], opset: 18)
        == [TensorType(.int16, [2, 3])])
    #expect(
      try infer("BitShift", [.input(.uint32, [3]), .input(.uint32, [1])], ["direction": .string("LEFT")], opset: 11)
        == [TensorType(.uint32, [3])])
    #expect(inferError("BitwiseOr", [.input(.float32, [3]), .input(.float32, [3])], opset: 18)?.code == .unsupportedType)
    #expect(
      inferError("BitShift", [.input(.uint8, [3]), .input(.uint8, [3])], ["direction": .string("UP")], opset: 11)?
        .code == .invalidAttribute)
  }

  @Test func modBroadcastsAndFoldsWithBothSignConventions() throws {
    #expect(try infer("Mod", [.input(.int64, [2, 3]), .input(.int64, [3])], opset: 13) == [TensorType(.int64, [2, 3])])
    #expect(inferError("Mod", [.input(.float32, [3]), .input(.float32, [3])], opset: 13)?.code == .invalidAttribute)
    let a = TensorData([Int64(-7), 7, -7, 7])
    let b = TensorData([Int64(3), -3, -3, 3])
    for (fmod, expected) in [(0, [Int64(2), -2, -1, 1]), (1, [Int64(-1), 1, -1, 1])] {
      let graph = try singleNodeModel("Mod", [.constant(a), .constant(b)], ["fmod": .int(Int64(fmod))], opset: 13)
        .importGraph()
      #expect(graph.nodes.isEmpty, "constant Mod folds")
      #expect(graph.constants[graph.outputs[0]]?.int64s() == expected, "fmod \(fmod)")
    }
  }

  @Test func castLikeTakesTheSecondOperandsType() throws {
    #expect(
      try infer("CastLike", [.input(.float32, [2, 2]), .input(.float16, [1])], opset: 15)
        == [TensorType(.float16, [2, 2])])
  }

  @Test func gathersAndBlockMoves() throws {
    #expect(
      try infer("GatherElements", [.input(.float32, [3, 4]), .input(.int64, [2, 4])], ["axis": .int(0)], opset: 13)
        == [TensorType(.float32, [2, 4])])
    #expect(
      try infer("GatherND", [.input(.float32, [2, 3, 4]), .input(.int64, [2, 1])], ["batch_dims": .int(1)], opset: 13)
        == [TensorType(.float32, [2, 4])])
    #expect(
      try infer("GatherND", [.input(.int32, [2, 2]), .input(.int64, [2, 2])], opset: 13) == [TensorType(.int32, [2])])
    #expect(
      try infer("DepthToSpace", [.input(.float32, [1, 8, 2, 3])], ["blocksize": .int(2)], opset: 13)
        == [TensorType(.float32, [1, 2, 4, 6])])
    #expect(
      try infer("SpaceToDepth", [.input(.float32, [1, 2, 4, 6])], ["blocksize": .int(2)], opset: 13)
        == [TensorType(.float32, [1, 8, 2, 3])])
    #expect(
      inferError("DepthToSpace", [.input(.float32, [1, 6, 2, 3])], ["blocksize": .int(2)], opset: 13)?.code
        == .shapeMismatch)
    #expect(
      try infer("Upsample", [.input(.float32, [1, 1, 2, 3]), .constant(TensorData([Float(1), 1, 2, 1.5]))], opset: 9)
        == [TensorType(.float32, [1, 1, 4, 4])])
  }

  @Test func einsumOutputShapes() throws {
    func einsum(_ equation: String, _ shapes: [[Int]]) throws -> [Int] {
      try infer("Einsum", shapes.map { .input(.float32, $0) }, ["equation": .string(equation)], opset: 12)[0].shape
    }
    #expect(try einsum("ij,jk->ik", [[2, 3], [3, 4]]) == [2, 4])
    #expect(try einsum("ij,jk", [[2, 3], [3, 4]]) == [2, 4])
    #expect(try einsum("ii->i", [[3, 3]]) == [3])
    #expect(try einsum("...ij,...jk->...ik", [[5, 2, 3], [1, 3, 4]]) == [5, 2, 4])
    #expect(try einsum("i,i", [[3], [3]]) == [])
    #expect(try einsum("bij", [[2, 3, 4]]) == [2, 3, 4])
    #expect(throws: ONNXImportError.self) { try einsum("ij,jk->ik", [[2, 3], [4, 4]]) }
  }

  @Test func newReductionsFollowTheAxesRules() throws {
    for op in ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"] {
      #expect(
        try infer(op, [.input(.float32, [2, 3, 4])], ["axes": .ints([1]), "keepdims": .int(0)], opset: 13)
          == [TensorType(.float32, [2, 4])], "\(op) opset 13")
      #expect(
        try infer(op, [.input(.float32, [2, 3, 4]), .constant(TensorData([Int64(-1)]))], opset: 18)
          == [TensorType(.float32, [2, 3, 1])], "\(op) opset 18")
    }
    // A reduction the evaluator does not implement is kept, not folded wrongly as a sum.
    let graph = try singleNodeModel("ReduceL2", [.constant(TensorData([Float(3), 4]))], opset: 13).importGraph()
    #expect(graph.nodes.map(\.op) == ["ReduceL2"])
  }

  @Test func poolsAndNormalisations() throws {
    let x = Operand.input(.float32, [1, 4, 5, 5])
    #expect(
      try infer("LpPool", [x], ["kernel_shape": .ints([2, 2]), "p": .int(3)], opset: 18)
        == [TensorType(.float32, [1, 4, 4, 4])])
    #expect(try infer("GlobalLpPool", [x], opset: 2) == [TensorType(.float32, [1, 4, 1, 1])])
    #expect(try infer("MeanVarianceNormalization", [x], opset: 13) == [TensorType(.float32, [1, 4, 5, 5])])
    #expect(try infer("Hardmax", [x], ["axis": .int(1)], opset: 13) == [TensorType(.float32, [1, 4, 5, 5])])
    #expect(try infer("LpNormalization", [x], ["p": .int(1)], opset: 22) == [TensorType(.float32, [1, 4, 5, 5])])
    #expect(
      try infer("RMSNormalization", [x, .input(.float32, [5])], opset: 23) == [TensorType(.float32, [1, 4, 5, 5])])
    #expect(
      try infer("GroupNormalization", [x, .input(.float32, [2]), .input(.float32, [2])], ["num_groups": .int(2)], opset: 18)
        == [TensorType(.float32, [1, 4, 5, 5])])
    #expect(
      inferError("GroupNormalization", [x, .input(.float32, [4]), .input(.float32, [4])], ["num_groups": .int(3)], opset: 21)?
        .code == .invalidAttribute)
  }

  @Test func attentionShapes() throws {
    // 4-D with grouped KV heads and a KV cache: Y, present_key, present_value, QK.
    let types = try infer(
      "Attention",
      [
        .input(.float32, [2, 6, 3, 8]), .input(.float32, [2, 2, 4, 8]), .input(.float32, [2, 2, 4, 10]),
        .input(.bool, [3, 7]), .input(.float32, [2, 2, 5, 8]), .input(.float32, [2, 2, 5, 10]),
      ], opset: 23, outputs: 4)
    #expect(
      types == [
        TensorType(.float32, [2, 6, 3, 10]), TensorType(.float32, [2, 2, 9, 8]), TensorType(.float32, [2, 2, 9, 10]),
        TensorType(.float32, [2, 6, 3, 9]),
      ])
    // 3-D: heads come from the attributes.
    let threeD = try infer(
      "Attention", [.input(.float32, [2, 3, 24]), .input(.float32, [2, 5, 8]), .input(.float32, [2, 5, 12])],
      ["q_num_heads": .int(3), "kv_num_heads": .int(1)], opset: 23)
    #expect(threeD == [TensorType(.float32, [2, 3, 36])])
    #expect(
      inferError("Attention", [.input(.float32, [2, 3, 24]), .input(.float32, [2, 5, 8]), .input(.float32, [2, 5, 8])], opset: 23)?
        .code == .invalidAttribute)
  }

  @Test func unnamedNodesAreNamedAfterTheirFirstOutput() throws {
    var builder = ModelBuilder(opset: 22)
    builder.input("x", .float32, [2])
    builder.node("NoSuchOp", ["x"], ["y"], name: "")
    builder.output("y")
    let error = try #require(importError(builder))
    #expect(error.description.contains("node 'y' (NoSuchOp, opset 22)"), "\(error)")
  }
}
