import KilnIR

// Ops whose output positions depend on data values: the scatters (Scatter, ScatterElements,
// ScatterND), top-k selection (TopK) and n-gram counting (TfIdfVectorizer), plus BitCast.

extension OpRegistry {
  static func indexingSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]
    for op in ["Scatter", "ScatterElements"] {
      specs[op] = OpSpec(
        attributes: ["axis", "reduction"], inputs: 3...3, outputs: 1...1,
        infer: { ctx in
          let data = try ctx.type(0)
          let indices = try ctx.type(1)
          let updates = try ctx.type(2)
          try requireIndices(indices)
          try Shapes.requireRank(data, atLeast: 1, "data")
          try requireScatterReduction(ctx)
          let axis = try Shapes.axis(try ctx.node.int("axis", default: 0), rank: data.rank)
          guard indices.shape == updates.shape, indices.rank == data.rank else {
            throw ONNXImportError.shape(
              "indices \(indices.shape) and updates \(updates.shape) must share one shape "
                + "of the rank of data \(data.shape)")
          }
          for d in 0..<data.rank where d != axis && updates.shape[d] > data.shape[d] {
            throw ONNXImportError.shape("updates \(updates.shape) exceed data \(data.shape) on axis \(d)")
          }
          guard updates.dtype == data.dtype else {
            throw ONNXImportError.shape("updates are \(updates.dtype.rawValue), data is \(data.dtype.rawValue)")
          }
          return [data]
        })
    }

    specs["ScatterND"] = OpSpec(
      attributes: ["reduction"], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let data = try ctx.type(0)
        let indices = try ctx.type(1)
        let updates = try ctx.type(2)
        try requireIndices(indices)
        try requireScatterReduction(ctx)
        guard let depth = indices.shape.last, depth <= data.rank,
          updates.shape == Array(indices.shape.dropLast()) + Array(data.shape[depth...])
        else {
          throw ONNXImportError.shape(
            "indices \(indices.shape) and updates \(updates.shape) do not fit data \(data.shape)")
        }
        guard updates.dtype == data.dtype else {
          throw ONNXImportError.shape("updates are \(updates.dtype.rawValue), data is \(data.dtype.rawValue)")
        }
        return [data]
      })

    specs["TopK"] = OpSpec(
      attributes: ["axis", "k", "largest", "sorted"], inputs: 1...2, outputs: 2...2,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireNumeric(x)
        try Shapes.requireRank(x, atLeast: 1)
        let axis = try Shapes.axis(try ctx.node.int("axis", default: -1), rank: x.rank)
        let k = try topKCount(ctx)
        guard k >= 0, k <= x.shape[axis] else {
          throw ONNXImportError.shape("k \(k) is out of range for axis \(axis) of shape \(x.shape)")
        }
        var shape = x.shape
        shape[axis] = k
        return [x.with(shape: shape), TensorType(.int64, shape)]
      })

    specs["BitCast"] = OpSpec(
      attributes: ["to"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let code = try ctx.node.requiredInt("to")
        guard let code32 = Int32(exactly: code), let dtype = DType(onnxCode: code32) else {
          throw ONNXImportError(
            .unsupportedType, "bitcast to \(TensorDecoder.typeName(Int32(clamping: code))) is not supported")
        }
        guard dtype.bitWidth == x.dtype.bitWidth else {
          throw ONNXImportError.shape(
            "bitcast from \(x.dtype.rawValue) to \(dtype.rawValue) changes the bit width")
        }
        return [x.with(dtype: dtype)]
      })

    specs["TfIdfVectorizer"] = OpSpec(
      attributes: [
        "max_gram_length", "min_gram_length", "max_skip_count", "mode", "ngram_counts", "ngram_indexes",
        "pool_int64s", "pool_strings", "weights",
      ],
      inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard x.dtype == .int32 || x.dtype == .int64 else {
          throw ONNXImportError(
            .unsupportedType, "TfIdfVectorizer input is \(x.dtype.rawValue); Kiln supports int32 and int64 tokens")
        }
        guard x.rank == 1 || x.rank == 2 else {
          throw ONNXImportError.shape("input shape \(x.shape) must be [C] or [N, C]")
        }
        let indexes = try ctx.node.requiredInts("ngram_indexes")
        guard let largest = indexes.max(), indexes.allSatisfy({ $0 >= 0 }) else {
          throw ONNXImportError.attribute("ngram_indexes \(indexes) must be non-empty and non-negative")
        }
        return [TensorType(.float32, Array(x.shape.dropLast()) + [largest + 1])]
      })
    return specs
  }

  /// The `reduction` attribute of a scatter: `none` always, `add`/`mul` from opset 16,
  /// `max`/`min` from opset 18; Scatter (opset 9) takes none.
  static func requireScatterReduction(_ ctx: OpContext) throws {
    guard let reduction = try ctx.node.string("reduction") else { return }
    let since = ["none": 0, "add": 16, "mul": 16, "max": 18, "min": 18][reduction]
    guard let since, ctx.node.op != "Scatter" || reduction == "none" else {
      throw ONNXImportError.attribute("reduction '\(reduction)' is not one of none, add, mul, max, min")
    }
    guard ctx.opset >= since else {
      throw ONNXImportError.attribute("reduction '\(reduction)' needs opset \(since), the model uses \(ctx.opset)")
    }
    if reduction != "none" { try Shapes.requireNumeric(try ctx.type(0), "data") }
  }

  /// TopK's k: an attribute before opset 10, a one-element constant input from then on.
  static func topKCount(_ ctx: OpContext) throws -> Int {
    if ctx.opset < 10 { return try ctx.node.requiredInt("k") }
    guard let k = try ctx.constantInts(1, "K"), k.count == 1 else {
      throw ONNXImportError.shape("input 1 (K) must hold one value")
    }
    return k[0]
  }
}
