import KilnIR

/// Rewrites ops whose per-element lowering would nest one reduction inside another (softmax,
/// the normalisations, stable log-sum-exp) into primitive ONNX nodes that each lower on their
/// own: ReduceMax/ReduceSum/ReduceMean (opset 18 form, axes as a constant input), Sub, Exp, Div,
/// Log, Mul, Add, Sqrt (opsets 13/14), ArgMax, Equal, Cast, Reshape, and for Attention
/// Transpose, Concat, Expand, MatMul, Tanh, Where, Pad, and for the losses GatherElements,
/// Gather and Neg. LinearAttention's recurrence is unrolled over the sequence (one Gather,
/// MatMul, Mul, Add... step per token, in float32 as in the reference), and
/// CausalConvWithState becomes Concat/Pad, a depthwise Conv, Sigmoid, Mul and Slice.
///
/// Replaced nodes' outputs keep their value ids, so consumers and graph outputs are unchanged;
/// new values and nodes get unique names derived from the original node's name. Float
/// arithmetic stays in the input's dtype.
public enum Decompose {
  /// Ops this pass rewrites.
  public static let rewrittenOps: Set<String> = ([
    "Softmax", "LogSoftmax", "LayerNormalization", "InstanceNormalization", "MeanVarianceNormalization", "Hardmax",
    "RMSNormalization", "GroupNormalization", "LpNormalization", "ReduceLogSumExp", "Attention",
    "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "LinearAttention", "CausalConvWithState", "TopK",
  ] as Set<String>).union(quantizedOps).union(recurrentOps)

  public static func run(_ graph: Graph) throws -> Graph {
    var rewriter = Rewriter(graph: graph)
    rewriter.graph.nodes = []
    for node in graph.nodes {
      guard node.domain == Node.defaultDomain || node.domain == "ai.onnx", rewrittenOps.contains(node.op) else {
        rewriter.graph.nodes.append(node)
        continue
      }
      rewriter.source = node
      switch node.op {
      case "Softmax", "LogSoftmax": try rewriter.softmax()
      case "LayerNormalization": try rewriter.layerNormalization()
      case "InstanceNormalization": try rewriter.instanceNormalization()
      case "MeanVarianceNormalization": try rewriter.meanVarianceNormalization()
      case "Hardmax": try rewriter.hardmax()
      case "RMSNormalization": try rewriter.rmsNormalization()
      case "GroupNormalization": try rewriter.groupNormalization()
      case "LpNormalization": try rewriter.lpNormalization()
      case "ReduceLogSumExp": try rewriter.reduceLogSumExp()
      case "Attention": try rewriter.attention()
      case "NegativeLogLikelihoodLoss":
        try rewriter.negativeLogLikelihood(
          logProbabilities: try rewriter.input(0), target: try rewriter.input(1), weight: rewriter.optionalInput(2))
      case "SoftmaxCrossEntropyLoss": try rewriter.softmaxCrossEntropy()
      case "LinearAttention": try rewriter.linearAttention()
      case "CausalConvWithState": try rewriter.causalConvolution()
      case "TopK": try rewriter.topK()
      case _ where quantizedOps.contains(node.op): try rewriter.quantized()
      case _ where recurrentOps.contains(node.op): try rewriter.recurrent()
      default: rewriter.graph.nodes.append(node)
      }
    }
    return rewriter.graph
  }
}

/// Builds the replacement nodes of one source node at a time (rewrites of op families live in
/// `Decompose+<Family>.swift` extensions).
struct Rewriter {
  var graph: Graph
  var source = Node(op: "", version: 0, inputs: [], outputs: [])
  var names: Set<String>

  init(graph: Graph) {
    self.graph = graph
    names = Set(graph.values.map(\.name) + graph.nodes.map(\.name))
  }

  // MARK: Building

  func error(_ message: String) -> LoweringError { LoweringError(source, message, in: graph) }

  mutating func uniqueName(_ suffix: String) -> String {
    let base = "\(source.name.isEmpty ? source.op : source.name)/\(suffix)"
    var name = base
    var counter = 1
    while names.contains(name) {
      name = "\(base)_\(counter)"
      counter += 1
    }
    names.insert(name)
    return name
  }

  func type(_ id: ValueID) -> TensorType { graph.type(of: id) }

  func input(_ slot: Int) throws -> ValueID {
    guard slot < source.inputs.count, let id = source.inputs[slot] else {
      throw error("input \(slot) is required but missing")
    }
    return id
  }

  func optionalInput(_ slot: Int) -> ValueID? { slot < source.inputs.count ? source.inputs[slot] : nil }

  /// Appends a primitive node; its output is `output` when given (an existing value of the
  /// source node), else a new value of `type`.
  @discardableResult
  mutating func add(
    _ op: String, version: Int, _ inputs: [ValueID?], _ type: TensorType, attributes: [String: AttributeValue] = [:],
    output: ValueID? = nil
  ) -> ValueID {
    let id = output ?? graph.addValue(name: uniqueName(op.lowercased()), type: type)
    graph.nodes.append(
      Node(name: uniqueName(op), op: op, version: version, inputs: inputs, outputs: [id], attributes: attributes))
    return id
  }

  mutating func constant(_ data: TensorData, _ what: String) -> ValueID {
    graph.addConstant(data, name: uniqueName(what))
  }

  /// A scalar of `dtype`.
  mutating func scalar(_ value: Double, _ dtype: DType, _ what: String) -> ValueID {
    constant(TensorData(type: TensorType(dtype, []), doubles: [value]), what)
  }

  mutating func axesConstant(_ axes: [Int]) -> ValueID {
    constant(TensorData(axes.map { Int64($0) }), "axes")
  }

  /// ReduceX over `axes` with keepdims = 1 (opset 18 form).
  @discardableResult
  mutating func reduce(_ op: String, _ x: ValueID, axes: [Int], output: ValueID? = nil) -> ValueID {
    var shape = type(x).shape
    for axis in axes { shape[axis] = 1 }
    return add(
      op, version: 18, [x, axesConstant(axes)], type(x).with(shape: shape), attributes: ["keepdims": .int(1)],
      output: output)
  }

  /// A broadcasting binary op (opset 14 form).
  @discardableResult
  mutating func binary(_ op: String, _ a: ValueID, _ b: ValueID, output: ValueID? = nil) -> ValueID {
    let shape = Broadcast.shape(type(a).shape, type(b).shape) ?? type(a).shape
    return add(op, version: 14, [a, b], TensorType(type(a).dtype, shape), output: output)
  }

  @discardableResult
  mutating func unary(_ op: String, _ x: ValueID, output: ValueID? = nil) -> ValueID {
    add(op, version: 13, [x], type(x), output: output)
  }

  @discardableResult
  mutating func reshape(_ x: ValueID, to shape: [Int], output: ValueID? = nil) -> ValueID {
    if output == nil, type(x).shape == shape { return x }
    let target = constant(TensorData(shape.map { Int64($0) }), "shape")
    return add("Reshape", version: 14, [x, target], type(x).with(shape: shape), output: output)
  }

  /// Converts `x` to `dtype` (into `output` when given).
  @discardableResult
  mutating func convert(_ x: ValueID, to dtype: DType, output: ValueID? = nil) -> ValueID {
    if type(x).dtype == dtype {
      return output.map { add("Identity", version: 13, [x], type(x), output: $0) } ?? x
    }
    return add(
      "Cast", version: 13, [x], type(x).with(dtype: dtype), attributes: ["to": .int(Int64(dtype.onnxCode))],
      output: output)
  }

  /// A per-channel tensor [C] viewed as [C, 1, ..., 1] so that it broadcasts over axis 1 of a
  /// rank-`rank` tensor: constants are reshaped in place, run-time values through Reshape.
  mutating func channelView(_ x: ValueID, rank: Int) -> ValueID {
    let shape = type(x).shape + Array(repeating: 1, count: Swift.max(rank - 2, 0))
    if let data = graph.constants[x], let reshaped = data.reshaped(to: shape) {
      return constant(reshaped, "channel_view")
    }
    return reshape(x, to: shape)
  }

  func intAttribute(_ name: String, default fallback: Int) throws -> Int {
    switch source.attributes[name] {
    case nil: return fallback
    case .int(let value): return Int(value)
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected int")
    }
  }

  func stringAttribute(_ name: String, default fallback: String) throws -> String {
    switch source.attributes[name] {
    case nil: return fallback
    case .string(let value): return value
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected string")
    }
  }

  func floatAttribute(_ name: String, default fallback: Double) throws -> Double {
    switch source.attributes[name] {
    case nil: return fallback
    case .float(let value): return Double(value)
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected float")
    }
  }

  func normalizedAxis(_ axis: Int, rank: Int) throws -> Int {
    guard axis >= -rank, axis < rank else { throw error("axis \(axis) is out of range for rank \(rank)") }
    return axis < 0 ? axis + rank : axis
  }

  /// (x - mean) and sqrt(mean((x - mean)^2) + epsilon) over `axes`, with the mean.
  mutating func standardize(_ x: ValueID, axes: [Int], epsilon: Double) -> (
    centered: ValueID, deviation: ValueID, mean: ValueID
  ) {
    let dtype = type(x).dtype
    let mean = reduce("ReduceMean", x, axes: axes)
    let centered = binary("Sub", x, mean)
    let variance = reduce("ReduceMean", binary("Mul", centered, centered), axes: axes)
    let deviation = unary("Sqrt", binary("Add", variance, scalar(epsilon, dtype, "epsilon")))
    return (centered, deviation, mean)
  }

  @discardableResult
  mutating func transpose(_ x: ValueID, _ perm: [Int], output: ValueID? = nil) -> ValueID {
    let shape = perm.map { type(x).shape[$0] }
    return add(
      "Transpose", version: 13, [x], type(x).with(shape: shape), attributes: ["perm": .ints(perm.map { Int64($0) })],
      output: output)
  }

  /// Whether output `slot` of the source node exists (the importer drops unused ones).
  func hasOutput(_ slot: Int) -> Bool { slot < source.outputs.count }

  // MARK: Rewrites

  /// Softmax/LogSoftmax: exp(x - max) / sum. Before opset 13 the input is coerced to 2-D at
  /// `axis` (every axis from `axis` on is normalised together).
  mutating func softmax() throws {
    let x = try input(0)
    let rank = type(x).rank
    guard rank > 0 else { throw error("input must have rank 1 or more") }
    let axis = try normalizedAxis(try intAttribute("axis", default: source.version < 13 ? 1 : -1), rank: rank)
    let axes = source.version < 13 ? Array(axis..<rank) : [axis]
    let maximum = reduce("ReduceMax", x, axes: axes)
    let shifted = binary("Sub", x, maximum)
    let exponentials = unary("Exp", shifted)
    let sum = reduce("ReduceSum", exponentials, axes: axes)
    if source.op == "Softmax" {
      binary("Div", exponentials, sum, output: source.outputs[0])
    } else {
      binary("Sub", shifted, unary("Log", sum), output: source.outputs[0])
    }
  }

  /// LayerNormalization: (x - mean) / sqrt(var + epsilon) * scale + bias over the axes from
  /// `axis` on; the optional Mean and InvStdDev outputs are produced too.
  mutating func layerNormalization() throws {
    let x = try input(0)
    let rank = type(x).rank
    let axis = try normalizedAxis(try intAttribute("axis", default: -1), rank: rank)
    let epsilon = try floatAttribute("epsilon", default: 1e-5)
    let (centered, deviation, mean) = standardize(x, axes: Array(axis..<rank), epsilon: epsilon)
    let normalized = binary("Div", centered, deviation)
    let scaled = try binary("Mul", normalized, input(1), output: optionalInput(2) == nil ? source.outputs[0] : nil)
    if let bias = optionalInput(2) { binary("Add", scaled, bias, output: source.outputs[0]) }
    if hasOutput(1) { convert(mean, to: type(source.outputs[1]).dtype, output: source.outputs[1]) }
    if hasOutput(2) {
      let inverse = unary("Reciprocal", deviation)
      convert(inverse, to: type(source.outputs[2]).dtype, output: source.outputs[2])
    }
  }

  /// InstanceNormalization: per (n, c) over the spatial axes, then per-channel scale and bias.
  mutating func instanceNormalization() throws {
    let x = try input(0)
    let rank = type(x).rank
    guard rank >= 3 else { throw error("input must have rank 3 or more, got \(type(x).shape)") }
    let epsilon = try floatAttribute("epsilon", default: 1e-5)
    let (centered, deviation, _) = standardize(x, axes: Array(2..<rank), epsilon: epsilon)
    let normalized = binary("Div", centered, deviation)
    let scaled = binary("Mul", normalized, channelView(try input(1), rank: rank))
    binary("Add", scaled, channelView(try input(2), rank: rank), output: source.outputs[0])
  }

  /// MeanVarianceNormalization: (x - mean) / (sqrt(var) + 1e-9) over `axes` (default 0, 2, 3),
  /// as in the ONNX function body.
  mutating func meanVarianceNormalization() throws {
    let x = try input(0)
    let rank = type(x).rank
    let rawAxes: [Int]
    switch source.attributes["axes"] {
    case nil: rawAxes = [0, 2, 3]
    case .ints(let values): rawAxes = values.map { Int($0) }
    case let other?: throw error("attribute 'axes' is \(other.kindName), expected ints")
    }
    let axes = try rawAxes.map { try normalizedAxis($0, rank: rank) }
    let (centered, deviation, _) = standardize(x, axes: axes, epsilon: 0)
    let padded = binary("Add", deviation, scalar(1e-9, type(x).dtype, "epsilon"))
    binary("Div", centered, padded, output: source.outputs[0])
  }

  /// Hardmax: 1 at the first maximum along `axis` (the 2-D coercion before opset 13), else 0.
  mutating func hardmax() throws {
    let x = try input(0)
    let shape = type(x).shape
    let rank = shape.count
    let axis = try normalizedAxis(try intAttribute("axis", default: source.version < 13 ? 1 : -1), rank: rank)
    var working = x
    var reduced = axis
    if source.version < 13 {
      working = reshape(x, to: [shape[..<axis].reduce(1, *), shape[axis...].reduce(1, *)])
      reduced = 1
    }
    let workingShape = type(working).shape
    var indexShape = workingShape
    indexShape[reduced] = 1
    let best = add(
      "ArgMax", version: 13, [working], TensorType(.int64, indexShape),
      attributes: ["axis": .int(Int64(reduced)), "keepdims": .int(1)])
    var iotaShape = Array(repeating: 1, count: workingShape.count)
    iotaShape[reduced] = workingShape[reduced]
    let iota = constant(TensorData((0..<workingShape[reduced]).map { Int64($0) }, shape: iotaShape), "iota")
    let hits = add("Equal", version: 13, [best, iota], TensorType(.bool, workingShape))
    if source.version < 13 {
      reshape(convert(hits, to: type(x).dtype), to: shape, output: source.outputs[0])
    } else {
      convert(hits, to: type(x).dtype, output: source.outputs[0])
    }
  }

  /// RMSNormalization: x / sqrt(mean(x^2) + epsilon) * scale over the axes from `axis` on.
  mutating func rmsNormalization() throws {
    let x = try input(0)
    let rank = type(x).rank
    let axis = try normalizedAxis(try intAttribute("axis", default: -1), rank: rank)
    let epsilon = try floatAttribute("epsilon", default: 1e-5)
    let meanSquare = reduce("ReduceMean", binary("Mul", x, x), axes: Array(axis..<rank))
    let deviation = unary("Sqrt", binary("Add", meanSquare, scalar(epsilon, type(x).dtype, "epsilon")))
    binary("Mul", binary("Div", x, deviation), try input(1), output: source.outputs[0])
  }

  /// GroupNormalization: statistics per (n, group) over the group's channels and the spatial
  /// axes, then per-channel scale and bias (per group before opset 21).
  mutating func groupNormalization() throws {
    let x = try input(0)
    let shape = type(x).shape
    let rank = shape.count
    guard rank >= 3 else { throw error("input must have rank 3 or more, got \(shape)") }
    let groups = try intAttribute("num_groups", default: 0)
    guard groups > 0, shape[1] % groups == 0 else {
      throw error("attribute 'num_groups' \(groups) does not divide the \(shape[1]) channels")
    }
    let epsilon = try floatAttribute("epsilon", default: 1e-5)
    let grouped = reshape(x, to: [shape[0], groups, shape[1...].reduce(1, *) / groups])
    let (centered, deviation, _) = standardize(grouped, axes: [2], epsilon: epsilon)
    let normalized = reshape(binary("Div", centered, deviation), to: shape)
    var parameters: [ValueID] = []
    for slot in [1, 2] {
      var parameter = try input(slot)
      let count = type(parameter).shape.reduce(1, *)
      if count == groups && groups != shape[1] {
        // Per-group parameters (opset 18): repeat each over its group's channels.
        let perGroup = reshape(parameter, to: [groups, 1])
        let shapeInput = constant(TensorData([Int64(groups), Int64(shape[1] / groups)]), "shape")
        let expanded = add(
          "Expand", version: 13, [perGroup, shapeInput], type(parameter).with(shape: [groups, shape[1] / groups]))
        parameter = reshape(expanded, to: [shape[1]])
      }
      parameters.append(channelView(parameter, rank: rank))
    }
    binary("Add", binary("Mul", normalized, parameters[0]), parameters[1], output: source.outputs[0])
  }

  /// LpNormalization: x / ||x||_p along `axis` (p is 1 or 2); an all-zero slice stays zero.
  mutating func lpNormalization() throws {
    let x = try input(0)
    let rank = type(x).rank
    let axis = try normalizedAxis(try intAttribute("axis", default: -1), rank: rank)
    let p = try intAttribute("p", default: 2)
    guard p == 1 || p == 2 else { throw error("attribute 'p' must be 1 or 2, got \(p)") }
    let norm = reduce(p == 1 ? "ReduceL1" : "ReduceL2", x, axes: [axis])
    // A zero norm divides by 1 (the slice is all zeros), as in the reference.
    let dtype = type(x).dtype
    let zero = add("Equal", version: 13, [norm, scalar(0, dtype, "zero")], type(norm).with(dtype: .bool))
    let divisor = add("Where", version: 16, [zero, scalar(1, dtype, "one"), norm], type(norm))
    binary("Div", x, divisor, output: source.outputs[0])
  }

  /// NegativeLogLikelihoodLoss: -input[n, target[n, d...], d...] * weight[target], 0 where the
  /// target is `ignore_index`; reduced by `none`, `sum` or `mean` (weighted by the weights
  /// taken, or counted over the targets not ignored).
  mutating func negativeLogLikelihood(logProbabilities: ValueID, target: ValueID, weight: ValueID?) throws {
    let dtype = type(logProbabilities).dtype
    let shape = type(logProbabilities).shape
    let targetType = type(target)
    guard shape.count >= 2, targetType.shape == [shape[0]] + Array(shape.dropFirst(2)) else {
      throw error("target shape \(targetType.shape) does not fit input shape \(shape)")
    }
    let reduction = try stringAttribute("reduction", default: "mean")
    guard ["none", "sum", "mean"].contains(reduction) else {
      throw error("attribute 'reduction' must be none, sum or mean, got '\(reduction)'")
    }
    var index = target
    var kept: ValueID?
    if case .int(let ignored)? = source.attributes["ignore_index"] {
      let ignoredValue = constant(TensorData(type: TensorType(targetType.dtype, []), int64s: [ignored]), "ignore_index")
      let hit = add("Equal", version: 13, [target, ignoredValue], targetType.with(dtype: .bool))
      let zeroIndex = constant(TensorData(type: TensorType(targetType.dtype, []), int64s: [0]), "zero_index")
      index = add("Where", version: 16, [hit, zeroIndex, target], targetType)
      kept = add("Where", version: 16, [hit, scalar(0, dtype, "zero"), scalar(1, dtype, "one")], TensorType(dtype, targetType.shape))
    }
    var indexShape = targetType.shape
    indexShape.insert(1, at: 1)
    let picked = add(
      "GatherElements", version: 13, [logProbabilities, reshape(index, to: indexShape)], TensorType(dtype, indexShape),
      attributes: ["axis": .int(1)])
    var weights: ValueID?
    if let weight {
      weights = add("Gather", version: 13, [weight, index], TensorType(dtype, targetType.shape), attributes: ["axis": .int(0)])
    }
    if let kept { weights = weights.map { binary("Mul", $0, kept) } ?? kept }
    var loss = unary("Neg", reshape(picked, to: targetType.shape))
    let output = source.outputs[0]
    if reduction == "none" {
      if let weights {
        binary("Mul", loss, weights, output: output)
      } else {
        add("Identity", version: 13, [loss], type(loss), output: output)
      }
      return
    }
    if let weights { loss = binary("Mul", loss, weights) }
    let all = Array(0..<targetType.rank)
    let total = reduce("ReduceSum", loss, axes: all)
    if reduction == "sum" {
      reshape(total, to: [], output: output)
    } else if let weights {
      reshape(binary("Div", total, reduce("ReduceSum", weights, axes: all)), to: [], output: output)
    } else {
      reshape(reduce("ReduceMean", loss, axes: all), to: [], output: output)
    }
  }

  /// SoftmaxCrossEntropyLoss: NegativeLogLikelihoodLoss of LogSoftmax over axis 1; the
  /// optional second output is the log-probabilities.
  mutating func softmaxCrossEntropy() throws {
    let scores = try input(0)
    let shape = type(scores).shape
    guard shape.count >= 2 else { throw error("scores must have rank 2 or more, got \(shape)") }
    let maximum = reduce("ReduceMax", scores, axes: [1])
    let shifted = binary("Sub", scores, maximum)
    let sum = reduce("ReduceSum", unary("Exp", shifted), axes: [1])
    let logProbabilities = binary("Sub", shifted, unary("Log", sum), output: hasOutput(1) ? source.outputs[1] : nil)
    try negativeLogLikelihood(logProbabilities: logProbabilities, target: try input(1), weight: optionalInput(2))
  }

  /// ReduceLogSumExp on floats: max + log(sum(exp(x - max))), which cannot overflow. Other
  /// forms (integers, noop_with_empty_axes with no axes) stay as they are.
  mutating func reduceLogSumExp() throws {
    let x = try input(0)
    let rank = type(x).rank
    var axes: [Int]?
    if source.version < 18 {
      if case .ints(let values) = source.attributes["axes"] { axes = values.map { Int($0) } }
    } else if let id = optionalInput(1) {
      guard let data = graph.constants[id] else { throw error("input 1 (axes) must be a compile-time constant") }
      axes = data.int64s().map { Int($0) }
    }
    let noop = try intAttribute("noop_with_empty_axes", default: 0) != 0
    guard type(x).dtype.isFloat, !(noop && (axes ?? []).isEmpty) else {
      graph.nodes.append(source)
      return
    }
    let normalized = try (axes.flatMap { $0.isEmpty ? nil : $0 } ?? Array(0..<rank)).map {
      try normalizedAxis($0, rank: rank)
    }
    let maximum = reduce("ReduceMax", x, axes: normalized)
    let sum = reduce("ReduceSum", unary("Exp", binary("Sub", x, maximum)), axes: normalized)
    let keepDims = try intAttribute("keepdims", default: 1) != 0
    let output = source.outputs[0]
    if keepDims {
      binary("Add", unary("Log", sum), maximum, output: output)
    } else {
      reshape(binary("Add", unary("Log", sum), maximum), to: type(output).shape, output: output)
    }
  }
}
