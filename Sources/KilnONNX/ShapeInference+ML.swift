import KilnIR

// The ai.onnx.ml domain (opsets 1-5): the tensor-only classical-ML operators Kiln compiles.

extension OpRegistry {
  /// Highest ai.onnx.ml opset the importer knows.
  static let maxMLOpset = 5

  /// ai.onnx.ml operators by name (a separate table: the domain has its own names and opsets).
  static let mlSpecs: [String: OpSpec] = {
    var specs: [String: OpSpec] = [:]
    specs["Binarizer"] = OpSpec(
      attributes: ["threshold"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireNumeric(x)
        return [x]
      })
    specs["ArrayFeatureExtractor"] = OpSpec(
      attributes: [], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let indices = try ctx.type(1)
        guard indices.dtype == .int64 else { throw ONNXImportError.shape("indices must be int64, got \(indices)") }
        try Shapes.requireRank(x, atLeast: 1)
        let count = indices.elementCount ?? 0
        // A 1-D X gives one row, as ONNX Runtime does.
        return [x.with(shape: x.rank == 1 ? [1, count] : Array(x.shape.dropLast()) + [count])]
      })
    specs["TreeEnsemble"] = OpSpec(
      attributes: [
        "aggregate_function", "leaf_targetids", "leaf_weights", "membership_values", "n_targets", "nodes_falseleafs",
        "nodes_falsenodeids", "nodes_featureids", "nodes_missing_value_tracks_true", "nodes_modes", "nodes_splits",
        "nodes_trueleafs", "nodes_truenodeids", "post_transform", "tree_roots",
      ], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        guard x.rank == 2 else { throw ONNXImportError.shape("X must be 2-D [N, features], got \(x.shape)") }
        let model = try TreeEnsembleModel(ctx.node, features: x.shape[1])
        return [x.with(shape: [x.shape[0], model.targets])]
      })
    return specs
  }()
}

