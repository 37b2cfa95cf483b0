import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Decompose pass: recurrent ops")
struct RecurrentDecomposeTests {
  /// tanh(W x + R h + Wb + Rb) per batch entry, stepping in `order`; steps at or past the
  /// entry's length keep the state and output zeros. Returns (Y [t][b][h], Y_h [b][h]).
  static func referenceRNN(
    x: [[[Double]]], w: [[Double]], r: [[Double]], bias: [Double], lengths: [Int], order: [Int]
  ) -> (y: [[[Double]]], last: [[Double]]) {
    let hidden = w.count
    var y = x.map { $0.map { _ in [Double](repeating: 0, count: hidden) } }
    var last: [[Double]] = []
    for b in lengths.indices {
      var h = [Double](repeating: 0, count: hidden)
      for t in order where t < lengths[b] {
        h = (0..<hidden).map { j in
          var sum = bias[j] + bias[hidden + j]
          for k in x[t][b].indices { sum += w[j][k] * x[t][b][k] }
          for k in 0..<hidden { sum += r[j][k] * h[k] }
          return tanh(sum)
        }
        y[t][b] = h
      }
      last.append(h)
    }
    return (y, last)
  }

  static func rows(_ data: TensorData, _ shape: [Int]) -> [[Double]] {
    let values = data.doubles()
    return (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
  }

  @Test func bidirectionalRNNWithSequenceLengths() throws {
    let (sequence, batch, inputSize, hidden) = (3, 2, 2, 3)
    let x = random([sequence, batch, inputSize], seed: 11)
    let w = random([2, hidden, inputSize], seed: 12)
    let r = random([2, hidden, hidden], seed: 13)
    let b = random([2, 2 * hidden], seed: 14)
    let lengths = [3, 2]
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "RNN", version: 22, x: x, extra: [w, r, b, TensorData(lengths.map { Int32($0) })],
      outputs: [TensorType(.float32, [sequence, 2, batch, hidden]), TensorType(.float32, [2, batch, hidden])],
      attributes: ["hidden_size": .int(Int64(hidden)), "direction": .string("bidirectional")])
    let xv = x.doubles()
    let steps = (0..<sequence).map { t in
      (0..<batch).map { b in Array(xv[((t * batch + b) * inputSize)..<((t * batch + b + 1) * inputSize)]) }
    }
    var expectedY = [Double](repeating: 0, count: sequence * 2 * batch * hidden)
    var expectedLast: [Double] = []
    for d in 0..<2 {
      let slice = { (data: TensorData, rowCount: Int, width: Int) -> [[Double]] in
        Self.rows(
          TensorData(
            Array(data.floats()[(d * rowCount * width)..<((d + 1) * rowCount * width)]), shape: [rowCount, width]),
          [rowCount, width])
      }
      let order = d == 0 ? Array(0..<sequence) : Array((0..<sequence).reversed())
      let bias = Array(b.doubles()[(d * 2 * hidden)..<((d + 1) * 2 * hidden)])
      let (y, last) = Self.referenceRNN(
        x: steps, w: slice(w, hidden, inputSize), r: slice(r, hidden, hidden), bias: bias, lengths: lengths,
        order: order)
      for t in 0..<sequence {
        for bi in 0..<batch {
          for j in 0..<hidden { expectedY[((t * 2 + d) * batch + bi) * hidden + j] = y[t][bi][j] }
        }
      }
      expectedLast += last.flatMap { $0 }
    }
    expectClose(values[0], expectedY)
    expectClose(values[1], expectedLast)
  }

  /// One GRU step from a zero state with linear_before_reset: the reset gate scales R_h h + Rb_h.
  @Test func gruLinearBeforeResetUsesTheRecurrentBiasInsideTheReset() throws {
    let hidden = 2
    let x = TensorData([Float(0.5), -1], shape: [1, 1, 2])
    let w = random([1, 3 * hidden, 2], seed: 21)
    let r = random([1, 3 * hidden, hidden], seed: 22)
    let b = random([1, 6 * hidden], seed: 23)
    let (_, values) = try DecomposeTests.decomposeAndRun(
      "GRU", version: 22, x: x, extra: [w, r, b],
      outputs: [TensorType(.float32, [1, 1, 1, hidden]), TensorType(.float32, [1, 1, hidden])],
      attributes: ["hidden_size": .int(Int64(hidden)), "linear_before_reset": .int(1)])
    let (wv, bv, xv) = (w.doubles(), b.doubles(), x.doubles())
    func projection(_ row: Int) -> Double { wv[row * 2] * xv[0] + wv[row * 2 + 1] * xv[1] + bv[row] }
    func sigmoid(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
    // With h = 0, R h = 0: z = sigmoid(Wz x + Wbz + Rbz), r likewise, n = tanh(Wn x + Wbn + r * Rbn).
    let expected = (0..<hidden).map { j -> Double in
      let z = sigmoid(projection(j) + bv[3 * hidden + j])
      let reset = sigmoid(projection(hidden + j) + bv[4 * hidden + j])
      let candidate = tanh(projection(2 * hidden + j) + reset * bv[5 * hidden + j])
      return (1 - z) * candidate
    }
    expectClose(values[0], expected)
    expectClose(values[1], expected)
  }
}
