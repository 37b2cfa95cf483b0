import KilnIR

// The ai.onnx.ml domain: Binarizer and ArrayFeatureExtractor (elementwise and movement) and
// TreeEnsemble, whose trees are known at compile time and become nested selects: each output
// element walks every tree from its root to a leaf with one comparison per level.

extension OpLowerings {
  static let mlDomain = "ai.onnx.ml"
  static let mlOps = ["ArrayFeatureExtractor", "Binarizer", "TreeEnsemble"]

  static func mlLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "Binarizer": binarizer
    case "ArrayFeatureExtractor": arrayFeatureExtractor
    case "TreeEnsemble": treeEnsemble
    default: nil
    }
  }

  /// Y = X > threshold ? 1 : 0, in X's type.
  static let binarizer = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = try ctx.computeType(0)
    let threshold = try ctx.floatAttribute("threshold", default: 0)
    let x = try ctx.element(0, at: coordinates)
    return .select(.binary(.greater, x, .constant(threshold, type)), .constant(1, type), .constant(0, type))
  }

  /// Z[..., j] = X[..., Y[j]] (Y read flat; a 1-D X is one row).
  static let arrayFeatureExtractor = OpLowering(.movement) { ctx, _, coordinates in
    let x = try ctx.shape(0)
    let indices = try ctx.shape(1)
    let j = coordinates[coordinates.count - 1]
    let index = try ctx.element(1, at: Expr.coordinates(ofLinear: j, shape: indices))
    let column = wrappedIndex(index, extent: x[x.count - 1])
    let rows = x.count == 1 ? [] : Array(coordinates.dropLast())
    return try ctx.element(0, at: rows + [column])
  }

  static let treeEnsemble = OpLowering(.elementwise) { ctx, _, coordinates in
    let features = try ctx.shape(0)[1]
    let model = try TreeEnsembleModel(ctx.node, features: features)
    let type = try ctx.computeType(0)
    let row = coordinates[0]
    let target = coordinates[1]
    func feature(_ index: Int) throws -> Expr { try ctx.element(0, at: [row, .index(index)]) }
    /// The weight a leaf adds to the output's target (0 when the leaf is for another target).
    func leafValue(_ leaf: Int) -> Expr {
      .select(
        .binary(.equal, target, .index(model.leafTargets[leaf])), .constant(model.leafWeights[leaf], type),
        .constant(0, type))
    }
    func walk(_ tree: TreeEnsembleModel.Tree) throws -> Expr {
      switch tree {
      case .leaf(let leaf): return leafValue(leaf)
      case .branch(let index, let mode, let split, let members, let missingGoesTrue, let whenTrue, let whenFalse):
        let x = try feature(index)
        let s = Expr.constant(split, type)
        var condition: Expr
        switch mode {
        case .lessEqual: condition = .binary(.lessEqual, x, s)
        case .less: condition = .binary(.less, x, s)
        case .greaterEqual: condition = .binary(.greaterEqual, x, s)
        case .greater: condition = .binary(.greater, x, s)
        case .equal: condition = .binary(.equal, x, s)
        case .notEqual: condition = .binary(.notEqual, x, s)
        case .member:
          condition = members.map { Expr.binary(.equal, x, .constant($0, type)) }
            .reduce(Expr.literal(.of(0, .bool))) { .binary(.logicalOr, $0, $1) }
        }
        if missingGoesTrue { condition = .binary(.logicalOr, .unary(.isNaN, x), condition) }
        return .select(condition, try walk(whenTrue), try walk(whenFalse))
      }
    }
    let values = try model.trees.map(walk)
    let sum = values.dropFirst().reduce(values[0]) { .binary(.add, $0, $1) }
    switch model.aggregate {
    case .sum: return sum
    case .average: return .binary(.divide, sum, .constant(Double(values.count), type))
    case .minimum, .maximum:
      throw ctx.error("aggregate_function \(model.aggregate.rawValue) (MIN/MAX) is not supported (SUM and AVERAGE are)")
    }
  }
}
