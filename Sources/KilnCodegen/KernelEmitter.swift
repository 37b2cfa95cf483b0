import KilnCompiler
import KilnIR

/// The syntax a kernel is written in: GLSL for Vulkan, C for the CPU device.
protocol KernelDialect {
  /// The type's name in this language.
  func typeName(_ type: ValueType) -> String
  func literal(_ literal: Literal) -> String
  /// `input[index]` converted to its compute type.
  func load(input: Int, dtype: DType, index: String) -> String
  func unary(_ op: UnaryOp, _ type: ValueType, _ a: String) -> String
  func binary(_ op: BinaryOp, _ type: ValueType, _ a: String, _ b: String) -> String
  func cast(_ value: String, from: ValueType, to: ValueType) -> String
  /// `value` (of `ValueType.compute(from)`) stored as `from`, its bits read as a `to` value.
  func bitcast(_ value: String, from: DType, to: DType) -> String
  /// The largest / smallest value of a type (reduction identities).
  func maximumValue(_ type: ValueType) -> String
  func minimumValue(_ type: ValueType) -> String
  func isNaN(_ value: String, _ type: ValueType) -> String
}

extension Expr {
  /// A coordinate, a variable or a literal: emitted as a name or in place, never bound.
  fileprivate var isName: Bool {
    switch kind {
    case .coordinate, .variable, .literal: true
    default: false
    }
  }
}

extension KernelDialect {
  /// Each axis's coordinate of the row-major linear index `linear` in `shape`: `0` on unit axes,
  /// `(linear / step) % extent` on the others (no remainder on the outermost non-unit axis, as
  /// the index is in range).
  func coordinates(of linear: String, shape: [Int]) -> [String] {
    let outermost = shape.firstIndex { $0 != 1 }
    var result = [String](repeating: literal(.index(0)), count: shape.count)
    var step = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
      let quotient = step == 1 ? linear : "(\(linear) / \(literal(.index(step))))"
      result[axis] = axis == outermost ? quotient : "(\(quotient) % \(literal(.index(shape[axis]))))"
      step *= shape[axis]
    }
    return result
  }
}

/// Turns an `Expr` graph into statements: one variable per distinct value (bound once in a scope
/// and visible to nested loops and branches), a `for` loop per reduction.
struct ExprEmitter {
  let dialect: any KernelDialect
  let kernel: Kernel
  let indexType: ValueType = .index
  private(set) var lines: [String] = []
  private var scopes: [[Expr: String]] = [[:]]
  private var counter = 0
  private var indent = 1

  init(dialect: any KernelDialect, kernel: Kernel) {
    self.dialect = dialect
    self.kernel = kernel
  }

  mutating func line(_ text: String) {
    lines.append(String(repeating: "  ", count: indent) + text)
  }

  private func lookup(_ expr: Expr) -> String? {
    for scope in scopes.reversed() { if let name = scope[expr] { return name } }
    return nil
  }

  private mutating func fresh(_ prefix: String = "t") -> String {
    counter += 1
    return "\(prefix)\(counter)"
  }

  private mutating func bind(_ expr: Expr, _ type: ValueType, _ text: String) -> String {
    let name = fresh()
    line("\(dialect.typeName(type)) \(name) = \(text);")
    scopes[scopes.count - 1][expr] = name
    return name
  }

  /// Emits statements computing `expr` and returns the variable (or literal) holding it.
  mutating func emit(_ expr: Expr) -> String {
    if let name = lookup(expr) { return name }
    let type = expr.type
    switch expr.kind {
    case .literal(let literal):
      return dialect.literal(literal)
    case .coordinate(let axis):
      return "c\(axis)"
    case .variable(let id):
      return "v\(id)"
    case .load(let input, let dtype, let index):
      let i = emit(index)
      return bind(expr, type, dialect.load(input: input, dtype: dtype, index: i))
    case .unary(let op, let a):
      let x = emit(a)
      return bind(expr, type, dialect.unary(op, a.type, x))
    case .binary(let op, let a, let b):
      let x = emit(a)
      let y = emit(b)
      return bind(expr, type, dialect.binary(op, a.type, x, y))
    case .select(let c, let a, let b):
      // Both arms may be loads guarded by the condition: evaluate lazily with if/else. Index
      // arithmetic both arms compute (a concatenation's position, the same in each input) is
      // computed once before: it cannot fault, and each arm would otherwise repeat it.
      let condition = emit(c)
      for shared in Self.sharedIndexArithmetic(a, b) { _ = emit(shared) }
      let name = fresh()
      line("\(dialect.typeName(type)) \(name);")
      line("if (\(condition)) {")
      indent += 1
      scopes.append([:])
      let x = emit(a)
      line("\(name) = \(x);")
      scopes.removeLast()
      indent -= 1
      line("} else {")
      indent += 1
      scopes.append([:])
      let y = emit(b)
      line("\(name) = \(y);")
      scopes.removeLast()
      indent -= 1
      line("}")
      scopes[scopes.count - 1][expr] = name
      return name
    case .cast(let a, let target):
      let x = emit(a)
      let source = a.type
      if source == target { return x }
      return bind(expr, type, dialect.cast(x, from: source, to: target))
    case .bitcast(let a, let from, let to):
      let x = emit(a)
      return bind(expr, type, dialect.bitcast(x, from: from, to: to))
    case .reduce(let op, let variable, let extent, let body):
      return emitReduction(expr, op: op, variable: variable, extent: extent, body: body, type: type)
    case .local, .loadOutput, .loadScratch:
      preconditionFailure("a program's local or output read in a kernel body (KernelVerifier refuses it)")
    }
  }

  /// The index values without loads, divisions or reductions (nothing that can fault or costs
  /// much) that both `a` and `b` compute, operands first.
  static func sharedIndexArithmetic(_ a: Expr, _ b: Expr) -> [Expr] {
    // Compared by value: each input of a concatenation builds its own copy of the same index.
    let inA = Set(a.postOrder())
    var arithmetic = Set<Expr>()
    var result: [Expr] = []
    for node in b.postOrder() {
      // Additions, products and clamps of coordinates, variables, literals and such values.
      guard node.type == .index, case .binary(let op, let x, let y) = node.kind,
        [.add, .subtract, .multiply, .minimum, .maximum].contains(op),
        [x, y].allSatisfy({ arithmetic.contains($0) || $0.isName })
      else { continue }
      arithmetic.insert(node)
      if inA.contains(node) { result.append(node) }
    }
    return result
  }

  private mutating func emitReduction(
    _ expr: Expr, op: ReduceOp, variable: Int, extent: Int, body: Expr, type: ValueType
  ) -> String {
    let bodyType = body.type
    let accumulator = fresh("acc")
    let best = fresh("best")
    let t = dialect.typeName(bodyType)
    switch op {
    case .sum: line("\(t) \(accumulator) = \(dialect.cast("0", from: .index, to: bodyType));")
    case .product: line("\(t) \(accumulator) = \(dialect.cast("1", from: .index, to: bodyType));")
    case .maximum: line("\(t) \(accumulator) = \(dialect.minimumValue(bodyType));")
    case .minimum: line("\(t) \(accumulator) = \(dialect.maximumValue(bodyType));")
    case .argmax, .argmin:
      line("\(t) \(best) = \(op == .argmax(selectLast: false) || op == .argmax(selectLast: true) ? dialect.minimumValue(bodyType) : dialect.maximumValue(bodyType));")
      line("\(dialect.typeName(.index)) \(accumulator) = \(dialect.literal(.index(0)));")
    }
    let indexName = dialect.typeName(.index)
    line("for (\(indexName) v\(variable) = \(dialect.literal(.index(0))); v\(variable) < \(dialect.literal(.index(extent))); ++v\(variable)) {")
    indent += 1
    scopes.append([:])
    let value = emit(body)
    switch op {
    case .sum: line("\(accumulator) = \(accumulator) + \(value);")
    case .product: line("\(accumulator) = \(accumulator) * \(value);")
    case .maximum:
      if bodyType.isFloat {
        line("\(accumulator) = (\(value) > \(accumulator) || \(dialect.isNaN(value, bodyType))) ? \(value) : \(accumulator);")
      } else {
        line("\(accumulator) = \(value) > \(accumulator) ? \(value) : \(accumulator);")
      }
    case .minimum:
      if bodyType.isFloat {
        line("\(accumulator) = (\(value) < \(accumulator) || \(dialect.isNaN(value, bodyType))) ? \(value) : \(accumulator);")
      } else {
        line("\(accumulator) = \(value) < \(accumulator) ? \(value) : \(accumulator);")
      }
    case .argmax(let selectLast), .argmin(let selectLast):
      let isMax: Bool = { if case .argmax = op { return true } else { return false } }()
      let compare = isMax ? (selectLast ? ">=" : ">") : (selectLast ? "<=" : "<")
      // The first element always initialises (so -inf/+inf inputs are selected correctly).
      line("if (v\(variable) == \(dialect.literal(.index(0))) || (\(value) \(compare) \(best))) { \(best) = \(value); \(accumulator) = v\(variable); }")
    }
    scopes.removeLast()
    indent -= 1
    line("}")
    scopes[scopes.count - 1][expr] = accumulator
    return accumulator
  }

  mutating func withIndent(_ extra: Int, _ body: (inout ExprEmitter) -> Void) {
    indent += extra
    body(&self)
    indent -= extra
  }
}
