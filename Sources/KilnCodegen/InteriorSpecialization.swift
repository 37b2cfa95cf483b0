import KilnCompiler
import KilnIR

/// The interior of a kernel along its innermost output axis: the columns where the body's masks
/// and clamps are decided (a padded window lies wholly inside its input there), and the body
/// simplified for them; then, within those columns, the interior rows of the axis before it.
///
/// Pools, depthwise and other per-element convolutions, and padding read their input through
/// clamped indices under `select(inside, ..., pad)`. For the columns where every tap is inside,
/// the conditions are always true and the clamps never bite: this folds them away by interval
/// analysis (every coordinate and reduction variable ranges over its extent, the restricted
/// coordinates over their interior only), which leaves straight-line, affine loads that the C
/// compiler vectorises along the row. A 2-D window keeps its row mask in the interior columns
/// (a mask the vectoriser cannot take: its loads are conditional); in the interior rows that
/// mask folds too. The folding is sound for any kernel: a comparison, select, minimum or maximum
/// is only replaced where the intervals decide it.
struct InteriorSpecialization {
  /// The interior columns of the innermost axis.
  let columns: ClosedRange<Int>
  /// The body for those columns.
  let body: Expr
  /// The interior rows of the axis before it (a 2-D window's top and bottom borders excluded) and
  /// the body for interior columns of those rows, or nil when restricting the rows folds nothing
  /// more.
  let rows: (range: ClosedRange<Int>, body: Expr)?

  /// The widest interior where the simplified body has the fewest conditionals left, or nil when
  /// no column range simplifies anything (or the row is too short to be worth a second body).
  init?(_ kernel: Kernel) {
    guard let last = kernel.shape.indices.last, kernel.shape[last] >= 5 else { return nil }
    let width = kernel.shape[last]
    func simplified(_ restricted: [Int: ClosedRange<Int>]) -> Expr {
      var folder = IntervalFolder(kernel: kernel, restricted: restricted)
      return folder.fold(kernel.body)
    }
    guard let columns = Self.widest(width, minimum: 3, baseline: kernel.body.conditionalCount, { simplified([last: $0]) })
    else { return nil }
    self.columns = columns
    body = simplified([last: columns])
    // Rows: with the columns in their interior, the rows where the rest of the masks fold.
    let rowAxis = last - 1
    if rowAxis >= 0, kernel.shape[rowAxis] >= 3,
      let rows = Self.widest(kernel.shape[rowAxis], minimum: 1, baseline: body.conditionalCount, { simplified([last: columns, rowAxis: $0]) })
    {
      self.rows = (rows, simplified([last: columns, rowAxis: rows]))
    } else {
      rows = nil
    }
  }

  /// The widest range of 0..<extent, grown from its centre, over which `simplify` leaves fewer
  /// conditionals than `baseline` (and no more than at the centre), at least `minimum` long.
  private static func widest(_ extent: Int, minimum: Int, baseline: Int, _ simplify: (ClosedRange<Int>) -> Expr) -> ClosedRange<Int>? {
    let center = extent / 2
    let best = simplify(center...center).conditionalCount
    guard best < baseline else { return nil }
    var low = center
    while low > 0, simplify((low - 1)...center).conditionalCount == best { low -= 1 }
    var high = center
    while high < extent - 1, simplify(low...(high + 1)).conditionalCount == best { high += 1 }
    // Too narrow an interior is not worth a second copy of the body.
    guard high - low + 1 >= minimum else { return nil }
    return low...high
  }
}

/// Folds comparisons, selects, minima and maxima that interval analysis decides.
struct IntervalFolder {
  let kernel: Kernel
  /// Output axes restricted to part of their extent (the others range over all of it).
  let restricted: [Int: ClosedRange<Int>]
  /// Each folded index value's interval (nil: unknown), by node; the value is kept alive with it.
  private var ranges: [ObjectIdentifier: (value: Expr, range: ClosedRange<Int>?)] = [:]

  init(kernel: Kernel, restricted: [Int: ClosedRange<Int>]) {
    self.kernel = kernel
    self.restricted = restricted
  }

  /// `expr` with what the intervals decide folded, each distinct node once, bottom-up.
  mutating func fold(_ expr: Expr) -> Expr {
    // Variable ids are unique within a kernel, so each one's extent is known up front.
    var extents: [Int: Int] = [:]
    for node in expr.postOrder() {
      if case .reduce(_, let variable, let extent, _) = node.kind { extents[variable] = extent }
    }
    return expr.rebuilt { node in
      let folded = simplify(node)
      ranges[folded.identity] = (folded, range(folded, extents: extents))
      return folded
    }
  }

  /// One node over already folded operands, simplified where the intervals decide it.
  private func simplify(_ expr: Expr) -> Expr {
    switch expr.kind {
    case .unary(.logicalNot, let x):
      if let value = x.boolConstant { return .literal(.of(value ? 0 : 1, .bool)) }
    case .select(let condition, let a, let b):
      if let value = condition.boolConstant { return value ? a : b }
    case .binary(let op, let x, let y):
      switch op {
      case .logicalAnd:
        if x.boolConstant == false || y.boolConstant == false { return .literal(.of(0, .bool)) }
        if x.boolConstant == true { return y }
        if y.boolConstant == true { return x }
      case .logicalOr:
        if x.boolConstant == true || y.boolConstant == true { return .literal(.of(1, .bool)) }
        if x.boolConstant == false { return y }
        if y.boolConstant == false { return x }
      case .less, .lessEqual, .greater, .greaterEqual, .equal, .notEqual:
        if let p = known(x), let q = known(y), let value = Self.compare(op, p, q) {
          return .literal(.of(value ? 1 : 0, .bool))
        }
      case .minimum, .maximum:
        if let p = known(x), let q = known(y) {
          let xIsLower = p.upperBound <= q.lowerBound
          let yIsLower = q.upperBound <= p.lowerBound
          if op == .minimum, xIsLower { return x }
          if op == .minimum, yIsLower { return y }
          if op == .maximum, xIsLower { return y }
          if op == .maximum, yIsLower { return x }
        }
      default: break
      }
    default: break
    }
    return expr
  }

  private func known(_ expr: Expr) -> ClosedRange<Int>? { ranges[expr.identity]?.range }

  /// The outcome of `p op q` for every value in the intervals, or nil when it varies.
  static func compare(_ op: BinaryOp, _ p: ClosedRange<Int>, _ q: ClosedRange<Int>) -> Bool? {
    switch op {
    case .less: return p.upperBound < q.lowerBound ? true : (p.lowerBound >= q.upperBound ? false : nil)
    case .lessEqual: return p.upperBound <= q.lowerBound ? true : (p.lowerBound > q.upperBound ? false : nil)
    case .greater: return compare(.less, q, p)
    case .greaterEqual: return compare(.lessEqual, q, p)
    case .equal:
      if p.lowerBound == p.upperBound, q.lowerBound == q.upperBound, p.lowerBound == q.lowerBound { return true }
      return p.upperBound < q.lowerBound || q.upperBound < p.lowerBound ? false : nil
    case .notEqual: return compare(.equal, p, q).map { !$0 }
    default: return nil
    }
  }

  /// The values a (folded) index expression takes, from its operands' intervals, or nil when the
  /// analysis cannot tell (any other type included, so only index comparisons fold).
  private func range(_ expr: Expr, extents: [Int: Int]) -> ClosedRange<Int>? {
    guard expr.type == .index else { return nil }
    switch expr.kind {
    case .literal(let literal):
      let value = Int(literal.integer)
      return value...value
    case .coordinate(let axis):
      if let range = restricted[axis] { return range }
      guard axis < kernel.shape.count, kernel.shape[axis] > 0 else { return nil }
      return 0...(kernel.shape[axis] - 1)
    case .variable(let id):
      guard let extent = extents[id], extent > 0 else { return nil }
      return 0...(extent - 1)
    case .binary(let op, let a, let b):
      guard let x = known(a), let y = known(b) else { return nil }
      var bounds: [Int]
      switch op {
      case .add: bounds = [x.lowerBound + y.lowerBound, x.upperBound + y.upperBound]
      case .subtract: bounds = [x.lowerBound - y.upperBound, x.upperBound - y.lowerBound]
      case .multiply:
        // Index arithmetic of real kernels stays far below 2^40; beyond it, do not reason.
        guard [x.lowerBound, x.upperBound, y.lowerBound, y.upperBound].allSatisfy({ abs($0) < 1 << 40 }) else { return nil }
        bounds = [x.lowerBound * y.lowerBound, x.lowerBound * y.upperBound, x.upperBound * y.lowerBound, x.upperBound * y.upperBound]
      case .minimum: bounds = [Swift.min(x.lowerBound, y.lowerBound), Swift.min(x.upperBound, y.upperBound)]
      case .maximum: bounds = [Swift.max(x.lowerBound, y.lowerBound), Swift.max(x.upperBound, y.upperBound)]
      case .floorDivide, .divide:
        guard y.lowerBound > 0, x.lowerBound >= 0 else { return nil }
        bounds = [x.lowerBound / y.upperBound, x.upperBound / y.lowerBound]
      case .remainder, .modulo:
        guard y.lowerBound > 0, x.lowerBound >= 0 else { return nil }
        bounds = [0, Swift.min(x.upperBound, y.upperBound - 1)]
      default: return nil
      }
      guard bounds.allSatisfy({ abs($0) < 1 << 40 }) else { return nil }
      return bounds.min()!...bounds.max()!
    case .select(_, let a, let b):
      guard let x = known(a), let y = known(b) else { return nil }
      return Swift.min(x.lowerBound, y.lowerBound)...Swift.max(x.upperBound, y.upperBound)
    default:
      return nil
    }
  }
}

extension Expr {
  /// Selects, minima and maxima (each distinct one once): the conditionals interior
  /// specialisation removes.
  var conditionalCount: Int {
    postOrder().reduce(0) { count, expr in
      switch expr.kind {
      case .select: count + 1
      case .binary(.minimum, _, _), .binary(.maximum, _, _): count + 1
      default: count
      }
    }
  }
}

/// Conditions of a loop body that do not change along the loop, and the body specialised for
/// each outcome: a concatenation's `select(channel < 64, first, select(channel < 192, ...))` is
/// decided once per row of an elementwise loop, or once per reduction step of a GEMM packing
/// loop, and each branch then runs a body without it (one input, affine: a loop the C compiler
/// vectorises). The decisions form a tree: each outcome's body is folded before the next
/// condition is looked for, so a condition one outcome settles (channel < 192 where channel < 64
/// holds) is never tested there, and a concatenation of n inputs becomes n bodies.
struct InvariantConditions {
  indirect enum Decision: Equatable {
    /// A body with no hoisted condition left.
    case body(Expr)
    /// `condition ? holds : fails`.
    case decide(Expr, holds: Decision, fails: Decision)

    /// The bodies, left to right.
    var bodies: [Expr] {
      switch self {
      case .body(let body): [body]
      case .decide(_, let holds, let fails): holds.bodies + fails.bodies
      }
    }
  }

  /// The decision tree; its root decides a condition (the initializer fails otherwise).
  let root: Decision

  /// The hoisted comparisons, outermost first.
  var conditions: [Expr] {
    func walk(_ decision: Decision) -> [Expr] {
      guard case .decide(let condition, let holds, let fails) = decision else { return [] }
      return [condition] + walk(holds) + walk(fails)
    }
    return walk(root)
  }

  /// The specialised bodies, one per leaf of the tree.
  var bodies: [Expr] { root.bodies }

  /// Comparisons of `body` that use none of `varying` (output axes) and no variable outside
  /// `variables`, hoisted only where that removes a select, in at most `limit` bodies; nil when
  /// there are none.
  init?(_ body: Expr, kernel: Kernel, varying: Set<Int>, variables: Set<Int>, limit: Int = 8) {
    func hoistable(_ body: Expr) -> Expr? {
      for expr in body.preOrder() {
        if case .select(let c, _, _) = expr.kind,
          Self.isHoistable(c, kernel: kernel, varying: varying, variables: variables)
        {
          return c
        }
      }
      return nil
    }
    func decide(_ body: Expr, budget: Int) -> Decision {
      guard budget >= 2, let condition = hoistable(body) else { return .body(body) }
      func specialised(_ outcome: Bool) -> Expr {
        var folder = IntervalFolder(kernel: kernel, restricted: [:])
        return folder.fold(body.replacing(condition, with: .literal(.of(outcome ? 1 : 0, .bool))))
      }
      let holds = decide(specialised(true), budget: budget - 1)
      let fails = decide(specialised(false), budget: budget - holds.bodies.count)
      return .decide(condition, holds: holds, fails: fails)
    }
    let root = decide(body, budget: limit)
    guard case .decide = root else { return nil }
    self.root = root
  }

  /// A comparison of index or integer values (no loads: a loaded value may differ per element)
  /// that reads none of `varying` and no variable outside `variables`.
  private static func isHoistable(_ c: Expr, kernel: Kernel, varying: Set<Int>, variables: Set<Int>) -> Bool {
    guard case .binary(let op, let x, let y) = c.kind, [.less, .lessEqual, .greater, .greaterEqual, .equal, .notEqual].contains(op),
      x.type == .index, y.type == .index
    else { return false }
    return c.coordinatesUsed.isDisjoint(with: varying) && !c.usesVariable(except: variables) && !c.readsMemory
  }
}

