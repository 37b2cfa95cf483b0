import KilnIR

// Reductions: ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare. Axes are an attribute until opset 13 (ReduceSum) or
// 18 (the others) and an optional input from then on, with `noop_with_empty_axes`.

/// Which axes a reduction removes (or keeps as 1) and its result shape.
struct ReductionGeometry {
  /// Reduced axes, sorted; empty for a no-op reduction.
  var axes: [Int]
  var keepDims: Bool
  var shape: [Int]
}

extension OpRegistry {
  static let reductionAxesInputSince = [
    "ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18, "ReduceL1": 18,
    "ReduceL2": 18, "ReduceLogSum": 18, "ReduceLogSumExp": 18, "ReduceSumSquare": 18,
  ]

  static func reductionSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]
    for op in reductionAxesInputSince.keys {
      specs[op] = OpSpec(
        attributes: ["axes", "keepdims", "noop_with_empty_axes"], inputs: 1...2, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          if ctx.node.op != "ReduceMax" && ctx.node.op != "ReduceMin" { try Shapes.requireNumeric(x) }
          return [x.with(shape: try reductionGeometry(ctx).shape)]
        },
        fold: Fold.reduce)
    }
    return specs
  }

  static func reductionGeometry(_ ctx: OpContext) throws -> ReductionGeometry {
    let x = try ctx.type(0)
    let since = reductionAxesInputSince[ctx.node.op] ?? 18
    let keepDims = try ctx.node.int("keepdims", default: 1) != 0
    let rawAxes = try ctx.axes(attributeBefore: since, slot: 1)
    if ctx.opset < since, ctx.inputCount > 1 {
      throw ONNXImportError.model("\(ctx.node.op) before opset \(since) takes one input (axes is an attribute)")
    }
    let noop = ctx.opset >= since ? try ctx.node.int("noop_with_empty_axes", default: 0) != 0 : false
    var axes: [Int]
    if let rawAxes, !rawAxes.isEmpty {
      axes = try Shapes.axes(rawAxes, rank: x.rank).sorted()
    } else if noop {
      return ReductionGeometry(axes: [], keepDims: keepDims, shape: x.shape)
    } else {
      axes = Array(0..<x.rank)
    }
    let reduced = Set(axes)
    var shape: [Int] = []
    for (axis, dim) in x.shape.enumerated() {
      if reduced.contains(axis) {
        if keepDims { shape.append(1) }
      } else {
        shape.append(dim)
      }
    }
    axes.sort()
    return ReductionGeometry(axes: axes, keepDims: keepDims, shape: shape)
  }
}
