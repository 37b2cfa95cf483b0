import KilnIR

extension Rewriter {
  /// Attention (opset 23): softmax(Q K^T * scale (+ softcap, mask, causal mask)) V, with
  /// 3-D inputs split into heads, the KV cache concatenated, and KV heads repeated for grouped
  /// queries; present_key/present_value and the QK product are produced when used.
  mutating func attention() throws {
    var q = try input(0)
    var k = try input(1)
    var v = try input(2)
    let dtype = type(q).dtype
    let threeD = type(q).rank == 3
    if threeD {
      let qHeads = try intAttribute("q_num_heads", default: 0)
      let kvHeads = try intAttribute("kv_num_heads", default: 0)
      guard qHeads > 0, kvHeads > 0 else { throw error("3-D inputs need q_num_heads and kv_num_heads") }
      func heads(_ x: ValueID, _ count: Int) -> ValueID {
        let shape = type(x).shape
        return transpose(reshape(x, to: [shape[0], shape[1], count, shape[2] / count]), [0, 2, 1, 3])
      }
      q = heads(q, qHeads)
      k = heads(k, kvHeads)
      v = heads(v, kvHeads)
    }
    guard type(q).rank == 4, type(k).rank == 4, type(v).rank == 4 else { throw error("Q, K and V must be 3-D or 4-D") }
    let (batch, qHeads, querySequence, headSize) = (type(q).shape[0], type(q).shape[1], type(q).shape[2], type(q).shape[3])
    let pastSequence = optionalInput(4).map { type($0).shape[2] } ?? 0
    if let pastKey = optionalInput(4), let pastValue = optionalInput(5) {
      func concat(_ a: ValueID, _ b: ValueID, output: ValueID?) -> ValueID {
        var shape = type(b).shape
        shape[2] += type(a).shape[2]
        return add("Concat", version: 13, [a, b], type(b).with(shape: shape), attributes: ["axis": .int(2)], output: output)
      }
      k = concat(pastKey, k, output: hasOutput(1) ? source.outputs[1] : nil)
      v = concat(pastValue, v, output: hasOutput(2) ? source.outputs[2] : nil)
    } else {
      if hasOutput(1) { add("Identity", version: 13, [k], type(k), output: source.outputs[1]) }
      if hasOutput(2) { add("Identity", version: 13, [v], type(v), output: source.outputs[2]) }
    }
    let kvHeads = type(k).shape[1]
    let totalSequence = type(k).shape[2]
    if kvHeads != qHeads {
      // Grouped queries: KV head h serves query heads h * reps ..< (h + 1) * reps.
      let reps = qHeads / kvHeads
      func repeated(_ x: ValueID) -> ValueID {
        let shape = type(x).shape
        let spread = reshape(x, to: [shape[0], shape[1], 1, shape[2], shape[3]])
        let target = [shape[0], shape[1], reps, shape[2], shape[3]]
        let expanded = add(
          "Expand", version: 13, [spread, constant(TensorData(target.map { Int64($0) }), "shape")],
          type(x).with(shape: target))
        return reshape(expanded, to: [shape[0], qHeads, shape[2], shape[3]])
      }
      k = repeated(k)
      v = repeated(v)
    }
    // The reference scales Q and K by sqrt(scale) each before the product.
    let scale = try floatAttribute("scale", default: 1 / Double(headSize).squareRoot())
    let root = scalar(scale.squareRoot(), dtype, "scale")
    let keysT = transpose(binary("Mul", k, root), [0, 1, 3, 2])
    let scoresType = TensorType(dtype, [batch, qHeads, querySequence, totalSequence])
    let products = add("MatMul", version: 13, [binary("Mul", q, root), keysT], scoresType)
    let mode = try intAttribute("qk_matmul_output_mode", default: 0)
    let qkOutput: ValueID? = hasOutput(3) ? source.outputs[3] : nil
    // Softcap comes before the mask so that masked scores stay -inf (as in the reference).
    var scores = products
    let softcap = try floatAttribute("softcap", default: 0)
    if softcap > 0 {
      let cap = scalar(softcap, dtype, "softcap")
      scores = binary("Mul", unary("Tanh", binary("Div", scores, cap)), cap)
    }
    if mode <= 1, let qkOutput { add("Identity", version: 13, [scores], scoresType, output: qkOutput) }

    // The additive bias: the (padded) mask, then the causal mask.
    var bias: ValueID?
    if let mask = optionalInput(3) {
      var padded = mask
      let maskShape = type(mask).shape
      let missing = totalSequence - (maskShape.last ?? totalSequence)
      let isBool = type(mask).dtype == .bool
      if missing > 0 {
        var pads = [Int64](repeating: 0, count: 2 * maskShape.count)
        pads[2 * maskShape.count - 1] = Int64(missing)
        let fill =
          isBool
          ? constant(TensorData(type: TensorType(.bool, []), doubles: [0]), "pad_value")
          : scalar(-.infinity, dtype, "pad_value")
        var shape = maskShape
        shape[shape.count - 1] = totalSequence
        padded = add(
          "Pad", version: 18, [mask, constant(TensorData(pads), "pads"), fill], type(mask).with(shape: shape),
          attributes: ["mode": .string("constant")])
      }
      if isBool {
        let shape = type(padded).shape
        padded = add(
          "Where", version: 16, [padded, scalar(0, dtype, "zero"), scalar(-.infinity, dtype, "minus_infinity")],
          TensorType(dtype, shape))
      }
      bias = padded
    }
    let nonpad = optionalInput(6)
    let causal = try intAttribute("is_causal", default: 0) != 0
    if let nonpad {
      // Keys j >= nonpad_kv_seqlen[b] are padding; without a cache, causal attention is aligned
      // to the last valid key: query i sees keys j <= i + nonpad[b] - q_len.
      let limit = reshape(nonpad, to: [batch, 1, 1, 1])
      let keys = constant(TensorData((0..<totalSequence).map { Int64($0) }, shape: [1, 1, 1, totalSequence]), "key_index")
      let masks = TensorType(.bool, [batch, 1, 1, totalSequence])
      let valid = add("Less", version: 13, [keys, limit], masks)
      let minusInfinity = scalar(-.infinity, dtype, "minus_infinity")
      let zero = scalar(0, dtype, "zero")
      var padding = add("Where", version: 16, [valid, zero, minusInfinity], TensorType(dtype, masks.shape))
      if causal && optionalInput(4) == nil {
        let queries = constant(
          TensorData((0..<querySequence).map { Int64($0 - querySequence) }, shape: [1, 1, querySequence, 1]),
          "query_offset")
        let frontier = add("Add", version: 14, [queries, limit], TensorType(.int64, [batch, 1, querySequence, 1]))
        let allowed = add(
          "LessOrEqual", version: 16, [keys, frontier], TensorType(.bool, [batch, 1, querySequence, totalSequence]))
        let causalBias = add(
          "Where", version: 16, [allowed, zero, minusInfinity], TensorType(dtype, [batch, 1, querySequence, totalSequence]))
        padding = binary("Add", causalBias, padding)
      }
      bias = bias.map { binary("Add", $0, padding) } ?? padding
    }
    if causal && (nonpad == nil || optionalInput(4) != nil) {
      // Query i sees keys j <= i + past.
      var values: [Double] = []
      for i in 0..<querySequence {
        for j in 0..<totalSequence { values.append(j > i + pastSequence ? -.infinity : 0) }
      }
      let causal = constant(
        TensorData(type: TensorType(dtype, [querySequence, totalSequence]), doubles: values), "causal_mask")
      bias = bias.map { binary("Add", $0, causal) } ?? causal
    }
    if let bias { scores = binary("Add", scores, bias) }
    if mode == 2, let qkOutput { add("Identity", version: 13, [scores], scoresType, output: qkOutput) }
    let probabilities: ValueID
    if optionalInput(3) != nil || nonpad != nil {
      // A row the mask hides completely has no maximum: it gets probabilities 0 (not NaN).
      let maximum = reduce("ReduceMax", scores, axes: [3])
      let hidden = add(
        "Equal", version: 13, [maximum, scalar(-.infinity, dtype, "minus_infinity")], type(maximum).with(dtype: .bool))
      let zero = scalar(0, dtype, "zero")
      let shift = add("Where", version: 16, [hidden, zero, maximum], type(maximum))
      let exponentials = unary("Exp", binary("Sub", scores, shift))
      let sum = reduce("ReduceSum", exponentials, axes: [3])
      let empty = add("Equal", version: 13, [sum, zero], type(sum).with(dtype: .bool))
      let divisor = add("Where", version: 16, [empty, scalar(1, dtype, "one"), sum], type(sum))
      probabilities = binary("Div", exponentials, divisor)
    } else {
      let maximum = reduce("ReduceMax", scores, axes: [3])
      let exponentials = unary("Exp", binary("Sub", scores, maximum))
      probabilities = binary("Div", exponentials, reduce("ReduceSum", exponentials, axes: [3]))
    }
    if mode == 3, let qkOutput { add("Identity", version: 13, [probabilities], scoresType, output: qkOutput) }
    let valueHead = type(v).shape[3]
    let outputType = TensorType(dtype, [batch, qHeads, querySequence, valueHead])
    if threeD {
      let y = add("MatMul", version: 13, [probabilities, v], outputType)
      reshape(transpose(y, [0, 2, 1, 3]), to: type(source.outputs[0]).shape, output: source.outputs[0])
    } else {
      add("MatMul", version: 13, [probabilities, v], outputType, output: source.outputs[0])
    }
  }
}
