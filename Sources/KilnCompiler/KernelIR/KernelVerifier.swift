import KilnIR

/// Checks a kernel's invariants and throws the first violation as a `LoweringError` naming the
/// kernel: every load reads a bound input as its dtype at an index-typed position; coordinates
/// are within the output's rank; a variable is read only inside a reduction over it, and no
/// reduction rebinds a variable an enclosing one binds; operand types agree (binary operands,
/// select arms, a bool condition); reduction extents are non-negative; the region's stated
/// reductions are reductions of the body and its kind agrees with it; the body computes in the
/// output's compute type. Linear in the number of distinct values.
public struct KernelVerifier: Sendable {
  public init() {}

  public func verify(_ kernel: Kernel) throws {
    func fail(_ message: String) -> LoweringError { LoweringError(message: "kernel \(kernel.name): \(message)") }
    // Variables a value reads without binding them.
    var free: [ObjectIdentifier: Set<Int>] = [:]
    for expr in kernel.body.postOrder() {
      var reads = expr.children.reduce(into: Set<Int>()) { $0.formUnion(free[$1.identity] ?? []) }
      switch expr.kind {
      case .literal, .unary, .cast: break
      case .local, .loadOutput, .loadScratch: throw fail("a program's local, output or scratch read in the kernel's body")
      case .coordinate(let axis):
        guard axis >= 0, axis < kernel.shape.count else { throw fail("coordinate \(axis) of a rank-\(kernel.shape.count) output") }
      case .variable(let id): reads.insert(id)
      case .load(let input, let dtype, let index):
        guard kernel.inputs.indices.contains(input) else { throw fail("load of input \(input); \(kernel.inputs.count) are bound") }
        guard kernel.inputs[input].dtype == dtype else {
          throw fail("load of input \(input) as \(dtype.rawValue); it is \(kernel.inputs[input].dtype.rawValue)")
        }
        guard index.type == .index else { throw fail("load of input \(input) at a \(index.type) position") }
      case .binary(let op, let a, let b):
        guard a.type == b.type else { throw fail("\(op.rawValue) of \(a.type) and \(b.type)") }
        if op.isLogical, a.type != .bool { throw fail("\(op.rawValue) of \(a.type)") }
      case .select(let c, let a, let b):
        guard c.type == .bool else { throw fail("select on a \(c.type) condition") }
        guard a.type == b.type else { throw fail("select of \(a.type) and \(b.type)") }
      case .bitcast(let a, let from, let to):
        guard a.type == .compute(from), from.byteSize == to.byteSize else {
          throw fail("bitcast of a \(a.type) value as \(from.rawValue) to \(to.rawValue)")
        }
      case .reduce(_, let variable, let extent, let body):
        guard extent >= 0 else { throw fail("reduction over v\(variable) of extent \(extent)") }
        if try rebinds(variable, in: body) { throw fail("a reduction inside v\(variable)'s rebinds it") }
        reads.remove(variable)
      }
      free[expr.identity] = reads
    }
    if let unbound = free[kernel.body.identity], !unbound.isEmpty {
      throw fail("variables \(unbound.sorted().map { "v\($0)" }) are read outside a reduction over them")
    }
    try verifyRegion(kernel, fail)
    if let program = kernel.region.program { try verify(program, of: kernel, fail) }
    guard kernel.body.type == .compute(kernel.output.dtype) else {
      throw fail("the body computes \(kernel.body.type), the output is \(kernel.output.dtype.rawValue)")
    }
  }

  /// The region's statements point into the body, and its kind agrees with the body.
  private func verifyRegion(_ kernel: Kernel, _ fail: (String) -> LoweringError) throws {
    let region = kernel.region
    if region.kind == .elementwise, kernel.body.containsReduction { throw fail("an elementwise region holds a reduction") }
    if region.kind == .contraction, region.contractions.isEmpty { throw fail("a contraction region states no contraction") }
    if (region.kind == .custom) != (region.program != nil) { throw fail("a custom region needs a program, and only it has one") }
    let present = Set(kernel.body.postOrder().map(\.identity))
    for reduction in region.contractions.map(\.reduction) + region.maxima.map(\.reduction) {
      guard present.contains(reduction.identity), case .reduce = reduction.kind else {
        throw fail("a stated reduction is not a reduction of the body")
      }
    }
  }

  /// A custom program: its expressions are checked as a body is (loads, types), may read
  /// locals it declares and its output, read no reduction variable and hold no reduction; loop
  /// counters are index locals; stores write the output's compute type at index positions.
  private func verify(_ program: KernelProgram, of kernel: Kernel, _ fail: (String) -> LoweringError) throws {
    guard kernel.region.kind == .custom else { throw fail("a program in a \(kernel.region.kind.rawValue) region") }
    guard kernel.shape.count >= 1 || program.invocations <= 1 else { throw fail("a program's invocation index needs a coordinate") }
    for expr in Expr.postOrder(program.expressions) {
      switch expr.kind {
      case .reduce, .variable: throw fail("a program holds a reduction")
      case .coordinate(let axis) where axis != 0: throw fail("a program reads coordinate \(axis); its invocation index is coordinate 0")
      case .local(let id, let type):
        guard program.locals.indices.contains(id), program.locals[id] == type else { throw fail("local l\(id) is not declared as \(type)") }
      case .loadOutput(let dtype, let index):
        guard dtype == kernel.output.dtype, index.type == .index else { throw fail("an output read as \(dtype.rawValue)") }
      case .loadScratch(let index):
        guard program.scratch > 0, index.type == .index else { throw fail("a scratch read without scratch memory") }
      case .load(let input, let dtype, let index):
        guard kernel.inputs.indices.contains(input), kernel.inputs[input].dtype == dtype, index.type == .index else {
          throw fail("a program's load of input \(input) as \(dtype.rawValue)")
        }
      case .binary(let op, let a, let b):
        guard a.type == b.type else { throw fail("\(op.rawValue) of \(a.type) and \(b.type)") }
      case .select(let c, let a, let b):
        guard c.type == .bool, a.type == b.type else { throw fail("a program's select of \(a.type) and \(b.type)") }
      default: break
      }
    }
    func check(_ statements: [KernelProgram.Statement]) throws {
      for statement in statements {
        switch statement {
        case .set(let local, let value):
          guard program.locals.indices.contains(local), program.locals[local] == value.type else {
            throw fail("l\(local) set to a \(value.type) value")
          }
        case .store(let index, let value):
          guard index.type == .index, value.type == .compute(kernel.output.dtype) else { throw fail("a store of a \(value.type) value") }
        case .storeScratch(let index, let value):
          guard program.scratch > 0, index.type == .index, value.type == .int64 else { throw fail("a scratch store of a \(value.type) value") }
        case .loop(let local, let from, let to, let body):
          guard program.locals.indices.contains(local), program.locals[local] == .index, from.type == .index, to.type == .index else {
            throw fail("a loop over l\(local) that is no index")
          }
          try check(body)
        case .repeatWhile(let condition, let body):
          guard condition.type == .bool else { throw fail("a while on a \(condition.type) condition") }
          try check(body)
        case .branch(let condition, let then, let otherwise):
          guard condition.type == .bool else { throw fail("an if on a \(condition.type) condition") }
          try check(then)
          try check(otherwise)
        }
      }
    }
    try check(program.statements)
  }

  private func rebinds(_ variable: Int, in body: Expr) throws -> Bool {
    body.contains { if case .reduce(_, variable, _, _) = $0.kind { true } else { false } }
  }
}
