import KilnIR

// Ops whose result sizes depend on data: each result holds the most the op can produce (the
// importer's shapes), and the node's last output is the int64 scalar extent the data decides
// (`Graph.extents`); the runtime trims the results to it. Every output is a custom program, and
// every program of a node repeats the node's walk over its inputs, writing only its own output.

extension OpLowerings {
  public static let dataDependentOps = ["NonZero", "Compress", "NonMaxSuppression", "Unique"]

  static func dataDependentLowering(_ node: Node) -> OpLowering? {
    switch node.op {
    case "NonZero": nonZero
    case "Compress": compress
    case "NonMaxSuppression": nonMaxSuppression
    case "Unique": unique
    default: nil
    }
  }

  /// Whether an element counts as true / non-zero (NaN does).
  static func isNonZero(_ x: Expr) -> Expr {
    x.type == .bool ? x : .binary(.notEqual, x, .constant(0, x.type))
  }

  /// The program storing `value` as the extent (output 0 of the extent's kernel).
  static func storeExtent(_ b: inout KernelProgram.Builder, _ value: Expr) {
    b.store(.index(0), .cast(value, .int64))
  }

  /// NonZero: one invocation walks the elements in order; the c-th non-zero one writes its
  /// coordinates into column c of the [rank, elements] result.
  static let nonZero = OpLowering { ctx, output in
    let shape = try ctx.shape(0)
    let count = shape.reduce(1, *)
    var b = KernelProgram.Builder()
    let found = b.local(.index(0))
    try b.loop(from: .index(0), to: .index(count)) { b, p in
      b.branch(isNonZero(try ctx.load(0, at: p))) { b in
        if output == 0 {
          for (axis, coordinate) in Expr.coordinates(ofLinear: p, shape: shape).enumerated() {
            b.store(found + axis * count, .cast(coordinate, .int64))
          }
        }
        b.set(found, found + 1)
      }
    }
    if output == 1 { storeExtent(&b, found) }
    return b.program(invocations: 1)
  }

  /// Compress: each invocation (one per position off the axis) copies its element of every
  /// selected slice, in order; the extent counts the selected slices.
  static let compress = OpLowering { ctx, output in
    let input = try ctx.shape(0)
    let conditionLength = try ctx.shape(1)[0]
    let axis = try ctx.intAttribute("axis").map { try ctx.normalizedAxis($0, rank: input.count) }
    let shape = axis == nil ? [input.reduce(1, *)] : input
    let along = axis ?? 0
    let lines = AxisLines(shape: shape, axis: along)
    let selectable = min(conditionLength, lines.extent)
    var b = KernelProgram.Builder()
    let kept = b.local(.index(0))
    if output == 0 {
      let most = ctx.outputShape()[along]
      let outer = Expr.coordinate(0).floorDivided(by: lines.inner)
      let inner = Expr.coordinate(0).modulo(lines.inner)
      try b.loop(from: .index(0), to: .index(selectable)) { b, j in
        try b.branch(isNonZero(try ctx.load(1, at: j))) { b in
          let value = try ctx.load(0, at: (outer * lines.extent + j) * lines.inner + inner)
          b.store((outer * most + kept) * lines.inner + inner, value)
          b.set(kept, kept + 1)
        }
      }
      return b.program(invocations: lines.count)
    }
    try b.loop(from: .index(0), to: .index(selectable)) { b, j in
      b.branch(isNonZero(try ctx.load(1, at: j))) { b in b.set(kept, kept + 1) }
    }
    storeExtent(&b, kept)
    return b.program(invocations: 1)
  }
}
