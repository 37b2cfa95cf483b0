import KilnIR

/// Prints a kernel in SSA form: one line per distinct value, operands by name, each value where
/// the emitters compute it (inside the loop of the reductions whose variables it reads, else at
/// the top), so a shared value prints once however many users it has.
///
///     kernel k0_Neg_Relu -> f32[4,256] (fuses n0, n1)
///       in0: f32[1024]
///       %0 = coordinate 0
///       %1 = coordinate 1
///       %2 = mul %0, 256
///       %3 = add %2, %1
///       %4 = load in0[%3] : f32
///       %5 = negate %4 : f32
///       %6 = lt %5, 0.0:f32 : bool
///       %7 = select %6, 0.0:f32, %5 : f32
///       return %7
///
/// A reduction prints its loop as a block: `%9 = reduce sum v0 < 64 { ... yield %8 }`. Literals
/// print in place: index literals as bare integers, others as `value:type`. The output depends
/// only on the kernel, so golden tests compare it.
public struct KernelPrinter: Sendable {
  public init() {}

  public func print(_ kernel: Kernel) -> String {
    var state = State()
    let named = kernel.sourceOps.filter { !$0.isEmpty }
    let sources = named.isEmpty ? "" : " (fuses \(named.joined(separator: ", ")))"
    state.lines.append("kernel \(kernel.name) -> \(kernel.output.dtype.shortName)[\(kernel.shape.map(String.init).joined(separator: ","))]\(sources)")
    for (index, input) in kernel.inputs.enumerated() {
      state.lines.append("  in\(index): \(input.dtype.shortName)[\(input.elementCount)]")
    }
    if let program = kernel.region.program {
      let scratch = program.scratch > 0 ? ", scratch \(program.scratch) x i64" : ""
      state.lines.append("  invocations \(program.invocations)\(scratch), locals \(program.locals.map(State.typeName).joined(separator: ", "))")
      state.statements(program.statements, indent: 1)
      state.lines.append("  region \(kernel.region.kind.rawValue)")
      return state.lines.joined(separator: "\n")
    }
    let result = state.name(kernel.body, indent: 1)
    state.lines.append("  return \(result)")
    state.lines.append("  region \(kernel.region.kind.rawValue)")
    for c in kernel.region.contractions {
      let factors = c.factors.map { state.reference($0) }.joined(separator: " * ")
      let mask = c.conditions.isEmpty ? "" : " where " + c.conditions.map { state.reference($0) }.joined(separator: " and ")
      state.lines.append("    \(state.reference(c.reduction)) = sum \(Self.loops(c.loops)) of \(factors)\(mask)")
    }
    for m in kernel.region.maxima {
      let mask = m.conditions.isEmpty ? "" : " where " + m.conditions.map { state.reference($0) }.joined(separator: " and ")
      state.lines.append("    \(state.reference(m.reduction)) = max \(Self.loops(m.loops)) of \(state.reference(m.element))\(mask)")
    }
    return state.lines.joined(separator: "\n")
  }

  static func loops(_ loops: [Contraction.Loop]) -> String {
    loops.map { "v\($0.variable) < \($0.extent)" }.joined(separator: ", ")
  }

  /// One value and everything it reads, in the same form, one line per value joined by `; `.
  public func print(_ expr: Expr) -> String {
    var state = State()
    let result = state.name(expr, indent: 0)
    return (state.lines + ["return \(result)"]).joined(separator: "; ")
  }

  private struct State {
    var lines: [String] = []
    /// Names of printed values, one dictionary per open block (outermost first).
    var scopes: [[Expr: String]] = [[:]]
    var count = 0
    /// Every printed value's name, whatever block it was printed in.
    var printed: [Expr: String] = [:]

    /// The name of an already printed value (a literal in place; `?` for one never printed).
    func reference(_ expr: Expr) -> String {
      if case .literal(let literal) = expr.kind { return Self.literal(literal) }
      if case .variable(let id) = expr.kind { return "v\(id)" }
      return printed[expr] ?? "?"
    }

    /// A program's statements, one block per indentation level; expressions as SSA lines before
    /// the statement that uses them (printed again in each block: locals change between statements).
    mutating func statements(_ statements: [KernelProgram.Statement], indent: Int) {
      let pad = String(repeating: "  ", count: indent)
      for statement in statements {
        scopes.append([:])
        defer { scopes.removeLast() }
        switch statement {
        case .set(let local, let value): lines.append("\(pad)l\(local) = \(name(value, indent: indent))")
        case .store(let index, let value):
          let (i, v) = (name(index, indent: indent), name(value, indent: indent))
          lines.append("\(pad)store out[\(i)] = \(v)")
        case .storeScratch(let index, let value):
          let (i, v) = (name(index, indent: indent), name(value, indent: indent))
          lines.append("\(pad)store scratch[\(i)] = \(v)")
        case .loop(let local, let from, let to, let body):
          let (a, b) = (name(from, indent: indent), name(to, indent: indent))
          lines.append("\(pad)for l\(local) in \(a) ..< \(b) {")
          self.statements(body, indent: indent + 1)
          lines.append("\(pad)}")
        case .repeatWhile(let condition, let body):
          lines.append("\(pad)while {")
          let c = name(condition, indent: indent + 1)
          lines.append("\(pad)  test \(c)")
          self.statements(body, indent: indent + 1)
          lines.append("\(pad)}")
        case .branch(let condition, let then, let otherwise):
          lines.append("\(pad)if \(name(condition, indent: indent)) {")
          self.statements(then, indent: indent + 1)
          if !otherwise.isEmpty {
            lines.append("\(pad)} else {")
            self.statements(otherwise, indent: indent + 1)
          }
          lines.append("\(pad)}")
        }
      }
    }

    /// The operand text of `expr`, printing its definition (and its operands') first if needed.
    mutating func name(_ expr: Expr, indent: Int) -> String {
      if case .literal(let literal) = expr.kind { return Self.literal(literal) }
      for scope in scopes.reversed() { if let known = scope[expr] { return known } }
      let pad = String(repeating: "  ", count: indent)
      let text: String
      switch expr.kind {
      case .literal: preconditionFailure("literals print in place")
      case .local(let id, let type): return "l\(id):\(Self.typeName(type))"
      case .loadOutput(let dtype, let index): text = "load out[\(name(index, indent: indent))] : \(dtype.shortName)"
      case .loadScratch(let index): text = "load scratch[\(name(index, indent: indent))] : i64"
      case .coordinate(let axis): text = "coordinate \(axis)"
      case .variable(let id): text = "v\(id)"
      case .load(let input, let dtype, let index): text = "load in\(input)[\(name(index, indent: indent))] : \(dtype.shortName)"
      case .unary(let op, let a): text = "\(op.rawValue) \(name(a, indent: indent))\(typeSuffix(expr))"
      case .binary(let op, let a, let b):
        let x = name(a, indent: indent)
        let y = name(b, indent: indent)
        text = "\(Self.mnemonic(op)) \(x), \(y)\(typeSuffix(expr))"
      case .select(let c, let a, let b):
        let (condition, x, y) = (name(c, indent: indent), name(a, indent: indent), name(b, indent: indent))
        text = "select \(condition), \(x), \(y)\(typeSuffix(expr))"
      case .cast(let a, let type): text = "cast \(name(a, indent: indent)) : \(Self.typeName(type))"
      case .bitcast(let a, let from, let to): text = "bitcast \(name(a, indent: indent)) : \(from.shortName) to \(to.shortName)"
      case .reduce(let op, let variable, let extent, let body):
        let result = "%\(count)"
        count += 1
        lines.append("\(pad)\(result) = reduce \(Self.reduceName(op)) v\(variable) < \(extent)\(typeSuffix(expr)) {")
        scopes.append([:])
        let value = name(body, indent: indent + 1)
        lines.append("\(pad)  yield \(value)")
        scopes.removeLast()
        lines.append("\(pad)}")
        scopes[scopes.count - 1][expr] = result
        printed[expr] = result
        return result
      }
      if case .variable = expr.kind { return text }
      let result = "%\(count)"
      count += 1
      lines.append("\(pad)\(result) = \(text)")
      scopes[scopes.count - 1][expr] = result
      if printed[expr] == nil { printed[expr] = result }
      return result
    }

    func typeSuffix(_ expr: Expr) -> String { expr.type == .index ? "" : " : \(Self.typeName(expr.type))" }

    static func typeName(_ type: ValueType) -> String {
      switch type {
      case .index: "index"
      case .scalar(let dtype): dtype.shortName
      }
    }

    static func literal(_ literal: Literal) -> String {
      switch literal.type {
      case .index: "\(literal.integer)"
      case .scalar(let dtype):
        if dtype.isFloat { "\(literal.float):\(dtype.shortName)" } else if dtype == .bool {
          literal.float != 0 ? "true" : "false"
        } else if dtype == .uint64 { "\(literal.unsigned):\(dtype.shortName)" } else { "\(literal.integer):\(dtype.shortName)" }
      }
    }

    static func mnemonic(_ op: BinaryOp) -> String {
      switch op {
      case .add: "add"
      case .subtract: "sub"
      case .multiply: "mul"
      case .divide: "div"
      case .floorDivide: "floordiv"
      case .remainder: "rem"
      case .modulo: "mod"
      case .power: "pow"
      case .minimum: "min"
      case .maximum: "max"
      case .equal: "eq"
      case .notEqual: "ne"
      case .less: "lt"
      case .lessEqual: "le"
      case .greater: "gt"
      case .greaterEqual: "ge"
      case .logicalAnd: "and"
      case .logicalOr: "or"
      case .logicalXor: "xor"
      case .bitwiseAnd: "bitand"
      case .bitwiseOr: "bitor"
      case .bitwiseXor: "bitxor"
      case .shiftLeft: "shl"
      case .shiftRight: "shr"
      case .atan2: "atan2"
      }
    }

    static func reduceName(_ op: ReduceOp) -> String {
      switch op {
      case .sum: "sum"
      case .product: "product"
      case .maximum: "max"
      case .minimum: "min"
      case .argmax(let last): last ? "argmax_last" : "argmax"
      case .argmin(let last): last ? "argmin_last" : "argmin"
      }
    }
  }
}
