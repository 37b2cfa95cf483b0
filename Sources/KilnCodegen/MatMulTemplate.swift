import KilnCompiler
import KilnIR

/// Recognises contraction kernels — `epilogue(sum_k A[..m..k] * B[..k..n])` with affine operand
/// indices — and instantiates the hand-written register-tiled template `shaders/matmul_tiled.comp`
/// for them, fusing the epilogue. Every other kernel uses the generic one-invocation-per-element
/// emitter.
public struct MatMulTemplate: Sendable, Hashable {
  public var batchShape: [Int]
  public var m: Int
  public var n: Int
  public var k: Int
  /// Kernel inputs holding A and B.
  public var a: Int
  public var b: Int
  var aMap: AffineIndex
  var bMap: AffineIndex
  /// The kernel body with the reduction replaced by `MatMulTemplate.accumulator`.
  var epilogue: Expr
  let kernel: Kernel

  /// Tile of outputs per invocation (TM x TN in the template).
  public static let tileM = 4
  public static let tileN = 4
  static let accumulatorVariable = 1_000_000
  static let accumulator = Expr.cast(.variable(accumulatorVariable), .float32)

  /// The match for `kernel`, or nil when it is not a float32 contraction of this shape.
  public static func match(_ kernel: Kernel) -> MatMulTemplate? {
    let rank = kernel.shape.count
    guard rank >= 2, kernel.output.dtype == .float32, kernel.fitsInt32Indices else { return nil }
    var found: (variable: Int, extent: Int, a: (Int, Expr), b: (Int, Expr))?
    var reduction: Expr?
    // Every reduction must be the same one (an epilogue such as Relu's select uses it twice).
    let epilogue = kernel.body.replacingReductions { op, variable, extent, body in
      let this = Expr.reduce(op, variable: variable, extent: extent, body: body)
      if let reduction { return reduction == this ? accumulator : nil }
      guard op == .sum, case .binary(.multiply, .load(let ia, let indexA), .load(let ib, let indexB)) = body else { return nil }
      reduction = this
      found = (variable, extent, (ia, indexA), (ib, indexB))
      return accumulator
    }
    guard let found, let epilogue else { return nil }
    guard kernel.inputs[found.a.0].dtype == .float32, kernel.inputs[found.b.0].dtype == .float32 else { return nil }
    let mAxis = rank - 2
    let nAxis = rank - 1
    guard var aMap = AffineIndex(found.a.1), var bMap = AffineIndex(found.b.1) else { return nil }
    // A must not depend on n, B not on m; swap if the product was written B * A.
    if aMap.coefficient(.coordinate(nAxis)) != 0 || bMap.coefficient(.coordinate(mAxis)) != 0 {
      swap(&aMap, &bMap)
      guard aMap.coefficient(.coordinate(nAxis)) == 0, bMap.coefficient(.coordinate(mAxis)) == 0 else { return nil }
      return build(kernel, found.variable, found.extent, found.b.0, found.a.0, aMap, bMap, epilogue)
    }
    return build(kernel, found.variable, found.extent, found.a.0, found.b.0, aMap, bMap, epilogue)
  }

  private static func build(
    _ kernel: Kernel, _ variable: Int, _ extent: Int, _ a: Int, _ b: Int, _ aMap: AffineIndex, _ bMap: AffineIndex,
    _ epilogue: Expr
  ) -> MatMulTemplate? {
    let rank = kernel.shape.count
    // Only coordinates and the reduction variable may appear in the operand indices.
    let allowed = Set((0..<rank).map { AffineIndex.Term.coordinate($0) } + [.variable(variable)])
    guard aMap.terms.keys.allSatisfy(allowed.contains), bMap.terms.keys.allSatisfy(allowed.contains) else { return nil }
    // Worthwhile only when there is a real reduction and enough outputs to tile.
    guard extent >= 4, kernel.shape[rank - 1] >= 2 || kernel.shape[rank - 2] >= 2 else { return nil }
    return MatMulTemplate(
      batchShape: Array(kernel.shape.prefix(rank - 2)), m: kernel.shape[rank - 2], n: kernel.shape[rank - 1], k: extent,
      a: a, b: b, aMap: aMap.renaming(variable: variable), bMap: bMap.renaming(variable: variable), epilogue: epilogue,
      kernel: kernel)
  }

  public var batchCount: Int { batchShape.reduce(1, *) }

  /// Tiles (invocations) the template runs.
  public var invocations: Int {
    batchCount * ((m + Self.tileM - 1) / Self.tileM) * ((n + Self.tileN - 1) / Self.tileN)
  }

  /// Workgroups for the template (64 invocations each, folded into x and y).
  public var workgroups: [Int] {
    let groups = (invocations + 63) / 64
    let x = min(groups, 65535)
    return [x, (groups + x - 1) / x, 1]
  }

  /// The instantiated GLSL.
  public func source() -> String {
    let dialect = GLSLDialect(index32: true)
    let rank = kernel.shape.count
    var bindings = ""
    for (index, input) in kernel.inputs.enumerated() {
      bindings += "layout(std430, set = 0, binding = \(index)) readonly buffer In\(index) { \(dialect.storageType(input.dtype)) b\(index)[]; };\n"
    }
    bindings += "layout(std430, set = 0, binding = \(kernel.inputs.count)) writeonly buffer Out { \(dialect.storageType(kernel.output.dtype)) result[]; };"
    // Batch coordinates c0..c(rank-3) from the batch index.
    var batchLines: [String] = []
    var step = 1
    for axis in stride(from: rank - 3, through: 0, by: -1) {
      batchLines.insert("  int c\(axis) = (batch / \(step)) % \(batchShape[axis]);", at: 0)
      step *= batchShape[axis]
    }
    func base(_ map: AffineIndex) -> String {
      var text = "\(map.constant)"
      for axis in 0..<(rank - 2) where map.coefficient(.coordinate(axis)) != 0 {
        text += " + c\(axis) * \(map.coefficient(.coordinate(axis)))"
      }
      return text
    }
    var emitter = ExprEmitter(dialect: dialect, kernel: kernel)
    emitter.withIndent(2) { emitter in
      emitter.line("int c\(rank - 2) = cm;")
      emitter.line("int c\(rank - 1) = cn;")
      emitter.line("float v\(Self.accumulatorVariable) = accumulated;")
      emitter.line("int gid = \(linearOutput(rank: rank));")
      let value = emitter.emit(epilogue)
      emitter.line("result[uint(gid)] = \(dialect.store(value, dtype: kernel.output.dtype));")
    }
    let replacements: [(String, String)] = [
      ("@BINDINGS@", bindings), ("@HELPERS@", GLSLDialect.helpers), ("@M@", "\(m)"), ("@N@", "\(n)"), ("@K@", "\(k)"),
      ("@BATCH@", "\(batchCount)"), ("@BATCH_COORDINATES@", batchLines.joined(separator: "\n")),
      ("@A_BASE@", base(aMap)), ("@B_BASE@", base(bMap)), ("@A@", "b\(a)"), ("@B@", "b\(b)"),
      ("@A_M@", "\(aMap.coefficient(.coordinate(rank - 2)))"), ("@A_K@", "\(aMap.coefficient(.variable(0)))"),
      ("@B_K@", "\(bMap.coefficient(.variable(0)))"), ("@B_N@", "\(bMap.coefficient(.coordinate(rank - 1)))"),
      ("@EPILOGUE@", emitter.lines.joined(separator: "\n")),
    ]
    // `#version` stays the first line; the kernel's name follows as a comment.
    var source = EmbeddedShaders.matmulTiled.replacingOccurrences(
      of: "#version 450\n", with: "#version 450\n// \(kernel.name): \(kernel.sourceOps.joined(separator: ", ")) (matmul_tiled)\n")
    for (placeholder, value) in replacements { source = source.replacingOccurrences(of: placeholder, with: value) }
    return source
  }

  private func linearOutput(rank: Int) -> String {
    var terms: [String] = []
    var step = 1
    for axis in stride(from: rank - 1, through: 0, by: -1) {
      if kernel.shape[axis] != 1 { terms.append("c\(axis) * \(step)") }
      step *= kernel.shape[axis]
    }
    return terms.isEmpty ? "0" : terms.joined(separator: " + ")
  }
}

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

  private static func analyse(_ expr: Expr) -> AffineIndex? {
    switch expr {
    case .literal(let literal) where literal.type == .index:
      return AffineIndex(terms: [:], constant: Int(literal.integer))
    case .coordinate(let axis):
      return AffineIndex(terms: [.coordinate(axis): 1], constant: 0)
    case .variable(let id):
      return AffineIndex(terms: [.variable(id): 1], constant: 0)
    case .binary(.add, let x, let y), .binary(.subtract, let x, let y):
      guard let a = analyse(x), let b = analyse(y) else { return nil }
      let sign = expr == .binary(.add, x, y) ? 1 : -1
      var terms = a.terms
      for (term, value) in b.terms { terms[term, default: 0] += sign * value }
      return AffineIndex(terms: terms, constant: a.constant + sign * b.constant)
    case .binary(.multiply, let x, let y):
      guard let a = analyse(x), let b = analyse(y) else { return nil }
      if a.terms.isEmpty { return AffineIndex(terms: b.terms.mapValues { $0 * a.constant }, constant: a.constant * b.constant) }
      if b.terms.isEmpty { return AffineIndex(terms: a.terms.mapValues { $0 * b.constant }, constant: a.constant * b.constant) }
      return nil
    default:
      return nil
    }
  }
}

extension Expr {
  /// Replaces every `.reduce` through `transform` (nil from it makes the whole result nil).
  func replacingReductions(_ transform: (ReduceOp, Int, Int, Expr) -> Expr?) -> Expr? {
    switch self {
    case .literal, .coordinate, .variable: return self
    case .load(let input, let index):
      guard let i = index.replacingReductions(transform) else { return nil }
      return .load(input: input, index: i)
    case .unary(let op, let a):
      return a.replacingReductions(transform).map { .unary(op, $0) }
    case .cast(let a, let type):
      return a.replacingReductions(transform).map { .cast($0, type) }
    case .bitcast(let a, let from, let to):
      return a.replacingReductions(transform).map { .bitcast($0, from: from, to: to) }
    case .binary(let op, let a, let b):
      guard let x = a.replacingReductions(transform), let y = b.replacingReductions(transform) else { return nil }
      return .binary(op, x, y)
    case .select(let c, let a, let b):
      guard let x = c.replacingReductions(transform), let y = a.replacingReductions(transform),
        let z = b.replacingReductions(transform)
      else { return nil }
      return .select(x, y, z)
    case .reduce(let op, let variable, let extent, let body):
      return transform(op, variable, extent, body)
    }
  }
}
