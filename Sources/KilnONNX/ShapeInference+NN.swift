import KilnIR

// Neural-network operators: convolutions, pooling, normalisation, matrix products, softmax.

/// Sliding-window geometry shared by Conv, ConvTranspose and the pools.
struct Window {
  var kernel: [Int]
  var strides: [Int]
  var dilations: [Int]
  /// Begin pads for every spatial axis, then end pads (ONNX order).
  var pads: [Int]
  var autoPad: String
  var ceilMode: Bool

  /// Reads the window attributes of `node` for `kernel` (spatial dims only).
  init(_ node: Node, kernel: [Int], ceilModeAllowed: Bool = false) throws {
    let n = kernel.count
    self.kernel = kernel
    strides = try node.ints("strides", default: Array(repeating: 1, count: n))
    dilations = try node.ints("dilations", default: Array(repeating: 1, count: n))
    pads = try node.ints("pads", default: Array(repeating: 0, count: 2 * n))
    autoPad = try node.string("auto_pad", default: "NOTSET")
    ceilMode = ceilModeAllowed ? try node.int("ceil_mode", default: 0) != 0 : false
    guard strides.count == n, strides.allSatisfy({ $0 > 0 }) else {
      throw ONNXImportError.attribute("strides \(strides) must be \(n) positive values")
    }
    guard dilations.count == n, dilations.allSatisfy({ $0 > 0 }) else {
      throw ONNXImportError.attribute("dilations \(dilations) must be \(n) positive values")
    }
    guard pads.count == 2 * n, pads.allSatisfy({ $0 >= 0 }) else {
      throw ONNXImportError.attribute("pads \(pads) must be \(2 * n) non-negative values")
    }
    guard kernel.allSatisfy({ $0 > 0 }) else {
      throw ONNXImportError.attribute("kernel shape \(kernel) must be positive")
    }
    switch autoPad {
    case "NOTSET": break
    case "SAME_UPPER", "SAME_LOWER", "VALID":
      guard pads.allSatisfy({ $0 == 0 }) else {
        throw ONNXImportError.attribute("pads \(pads) cannot be combined with auto_pad \(autoPad)")
      }
    default:
      throw ONNXImportError.unsupported(
        "auto_pad '\(autoPad)' is not supported (NOTSET, SAME_UPPER, SAME_LOWER, VALID)")
    }
  }

  /// (k - 1) * d + 1 for axis `i`.
  func effectiveKernel(_ i: Int) throws -> Int {
    try Shapes.add(try Shapes.multiply(kernel[i] - 1, dilations[i]), 1)
  }

  /// Output spatial dims of a convolution or pool over `input` spatial dims.
  func outputShape(_ input: [Int]) throws -> [Int] {
    let n = kernel.count
    return try (0..<n).map { i in
      let size = input[i]
      let window = try effectiveKernel(i)
      switch autoPad {
      case "SAME_UPPER", "SAME_LOWER":
        return size == 0 ? 0 : (size - 1) / strides[i] + 1
      case "VALID":
        guard size >= window else {
          throw ONNXImportError.shape("window \(window) on axis \(i + 2) is larger than the input (\(size))")
        }
        return (size - window) / strides[i] + 1
      default:
        let padded = try Shapes.add(try Shapes.add(size, pads[i]), pads[i + n])
        guard padded >= window else {
          throw ONNXImportError.shape(
            "window \(window) on axis \(i + 2) is larger than the padded input (\(size) + pads = \(padded))")
        }
        var out = (padded - window) / strides[i] + 1
        if ceilMode {
          if (padded - window) % strides[i] != 0 { out += 1 }
          // As in the ONNX reference: the last window must start inside the input or the begin
          // padding, else it is dropped.
          let (lastStart, overflow) = (out - 1).multipliedReportingOverflow(by: strides[i])
          if overflow || lastStart >= size + pads[i] { out -= 1 }
        }
        return out
      }
    }
  }
}

extension OpRegistry {
  static func neuralNetworkSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    specs["Conv"] = OpSpec(
      attributes: ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
      inputs: 2...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let w = try ctx.type(1)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 3)
        guard w.rank == x.rank else {
          throw ONNXImportError.shape("weight shape \(w.shape) does not match input rank \(x.rank)")
        }
        let kernel = Array(w.shape.dropFirst(2))
        if let declared = try ctx.node.ints("kernel_shape"), declared != kernel {
          throw ONNXImportError.shape("kernel_shape \(declared) does not match weight shape \(w.shape)")
        }
        let group = try ctx.node.int("group", default: 1)
        let channels = x.shape[1]
        let filters = w.shape[0]
        guard group >= 1, try Shapes.multiply(w.shape[1], group) == channels, filters % group == 0 else {
          throw ONNXImportError.shape(
            "group \(group) does not fit input channels \(channels) and weight shape \(w.shape)")
        }
        if let bias = ctx.optionalType(2), bias.shape != [filters] {
          throw ONNXImportError.shape("bias shape \(bias.shape) must be [\(filters)]")
        }
        let window = try Window(ctx.node, kernel: kernel)
        let spatial = try window.outputShape(Array(x.shape.dropFirst(2)))
        return [TensorType(x.dtype, [x.shape[0], filters] + spatial)]
      })

    specs["ConvTranspose"] = OpSpec(
      attributes: [
        "auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides",
      ],
      inputs: 2...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let w = try ctx.type(1)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 3)
        guard w.rank == x.rank else {
          throw ONNXImportError.shape("weight shape \(w.shape) does not match input rank \(x.rank)")
        }
        let n = x.rank - 2
        let kernel = Array(w.shape.dropFirst(2))
        if let declared = try ctx.node.ints("kernel_shape"), declared != kernel {
          throw ONNXImportError.shape("kernel_shape \(declared) does not match weight shape \(w.shape)")
        }
        let group = try ctx.node.int("group", default: 1)
        guard group >= 1, w.shape[0] == x.shape[1], x.shape[1] % group == 0 else {
          throw ONNXImportError.shape("group \(group) does not fit input channels \(x.shape[1]) and weight \(w.shape)")
        }
        let filters = try Shapes.multiply(w.shape[1], group)
        if let bias = ctx.optionalType(2), bias.shape != [filters] {
          throw ONNXImportError.shape("bias shape \(bias.shape) must be [\(filters)]")
        }
        let window = try Window(ctx.node, kernel: kernel)
        let outputPadding = try ctx.node.ints("output_padding", default: Array(repeating: 0, count: n))
        guard outputPadding.count == n, outputPadding.allSatisfy({ $0 >= 0 }) else {
          throw ONNXImportError.attribute("output_padding \(outputPadding) must be \(n) non-negative values")
        }
        let input = Array(x.shape.dropFirst(2))
        var spatial: [Int]
        if let outputShape = try ctx.node.ints("output_shape") {
          guard outputShape.count == n || outputShape.count == n + 2 else {
            throw ONNXImportError.attribute("output_shape \(outputShape) must have \(n) spatial dims")
          }
          spatial = Array(outputShape.suffix(n))
        } else {
          spatial = try (0..<n).map { i in
            if window.autoPad.hasPrefix("SAME") { return try Shapes.multiply(input[i], window.strides[i]) }
            guard input[i] > 0 else { throw ONNXImportError.shape("input spatial shape \(input) has a zero dimension") }
            let base = try Shapes.multiply(window.strides[i], input[i] - 1)
            let full = try Shapes.add(try Shapes.add(base, outputPadding[i]), try window.effectiveKernel(i))
            return try Shapes.add(try Shapes.add(full, -window.pads[i]), -window.pads[i + n])
          }
        }
        guard spatial.allSatisfy({ $0 > 0 }) else {
          throw ONNXImportError.shape("output spatial shape \(spatial) is not positive")
        }
        return [TensorType(x.dtype, [x.shape[0], filters] + spatial)]
      })

    specs["Gemm"] = OpSpec(
      attributes: ["alpha", "beta", "transA", "transB", "broadcast"], inputs: 2...3, outputs: 1...1,
      infer: { ctx in
        let a = try ctx.type(0)
        let b = try ctx.type(1)
        let dtype = try Shapes.sameDType([a, b])
        try Shapes.requireNumeric(a)
        guard a.rank == 2, b.rank == 2 else {
          throw ONNXImportError.shape("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)")
        }
        let transA = try ctx.node.int("transA", default: 0) != 0
        let transB = try ctx.node.int("transB", default: 0) != 0
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb else {
          throw ONNXImportError.shape(
            "inner dimensions differ: A \(a.shape) (transA \(transA)), B \(b.shape) (transB \(transB))")
        }
        if let broadcast = try ctx.node.int("broadcast") {
          guard ctx.opset < 7 else {
            throw ONNXImportError.unsupported("attribute 'broadcast' is not valid from opset 7 on")
          }
          if broadcast == 0, let c = ctx.optionalType(2), c.shape != [m, n] {
            throw ONNXImportError.shape("broadcast = 0 needs C of shape [\(m), \(n)], got \(c.shape)")
          }
          ctx.node.attributes["broadcast"] = nil
        }
        if let c = ctx.optionalType(2) {
          guard c.dtype == dtype, Broadcast.canBroadcast(c.shape, to: [m, n]) else {
            throw ONNXImportError.shape("C \(c) cannot be broadcast to [\(m), \(n)]")
          }
        }
        return [TensorType(dtype, [m, n])]
      })

    specs["MatMul"] = OpSpec(
      attributes: [], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let a = try ctx.type(0)
        let b = try ctx.type(1)
        let dtype = try Shapes.sameDType([a, b])
        try Shapes.requireNumeric(a)
        return [TensorType(dtype, try matMulShape(a.shape, b.shape))]
      })

    specs["BatchNormalization"] = OpSpec(
      attributes: ["epsilon", "momentum", "training_mode", "spatial", "is_test"],
      inputs: 5...5, outputs: 1...5, dropsUnusedOutputs: true,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 2)
        if try ctx.node.int("training_mode", default: 0) != 0 {
          throw ONNXImportError.unsupported("training_mode = 1 is not supported (Kiln compiles for inference)")
        }
        if try ctx.node.int("spatial", default: 1) != 1 {
          throw ONNXImportError.unsupported("spatial = 0 is not supported")
        }
        guard ctx.outputCount == 1 else {
          throw ONNXImportError.unsupported(
            "training statistics outputs (\(ctx.outputCount) outputs) are not supported")
        }
        ctx.node.attributes["spatial"] = nil
        ctx.node.attributes["is_test"] = nil
        let channels = x.shape[1]
        for (slot, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")] {
          let t = try ctx.type(slot)
          guard t.shape == [channels] else {
            throw ONNXImportError.shape("\(what) shape \(t.shape) must be [\(channels)]")
          }
        }
        return [x]
      })

    specs["InstanceNormalization"] = OpSpec(
      attributes: ["epsilon"], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 3)
        for (slot, what) in [(1, "scale"), (2, "bias")] {
          let t = try ctx.type(slot)
          guard t.shape == [x.shape[1]] else {
            throw ONNXImportError.shape("\(what) shape \(t.shape) must be [\(x.shape[1])]")
          }
        }
        return [x]
      })

    specs["LayerNormalization"] = OpSpec(
      attributes: ["axis", "epsilon", "stash_type"], inputs: 2...3, outputs: 1...3, dropsUnusedOutputs: true,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        let axis = try Shapes.axis(try ctx.node.int("axis", default: -1), rank: x.rank)
        let normalized = Array(x.shape[axis...])
        for slot in [1, 2] {
          guard let t = ctx.optionalType(slot) else { continue }
          guard Broadcast.canBroadcast(t.shape, to: normalized) else {
            throw ONNXImportError.shape(
              "\(slot == 1 ? "scale" : "bias") shape \(t.shape) does not broadcast to \(normalized)")
          }
        }
        var results = [x]
        if ctx.outputCount > 1 {
          let stash = try ctx.node.int("stash_type", default: 1)
          guard let code = Int32(exactly: stash), let dtype = DType(onnxCode: code), dtype.isFloat else {
            throw ONNXImportError.unsupported("stash_type \(stash) is not a supported float type")
          }
          let statistics = TensorType(dtype, Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis))
          results += Array(repeating: statistics, count: ctx.outputCount - 1)
        }
        return results
      })

    specs["LRN"] = OpSpec(
      attributes: ["alpha", "beta", "bias", "size"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 3)
        guard try ctx.node.requiredInt("size") > 0 else { throw ONNXImportError.attribute("size must be positive") }
        return [x]
      })

    specs["MaxPool"] = OpSpec(
      attributes: ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"],
      inputs: 1...1, outputs: 1...2, dropsUnusedOutputs: true,
      infer: { ctx in
        let out = try poolShape(ctx)
        let storageOrder = try ctx.node.int("storage_order", default: 0)
        guard storageOrder == 0 || storageOrder == 1 else {
          throw ONNXImportError.attribute("storage_order must be 0 or 1, got \(storageOrder)")
        }
        return ctx.outputCount == 2 ? [out, out.with(dtype: .int64)] : [out]
      })
    specs["AveragePool"] = OpSpec(
      attributes: ["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"],
      inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let out = try poolShape(ctx)
        try Shapes.requireFloat(out)
        return [out]
      })
    specs["LpPool"] = OpSpec(
      attributes: ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "p", "pads", "strides"],
      inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let out = try poolShape(ctx)
        try Shapes.requireFloat(out)
        return [out]
      })
    for op in ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"] {
      specs[op] = OpSpec(
        attributes: op == "GlobalLpPool" ? ["p"] : [], inputs: 1...1, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          try Shapes.requireFloat(x)
          try Shapes.requireRank(x, atLeast: 3)
          return [x.with(shape: Array(x.shape.prefix(2)) + Array(repeating: 1, count: x.rank - 2))]
        })
    }

    specs["MeanVarianceNormalization"] = OpSpec(
      attributes: ["axes"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        _ = try Shapes.axes(try ctx.node.ints("axes", default: [0, 2, 3]), rank: x.rank)
        return [x]
      })

    specs["LpNormalization"] = OpSpec(
      attributes: ["axis", "p"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        _ = try Shapes.axis(try ctx.node.int("axis", default: -1), rank: x.rank)
        let p = try ctx.node.int("p", default: 2)
        guard p == 1 || p == 2 else { throw ONNXImportError.attribute("p must be 1 or 2, got \(p)") }
        return [x]
      })

    specs["RMSNormalization"] = OpSpec(
      attributes: ["axis", "epsilon", "stash_type"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        let axis = try Shapes.axis(try ctx.node.int("axis", default: -1), rank: x.rank)
        let scale = try ctx.type(1)
        guard Broadcast.canBroadcast(scale.shape, to: Array(x.shape[axis...])) else {
          throw ONNXImportError.shape("scale shape \(scale.shape) does not broadcast to \(Array(x.shape[axis...]))")
        }
        return [x]
      })

    specs["GroupNormalization"] = OpSpec(
      attributes: ["epsilon", "num_groups", "stash_type"], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 3)
        let groups = try ctx.node.requiredInt("num_groups")
        guard groups > 0, x.shape[1] % groups == 0 else {
          throw ONNXImportError.attribute("num_groups \(groups) does not divide the \(x.shape[1]) channels")
        }
        for (slot, what) in [(1, "scale"), (2, "bias")] {
          let t = try ctx.type(slot)
          guard t.shape == [x.shape[1]] || t.shape == [groups] else {
            throw ONNXImportError.shape("\(what) shape \(t.shape) must be [\(x.shape[1])] or [\(groups)]")
          }
        }
        return [x]
      })

    specs["Attention"] = OpSpec(
      attributes: [
        "is_causal", "kv_num_heads", "q_num_heads", "qk_matmul_output_mode", "scale", "softcap", "softmax_precision",
      ],
      inputs: 3...7, outputs: 1...4, dropsUnusedOutputs: true,
      infer: { ctx in try attentionTypes(ctx) })

    for op in ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"] {
      specs[op] = OpSpec(
        attributes: ["ignore_index", "reduction"], inputs: 2...3, outputs: op == "SoftmaxCrossEntropyLoss" ? 1...2 : 1...1,
        dropsUnusedOutputs: true,
        infer: { ctx in
          let x = try ctx.type(0)
          let target = try ctx.type(1)
          try Shapes.requireFloat(x)
          try requireIndices(target)
          guard x.rank >= 2, target.shape == [x.shape[0]] + Array(x.shape.dropFirst(2)) else {
            throw ONNXImportError.shape("target shape \(target.shape) does not fit input shape \(x.shape)")
          }
          if let weight = ctx.optionalType(2), weight.shape != [x.shape[1]] || weight.dtype != x.dtype {
            throw ONNXImportError.shape("weight \(weight) must be [\(x.shape[1])] of \(x.dtype.rawValue)")
          }
          let reduction = try ctx.node.string("reduction", default: "mean")
          guard ["none", "sum", "mean"].contains(reduction) else {
            throw ONNXImportError.unsupported("reduction '\(reduction)' is not supported (none, sum, mean)")
          }
          let loss = TensorType(x.dtype, reduction == "none" ? target.shape : [])
          return ctx.outputCount == 2 ? [loss, x] : [loss]
        })
    }

    for op in ["Softmax", "LogSoftmax", "Hardmax"] {
      specs[op] = OpSpec(
        attributes: ["axis"], inputs: 1...1, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          try Shapes.requireFloat(x)
          let axis = try ctx.node.int("axis", default: ctx.opset < 13 ? 1 : -1)
          if x.rank > 0 || axis != -1 { _ = try Shapes.axis(axis, rank: x.rank) }
          return [x]
        })
    }
    return specs
  }

  /// Attention (opset 23): Y, present_key, present_value and the QK product, for Q, K, V
  /// given as [batch, heads, sequence, head size] or [batch, sequence, heads * head size].
  static func attentionTypes(_ ctx: OpContext) throws -> [TensorType] {
    let q = try ctx.type(0)
    let k = try ctx.type(1)
    let v = try ctx.type(2)
    try Shapes.requireFloat(q)
    _ = try Shapes.sameDType([q, k, v], what: "Q, K and V")
    guard q.rank == k.rank, q.rank == v.rank, q.rank == 3 || q.rank == 4 else {
      throw ONNXImportError.shape("Q, K and V must all be 3-D or 4-D, got \(q.shape), \(k.shape), \(v.shape)")
    }
    let batch = q.shape[0]
    let qHeads: Int
    let kvHeads: Int
    let querySequence: Int
    let keySequence: Int
    let valueHead: Int
    let keyHead: Int
    if q.rank == 3 {
      guard let declaredQ = try ctx.node.int("q_num_heads"), let declaredKV = try ctx.node.int("kv_num_heads"),
        declaredQ > 0, declaredKV > 0, q.shape[2] % declaredQ == 0, k.shape[2] % declaredKV == 0,
        v.shape[2] % declaredKV == 0
      else {
        throw ONNXImportError.attribute("3-D Q, K, V need q_num_heads and kv_num_heads that divide their hidden sizes")
      }
      (qHeads, kvHeads) = (declaredQ, declaredKV)
      (querySequence, keySequence) = (q.shape[1], k.shape[1])
      (keyHead, valueHead) = (k.shape[2] / declaredKV, v.shape[2] / declaredKV)
      guard q.shape[2] / declaredQ == keyHead else {
        throw ONNXImportError.shape("Q head size \(q.shape[2] / declaredQ) differs from K head size \(keyHead)")
      }
    } else {
      (qHeads, kvHeads) = (q.shape[1], k.shape[1])
      (querySequence, keySequence) = (q.shape[2], k.shape[2])
      (keyHead, valueHead) = (k.shape[3], v.shape[3])
      guard q.shape[3] == keyHead, v.shape[1] == kvHeads, v.shape[2] == keySequence else {
        throw ONNXImportError.shape("Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together")
      }
    }
    guard kvHeads > 0, qHeads % kvHeads == 0, k.shape[0] == batch, v.shape[0] == batch else {
      throw ONNXImportError.shape("Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together")
    }
    var past = 0
    if let pastKey = ctx.optionalType(4) {
      guard pastKey.shape.count == 4, pastKey.shape[0] == batch, pastKey.shape[1] == kvHeads,
        pastKey.shape[3] == keyHead
      else { throw ONNXImportError.shape("past_key shape \(pastKey.shape) does not fit K") }
      past = pastKey.shape[2]
      guard let pastValue = ctx.optionalType(5), pastValue.shape == [batch, kvHeads, past, valueHead] else {
        throw ONNXImportError.shape("past_value must be given with past_key and have shape [\(batch), \(kvHeads), \(past), \(valueHead)]")
      }
    } else if ctx.optionalType(5) != nil {
      throw ONNXImportError.shape("past_value is given without past_key")
    }
    let total = try Shapes.add(past, keySequence)
    if let mask = ctx.optionalType(3) {
      guard mask.dtype == .bool || mask.dtype == q.dtype, mask.rank >= 2, mask.rank <= 4,
        let last = mask.shape.last, last <= total,
        Broadcast.canBroadcast(Array(mask.shape.dropLast()), to: [batch, qHeads, querySequence])
      else { throw ONNXImportError.shape("attn_mask \(mask) does not broadcast to [\(batch), \(qHeads), \(querySequence), \(total)]") }
    }
    if let nonpad = ctx.optionalType(6), nonpad.dtype != .int64 || nonpad.shape != [batch] {
      throw ONNXImportError.shape("nonpad_kv_seqlen must be int64 [\(batch)], got \(nonpad)")
    }
    let mode = try ctx.node.int("qk_matmul_output_mode", default: 0)
    guard (0...3).contains(mode) else { throw ONNXImportError.attribute("qk_matmul_output_mode must be 0 to 3, got \(mode)") }
    let y =
      q.rank == 3
      ? TensorType(q.dtype, [batch, querySequence, try Shapes.multiply(qHeads, valueHead)])
      : TensorType(q.dtype, [batch, qHeads, querySequence, valueHead])
    let types = [
      y, TensorType(q.dtype, [batch, kvHeads, total, keyHead]), TensorType(q.dtype, [batch, kvHeads, total, valueHead]),
      TensorType(q.dtype, [batch, qHeads, querySequence, total]),
    ]
    return Array(types.prefix(ctx.outputCount))
  }

  /// NumPy matmul shape rules: 1-D operands are promoted and the added axis removed again;
  /// leading (batch) dimensions broadcast.
  static func matMulShape(_ lhs: [Int], _ rhs: [Int]) throws -> [Int] {
    guard !lhs.isEmpty, !rhs.isEmpty else {
      throw ONNXImportError.shape("MatMul operands must not be scalars, got \(lhs) and \(rhs)")
    }
    let a = lhs.count == 1 ? [1] + lhs : lhs
    let b = rhs.count == 1 ? rhs + [1] : rhs
    guard a[a.count - 1] == b[b.count - 2] else {
      throw ONNXImportError.shape("inner dimensions of \(lhs) and \(rhs) differ")
    }
    guard let batch = Broadcast.shape(Array(a.dropLast(2)), Array(b.dropLast(2))) else {
      throw ONNXImportError.shape("batch dimensions of \(lhs) and \(rhs) cannot be broadcast")
    }
    var out = batch
    if lhs.count > 1 { out.append(a[a.count - 2]) }
    if rhs.count > 1 { out.append(b[b.count - 1]) }
    return out
  }

  static func poolShape(_ ctx: OpContext) throws -> TensorType {
    let x = try ctx.type(0)
    try Shapes.requireNumeric(x)
    try Shapes.requireRank(x, atLeast: 3)
    let kernel = try ctx.node.requiredInts("kernel_shape")
    guard kernel.count == x.rank - 2 else {
      throw ONNXImportError.attribute("kernel_shape \(kernel) must have \(x.rank - 2) values for input \(x.shape)")
    }
    let window = try Window(ctx.node, kernel: kernel, ceilModeAllowed: true)
    let spatial = try window.outputShape(Array(x.shape.dropFirst(2)))
    return x.with(shape: Array(x.shape.prefix(2)) + spatial)
  }
}
