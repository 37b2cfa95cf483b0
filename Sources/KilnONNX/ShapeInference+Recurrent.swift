import KilnIR

// Recurrent operators: RNN, GRU and LSTM over a static sequence. The Decompose pass unrolls them
// step by step into MatMul, Add and activations.

/// The dimensions of one RNN/GRU/LSTM node, read from its operands and attributes.
struct RecurrentGeometry {
  var sequence: Int
  var batch: Int
  var input: Int
  var hidden: Int
  var directions: Int
  /// 0: X is [sequence, batch, input]; 1: X is [batch, sequence, input].
  var layout: Int

  /// Checks X, W, R (and the optional B, sequence_lens, initial states, P) of a recurrent node
  /// whose weights stack `gates` gates.
  init(_ ctx: OpContext, gates: Int) throws {
    let x = try ctx.type(0)
    let w = try ctx.type(1)
    let r = try ctx.type(2)
    try Shapes.requireFloat(x, "X")
    layout = try ctx.node.int("layout", default: 0)
    guard layout == 0 || layout == 1 else { throw ONNXImportError.attribute("layout \(layout) must be 0 or 1") }
    guard x.rank == 3 else { throw ONNXImportError.shape("X must be 3-D, got \(x.shape)") }
    (sequence, batch) = layout == 0 ? (x.shape[0], x.shape[1]) : (x.shape[1], x.shape[0])
    input = x.shape[2]
    let direction = try ctx.node.string("direction", default: "forward")
    switch direction {
    case "forward", "reverse": directions = 1
    case "bidirectional": directions = 2
    default:
      throw ONNXImportError.attribute("direction '\(direction)' must be forward, reverse or bidirectional")
    }
    hidden = try ctx.node.int("hidden_size") ?? r.shape.last ?? 0
    let rows = try Shapes.multiply(gates, hidden)
    guard w.shape == [directions, rows, input] else {
      throw ONNXImportError.shape("W shape \(w.shape) must be [\(directions), \(rows), \(input)]")
    }
    guard r.shape == [directions, rows, hidden] else {
      throw ONNXImportError.shape("R shape \(r.shape) must be [\(directions), \(rows), \(hidden)]")
    }
    try check(ctx, 3, "B", [directions, 2 * rows])
    if let lengths = ctx.optionalType(4) {
      guard lengths.shape == [batch], lengths.dtype == .int32 || lengths.dtype == .int64 else {
        throw ONNXImportError.shape("sequence_lens must be an integer tensor of shape [\(batch)], got \(lengths)")
      }
      _ = try ctx.constant(4, "sequence_lens")
    }
    try check(ctx, 5, "initial_h", stateShape)
    try check(ctx, 6, "initial_c", stateShape)
    try check(ctx, 7, "P", [directions, 3 * hidden])
  }

  /// The shape of Y_h, Y_c and the initial states.
  var stateShape: [Int] { layout == 0 ? [directions, batch, hidden] : [batch, directions, hidden] }

  /// The shape of Y.
  var outputShape: [Int] {
    layout == 0 ? [sequence, directions, batch, hidden] : [batch, sequence, directions, hidden]
  }

  private func check(_ ctx: OpContext, _ slot: Int, _ what: String, _ shape: [Int]) throws {
    guard let type = ctx.optionalType(slot) else { return }
    guard type.shape == shape, type.dtype == (try ctx.type(0)).dtype else {
      throw ONNXImportError.shape("\(what) must be \(try ctx.type(0).dtype.rawValue) of shape \(shape), got \(type)")
    }
  }
}

extension OpRegistry {
  static func recurrentSpecs() -> [String: OpSpec] {
    let common: Set<String> = [
      "activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size", "layout",
    ]
    var specs: [String: OpSpec] = [:]
    for (op, gates, extra, outputs) in [
      ("RNN", 1, [], 2), ("GRU", 3, ["linear_before_reset"], 2), ("LSTM", 4, ["input_forget"], 3),
    ] as [(String, Int, [String], Int)] {
      specs[op] = OpSpec(
        attributes: common.union(extra), inputs: 3...(op == "LSTM" ? 8 : 6), outputs: 1...outputs,
        dropsUnusedOutputs: true,
        infer: { ctx in
          let geometry = try RecurrentGeometry(ctx, gates: gates)
          if op != "LSTM", ctx.hasInput(6) || ctx.hasInput(7) {
            throw ONNXImportError.model("\(op) takes at most 6 inputs")
          }
          let dtype = try ctx.type(0).dtype
          let types =
            [TensorType(dtype, geometry.outputShape)]
            + Array(repeating: TensorType(dtype, geometry.stateShape), count: outputs - 1)
          return Array(types.prefix(ctx.outputCount))
        })
    }
    return specs
  }
}
