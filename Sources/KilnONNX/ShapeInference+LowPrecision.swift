import KilnIR

extension OpRegistry {
  /// Cast's `round_mode` (for float8e8m0 results), checked at import so that an unknown mode is
  /// reported with the model's node.
  @discardableResult
  static func castRoundMode(_ node: Node) throws -> E8M0RoundMode {
    let name = try node.string("round_mode", default: "up")
    guard let mode = E8M0RoundMode(rawValue: name) else {
      throw ONNXImportError.unsupported("round_mode '\(name)' is not supported (up, down or nearest)")
    }
    return mode
  }
}

extension Fold {
  /// Cast and CastLike on a constant: ONNX Cast semantics including `saturate` (8-bit floats) and
  /// `round_mode` (float8e8m0).
  static func cast(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    let saturate = try ctx.node.int("saturate", default: 1) != 0
    return [x.cast(to: out.dtype, saturate: saturate, roundMode: try OpRegistry.castRoundMode(ctx.node))]
  }
}
