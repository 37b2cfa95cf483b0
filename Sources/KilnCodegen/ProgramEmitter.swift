import KilnCompiler
import KilnIR

/// Prints a custom kernel's `KernelProgram` in a kernel language: its locals declared (zero) at
/// the start of an invocation, its statements as written, expressions inline (no temporaries:
/// locals and the output change between statements). `.coordinate(0)` is the invocation index
/// `c0`, which the caller declares.
struct ProgramEmitter {
  let dialect: any KernelDialect
  let program: KernelProgram
  /// Output element `index` read back, and the statement storing `value` at `index`.
  let loadOutput: (_ index: String) -> String
  let storeOutput: (_ index: String, _ value: String) -> String

  /// The invocation's scratch element `index`: its own `scratch` elements of the buffer.
  private func scratchElement(_ index: String) -> String {
    let offset = "(c0 * \(dialect.literal(.index(program.scratch))) + \(index))"
    return "scratch[\(dialect is GLSLDialect ? "uint(\(offset))" : offset)]"
  }

  func lines(indent: Int) -> [String] {
    let pad = String(repeating: "  ", count: indent)
    let declarations = program.locals.enumerated().map { id, type in
      "\(pad)\(dialect.typeName(type)) l\(id) = \(dialect.cast("0", from: .index, to: type));"
    }
    return declarations + statements(program.statements, indent: indent)
  }

  private func statements(_ statements: [KernelProgram.Statement], indent: Int) -> [String] {
    let pad = String(repeating: "  ", count: indent)
    return statements.flatMap { statement -> [String] in
      switch statement {
      case .set(let local, let value): ["\(pad)l\(local) = \(inline(value));"]
      case .store(let index, let value): ["\(pad)\(storeOutput(inline(index), inline(value)))"]
      case .storeScratch(let index, let value): ["\(pad)\(scratchElement(inline(index))) = \(inline(value));"]
      case .loop(let local, let from, let to, let body):
        ["\(pad)for (l\(local) = \(inline(from)); l\(local) < \(inline(to)); ++l\(local)) {"]
          + self.statements(body, indent: indent + 1) + ["\(pad)}"]
      case .repeatWhile(let condition, let body):
        ["\(pad)while (\(inline(condition))) {"] + self.statements(body, indent: indent + 1) + ["\(pad)}"]
      case .branch(let condition, let then, let otherwise):
        ["\(pad)if (\(inline(condition))) {"] + self.statements(then, indent: indent + 1)
          + (otherwise.isEmpty ? [] : ["\(pad)} else {"] + self.statements(otherwise, indent: indent + 1)) + ["\(pad)}"]
      }
    }
  }

  /// `expr` as one expression of the language. A program holds no reduction (the verifier
  /// checks), so every kind left has a spelling.
  func inline(_ expr: Expr) -> String {
    switch expr.kind {
    case .literal(let literal): return dialect.literal(literal)
    case .coordinate(let axis): return "c\(axis)"
    case .local(let id, _): return "l\(id)"
    case .load(let input, let dtype, let index): return dialect.load(input: input, dtype: dtype, index: inline(index))
    case .loadOutput(_, let index): return loadOutput(inline(index))
    case .loadScratch(let index): return scratchElement(inline(index))
    case .unary(let op, let a): return dialect.unary(op, a.type, inline(a))
    case .binary(let op, let a, let b): return dialect.binary(op, a.type, inline(a), inline(b))
    case .select(let c, let a, let b): return "(\(inline(c)) ? \(inline(a)) : \(inline(b)))"
    case .cast(let a, let type): return a.type == type ? inline(a) : dialect.cast(inline(a), from: a.type, to: type)
    case .bitcast(let a, let from, let to): return dialect.bitcast(inline(a), from: from, to: to)
    case .variable, .reduce: preconditionFailure("a custom program holds a reduction (KernelVerifier refuses it)")
    }
  }
}

extension GLSLKernel {
  /// A custom kernel as a GLSL compute shader: one invocation of its program per shader
  /// invocation, 64 per workgroup; the output is declared readable (a program's working memory).
  static func programSource(for kernel: Kernel, program: KernelProgram, maximumBindingBytes: Int) -> String {
    let dialect = GLSLDialect(kernel, maximumBindingBytes: maximumBindingBytes)
    let index = dialect.typeName(.index)
    var out = header(kernel, note: " (custom program)")
    out += dialect.bufferDeclarations(scratch: program.scratch > 0, scratchType: "int64_t", readableOutput: true)
    out += dialect.helperFunctions(readableOutput: true)
    out += """
      void main() {
        uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
        \(index) c0 = \(index)(group) * \(index)(\(workgroupSize)) + \(index)(gl_LocalInvocationID.x);
        if (c0 >= \(dialect.literal(.index(program.invocations)))) return;

      """
    let emitter = ProgramEmitter(
      dialect: dialect, program: program, loadOutput: dialect.loadOutput(at:), storeOutput: dialect.storeOutput(at:_:))
    out += emitter.lines(indent: 1).joined(separator: "\n") + "\n}\n"
    return out
  }

  /// Workgroups for `invocations` invocations of 64, folded into x and y.
  static func workgroups(invocations: Int) -> [Int] {
    let groups = (invocations + workgroupSize - 1) / workgroupSize
    let x = max(min(groups, 65535), 1)
    return [x, (groups + x - 1) / x, 1]
  }
}

extension CKernel {
  /// Program invocations per CPU workgroup: a program's invocation is a whole line of work.
  static let invocationsPerWorkgroup = 4

  /// A custom kernel as a C function over a range of workgroups of its invocations.
  static func programFunction(for kernel: Kernel, program: KernelProgram) -> String {
    let dialect = CDialect()
    var out = entry(kernel, comment: "\(kernel.sourceOps.joined(separator: ", ")) (custom program)")
    if program.scratch > 0 { out += "  int64_t *scratch = (int64_t *)d->bindings[\(kernel.inputs.count + 1)];\n" }
    out += "  int64_t last = (int64_t)d->workgroup_end * \(invocationsPerWorkgroup);\n"
    out += "  if (last > \(program.invocations)) last = \(program.invocations);\n"
    out += "  for (int64_t c0 = (int64_t)d->workgroup_begin * \(invocationsPerWorkgroup); c0 < last; ++c0) {\n"
    let dtype = kernel.output.dtype
    let emitter = ProgramEmitter(
      dialect: dialect, program: program, loadOutput: { dialect.convertLoaded("result[\($0)]", dtype: dtype) },
      storeOutput: { "result[\($0)] = \(dialect.store($1, dtype: dtype));" })
    out += emitter.lines(indent: 2).joined(separator: "\n") + "\n  }\n}\n"
    return out
  }
}
