import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Shape inference and folding of the signal, quantized and recurrent operators.
@Suite struct SignalAndQuantizedInferenceTests {
  @Test func windowsFoldWithPeriodicAndSymmetricDenominators() throws {
    let size = TensorData([Int32(4)], shape: [])
    let cases: [(String, Int, [Double])] = [
      ("HannWindow", 1, [0, 0.5, 1, 0.5]),
      ("HannWindow", 0, [0, 0.75, 0.75, 0]),
      ("HammingWindow", 1, [4.0 / 46, 25.0 / 46, 1, 25.0 / 46]),
      ("BlackmanWindow", 0, [0, 0.63, 0.63, 0]),
    ]
    for (op, periodic, expected) in cases {
      let graph = try singleNodeModel(op, [.constant(size)], ["periodic": .int(Int64(periodic))]).importGraph()
      #expect(graph.nodes.isEmpty, "\(op) folds")
      let values = graph.constants[graph.outputs[0]]?.doubles() ?? []
      #expect(
        values.count == 4 && zip(values, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(op) \(periodic): \(values)")
    }
    let double = try singleNodeModel("HannWindow", [.constant(size)], ["output_datatype": .int(11)]).importGraph()
    #expect(double.type(of: double.outputs[0]) == TensorType(.float64, [4]))
  }

  @Test func melWeightMatrixFoldsConstantEdges() throws {
    let operands: [Operand] = [
      .constant(TensorData([Int32(8)], shape: [])), .constant(TensorData([Int32(16)], shape: [])),
      .constant(TensorData([Int32(8192)], shape: [])), .constant(TensorData([Float(0)], shape: [])),
      .constant(TensorData([Float(4096)], shape: [])),
    ]
    let graph = try singleNodeModel("MelWeightMatrix", operands).importGraph()
    let values = graph.constants[graph.outputs[0]]?.doubles() ?? []
    #expect(values.count == 72)
    #expect(Array(values.prefix(16)) == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0])
  }

  @Test func dftShapes() throws {
    #expect(try infer("DFT", [f32([1, 10, 1])], ["onesided": .int(1)]) == [TensorType(.float32, [1, 6, 2])])
    #expect(
      try infer(
        "DFT", [f32([2, 6, 3, 2]), .omitted, .constant(TensorData([Int64(1)], shape: []))],
        ["inverse": .int(1), "onesided": .int(1)], opset: 20) == [TensorType(.float32, [2, 10, 3, 1])])
    #expect(inferError("DFT", [f32([4, 2])], ["axis": .int(-1)])?.code == .invalidAttribute)
  }

  @Test func quantizedAndRecurrentShapes() throws {
    let u8 = { (shape: [Int]) in Operand.input(.uint8, shape) }
    #expect(try infer("MatMulInteger", [u8([4, 3]), u8([3, 2])], opset: 10) == [TensorType(.int32, [4, 2])])
    #expect(
      try infer("DynamicQuantizeLinear", [f32([5])], opset: 11, outputs: 3)
        == [TensorType(.uint8, [5]), TensorType(.float32, []), TensorType(.uint8, [])])
    #expect(inferError("MatMulInteger", [f32([4, 3]), u8([3, 2])], opset: 10)?.code == .unsupportedType)
    #expect(
      try infer(
        "LSTM", [f32([5, 2, 3]), f32([2, 16, 3]), f32([2, 16, 4])],
        ["hidden_size": .int(4), "direction": .string("bidirectional"), "layout": .int(0)], opset: 22, outputs: 3)
        == [TensorType(.float32, [5, 2, 2, 4]), TensorType(.float32, [2, 2, 4]), TensorType(.float32, [2, 2, 4])])
    #expect(
      inferError("GRU", [f32([5, 2, 3]), f32([1, 12, 3]), f32([1, 15, 5])], ["hidden_size": .int(5)], opset: 22)?
        .code == .shapeMismatch)
  }
}
