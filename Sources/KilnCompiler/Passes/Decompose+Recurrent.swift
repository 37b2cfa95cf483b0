import KilnIR

// RNN, GRU and LSTM unrolled over their static sequence length.
//
// Per direction, each gate's input projection X W_g^T + biases is one MatMul over the whole
// sequence; each step then adds H_{t-1} R_g^T, applies the activations and updates the state.
// Steps past a batch entry's sequence_lens keep the state and write zeros to Y (so Y_h is the
// state after the entry's last step, in both directions). `clip` bounds the gate
// pre-activations (the inputs of f and g); LSTM's `input_forget` couples the forget gate to
// 1 - input gate.

extension Decompose {
  /// The recurrent ops this pass unrolls.
  static let recurrentOps: Set<String> = ["RNN", "GRU", "LSTM"]
}

/// One activation function of a recurrent op, with its resolved alpha and beta.
struct RecurrentActivation {
  var name: String
  var alpha: Double
  var beta: Double

  /// Default (alpha, beta) of each supported activation, and how many of them it reads.
  static let parameters: [String: (alpha: Double, beta: Double, count: Int)] = [
    "relu": (0, 0, 0), "tanh": (0, 0, 0), "sigmoid": (0, 0, 0), "softsign": (0, 0, 0), "softplus": (0, 0, 0),
    "leakyrelu": (0.01, 0, 1), "thresholdedrelu": (1, 0, 1), "elu": (1, 0, 1),
    "affine": (1, 0, 2), "scaledtanh": (1, 1, 2), "hardsigmoid": (0.2, 0.5, 2),
  ]
}

/// What a recurrent node's step needs: its gates and activations.
struct RecurrentCell {
  var op: String
  /// Number of gate blocks stacked in W and R (RNN 1, GRU 3, LSTM 4).
  var gates: Int
  /// Activations per direction (RNN f; GRU f, g; LSTM f, g, h).
  var defaultActivations: [String]

  init?(_ op: String) {
    switch op {
    case "RNN": (gates, defaultActivations) = (1, ["Tanh"])
    case "GRU": (gates, defaultActivations) = (3, ["Sigmoid", "Tanh"])
    case "LSTM": (gates, defaultActivations) = (4, ["Sigmoid", "Tanh", "Tanh"])
    default: return nil
    }
    self.op = op
  }
}

/// One direction's per-gate operands: W_g^T [input, hidden], R_g^T [hidden, hidden] and the
/// bias halves [hidden].
struct DirectionWeights {
  var inputWeights: [ValueID]
  var recurrentWeights: [ValueID]
  var inputBiases: [ValueID]?
  var recurrentBiases: [ValueID]?
  /// LSTM peepholes (input, output, forget), each [hidden].
  var peepholes: [ValueID]?
}

extension Rewriter {
  /// Unrolls the source node, one of `Decompose.recurrentOps`.
  mutating func recurrent() throws {
    guard let cell = RecurrentCell(source.op) else { throw error("\(source.op) is not a recurrent op") }
    let x = try input(0)
    let dtype = type(x).dtype
    let layout = try intAttribute("layout", default: 0)
    let sequenceMajor = layout == 0 ? x : transpose(x, [1, 0, 2])
    let (sequence, batch) = (type(sequenceMajor).shape[0], type(sequenceMajor).shape[1])
    let hidden = type(try input(2)).shape[2]
    let direction = try stringAttribute("direction", default: "forward")
    let directions = direction == "bidirectional" ? 2 : 1
    let activations = try recurrentActivations(cell, directions: directions)
    let perDirection = cell.defaultActivations.count
    let masks = try sequenceMasks(sequence: sequence, batch: batch)
    if try intAttribute("input_forget", default: 0) != 0, cell.op != "LSTM" {
      throw error("attribute 'input_forget' applies to LSTM only")
    }
    let zeros = constant(TensorData(type: TensorType(dtype, [batch, hidden]), repeating: 0), "zeros")

    var steps: [[ValueID]] = []
    var finalStates: [ValueID] = []
    var finalCells: [ValueID] = []
    for d in 0..<directions {
      let weights = try directionWeights(cell, direction: d, hidden: hidden)
      let projections = try inputProjections(sequenceMajor, weights, cell: cell, hidden: hidden)
      var state = initialState(5, direction: d, layout: layout) ?? zeros
      var cellState = initialState(6, direction: d, layout: layout) ?? zeros
      var outputs = [ValueID](repeating: zeros, count: sequence)
      let reverse = direction == "reverse" || d == 1
      for t in reverse ? Array((0..<sequence).reversed()) : Array(0..<sequence) {
        let inputs = projections.map { gather($0, t) }
        var (next, nextCell) = try step(
          cell, inputs, state: state, cell: cellState, weights, f: Array(activations.suffix(from: d * perDirection)))
        if let mask = masks[t] {
          outputs[t] = add("Where", version: 16, [mask, next, zeros], type(next))
          next = add("Where", version: 16, [mask, next, state], type(next))
          nextCell = nextCell.map { add("Where", version: 16, [mask, $0, cellState], type($0)) }
        } else {
          outputs[t] = next
        }
        state = next
        cellState = nextCell ?? cellState
      }
      steps.append(outputs)
      finalStates.append(state)
      finalCells.append(cellState)
    }
    try writeRecurrentOutputs(steps: steps, finalStates: finalStates, finalCells: finalCells, layout: layout)
  }

  /// The activations of every direction, with alpha and beta consumed in order by the ones that
  /// take them (defaults where the lists run out).
  func recurrentActivations(_ cell: RecurrentCell, directions: Int) throws -> [RecurrentActivation] {
    let perDirection = cell.defaultActivations.count
    var names = cell.defaultActivations
    if case .strings(let given)? = source.attributes["activations"] {
      names = given
    } else if source.attributes["activations"] != nil {
      throw error("attribute 'activations' must be a list of strings")
    }
    if names.count == perDirection, directions == 2 { names += names }
    guard names.count == perDirection * directions else {
      throw error("attribute 'activations' has \(names.count) entries; \(perDirection * directions) are needed")
    }
    let alphas = try floatsAttribute("activation_alpha")
    let betas = try floatsAttribute("activation_beta")
    var (nextAlpha, nextBeta) = (0, 0)
    return try names.map { name in
      guard let defaults = RecurrentActivation.parameters[name.lowercased()] else {
        throw error("activation '\(name)' is not supported")
      }
      var activation = RecurrentActivation(name: name.lowercased(), alpha: defaults.alpha, beta: defaults.beta)
      if defaults.count >= 1 {
        if nextAlpha < alphas.count { activation.alpha = alphas[nextAlpha] }
        nextAlpha += 1
      }
      if defaults.count >= 2 {
        if nextBeta < betas.count { activation.beta = betas[nextBeta] }
        nextBeta += 1
      }
      return activation
    }
  }

  func floatsAttribute(_ name: String) throws -> [Double] {
    switch source.attributes[name] {
    case nil: return []
    case .floats(let values): return values.map { Double($0) }
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected floats")
    }
  }

  /// Per step, a [batch, 1] mask of the batch entries still inside their sequence (nil when
  /// all are, or sequence_lens is absent).
  mutating func sequenceMasks(sequence: Int, batch: Int) throws -> [ValueID?] {
    guard let id = optionalInput(4) else { return Array(repeating: nil, count: sequence) }
    guard let lengths = graph.constants[id]?.int64s() else { throw error("sequence_lens must be a constant") }
    guard lengths.allSatisfy({ $0 >= 0 && $0 <= sequence }) else {
      throw error("sequence_lens \(lengths) must lie in 0...\(sequence)")
    }
    return (0..<sequence).map { t -> ValueID? in
      let valid = lengths.map { Int64(t) < $0 }
      if valid.allSatisfy({ $0 }) { return nil }
      return constant(TensorData(valid, shape: [batch, 1]), "step_mask")
    }
  }

  /// Rows `rows` of `x[direction]` (a [directions, R, C] or [directions, R] operand).
  mutating func directionBlock(_ x: ValueID, direction d: Int, rows: Range<Int>) -> ValueID {
    let shape = type(x).shape
    let axes: [Int64] = [0, 1]
    let sliced = add(
      "Slice", version: 13,
      [
        x, constant(TensorData([Int64(d), Int64(rows.lowerBound)]), "starts"),
        constant(TensorData([Int64(d + 1), Int64(rows.upperBound)]), "ends"), constant(TensorData(axes), "axes"),
      ], type(x).with(shape: [1, rows.count] + shape.dropFirst(2)))
    return reshape(sliced, to: [rows.count] + shape.dropFirst(2))
  }

  /// W_g^T, R_g^T, bias halves and peepholes of direction `d`.
  mutating func directionWeights(_ cell: RecurrentCell, direction d: Int, hidden: Int) throws -> DirectionWeights {
    let (w, r) = (try input(1), try input(2))
    func gateRows(_ g: Int, offset: Int = 0) -> Range<Int> { (offset + g * hidden)..<(offset + (g + 1) * hidden) }
    var weights = DirectionWeights(inputWeights: [], recurrentWeights: [])
    for g in 0..<cell.gates {
      weights.inputWeights.append(transpose(directionBlock(w, direction: d, rows: gateRows(g)), [1, 0]))
      weights.recurrentWeights.append(transpose(directionBlock(r, direction: d, rows: gateRows(g)), [1, 0]))
    }
    if let b = optionalInput(3) {
      weights.inputBiases = (0..<cell.gates).map { directionBlock(b, direction: d, rows: gateRows($0)) }
      weights.recurrentBiases = (0..<cell.gates).map {
        directionBlock(b, direction: d, rows: gateRows($0, offset: cell.gates * hidden))
      }
    }
    if cell.op == "LSTM", let p = optionalInput(7) {
      weights.peepholes = (0..<3).map { directionBlock(p, direction: d, rows: gateRows($0)) }
    }
    return weights
  }

  /// Per gate, X W_g^T plus the biases that sit outside the recurrence ([sequence, batch,
  /// hidden]). GRU's hidden gate keeps its recurrent bias apart when `linear_before_reset`.
  mutating func inputProjections(_ x: ValueID, _ weights: DirectionWeights, cell: RecurrentCell, hidden: Int) throws
    -> [ValueID]
  {
    let linearBeforeReset = try intAttribute("linear_before_reset", default: 0) != 0
    let shape = Array(type(x).shape.prefix(2)) + [hidden]
    return (0..<cell.gates).map { g in
      var projection = add("MatMul", version: 13, [x, weights.inputWeights[g]], type(x).with(shape: shape))
      if let inputBiases = weights.inputBiases, let recurrentBiases = weights.recurrentBiases {
        projection = binary("Add", projection, inputBiases[g])
        if !(cell.op == "GRU" && g == 2 && linearBeforeReset) {
          projection = binary("Add", projection, recurrentBiases[g])
        }
      }
      return projection
    }
  }

  /// `x[t]` along axis 0.
  mutating func gather(_ x: ValueID, _ t: Int) -> ValueID {
    let index = constant(TensorData(type: TensorType(.int64, []), int64s: [Int64(t)]), "step")
    return add(
      "Gather", version: 13, [x, index], type(x).with(shape: Array(type(x).shape.dropFirst())),
      attributes: ["axis": .int(0)])
  }

  /// initial_h (slot 5) or initial_c (slot 6) of direction `d` as [batch, hidden], or nil.
  mutating func initialState(_ slot: Int, direction d: Int, layout: Int) -> ValueID? {
    guard let state = optionalInput(slot) else { return nil }
    let index = constant(TensorData(type: TensorType(.int64, []), int64s: [Int64(d)]), "direction")
    var shape = type(state).shape
    shape.remove(at: layout)
    return add(
      "Gather", version: 13, [state, index], type(state).with(shape: shape), attributes: ["axis": .int(Int64(layout))])
  }

  /// One step: the next hidden state, and for LSTM the next cell state.
  mutating func step(
    _ cell: RecurrentCell, _ inputs: [ValueID], state h: ValueID, cell c: ValueID, _ weights: DirectionWeights,
    f activations: [RecurrentActivation]
  ) throws -> (ValueID, ValueID?) {
    func recurrence(_ g: Int, _ state: ValueID) -> ValueID {
      add("MatMul", version: 13, [state, weights.recurrentWeights[g]], type(state))
    }
    let clip = try source.attributes["clip"].map { _ in try floatAttribute("clip", default: 0) }
    func gate(_ preactivation: ValueID, _ activation: RecurrentActivation) throws -> ValueID {
      var value = preactivation
      if let clip {
        let dtype = type(value).dtype
        value = add(
          "Clip", version: 13, [value, scalar(-clip, dtype, "clip_low"), scalar(clip, dtype, "clip_high")], type(value))
      }
      return try activate(value, activation)
    }
    let dtype = type(h).dtype
    switch cell.op {
    case "RNN":
      return (try gate(binary("Add", inputs[0], recurrence(0, h)), activations[0]), nil)
    case "GRU":
      let z = try gate(binary("Add", inputs[0], recurrence(0, h)), activations[0])
      let r = try gate(binary("Add", inputs[1], recurrence(1, h)), activations[0])
      let candidateInput: ValueID
      if try intAttribute("linear_before_reset", default: 0) != 0 {
        var recurrent = recurrence(2, h)
        if let biases = weights.recurrentBiases { recurrent = binary("Add", recurrent, biases[2]) }
        candidateInput = binary("Add", inputs[2], binary("Mul", r, recurrent))
      } else {
        candidateInput = binary("Add", inputs[2], recurrence(2, binary("Mul", r, h)))
      }
      let candidate = try gate(candidateInput, activations[1])
      let keep = binary("Sub", scalar(1, dtype, "one"), z)
      return (binary("Add", binary("Mul", keep, candidate), binary("Mul", z, h)), nil)
    default:
      // LSTM gate blocks: input, output, forget, cell; peepholes: input, output, forget.
      func preactivation(_ g: Int, peephole: Int?, _ cellState: ValueID) -> ValueID {
        var value = binary("Add", inputs[g], recurrence(g, h))
        if let peephole, let p = weights.peepholes?[peephole] {
          value = binary("Add", value, binary("Mul", p, cellState))
        }
        return value
      }
      let i = try gate(preactivation(0, peephole: 0, c), activations[0])
      let forget =
        try intAttribute("input_forget", default: 0) != 0
        ? binary("Sub", scalar(1, dtype, "one"), i) : try gate(preactivation(2, peephole: 2, c), activations[0])
      let candidate = try gate(preactivation(3, peephole: nil, c), activations[1])
      let nextCell = binary("Add", binary("Mul", forget, c), binary("Mul", i, candidate))
      let o = try gate(preactivation(1, peephole: 1, nextCell), activations[0])
      return (binary("Mul", o, try activate(nextCell, activations[2])), nextCell)
    }
  }

  /// Applies one activation function.
  mutating func activate(_ x: ValueID, _ activation: RecurrentActivation) throws -> ValueID {
    let dtype = type(x).dtype
    let (alpha, beta) = (activation.alpha, activation.beta)
    switch activation.name {
    case "relu": return add("Relu", version: 14, [x], type(x))
    case "tanh": return unary("Tanh", x)
    case "sigmoid": return unary("Sigmoid", x)
    case "softsign": return add("Softsign", version: 1, [x], type(x))
    case "softplus": return add("Softplus", version: 1, [x], type(x))
    case "leakyrelu": return add("LeakyRelu", version: 16, [x], type(x), attributes: ["alpha": .float(Float(alpha))])
    case "thresholdedrelu":
      return add("ThresholdedRelu", version: 10, [x], type(x), attributes: ["alpha": .float(Float(alpha))])
    case "elu": return add("Elu", version: 6, [x], type(x), attributes: ["alpha": .float(Float(alpha))])
    case "hardsigmoid":
      return add(
        "HardSigmoid", version: 6, [x], type(x),
        attributes: ["alpha": .float(Float(alpha)), "beta": .float(Float(beta))])
    case "affine":
      return binary("Add", binary("Mul", x, scalar(alpha, dtype, "alpha")), scalar(beta, dtype, "beta"))
    case "scaledtanh":
      return binary("Mul", unary("Tanh", binary("Mul", x, scalar(beta, dtype, "beta"))), scalar(alpha, dtype, "alpha"))
    default: throw error("activation '\(activation.name)' is not supported")
    }
  }

  /// Y ([sequence, directions, batch, hidden], or batch-major for layout 1), Y_h and Y_c.
  mutating func writeRecurrentOutputs(steps: [[ValueID]], finalStates: [ValueID], finalCells: [ValueID], layout: Int)
    throws
  {
    let directions = steps.count
    let sequence = steps[0].count
    let (batch, hidden) = (type(finalStates[0]).shape[0], type(finalStates[0]).shape[1])
    if hasOutput(0) {
      // Time-major, direction-minor pieces of [1, batch, hidden], stacked then split in two axes.
      let pieces = (0..<sequence).flatMap { t in (0..<directions).map { reshape(steps[$0][t], to: [1, batch, hidden]) }
      }
      let stacked = stack(pieces)
      let shape = [sequence, directions, batch, hidden]
      if layout == 0 {
        reshape(stacked, to: shape, output: source.outputs[0])
      } else {
        transpose(reshape(stacked, to: shape), [2, 0, 1, 3], output: source.outputs[0])
      }
    }
    for (slot, states) in [(1, finalStates), (2, finalCells)] where hasOutput(slot) {
      let stacked = stack(states.map { reshape($0, to: [1, batch, hidden]) })
      if layout == 0 {
        reshape(stacked, to: [directions, batch, hidden], output: source.outputs[slot])
      } else {
        transpose(stacked, [1, 0, 2], output: source.outputs[slot])
      }
    }
  }

  /// Concatenates `pieces` along axis 0.
  mutating func stack(_ pieces: [ValueID]) -> ValueID {
    if pieces.count == 1 { return pieces[0] }
    var shape = type(pieces[0]).shape
    shape[0] = pieces.reduce(0) { $0 + type($1).shape[0] }
    return add("Concat", version: 13, pieces, type(pieces[0]).with(shape: shape), attributes: ["axis": .int(0)])
  }
}
