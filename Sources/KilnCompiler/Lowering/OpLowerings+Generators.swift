import KilnIR

/// Ops whose output does not read tensor inputs element by element: values generated from
/// attributes and compile-time shapes. They fuse into consumers as literals, so a large
/// ConstantOfShape (e.g. a splatted weight) costs neither bundle space nor memory.
extension OpLowerings {
  static let generatorOps = ["ConstantOfShape"]

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
    default:
      return nil
    }
  }
}
