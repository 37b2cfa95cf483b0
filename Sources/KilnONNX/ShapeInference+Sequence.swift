import KilnIR

// Ops of sequence (language) models: rotary position embeddings (opset 23), KV-cache updates
// (TensorScatter, opset 24), linear attention and the stateful causal convolution (opset 27).

extension OpRegistry {
  static func sequenceSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    specs["RotaryEmbedding"] = OpSpec(
      attributes: ["interleaved", "num_heads", "rotary_embedding_dim"], inputs: 3...4, outputs: 1...1,
      infer: { ctx in [try rotaryEmbeddingType(ctx)] })

    specs["TensorScatter"] = OpSpec(
      attributes: ["axis", "mode"], inputs: 2...3, outputs: 1...1,
      infer: { ctx in [try tensorScatterType(ctx)] })

    specs["LinearAttention"] = OpSpec(
      attributes: ["chunk_size", "kv_num_heads", "q_num_heads", "scale", "update_rule"],
      inputs: 3...6, outputs: 1...2, dropsUnusedOutputs: true,
      infer: { ctx in Array(try linearAttentionTypes(ctx).prefix(ctx.outputCount)) })

    specs["CausalConvWithState"] = OpSpec(
      attributes: ["activation"], inputs: 2...4, outputs: 1...2, dropsUnusedOutputs: true,
      infer: { ctx in Array(try causalConvTypes(ctx).prefix(ctx.outputCount)) })
    return specs
  }

  /// RotaryEmbedding: Y has X's type. X is [batch, heads, sequence, head size] or [batch,
  /// sequence, heads * head size] (with `num_heads`); the caches are [positions, rotary / 2]
  /// with position_ids [batch, sequence], or [batch, sequence, rotary / 2] without.
  static func rotaryEmbeddingType(_ ctx: OpContext) throws -> TensorType {
    let x = try ctx.type(0)
    try Shapes.requireFloat(x)
    let (batch, sequence, headSize): (Int, Int, Int)
    switch x.rank {
    case 4:
      (batch, sequence, headSize) = (x.shape[0], x.shape[2], x.shape[3])
    case 3:
      let heads = try ctx.node.int("num_heads", default: 0)
      guard heads > 0, x.shape[2] % heads == 0 else {
        throw ONNXImportError.attribute("3-D input \(x.shape) needs a num_heads that divides its hidden size")
      }
      (batch, sequence, headSize) = (x.shape[0], x.shape[1], x.shape[2] / heads)
    default:
      throw ONNXImportError.shape("input must be 3-D or 4-D, got \(x.shape)")
    }
    let rotary = try ctx.node.int("rotary_embedding_dim", default: 0)
    let rotated = rotary == 0 ? headSize : rotary
    guard rotated > 0, rotated % 2 == 0, rotated <= headSize else {
      throw ONNXImportError.attribute(
        "rotary_embedding_dim \(rotary) must be even and at most the head size \(headSize)")
    }
    let cosine = try ctx.type(1)
    let sine = try ctx.type(2)
    guard cosine == sine, cosine.dtype == x.dtype else {
      throw ONNXImportError.shape("cos_cache \(cosine) and sin_cache \(sine) must have one type, that of the input")
    }
    if let positions = ctx.optionalType(3) {
      guard positions.dtype.isInteger, positions.shape == [batch, sequence] else {
        throw ONNXImportError.shape("position_ids must be integers of shape [\(batch), \(sequence)], got \(positions)")
      }
      guard cosine.rank == 2, cosine.shape[0] > 0, cosine.shape[1] == rotated / 2 else {
        throw ONNXImportError.shape("caches must be [positions, \(rotated / 2)] with position_ids, got \(cosine.shape)")
      }
    } else if cosine.shape != [batch, sequence, rotated / 2] {
      throw ONNXImportError.shape(
        "caches must be [\(batch), \(sequence), \(rotated / 2)] without position_ids, got \(cosine.shape)")
    }
    return x
  }

  /// TensorScatter: the present cache has the past cache's type; the update differs from it
  /// only along `axis` (not the batch axis), where it is no longer.
  static func tensorScatterType(_ ctx: OpContext) throws -> TensorType {
    let past = try ctx.type(0)
    let update = try ctx.type(1)
    try Shapes.requireRank(past, atLeast: 2, "past_cache")
    let axis = try Shapes.axis(try ctx.node.int("axis", default: -2), rank: past.rank)
    guard axis != 0 else { throw ONNXImportError.attribute("axis must not be the batch axis 0") }
    let mode = try ctx.node.string("mode", default: "linear")
    guard mode == "linear" || mode == "circular" else {
      throw ONNXImportError.unsupported("mode '\(mode)' is not supported (linear, circular)")
    }
    let fits =
      update.rank == past.rank
      && past.shape.indices.allSatisfy { i in
        i == axis ? update.shape[i] <= past.shape[i] : update.shape[i] == past.shape[i]
      }
    guard update.dtype == past.dtype, fits else {
      throw ONNXImportError.shape("update \(update) does not fit past_cache \(past) along axis \(axis)")
    }
    if let indices = ctx.optionalType(2), indices.dtype != .int64 || indices.shape != [past.shape[0]] {
      throw ONNXImportError.shape("write_indices must be int64 [\(past.shape[0])], got \(indices)")
    }
    return past
  }

  /// The head geometry of a LinearAttention node, checked against its operands.
  struct LinearAttentionGeometry {
    var batch: Int
    var sequence: Int
    var queryHeads: Int
    var kvHeads: Int
    var keySize: Int
    var valueSize: Int
    /// Whether the state decays (update rules `gated`, `gated_delta`).
    var gated: Bool
    /// Whether the update is a delta-rule correction (update rules `delta`, `gated_delta`).
    var delta: Bool

    init(_ node: Node, query: TensorType, key: TensorType, value: TensorType) throws {
      guard query.rank == 3, key.rank == 3, value.rank == 3 else {
        throw ONNXImportError.shape(
          "query, key and value must be 3-D, got \(query.shape), \(key.shape), \(value.shape)")
      }
      (batch, sequence) = (query.shape[0], query.shape[1])
      guard let q = try node.int("q_num_heads"), let kv = try node.int("kv_num_heads"), q > 0, kv > 0, q % kv == 0
      else {
        throw ONNXImportError.attribute("q_num_heads must be a positive multiple of a positive kv_num_heads")
      }
      (queryHeads, kvHeads) = (q, kv)
      guard query.shape[2] % q == 0, key.shape[2] % kv == 0, value.shape[2] % kv == 0 else {
        throw ONNXImportError.shape(
          "hidden sizes of \(query.shape), \(key.shape), \(value.shape) are not multiples of the head counts")
      }
      (keySize, valueSize) = (query.shape[2] / q, value.shape[2] / kv)
      guard key.shape == [batch, sequence, kv * keySize], value.shape[..<2] == query.shape[..<2] else {
        throw ONNXImportError.shape(
          "query \(query.shape), key \(key.shape) and value \(value.shape) do not fit together")
      }
      let rule = try node.string("update_rule", default: "gated_delta")
      guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else {
        throw ONNXImportError.unsupported("update_rule '\(rule)' is not supported (linear, gated, delta, gated_delta)")
      }
      gated = rule.hasPrefix("gated")
      delta = rule.hasSuffix("delta")
    }

    /// The recurrent state's shape [batch, kv heads, key size, value size].
    var stateShape: [Int] { [batch, kvHeads, keySize, valueSize] }
  }

  /// LinearAttention: output [B, T, q heads * value size] of the query's type and the present
  /// state [B, kv heads, key size, value size] of the past state's type (else the query's).
  static func linearAttentionTypes(_ ctx: OpContext) throws -> [TensorType] {
    let query = try ctx.type(0)
    try Shapes.requireFloat(query)
    _ = try Shapes.sameDType([query, try ctx.type(1), try ctx.type(2)], what: "query, key and value")
    let geometry = try LinearAttentionGeometry(ctx.node, query: query, key: try ctx.type(1), value: try ctx.type(2))
    let past = ctx.optionalType(3)
    if let past {
      try Shapes.requireFloat(past, "past_state")
      guard past.shape == geometry.stateShape else {
        throw ONNXImportError.shape("past_state shape \(past.shape) must be \(geometry.stateShape)")
      }
    }
    let (batch, sequence, kv) = (geometry.batch, geometry.sequence, geometry.kvHeads)
    try checkGate(
      ctx.optionalType(4), "decay", required: geometry.gated, dtype: query.dtype,
      shapes: [[batch, sequence, kv * geometry.keySize], [batch, sequence, kv]])
    try checkGate(
      ctx.optionalType(5), "beta", required: geometry.delta, dtype: query.dtype,
      shapes: [[batch, sequence, kv], [batch, sequence, 1]])
    let output = TensorType(
      query.dtype, [batch, sequence, try Shapes.multiply(geometry.queryHeads, geometry.valueSize)])
    return [output, TensorType(past?.dtype ?? query.dtype, geometry.stateShape)]
  }

  /// A decay or beta operand: present exactly when the update rule uses it, with one of `shapes`.
  private static func checkGate(
    _ type: TensorType?, _ what: String, required: Bool, dtype: DType, shapes: [[Int]]
  ) throws {
    guard let type else {
      if required { throw ONNXImportError.shape("\(what) is required by this update_rule") }
      return
    }
    guard required else { throw ONNXImportError.shape("\(what) is not allowed with this update_rule") }
    guard type.dtype == dtype, shapes.contains(type.shape) else {
      throw ONNXImportError.shape(
        "\(what) \(type) must be \(dtype.rawValue) of shape \(shapes.map { "\($0)" }.joined(separator: " or "))")
    }
  }

  /// CausalConvWithState: output [B, C, L] and present state [B, C, k - 1] of the input's type.
  static func causalConvTypes(_ ctx: OpContext) throws -> [TensorType] {
    let x = try ctx.type(0)
    let weight = try ctx.type(1)
    try Shapes.requireFloat(x)
    guard x.rank == 3, weight.rank == 3, weight.dtype == x.dtype, weight.shape[0] == x.shape[1], weight.shape[1] == 1,
      weight.shape[2] >= 1
    else {
      throw ONNXImportError.shape("input \(x) and weight \(weight) must be [B, C, L] and [C, 1, k] of one type")
    }
    let (batch, channels, kernel) = (x.shape[0], x.shape[1], weight.shape[2])
    if let bias = ctx.optionalType(2), bias != TensorType(x.dtype, [channels]) {
      throw ONNXImportError.shape("bias must be \(x.dtype.rawValue) [\(channels)], got \(bias)")
    }
    let state = TensorType(x.dtype, [batch, channels, kernel - 1])
    if let past = ctx.optionalType(3), past != state {
      throw ONNXImportError.shape("past_state must be \(state), got \(past)")
    }
    let activation = try ctx.node.string("activation", default: "none")
    guard ["none", "silu", "swish"].contains(activation) else {
      throw ONNXImportError.unsupported("activation '\(activation)' is not supported (none, silu, swish)")
    }
    return [x, state]
  }
}
