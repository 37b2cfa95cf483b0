import Foundation
import KilnCompiler
import KilnIR
import Testing

/// RotaryEmbedding and TensorScatter lowerings, LinearAttention and CausalConvWithState
/// decompositions, each against a direct Swift transcription of the ONNX reference.
@Suite("Sequence-model ops")
struct SequenceOpTests {
  // MARK: RotaryEmbedding

  /// The reference on x [B, S, H, D] (token-major), caches already picked per [b, s]:
  /// cos(b, s, i), sin(b, s, i).
  static func rotary(
    _ x: [Double], shape: [Int], rotated: Int, interleaved: Bool, cos: (Int, Int, Int) -> Double,
    sin: (Int, Int, Int) -> Double
  ) -> [Double] {
    var out = x
    let half = rotated / 2
    forEachIndex(Array(shape.dropLast())) { index in
      let (b, s) = (index[0], index[1])
      let base = offset(index, Array(shape.dropLast())) * shape[3]
      for i in 0..<half {
        let (p1, p2) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
        let (x1, x2) = (x[base + p1], x[base + p2])
        out[base + p1] = cos(b, s, i) * x1 - sin(b, s, i) * x2
        out[base + p2] = sin(b, s, i) * x1 + cos(b, s, i) * x2
      }
    }
    return out
  }

  /// [B, H, S, D] -> [B, S, H, D] and back (the same swap of axes 1 and 2).
  static func swapHeadsAndTokens(_ x: [Double], _ shape: [Int]) -> [Double] {
    var out = x
    forEachIndex(shape) { i in
      out[offset([i[0], i[2], i[1], i[3]], [shape[0], shape[2], shape[1], shape[3]])] = x[offset(i, shape)]
    }
    return out
  }

  @Test func rotaryInterleavedPartialWithPositionIDs() throws {
    // X [2, 2, 3, 6] (B, H, S, D), rotary_embedding_dim 4, caches [5, 2] picked by position.
    let x = random([2, 2, 3, 6], seed: 1)
    let cos = random([5, 2], seed: 2)
    let sin = random([5, 2], seed: 3)
    let positions: [Int64] = [4, 0, 2, 1, 3, 3]
    let got = try LoweringHarness.run1(
      "RotaryEmbedding", version: 23,
      inputs: [x, cos, sin, TensorData(positions, shape: [2, 3])], output: x.type,
      attributes: ["interleaved": .int(1), "rotary_embedding_dim": .int(4)])
    let picked = { (table: [Double], b: Int, s: Int, i: Int) in table[Int(positions[b * 3 + s]) * 2 + i] }
    let tokenMajor = Self.rotary(
      Self.swapHeadsAndTokens(x.doubles(), [2, 2, 3, 6]), shape: [2, 3, 2, 6], rotated: 4, interleaved: true,
      cos: { picked(cos.doubles(), $0, $1, $2) }, sin: { picked(sin.doubles(), $0, $1, $2) })
    expectClose(got, Self.swapHeadsAndTokens(tokenMajor, [2, 3, 2, 6]))
  }

  @Test func rotaryThreeDimensionalHalvesWithoutPositionIDs() throws {
    // X [2, 3, 8] with num_heads 2 (head size 4), caches [2, 3, 2] per batch and token.
    let x = random([2, 3, 8], seed: 4)
    let cos = random([2, 3, 2], seed: 5)
    let sin = random([2, 3, 2], seed: 6)
    let got = try LoweringHarness.run1(
      "RotaryEmbedding", version: 23, inputs: [x, cos, sin], output: x.type, attributes: ["num_heads": .int(2)])
    let expected = Self.rotary(
      x.doubles(), shape: [2, 3, 2, 4], rotated: 4, interleaved: false,
      cos: { cos.doubles()[($0 * 3 + $1) * 2 + $2] }, sin: { sin.doubles()[($0 * 3 + $1) * 2 + $2] })
    expectClose(got, expected)
  }

  // MARK: TensorScatter

  @Test(arguments: ["linear", "circular"])
  func tensorScatterWritesFromEachBatchsIndex(mode: String) throws {
    // Cache [2, 5, 2], update [2, 3, 2] along axis 1; batch 1 starts at 3 (wraps when circular).
    let cache = iota([2, 5, 2])
    let update = iota([2, 3, 2], offset: 100)
    let got = try LoweringHarness.run1(
      "TensorScatter", version: 24, inputs: [cache, update, TensorData([Int64(1), 3])], output: cache.type,
      attributes: ["mode": .string(mode), "axis": .int(1)])
    var expected = cache.doubles()
    for (b, start) in [(0, 1), (1, 3)] {
      for j in 0..<3 {
        let position = start + j
        guard mode == "circular" || position < 5 else { continue }
        for d in 0..<2 { expected[(b * 5 + position % 5) * 2 + d] = update.doubles()[(b * 3 + j) * 2 + d] }
      }
    }
    #expect(got == expected)
  }

  // MARK: LinearAttention

  /// The reference recurrence: x [B, T, H * D] packed; decay per key dimension; beta per head.
  static func linearAttention(
    q: [Double], k: [Double], v: [Double], past: [Double]?, decay: [Double]?, beta: [Double]?, batch: Int,
    tokens: Int, queryHeads: Int, kvHeads: Int, keySize: Int, valueSize: Int
  ) -> (output: [Double], state: [Double]) {
    let scale = 1 / Double(keySize).squareRoot()
    let group = queryHeads / kvHeads
    var state = past ?? Array(repeating: 0, count: batch * kvHeads * keySize * valueSize)
    var output = Array(repeating: 0.0, count: batch * tokens * queryHeads * valueSize)
    for b in 0..<batch {
      for t in 0..<tokens {
        for h in 0..<kvHeads {
          let s = (b * kvHeads + h) * keySize * valueSize
          let key = (0..<keySize).map { k[(b * tokens + t) * kvHeads * keySize + h * keySize + $0] }
          var val = (0..<valueSize).map { v[(b * tokens + t) * kvHeads * valueSize + h * valueSize + $0] }
          if let decay {
            for d in 0..<keySize {
              let g = exp(decay[(b * tokens + t) * kvHeads * keySize + h * keySize + d])
              for m in 0..<valueSize { state[s + d * valueSize + m] *= g }
            }
          }
          if let beta {
            let rate = beta[(b * tokens + t) * kvHeads + h]
            for m in 0..<valueSize {
              let retrieved = (0..<keySize).reduce(0.0) { $0 + state[s + $1 * valueSize + m] * key[$1] }
              val[m] = rate * (val[m] - retrieved)
            }
          }
          for d in 0..<keySize {
            for m in 0..<valueSize { state[s + d * valueSize + m] += key[d] * val[m] }
          }
          for g in 0..<group {
            let head = h * group + g
            let qBase = (b * tokens + t) * queryHeads * keySize + head * keySize
            for m in 0..<valueSize {
              let dot = (0..<keySize).reduce(0.0) { $0 + q[qBase + $1] * state[s + $1 * valueSize + m] }
              output[(b * tokens + t) * queryHeads * valueSize + head * valueSize + m] = scale * dot
            }
          }
        }
      }
    }
    return (output, state)
  }

  /// Decomposes and evaluates one LinearAttention node over constant operands.
  static func runLinearAttention(
    _ operands: [TensorData?], outputs: [TensorType], attributes: [String: AttributeValue]
  ) throws -> [[Double]] {
    var graph = Graph(opsetImports: ["": 27])
    let ids = operands.enumerated().map { slot, data in data.map { graph.addConstant($0, name: "in\(slot)") } }
    let results = graph.addNode(
      "LinearAttention", version: 27, name: "la", inputs: ids, outputTypes: outputs, attributes: attributes)
    graph.outputs = results
    let decomposed = try Decompose.run(graph)
    try decomposed.verify()
    #expect(!decomposed.nodes.contains { $0.op == "LinearAttention" })
    let values = try LoweringHarness.evaluate(decomposed)
    return results.map { values[$0] ?? [] }
  }

  @Test func gatedDeltaWithGroupedQueriesAndAPastState() throws {
    // B 1, T 3, 4 query heads over 2 KV heads, d_k 2, d_v 3.
    let (q, k, v) = (random([1, 3, 8], seed: 7), random([1, 3, 4], seed: 8), random([1, 3, 6], seed: 9))
    let past = random([1, 2, 2, 3], seed: 10)
    let decay = random([1, 3, 4], seed: 11)
    let beta = random([1, 3, 2], seed: 12)
    let got = try Self.runLinearAttention(
      [q, k, v, past, decay, beta],
      outputs: [TensorType(.float32, [1, 3, 12]), TensorType(.float32, [1, 2, 2, 3])],
      attributes: ["q_num_heads": .int(4), "kv_num_heads": .int(2)])
    let expected = Self.linearAttention(
      q: q.doubles(), k: k.doubles(), v: v.doubles(), past: past.doubles(), decay: decay.doubles(),
      beta: beta.doubles(), batch: 1, tokens: 3, queryHeads: 4, kvHeads: 2, keySize: 2, valueSize: 3)
    expectClose(got[0], expected.output)
    expectClose(got[1], expected.state)
  }

  @Test func linearRuleWithoutAPastState() throws {
    let (q, k, v) = (random([2, 2, 4], seed: 13), random([2, 2, 4], seed: 14), random([2, 2, 4], seed: 15))
    let got = try Self.runLinearAttention(
      [q, k, v], outputs: [TensorType(.float32, [2, 2, 4]), TensorType(.float32, [2, 2, 2, 2])],
      attributes: ["q_num_heads": .int(2), "kv_num_heads": .int(2), "update_rule": .string("linear")])
    let expected = Self.linearAttention(
      q: q.doubles(), k: k.doubles(), v: v.doubles(), past: nil, decay: nil, beta: nil, batch: 2, tokens: 2,
      queryHeads: 2, kvHeads: 2, keySize: 2, valueSize: 2)
    expectClose(got[0], expected.output)
    expectClose(got[1], expected.state)
  }

  // MARK: CausalConvWithState

  @Test(arguments: [false, true])
  func causalConvolutionCarriesTheState(withPast: Bool) throws {
    // Input [1, 2, 3], kernel 3 per channel, bias, SiLU; the present state is the last 2
    // positions of past (or zeros) followed by the input.
    let x = random([1, 2, 3], seed: 16)
    let weight = random([2, 1, 3], seed: 17)
    let bias = TensorData([Float(0.5), -0.25])
    let past = withPast ? random([1, 2, 2], seed: 18) : nil
    var graph = Graph(opsetImports: ["": 27])
    let ids = [x, weight, bias, past].enumerated().map { slot, data in
      data.map { graph.addConstant($0, name: "in\(slot)") }
    }
    let results = graph.addNode(
      "CausalConvWithState", version: 27, name: "conv", inputs: ids,
      outputTypes: [x.type, TensorType(.float32, [1, 2, 2])], attributes: ["activation": .string("silu")])
    graph.outputs = results
    let decomposed = try Decompose.run(graph)
    try decomposed.verify()
    let values = try LoweringHarness.evaluate(decomposed)

    var output: [Double] = []
    var state: [Double] = []
    for c in 0..<2 {
      let padded = (past?.doubles()[(c * 2)..<(c * 2 + 2)].map { $0 } ?? [0, 0]) + x.doubles()[(c * 3)..<(c * 3 + 3)]
      for t in 0..<3 {
        let sum = (0..<3).reduce(bias.doubles()[c]) { $0 + weight.doubles()[c * 3 + $1] * padded[t + $1] }
        output.append(sum / (1 + exp(-sum)))
      }
      state += padded[3...]
    }
    expectClose(values[results[0]] ?? [], output)
    expectClose(values[results[1]] ?? [], state)
  }
}
