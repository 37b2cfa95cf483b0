import KilnIR

/// Folds an inference BatchNormalization into the Conv that feeds it.
///
/// Pattern: Conv(X, W, B?) whose only use is BatchNormalization(conv, scale, bias, mean, var)
/// with W, B and every BN parameter compile-time constants, W (and B) float32 or float64, BN in
/// inference form with one output. With f = scale / sqrt(var + epsilon) per output channel m,
/// the Conv becomes W'[m] = W[m] * f[m] and B'[m] = (B[m] - mean[m]) * f[m] + bias[m], writing
/// the BN's output; the BN node is removed. Anything else is left unchanged.
public enum FoldBatchNorm {
  public static func run(_ graph: Graph) -> Graph {
    var result = graph
    let producers = graph.producers()
    let consumers = graph.consumers()
    let outputs = Set(graph.outputs)
    var removed = Set<Int>()
    for (index, bn) in graph.nodes.enumerated() where bn.op == "BatchNormalization" && isDefaultDomain(bn) {
      guard bn.outputs.count == 1, bn.inputs.count == 5, let convOutput = bn.inputs[0],
        let producer = producers[convOutput], producer.slot == 0, !removed.contains(producer.node)
      else { continue }
      let conv = result.nodes[producer.node]
      guard conv.op == "Conv", isDefaultDomain(conv), conv.outputs.count == 1,
        consumers[convOutput]?.count == 1, !outputs.contains(convOutput)
      else { continue }
      if case .int(let training) = bn.attributes["training_mode"], training != 0 { continue }
      guard let folded = fold(conv: conv, bn: bn, graph: result) else { continue }
      let weight = result.addConstant(folded.weight, name: uniqueName(in: result, "\(conv.name)/folded_weight"))
      let bias = result.addConstant(folded.bias, name: uniqueName(in: result, "\(conv.name)/folded_bias"))
      var newConv = conv
      newConv.inputs = [conv.inputs[0], weight, bias]
      newConv.outputs = bn.outputs
      result.nodes[producer.node] = newConv
      removed.insert(index)
    }
    result.nodes = result.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    return result
  }

  private static func isDefaultDomain(_ node: Node) -> Bool {
    node.domain == Node.defaultDomain || node.domain == "ai.onnx"
  }

  private static func uniqueName(in graph: Graph, _ base: String) -> String {
    let taken = Set(graph.values.map(\.name))
    var name = base
    var counter = 1
    while taken.contains(name) {
      name = "\(base)_\(counter)"
      counter += 1
    }
    return name
  }

  /// The folded weight and bias, or nil when the pattern's data do not qualify.
  private static func fold(conv: Node, bn: Node, graph: Graph) -> (weight: TensorData, bias: TensorData)? {
    guard conv.inputs.count >= 2, let weightID = conv.inputs[1], let weight = graph.constants[weightID],
      weight.dtype == .float32 || weight.dtype == .float64, let filters = weight.shape.first, filters > 0
    else { return nil }
    var bias = [Double](repeating: 0, count: filters)
    if conv.inputs.count > 2, let biasID = conv.inputs[2] {
      guard let data = graph.constants[biasID], data.dtype == weight.dtype, data.elementCount == filters else {
        return nil
      }
      bias = data.doubles()
    }
    var parameters: [[Double]] = []
    for slot in 1...4 {
      guard let id = bn.inputs[slot], let data = graph.constants[id], data.dtype.isFloat, data.elementCount == filters
      else { return nil }
      parameters.append(data.doubles())
    }
    let epsilon: Double
    switch bn.attributes["epsilon"] {
    case nil: epsilon = 1e-5
    case .float(let value): epsilon = Double(value)
    default: return nil
    }
    let (scale, shift, mean, variance) = (parameters[0], parameters[1], parameters[2], parameters[3])
    let factors = (0..<filters).map { scale[$0] / (variance[$0] + epsilon).squareRoot() }
    let perFilter = weight.elementCount / filters
    let biases = (0..<filters).map { (bias[$0] - mean[$0]) * factors[$0] + shift[$0] }
    let folded: TensorData
    if weight.dtype == .float32 {
      // The common case, at memory speed: each product in double, rounded once, as below.
      var weights = weight.floats()
      weights.withUnsafeMutableBufferPointer { w in
        for m in 0..<filters {
          for i in (m * perFilter)..<((m + 1) * perFilter) { w[i] = Float(Double(w[i]) * factors[m]) }
        }
      }
      folded = TensorData(weights, shape: weight.type.shape)
    } else {
      var weights = weight.doubles()
      for m in 0..<filters {
        for i in (m * perFilter)..<((m + 1) * perFilter) { weights[i] *= factors[m] }
      }
      folded = TensorData(type: weight.type, doubles: weights)
    }
    return (folded, TensorData(type: TensorType(weight.dtype, [filters]), doubles: biases))
  }
}
