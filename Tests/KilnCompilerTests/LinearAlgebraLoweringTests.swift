import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Linear algebra lowering")
struct LinearAlgebraLoweringTests {
  @Test func determinantsOfBatchedMatrices() throws {
    // [[2, 0, 1], [1, 3, 2], [1, 1, 1]]: 2 * (3 - 2) - 0 + 1 * (1 - 3) = 0; the second is
    // diag(1, 2, 3) with rows 0 and 1 swapped: -6.
    let x = TensorData([Float(2), 0, 1, 1, 3, 2, 1, 1, 1, 0, 2, 0, 1, 0, 0, 0, 0, 3], shape: [2, 3, 3])
    let output = try LoweringHarness.run1("Det", version: 22, inputs: [x], output: TensorType(.float32, [2]))
    expectClose(output, [0, -6])
    // A 4x4 upper-triangular matrix with one row swap: -(1 * 2 * 3 * 4).
    var values = [Float](repeating: 0, count: 16)
    for i in 0..<4 {
      for j in i..<4 { values[i * 4 + j] = Float(i == j ? i + 1 : 7) }
    }
    let swapped = Array(values[4..<8] + values[0..<4] + values[8...])
    let four = try LoweringHarness.run1(
      "Det", version: 22, inputs: [TensorData(swapped, shape: [4, 4])], output: TensorType(.float32, []))
    expectClose(four, [-24])
  }

  @Test func determinantRejectsLargeMatrices() {
    let x = TensorData([Float](repeating: 1, count: 25), shape: [5, 5])
    #expect(throws: LoweringError.self) {
      try LoweringHarness.run1("Det", version: 22, inputs: [x], output: TensorType(.float32, []))
    }
  }
}
