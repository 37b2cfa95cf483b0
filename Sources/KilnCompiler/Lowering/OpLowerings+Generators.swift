import KilnIR

/// Ops whose output does not read tensor inputs element by element: values generated from
/// attributes and compile-time shapes. They fuse into consumers as literals, so a large
/// ConstantOfShape (e.g. a splatted weight) costs neither bundle space nor memory.
extension OpLowerings {
  static let generatorOps = ["ConstantOfShape", "EyeLike", "OneHot"]

  static func generatorLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "ConstantOfShape":
      return OpLowering(.elementwise) { context, _, _ in
        let dtype = context.outputType().dtype
        guard case .tensor(let value)? = context.node.attributes["value"] else {
          // The default fill is float32 zero.
          return .literal(.of(0, .compute(dtype)))
        }
        guard value.elementCount == 1 else {
          throw context.error("attribute 'value' must hold exactly one element, has \(value.elementCount)")
        }
        return .literal(KernelBuilder.literal(value))
      }
    case "EyeLike":
      // Ones on diagonal k of a 2-D output, zeros elsewhere.
      return OpLowering(.elementwise) { context, _, coordinates in
        guard coordinates.count == 2 else { throw context.error("input must be 2-D") }
        let k = try context.intAttribute("k", default: 0)
        let type = context.outputComputeType()
        let onDiagonal = Expr.binary(.equal, coordinates[1] - coordinates[0], .index(k))
        return .select(onDiagonal, .constant(1, type), .constant(0, type))
      }
    case "OneHot":
      return oneHot
    default:
      return nil
    }
  }

  /// OneHot: values[1] where the output coordinate on `axis` equals the index (negative
  /// indices count from depth), values[0] elsewhere.
  static let oneHot = OpLowering(.elementwise) { ctx, _, coordinates in
    let rank = coordinates.count
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: -1), rank: rank)
    let depth = ctx.outputShape()[axis]
    let type = ctx.outputComputeType()
    var outer = coordinates
    let position = outer.remove(at: axis)
    let index = Expr.cast(try ctx.element(0, at: outer, as: .int64), .index)
    let wrapped = Expr.select(.binary(.less, index, .index(0)), index + depth, index)
    let values = try ctx.shape(2)
    guard values.reduce(1, *) == 2 else { throw ctx.error("values must hold 2 elements, got shape \(values)") }
    let off = try ctx.element(2, at: values.map { _ in Expr.index(0) }, as: type)
    let onCoordinates = values.map { $0 == 1 ? Expr.index(0) : .index(1) }
    let on = try ctx.element(2, at: onCoordinates, as: type)
    return .select(.binary(.equal, wrapped, position), on, off)
  }
}
