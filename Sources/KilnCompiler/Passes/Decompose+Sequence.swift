import KilnIR

// Rewrites of the stateful sequence-model ops (opset 27): LinearAttention, unrolled token by
// token into primitive ops, and CausalConvWithState, a depthwise Conv over the carried state
// followed by the input.

extension Rewriter {
  /// LinearAttention: for each token t, with the state S [B, H_kv, d_k, d_v] (past_state or
  /// zeros), decay g, update rate beta and the query heads of one KV head sharing its state:
  /// gated rules first decay S by exp(g_t); delta rules replace v_t by beta_t (v_t - S^T k_t);
  /// then S += k_t v_t^T and o_t = scale q_t^T S. Computed in float32 like the reference; the
  /// output gets the query's dtype and the present state the past state's (else the query's).
  mutating func linearAttention() throws {
    let query = try input(0)
    let key = try input(1)
    let value = try input(2)
    guard type(query).rank == 3, type(key).rank == 3, type(value).rank == 3 else {
      throw error("query, key and value must be 3-D")
    }
    let queryHeads = try intAttribute("q_num_heads", default: 0)
    let kvHeads = try intAttribute("kv_num_heads", default: 0)
    guard queryHeads > 0, kvHeads > 0, queryHeads % kvHeads == 0 else {
      throw error("q_num_heads \(queryHeads) must be a positive multiple of kv_num_heads \(kvHeads)")
    }
    let (batch, sequence) = (type(query).shape[0], type(query).shape[1])
    let keySize = type(query).shape[2] / queryHeads
    let valueSize = type(value).shape[2] / kvHeads
    let group = queryHeads / kvHeads
    let rule = try stringAttribute("update_rule", default: "gated_delta")
    guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else {
      throw error("attribute 'update_rule' '\(rule)' is not supported (linear, gated, delta, gated_delta)")
    }
    guard sequence > 0 else { throw error("an empty sequence (T = 0) is not supported") }
    let decay = rule.hasPrefix("gated") ? try input(4) : nil
    let beta = rule.hasSuffix("delta") ? try input(5) : nil
    let configured = try floatAttribute("scale", default: 0)
    let scale = configured == 0 ? 1 / Double(keySize).squareRoot() : configured

    // Per-token views, [B, T, ...] so that Gather on axis 1 picks token t.
    let queries = binary(
      "Mul", perToken(query, [batch, sequence, kvHeads, group, keySize]), scalar(scale, .float32, "scale"))
    let keyRows = perToken(key, [batch, sequence, kvHeads, 1, keySize])
    let keyColumns = perToken(key, [batch, sequence, kvHeads, keySize, 1])
    let values = perToken(value, [batch, sequence, kvHeads, 1, valueSize])
    let decays = decay.map { decay in
      let perKey = type(decay).shape[2] == kvHeads * keySize
      return unary("Exp", perToken(decay, [batch, sequence, kvHeads, perKey ? keySize : 1, 1]))
    }
    let rates = beta.map { perToken($0, [batch, sequence, type($0).shape[2], 1, 1]) }

    var state = optionalInput(3).map { convert($0, to: .float32) }
    var outputs: [ValueID] = []
    for t in 0..<sequence {
      var update = token(values, t)
      if let decays, let current = state { state = binary("Mul", current, token(decays, t)) }
      if let rates {
        if let current = state {
          let retrieved = add("MatMul", version: 13, [token(keyRows, t), current], type(update))
          update = binary("Sub", update, retrieved)
        }
        update = binary("Mul", token(rates, t), update)
      }
      let written = binary("Mul", token(keyColumns, t), update)
      let next = state.map { binary("Add", $0, written) } ?? written
      state = next
      let read = add(
        "MatMul", version: 13, [token(queries, t), next], TensorType(.float32, [batch, kvHeads, group, valueSize]))
      outputs.append(reshape(read, to: [batch, 1, queryHeads * valueSize]))
    }
    let outputType = TensorType(.float32, [batch, sequence, queryHeads * valueSize])
    let output =
      outputs.count == 1
      ? outputs[0] : add("Concat", version: 13, outputs, outputType, attributes: ["axis": .int(1)])
    convert(output, to: type(query).dtype, output: source.outputs[0])
    if hasOutput(1), let state { convert(state, to: type(source.outputs[1]).dtype, output: source.outputs[1]) }
  }

  /// `x` [B, T, ...] in float32, reshaped to `shape` ([B, T, ...]).
  private mutating func perToken(_ x: ValueID, _ shape: [Int]) -> ValueID {
    reshape(convert(x, to: .float32), to: shape)
  }

  /// Token `t` of a per-token view: Gather on axis 1, which drops that axis.
  private mutating func token(_ x: ValueID, _ t: Int) -> ValueID {
    var shape = type(x).shape
    shape.remove(at: 1)
    let index = constant(TensorData(type: TensorType(.int64, []), int64s: [Int64(t)]), "token")
    return add("Gather", version: 13, [x, index], type(x).with(shape: shape), attributes: ["axis": .int(1)])
  }

  /// CausalConvWithState: the input [B, C, L] preceded by the carried state [B, C, k - 1]
  /// (past_state, else zeros) goes through a depthwise Conv with the bias and the optional
  /// SiLU (`silu`, `swish`); the present state is the last k - 1 positions of that sequence.
  mutating func causalConvolution() throws {
    let x = try input(0)
    let weight = try input(1)
    guard type(x).rank == 3, type(weight).rank == 3 else { throw error("input and weight must be 3-D") }
    let (batch, channels, length) = (type(x).shape[0], type(x).shape[1], type(x).shape[2])
    let carry = type(weight).shape[2] - 1
    let activation = try stringAttribute("activation", default: "none")
    guard ["none", "silu", "swish"].contains(activation) else {
      throw error("attribute 'activation' '\(activation)' is not supported (none, silu, swish)")
    }
    let paddedType = type(x).with(shape: [batch, channels, length + carry])
    var padded = x
    if let past = optionalInput(3) {
      padded = add("Concat", version: 13, [past, x], paddedType, attributes: ["axis": .int(2)])
    } else if carry > 0 {
      let pads = constant(TensorData([0, 0, Int64(carry), 0, 0, 0]), "pads")
      padded = add("Pad", version: 18, [x, pads], paddedType, attributes: ["mode": .string("constant")])
    }
    let silu = activation != "none"
    let attributes: [String: AttributeValue] = [
      "group": .int(Int64(channels)), "kernel_shape": .ints([Int64(carry + 1)]), "pads": .ints([0, 0]),
      "strides": .ints([1]), "dilations": .ints([1]),
    ]
    let convolved = add(
      "Conv", version: 11, [padded, weight] + (optionalInput(2).map { [$0] } ?? []), type(x), attributes: attributes,
      output: silu ? nil : source.outputs[0])
    if silu { binary("Mul", convolved, unary("Sigmoid", convolved), output: source.outputs[0]) }
    if hasOutput(1) {
      let bounds = [Int64(length), Int64(length + carry), 2].map { constant(TensorData([$0]), "slice") }
      add("Slice", version: 13, [padded] + bounds, type(source.outputs[1]), output: source.outputs[1])
    }
  }
}
