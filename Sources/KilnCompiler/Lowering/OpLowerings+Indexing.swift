import KilnIR

// Ops whose output positions depend on data values. Each output element searches the inputs
// with `.reduce`: a scatter's element folds the updates whose index names it, TfIdfVectorizer's
// element counts n-gram matches. (TopK is a selection: `Decompose` and OpLowerings+Custom.)
// BitCast, an elementwise reinterpretation of stored bits, is registered with them.

extension OpLowerings {
  static let indexingOps = ["Scatter", "ScatterElements", "ScatterND", "TfIdfVectorizer", "BitCast"]

  static func indexingLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "Scatter", "ScatterElements": return scatterElements
    case "ScatterND": return scatterND
    case "TfIdfVectorizer": return tfIdfVectorizer
    case "BitCast": return bitCast
    default: return nil
    }
  }

  // MARK: Scatters

  /// How a scatter combines data with the updates aimed at one element.
  enum ScatterReduction: String {
    case none, add, mul, max, min
  }

  static func scatterReduction(_ ctx: LoweringContext) throws -> ScatterReduction {
    let name = try ctx.stringAttribute("reduction", default: "none")
    guard let reduction = ScatterReduction(rawValue: name) else {
      throw ctx.error("attribute 'reduction' is '\(name)'; expected none, add, mul, max or min")
    }
    return reduction
  }

  /// The output element of a scatter: `data` combined with the updates for which `matches`
  /// holds, in update order. `variable` runs over the `extent` candidate updates; `update(at:)`
  /// gives the candidate's value for an index expression. With reduction none the last
  /// matching update replaces the element.
  static func scatterElement(
    _ ctx: LoweringContext, data: Expr, variable: Int, extent: Int, matches: Expr, update: (Expr) throws -> Expr
  ) throws -> Expr {
    guard extent > 0 else { return data }
    let type = try ctx.computeType(0)
    let storage = try ctx.dtype(0)
    let candidate = try update(.variable(variable))
    func fold(_ op: ReduceOp, identity: Expr) -> Expr {
      .reduce(op, variable: variable, extent: extent, body: .choose(matches, candidate, identity))
    }
    switch try scatterReduction(ctx) {
    case .none:
      let last = Expr.reduce(
        .maximum, variable: variable, extent: extent, body: .choose(matches, .variable(variable), .index(-1)))
      return .select(last.isAtLeast(0), try update(Expr.indexMax(last, .index(0))), data)
    case .add: return .binary(.add, data, fold(.sum, identity: .constant(0, type)))
    case .mul: return .binary(.multiply, data, fold(.product, identity: .constant(1, type)))
    case .max: return .binary(.maximum, data, fold(.maximum, identity: TypeBounds.lowest(type, storage: storage)))
    case .min: return .binary(.minimum, data, fold(.minimum, identity: TypeBounds.highest(type, storage: storage)))
    }
  }

  /// ScatterElements (and the opset-9 Scatter): update `u` lands at its own coordinates with
  /// the axis coordinate replaced by `indices[u]`. Output element `c` looks at the updates that
  /// share `c` off the axis and folds those whose index equals `c[axis]`.
  static let scatterElements = OpLowering(.reduction, region: .gatherScatter) { ctx, _, coordinates in
    let data = try ctx.shape(0)
    let updates = try ctx.shape(2)
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: 0), rank: data.count)
    let variable = ctx.freshVariable()
    // Off the axis, an output coordinate past the updates' extent receives no update.
    var inside: [Expr] = []
    var position = coordinates
    for d in 0..<data.count where d != axis && updates[d] < data[d] {
      inside.append(coordinates[d].isLess(than: updates[d]))
      position[d] = updates[d] == 0 ? .index(0) : Expr.indexMin(coordinates[d], .index(updates[d] - 1))
    }
    func at(_ index: Expr) -> [Expr] {
      var mapped = position
      mapped[axis] = index
      return mapped
    }
    let target = wrappedIndex(try ctx.element(1, at: at(.variable(variable))), extent: data[axis])
    let element = try scatterElement(
      ctx, data: try ctx.element(0, at: coordinates), variable: variable, extent: updates[axis],
      matches: .binary(.equal, target, coordinates[axis])
    ) { index in try ctx.element(2, at: at(index)) }
    return .choose(.all(inside), element, try ctx.element(0, at: coordinates))
  }

  /// ScatterND: `indices[p]` (the last axis, of length k) names a slice of data's first k axes
  /// that `updates[p]` replaces. Output element `c` folds the updates `p` whose index tuple
  /// equals `c[..<k]`, taking their element at `c[k...]`.
  static let scatterND = OpLowering(.reduction, region: .gatherScatter) { ctx, _, coordinates in
    let data = try ctx.shape(0)
    let indices = try ctx.shape(1)
    guard let depth = indices.last, depth <= data.count else {
      throw ctx.error("indices shape \(indices) does not fit data shape \(data)")
    }
    let batch = Array(indices.dropLast())
    let variable = ctx.freshVariable()
    func batchPosition(_ linear: Expr) -> [Expr] { Expr.coordinates(ofLinear: linear, shape: batch) }
    let position = batchPosition(.variable(variable))
    let matches = try Expr.all(
      (0..<depth).map { j in
        let index = try ctx.element(1, at: position + [.index(j)])
        return .binary(.equal, wrappedIndex(index, extent: data[j]), coordinates[j])
      })
    return try scatterElement(
      ctx, data: try ctx.element(0, at: coordinates), variable: variable, extent: batch.reduce(1, *),
      matches: matches
    ) { linear in try ctx.element(2, at: batchPosition(linear) + Array(coordinates[depth...])) }
  }

  // MARK: BitCast

  /// BitCast: each element's stored bits read as the output dtype (of the same width).
  static let bitCast = OpLowering(.elementwise) { ctx, _, coordinates in
    let from = try ctx.dtype(0)
    let to = ctx.outputType().dtype
    guard from.bitWidth == to.bitWidth else {
      throw ctx.error("bitcast from \(from.rawValue) to \(to.rawValue) changes the bit width")
    }
    let x = try ctx.element(0, at: coordinates)
    return from == to ? x : .bitcast(x, from: from, to: to)
  }
}
