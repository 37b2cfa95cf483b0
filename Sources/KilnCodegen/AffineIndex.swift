import KilnCompiler

/// `constant + sum(coefficient * term)` over output coordinates and reduction variables.
struct AffineIndex: Sendable, Hashable {
  enum Term: Hashable, Sendable {
    case coordinate(Int)
    case variable(Int)
  }

  var terms: [Term: Int]
  var constant: Int

  init?(_ expr: Expr) {
    guard let form = AffineIndex.analyse(expr) else { return nil }
    self = form
  }

  private init(terms: [Term: Int], constant: Int) {
    self.terms = terms.filter { $0.value != 0 }
    self.constant = constant
  }

  func coefficient(_ term: Term) -> Int { terms[term] ?? 0 }

  /// The same map with the reduction variable renamed to variable 0.
  func renaming(variable: Int) -> AffineIndex {
    var renamed: [Term: Int] = [:]
    for (term, value) in terms {
      if case .variable(let v) = term, v == variable { renamed[.variable(0), default: 0] += value } else { renamed[term, default: 0] += value }
    }
    return AffineIndex(terms: renamed, constant: constant)
  }

  /// The affine form of an index expression, each distinct node analysed once.
  private static func analyse(_ expr: Expr) -> AffineIndex? {
    expr.fold { (node: Expr, operands: [AffineIndex?]) -> AffineIndex? in
      switch node.kind {
      case .literal(let literal) where literal.type == .index:
        return AffineIndex(terms: [:], constant: Int(literal.integer))
      case .coordinate(let axis):
        return AffineIndex(terms: [.coordinate(axis): 1], constant: 0)
      case .variable(let id):
        return AffineIndex(terms: [.variable(id): 1], constant: 0)
      case .binary(let op, _, _) where op == .add || op == .subtract:
        guard let a = operands[0], let b = operands[1] else { return nil }
        let sign = op == .add ? 1 : -1
        var terms = a.terms
        for (term, value) in b.terms { terms[term, default: 0] += sign * value }
        return AffineIndex(terms: terms, constant: a.constant + sign * b.constant)
      case .binary(.multiply, _, _):
        guard let a = operands[0], let b = operands[1] else { return nil }
        if a.terms.isEmpty { return AffineIndex(terms: b.terms.mapValues { $0 * a.constant }, constant: a.constant * b.constant) }
        if b.terms.isEmpty { return AffineIndex(terms: a.terms.mapValues { $0 * b.constant }, constant: a.constant * b.constant) }
        return nil
      default:
        return nil
      }
    }
  }
}
