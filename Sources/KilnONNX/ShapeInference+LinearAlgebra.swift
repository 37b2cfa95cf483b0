import KilnIR

// Linear algebra: Det of small matrices.

extension OpRegistry {
  static func linearAlgebraSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]
    specs["Det"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        try Shapes.requireRank(x, atLeast: 2)
        let n = x.shape[x.rank - 1]
        guard x.shape[x.rank - 2] == n else {
          throw ONNXImportError.shape("input \(x.shape) must end in square matrices")
        }
        return [x.with(shape: Array(x.shape.dropLast(2)))]
      })
    return specs
  }
}
