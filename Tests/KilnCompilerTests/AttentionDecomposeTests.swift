import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Attention decomposition")
struct AttentionDecomposeTests {
  /// softmax(q k^T * scale + bias) v for one head: q [s, d], k [l, d], v [l, e]; a row whose
  /// bias is all -inf gives zeros.
  static func reference(_ q: [Double], _ k: [Double], _ v: [Double], s: Int, l: Int, d: Int, e: Int, bias: [Double])
    -> [Double]
  {
    let scale = 1 / Double(d).squareRoot()
    var out: [Double] = []
    for i in 0..<s {
      var scores: [Double] = []
      for j in 0..<l {
        var dot = 0.0
        for t in 0..<d { dot += q[i * d + t] * k[j * d + t] }
        scores.append(dot * scale + bias[i * l + j])
      }
      let m = scores.max() ?? 0
      if m == -.infinity {
        out += Array(repeating: 0, count: e)
        continue
      }
      let w = scores.map { exp($0 - m) }
      let sum = w.reduce(0, +)
      for c in 0..<e {
        var total = 0.0
        for j in 0..<l { total += w[j] / sum * v[j * e + c] }
        out.append(total)
      }
    }
    return out
  }

  @Test func groupedHeadsWithABoolMaskAndAFullyMaskedRow() throws {
    // Q [1, 2, 3, 4] (2 query heads), K and V [1, 1, 5, 4] (one shared KV head).
    let q = random([1, 2, 3, 4], seed: 11)
    let k = random([1, 1, 5, 4], seed: 12)
    let v = random([1, 1, 5, 4], seed: 13)
    // Row 1 sees nothing; the mask is 4 wide and padded (hidden) to the 5 keys.
    let flags: [Bool] = [true, false, true, true, false, false, false, false, true, true, true, true]
    let mask = TensorData(flags, shape: [3, 4])
    var graph = Graph(opsetImports: ["": 23])
    let query = graph.addInput(name: "q", type: q.type)
    let key = graph.addConstant(k, name: "k")
    let value = graph.addConstant(v, name: "v")
    let maskID = graph.addConstant(mask, name: "mask")
    let results = graph.addNode(
      "Attention", version: 23, name: "", inputs: [query, key, value, maskID],
      outputTypes: [TensorType(.float32, [1, 2, 3, 4])])
    graph.outputs = results
    let decomposed = try Decompose.run(graph)
    try decomposed.verify()
    #expect(!decomposed.nodes.contains { $0.op == "Attention" })
    let values = try LoweringHarness.evaluate(decomposed, inputs: [query: q.doubles()])
    let got = values[results[0]] ?? []

    var bias: [Double] = []
    for i in 0..<3 {
      for j in 0..<5 { bias.append(j < 4 && flags[i * 4 + j] ? 0 : -.infinity) }
    }
    var expected: [Double] = []
    for head in 0..<2 {
      let qh = Array(q.doubles()[(head * 12)..<((head + 1) * 12)])
      expected += Self.reference(qh, k.doubles(), v.doubles(), s: 3, l: 5, d: 4, e: 4, bias: bias)
    }
    expectClose(got, expected)
    #expect(got[4..<8].allSatisfy { $0 == 0 }, "the fully masked row is zero, not NaN")
  }

  @Test func causalThreeDimensionalInputs() throws {
    // Q, K, V [1, 3, 4] with one head each: Y is [1, 3, 4].
    let q = random([1, 3, 4], seed: 21)
    let k = random([1, 3, 4], seed: 22)
    let v = random([1, 3, 4], seed: 23)
    var graph = Graph(opsetImports: ["": 23])
    let query = graph.addInput(name: "q", type: q.type)
    let key = graph.addConstant(k, name: "k")
    let value = graph.addConstant(v, name: "v")
    let results = graph.addNode(
      "Attention", version: 23, name: "attention", inputs: [query, key, value],
      outputTypes: [TensorType(.float32, [1, 3, 4])],
      attributes: ["q_num_heads": .int(1), "kv_num_heads": .int(1), "is_causal": .int(1)])
    graph.outputs = results
    let decomposed = try Decompose.run(graph)
    try decomposed.verify()
    let values = try LoweringHarness.evaluate(decomposed, inputs: [query: q.doubles()])
    let bias = (0..<3).flatMap { i in (0..<3).map { j in j > i ? -Double.infinity : 0 } }
    let expected = Self.reference(q.doubles(), k.doubles(), v.doubles(), s: 3, l: 3, d: 4, e: 4, bias: bias)
    expectClose(values[results[0]] ?? [], expected)
  }

  @Test func errorsNameUnnamedNodesAfterTheirFirstOutput() throws {
    var graph = Graph(opsetImports: ["": 22])
    let x = graph.addInput(name: "x", type: TensorType(.float32, [2]))
    graph.outputs = graph.addNode(
      "Acos", version: 22, name: "", inputs: [x], outputTypes: [TensorType(.float32, [2])], outputNames: ["y"])
    let error = LoweringError(graph.nodes[0], "boom", in: graph)
    #expect(error.message == "node 'y' (Acos, opset 22): boom")
    #expect(LoweringError(graph.nodes[0], "boom").message == "node '' (Acos, opset 22): boom")
  }
}
