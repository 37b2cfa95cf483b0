/// Index arithmetic with folding: constants fold, adding 0 and multiplying by 1 vanish.
extension Expr {
  public static func index(_ value: Int) -> Expr { .literal(.index(value)) }

  public var indexConstant: Int? {
    if case .literal(let literal) = kind, literal.type == .index { return Int(literal.integer) }
    return nil
  }

  public static func + (a: Expr, b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(x + y) }
    if a.indexConstant == 0 { return b }
    if b.indexConstant == 0 { return a }
    return .binary(.add, a, b)
  }

  public static func - (a: Expr, b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(x - y) }
    if b.indexConstant == 0 { return a }
    return .binary(.subtract, a, b)
  }

  public static func * (a: Expr, b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(x * y) }
    if a.indexConstant == 0 || b.indexConstant == 0 { return .index(0) }
    if a.indexConstant == 1 { return b }
    if b.indexConstant == 1 { return a }
    return .binary(.multiply, a, b)
  }

  public static func + (a: Expr, b: Int) -> Expr { a + .index(b) }
  public static func - (a: Expr, b: Int) -> Expr { a - .index(b) }
  public static func * (a: Expr, b: Int) -> Expr { a * .index(b) }

  /// Floor division by a positive constant.
  public func floorDivided(by divisor: Int) -> Expr {
    precondition(divisor > 0, "index division by \(divisor)")
    if divisor == 1 { return self }
    if let x = indexConstant { return .index(Int((Double(x) / Double(divisor)).rounded(.down))) }
    return .binary(.floorDivide, self, .index(divisor))
  }

  /// Non-negative remainder by a positive constant.
  public func modulo(_ divisor: Int) -> Expr {
    precondition(divisor > 0, "index modulo by \(divisor)")
    if divisor == 1 { return .index(0) }
    if let x = indexConstant { return .index(((x % divisor) + divisor) % divisor) }
    return .binary(.modulo, self, .index(divisor))
  }

  /// Row-major linear offset of `coordinates` in `shape`.
  public static func linearIndex(_ coordinates: [Expr], shape: [Int]) -> Expr {
    precondition(coordinates.count == shape.count, "rank mismatch in linearIndex")
    var offset = Expr.index(0)
    var step = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
      if shape[axis] != 1 { offset = offset + coordinates[axis] * step }
      step *= shape[axis]
    }
    return offset
  }

  /// Coordinates of a row-major linear offset in `shape` (the inverse of `linearIndex`), for a
  /// linear index known to be in range: the outermost non-unit axis needs no modulo.
  public static func coordinates(ofLinear linear: Expr, shape: [Int]) -> [Expr] {
    var result = [Expr](repeating: .index(0), count: shape.count)
    let outermost = shape.firstIndex { $0 != 1 }
    var step = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
      let quotient = linear.floorDivided(by: step)
      result[axis] = axis == outermost ? quotient : quotient.modulo(shape[axis])
      step *= shape[axis]
    }
    return result
  }

  /// A boolean: `lower <= self < upper` for index expressions.
  public func inRange(_ lower: Int, _ upper: Int) -> Expr {
    if let x = indexConstant { return .literal(.of(x >= lower && x < upper ? 1 : 0, .bool)) }
    return .binary(.logicalAnd, .binary(.greaterEqual, self, .index(lower)), .binary(.less, self, .index(upper)))
  }
}
