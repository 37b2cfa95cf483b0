/// Traversals of the expression graph. Each visits every distinct node once (memoised by node
/// identity), so their cost is linear in the size of the graph, not of the tree it unfolds to.
extension Expr {
  /// The operands, in a fixed order per kind.
  public var children: [Expr] { kind.children }

  /// The same operation over new operands (`children.count` of them, in `children`' order).
  public func replacingChildren(_ new: [Expr]) -> Expr {
    precondition(new.count == children.count, "replacingChildren: \(new.count) operands for \(children.count)")
    switch kind {
    case .literal, .coordinate, .variable, .local: return self
    case .load(let input, let dtype, _): return .load(input: input, dtype: dtype, index: new[0])
    case .loadOutput(let dtype, _): return .loadOutput(dtype: dtype, index: new[0])
    case .loadScratch: return .loadScratch(new[0])
    case .unary(let op, _): return .unary(op, new[0])
    case .cast(_, let type): return .cast(new[0], type)
    case .bitcast(_, let from, let to): return .bitcast(new[0], from: from, to: to)
    case .binary(let op, _, _): return .binary(op, new[0], new[1])
    case .select: return .select(new[0], new[1], new[2])
    case .reduce(let op, let variable, let extent, _): return .reduce(op, variable: variable, extent: extent, body: new[0])
    }
  }

  /// Every distinct node once, operands before their users (this value last).
  public func postOrder() -> [Expr] { Expr.postOrder([self]) }

  /// Every distinct node reachable from `roots` once, operands before their users.
  public static func postOrder(_ roots: [Expr]) -> [Expr] {
    var seen = Set<ObjectIdentifier>()
    var order: [Expr] = []
    // Iterative, so deep graphs (a long chain of selects) cannot overflow the stack.
    var stack: [(Expr, Bool)] = roots.reversed().map { ($0, false) }
    while let (expr, expanded) = stack.popLast() {
      if expanded {
        order.append(expr)
        continue
      }
      guard seen.insert(ObjectIdentifier(expr.node)).inserted else { continue }
      stack.append((expr, true))
      for child in expr.children.reversed() where !seen.contains(ObjectIdentifier(child.node)) {
        stack.append((child, false))
      }
    }
    return order
  }

  /// Every distinct node once, each before its operands, in the order a depth-first walk from
  /// this value first meets them (left operands first).
  public func preOrder() -> [Expr] {
    var seen = Set<ObjectIdentifier>()
    var order: [Expr] = []
    var stack = [self]
    while let expr = stack.popLast() {
      guard seen.insert(ObjectIdentifier(expr.node)).inserted else { continue }
      order.append(expr)
      stack += expr.children.reversed()
    }
    return order
  }

  /// Number of distinct nodes.
  public var nodeCount: Int { postOrder().count }

  /// A bottom-up fold: `combine(node, operand results)` once per distinct node.
  public func fold<T>(_ combine: (Expr, [T]) throws -> T) rethrows -> T {
    var results: [ObjectIdentifier: T] = [:]
    for expr in postOrder() {
      let operands = expr.children.map { results[ObjectIdentifier($0.node)]! }
      results[ObjectIdentifier(expr.node)] = try combine(expr, operands)
    }
    return results[ObjectIdentifier(node)]!
  }

  /// Whether some node satisfies `predicate`.
  public func contains(where predicate: (Expr) throws -> Bool) rethrows -> Bool {
    try postOrder().contains(where: predicate)
  }

  /// The value rewritten top-down: where `replace(node)` gives a value, that value stands for
  /// the node (and its operands are not visited); elsewhere the node is rebuilt over its
  /// rewritten operands. Each distinct node is visited once, so shared operands stay shared.
  public func replacing(_ replace: (Expr) throws -> Expr?) rethrows -> Expr {
    var memo: [ObjectIdentifier: Expr] = [:]
    func visit(_ expr: Expr) throws -> Expr {
      let key = ObjectIdentifier(expr.node)
      if let done = memo[key] { return done }
      let result: Expr
      if let replacement = try replace(expr) {
        result = replacement
      } else {
        let operands = expr.children
        if operands.isEmpty {
          result = expr
        } else {
          let rewritten = try operands.map(visit)
          let unchanged = zip(operands, rewritten).allSatisfy { $0.node === $1.node }
          result = unchanged ? expr : expr.replacingChildren(rewritten)
        }
      }
      memo[key] = result
      return result
    }
    return try visit(self)
  }

  /// Bottom-up rewriting: `transform` sees each distinct node rebuilt over its transformed
  /// operands and returns its replacement.
  public func rebuilt(_ transform: (Expr) throws -> Expr) rethrows -> Expr {
    try Expr.rebuilt([self], transform)[0]
  }

  /// `rebuilt` over several roots at once: a node they share is rewritten once, so the results
  /// share its replacement (a kernel's body and the region values that point into it).
  public static func rebuilt(_ roots: [Expr], _ transform: (Expr) throws -> Expr) rethrows -> [Expr] {
    var results: [ObjectIdentifier: Expr] = [:]
    for expr in postOrder(roots) {
      let operands = expr.children.map { results[$0.identity]! }
      let unchanged = zip(expr.children, operands).allSatisfy { $0.node === $1.node }
      results[expr.identity] = try transform(unchanged ? expr : expr.replacingChildren(operands))
    }
    return roots.map { results[$0.identity]! }
  }

  /// Every occurrence of `target` replaced by `replacement`.
  public func replacing(_ target: Expr, with replacement: Expr) -> Expr {
    replacing { $0 == target ? replacement : nil }
  }

  /// Replaces load inputs through `map` (used when a fused producer's inputs are renumbered).
  public func remappingInputs(_ map: (Int) -> Int) -> Expr {
    rebuilt { expr in
      guard case .load(let input, let dtype, let index) = expr.kind else { return expr }
      return .load(input: map(input), dtype: dtype, index: index)
    }
  }

  /// The output axes this value reads.
  public var coordinatesUsed: Set<Int> {
    var axes = Set<Int>()
    for expr in postOrder() { if case .coordinate(let axis) = expr.kind { axes.insert(axis) } }
    return axes
  }

  /// The reduction variables this value reads (bound inside it or not).
  public var variablesUsed: Set<Int> {
    var ids = Set<Int>()
    for expr in postOrder() { if case .variable(let id) = expr.kind { ids.insert(id) } }
    return ids
  }

  /// Whether this value loads from `input`.
  public func loads(input: Int) -> Bool {
    contains { if case .load(input, _, _) = $0.kind { true } else { false } }
  }
}
