import KilnIR

/// A custom kernel's algorithm, for ops that need their own (selection, prefix sums, data-dependent
/// outputs): `invocations` independent runs of `statements`, in which `.coordinate(0)` is the
/// invocation's index. Statements keep state in typed locals (all declared, zero, at the start of
/// an invocation), read the kernel's inputs with `.load`, and write output elements with `store`
/// (and may read them back with `.loadOutput`: the output is the program's working memory).
/// Each back end prints the statements in its language (`ProgramEmitter`), expressions inline.
/// An invocation may also keep `scratch` int64 elements of its own (`.loadScratch`,
/// `storeScratch`): sort permutations and the like, in a transient buffer of the program.
public struct KernelProgram: Hashable, Sendable {
  public var invocations: Int
  /// Local i's type.
  public var locals: [ValueType]
  public var statements: [Statement]
  /// int64 elements of scratch memory per invocation (0: none).
  public var scratch: Int = 0

  /// Bytes of scratch memory the whole dispatch needs.
  public var scratchBytes: Int { scratch * invocations * 8 }

  public indirect enum Statement: Hashable, Sendable {
    /// local = value.
    case set(Int, Expr)
    /// Output element `index` = `value` (of the output's compute type).
    case store(index: Expr, value: Expr)
    /// The invocation's scratch element `index` = `value` (int64).
    case storeScratch(index: Expr, value: Expr)
    /// `for (local = from; local < to; ++local) body`; the local is an index.
    case loop(Int, from: Expr, to: Expr, body: [Statement])
    /// `while (condition) body`.
    case repeatWhile(Expr, body: [Statement])
    /// `if (condition) then else otherwise`.
    case branch(Expr, then: [Statement], otherwise: [Statement])
  }

  /// Builds a program block by block.
  public struct Builder {
    public private(set) var locals: [ValueType] = []
    private var blocks: [[Statement]] = [[]]

    public init() {}

    /// A new local set to `initial`.
    public mutating func local(_ initial: Expr) -> Expr {
      locals.append(initial.type)
      let local = Expr.local(locals.count - 1, initial.type)
      set(local, initial)
      return local
    }

    public mutating func set(_ local: Expr, _ value: Expr) {
      guard case .local(let id, _) = local.kind else { preconditionFailure("set of a value that is no local") }
      append(.set(id, value))
    }

    public mutating func store(_ index: Expr, _ value: Expr) { append(.store(index: index, value: value)) }

    public mutating func storeScratch(_ index: Expr, _ value: Expr) {
      append(.storeScratch(index: index, value: value.type == .int64 ? value : .cast(value, .int64)))
    }

    /// `body(counter)` for counter in from..<to.
    public mutating func loop(from: Expr, to: Expr, _ body: (inout Builder, Expr) throws -> Void) rethrows {
      let counter = local(.index(0))
      guard case .local(let id, _) = counter.kind else { return }
      blocks.append([])
      try body(&self, counter)
      append(.loop(id, from: from, to: to, body: blocks.removeLast()))
    }

    public mutating func repeatWhile(_ condition: Expr, _ body: (inout Builder) throws -> Void) rethrows {
      blocks.append([])
      try body(&self)
      append(.repeatWhile(condition, body: blocks.removeLast()))
    }

    public mutating func branch(_ condition: Expr, then: (inout Builder) throws -> Void) rethrows {
      try branch(condition, then: then, otherwise: { _ in })
    }

    public mutating func branch(
      _ condition: Expr, then: (inout Builder) throws -> Void, otherwise: (inout Builder) throws -> Void
    ) rethrows {
      blocks.append([])
      try then(&self)
      let thenBlock = blocks.removeLast()
      blocks.append([])
      try otherwise(&self)
      append(.branch(condition, then: thenBlock, otherwise: blocks.removeLast()))
    }

    private mutating func append(_ statement: Statement) { blocks[blocks.count - 1].append(statement) }

    /// The program, with `scratch` int64 elements per invocation.
    public func program(invocations: Int, scratch: Int = 0) -> KernelProgram {
      precondition(blocks.count == 1, "a program block is still open")
      return KernelProgram(invocations: invocations, locals: locals, statements: blocks[0], scratch: scratch)
    }
  }

  /// Every expression the statements hold, in order.
  public var expressions: [Expr] {
    func visit(_ statements: [Statement]) -> [Expr] {
      statements.flatMap { statement -> [Expr] in
        switch statement {
        case .set(_, let value): [value]
        case .store(let index, let value), .storeScratch(let index, let value): [index, value]
        case .loop(_, let from, let to, let body): [from, to] + visit(body)
        case .repeatWhile(let condition, let body): [condition] + visit(body)
        case .branch(let condition, let then, let otherwise): [condition] + visit(then) + visit(otherwise)
        }
      }
    }
    return visit(statements)
  }
}
