import KilnCompiler
import KilnIR

/// Recognises contraction kernels — `epilogue(sum_k A * B)` where A does not depend on some output
/// axis block N and B not on an output axis M — and instantiates the register-blocked template
/// `shaders/matmul_tiled.comp` for them, fusing the epilogue. MatMul and Gemm match with k the
/// contracted axis; Conv matches as an implicit GEMM: M is the output channel (the weights are A),
/// N the flattened spatial axes, k the (channel, taps) loops, and B is the input read through the
/// window's clamped index with the padding mask. Every other kernel uses the generic
/// one-invocation-per-element emitter.
public struct MatMulTemplate: Sendable, Hashable {
  /// Extents of the output axes that are neither M nor N (batch for MatMul and Conv).
  public var batchShape: [Int]
  /// Extent of the M axis (1 when no output axis is A's alone, e.g. a grouped Conv).
  public var m: Int
  /// Product of the N axes' extents.
  public var n: Int
  /// Product of the reduction loops' extents.
  public var k: Int
  /// Outputs per invocation along M and N, and invocations per workgroup.
  public var tileM: Int
  public var tileN: Int
  public var lanes: Int
  var mAxis: Int?
  var nAxes: [Int]
  var outerAxes: [Int]
  var loops: [Loop]
  /// The operands, written over the output coordinates and the loop variables.
  var a: Expr
  var b: Expr
  /// The kernel body with the reduction replaced by `MatMulTemplate.accumulator`.
  var epilogue: Expr
  let kernel: Kernel

  struct Loop: Sendable, Hashable {
    var variable: Int
    var extent: Int
  }

  /// Tile sizes. One profile serves lavapipe and discrete GPUs: a 4x4 block keeps 16 accumulators
  /// in registers (AVX2 has 16; a GPU thread has far more), and the lanes of a workgroup walk N so
  /// the weights are uniform loads. Kernels without an M axis use a 1x8 row instead.
  public static let tileM = 4
  public static let tileN = 4
  static let rowTileN = 8
  static let maximumLanes = 64
  static let accumulatorVariable = 1_000_000
  static let accumulator = Expr.cast(.variable(accumulatorVariable), .float32)

  /// The match for `kernel`, or nil when it is not a float32 sum of products of this shape.
  public static func match(_ kernel: Kernel) -> MatMulTemplate? {
    let rank = kernel.shape.count
    guard rank >= 1, kernel.output.dtype == .float32, kernel.fitsInt32Indices else { return nil }
    var reduction: Expr?
    var found: (loops: [Loop], body: Expr)?
    // Every reduction must be the same one (an epilogue such as Relu's select uses it twice).
    let epilogue = kernel.body.replacingReductions { op, variable, extent, body in
      let this = Expr.reduce(op, variable: variable, extent: extent, body: body)
      if let reduction { return reduction == this ? accumulator : nil }
      guard op == .sum else { return nil }
      var loops = [Loop(variable: variable, extent: extent)]
      var inner = body
      while case .reduce(.sum, let v, let e, let b) = inner {
        loops.append(Loop(variable: v, extent: e))
        inner = b
      }
      reduction = this
      found = (loops, inner)
      return accumulator
    }
    guard let found, let epilogue, kernel.type(of: found.body) == .scalar(.float32) else { return nil }
    // `select(inside, x * w, 0)` (a padded window) masks one operand instead.
    var condition: Expr?
    var product = found.body
    if case .select(let c, let p, .literal(let zero)) = found.body, zero.float == 0 {
      condition = c
      product = p
    }
    guard case .binary(.multiply, let x, let y) = product, !x.hasReduction, !y.hasReduction,
      condition?.hasReduction != true
    else { return nil }
    var best: MatMulTemplate?
    for (a, b) in [(x, y), (y, x)] {
      for maskB in [true, false] where condition != nil || maskB {
        let maskedA = condition.map { maskB ? a : Expr.select($0, a, .literal(.of(0, .float32))) } ?? a
        let maskedB = condition.map { maskB ? Expr.select($0, b, .literal(.of(0, .float32))) : b } ?? b
        guard let candidate = build(kernel, found.loops, maskedA, maskedB, epilogue) else { continue }
        if best == nil || (best?.mAxis == nil && candidate.mAxis != nil) { best = candidate }
      }
    }
    return best
  }

  /// N is the longest run of trailing axes A does not read; M the innermost other axis B does not
  /// read and A does.
  private static func build(_ kernel: Kernel, _ loops: [Loop], _ a: Expr, _ b: Expr, _ epilogue: Expr) -> MatMulTemplate? {
    let rank = kernel.shape.count
    let usedA = a.coordinatesUsed
    let usedB = b.coordinatesUsed
    var firstN = rank
    while firstN > 0, !usedA.contains(firstN - 1) { firstN -= 1 }
    let nAxes = Array(firstN..<rank)
    guard !nAxes.isEmpty, nAxes.contains(where: { usedB.contains($0) }) else { return nil }
    let mAxis = (0..<firstN).reversed().first { usedA.contains($0) && !usedB.contains($0) && kernel.shape[$0] > 1 }
    let outerAxes = (0..<firstN).filter { $0 != mAxis }
    let m = mAxis.map { kernel.shape[$0] } ?? 1
    let n = nAxes.reduce(1) { $0 * kernel.shape[$1] }
    let k = loops.reduce(1) { $0 * $1.extent }
    // Worthwhile only with a real reduction and enough outputs to block.
    guard k >= 2, n >= 2 || m >= 2 else { return nil }
    let tileM = mAxis == nil ? 1 : min(tileM, m)
    let tileN = min(mAxis == nil ? rowTileN : tileN, n)
    let tilesN = (n + tileN - 1) / tileN
    let lanes = min(maximumLanes, (tilesN + 7) / 8 * 8)
    return MatMulTemplate(
      batchShape: outerAxes.map { kernel.shape[$0] }, m: m, n: n, k: k, tileM: tileM, tileN: tileN, lanes: lanes,
      mAxis: mAxis, nAxes: nAxes, outerAxes: outerAxes, loops: loops, a: a, b: b, epilogue: epilogue, kernel: kernel)
  }

  public var batchCount: Int { batchShape.reduce(1, *) }

  private var tilesM: Int { (m + tileM - 1) / tileM }
  private var tilesN: Int { (n + tileN - 1) / tileN }

  /// Tiles (invocations doing work) the template runs.
  public var invocations: Int { batchCount * tilesM * tilesN }

  /// Workgroups for the template: one per (batch, M block, run of `lanes` N blocks), folded into x and y.
  public var workgroups: [Int] {
    let groups = batchCount * tilesM * ((tilesN + lanes - 1) / lanes)
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
    let coordinates = (0..<rank).map { "c\($0)" }
    let parameters = (coordinates.map { "int \($0)" } + loops.map { "int v\($0.variable)" }).joined(separator: ", ")
    // Operand loaders and the epilogue as functions of the coordinates (inlined by the compiler).
    var operands = ""
    for (name, expr) in [("kiln_a", a), ("kiln_b", b)] {
      var emitter = ExprEmitter(dialect: dialect, kernel: kernel)
      let value = emitter.emit(expr)
      operands += "float \(name)(\(parameters)) {\n\(emitter.lines.joined(separator: "\n"))\n  return \(value);\n}\n"
    }
    var store = ExprEmitter(dialect: dialect, kernel: kernel)
    let stored = store.emit(epilogue)
    operands += """
      void kiln_store(\(coordinates.map { "int \($0)" }.joined(separator: ", ")), float v\(Self.accumulatorVariable)) {
        int gid = \(linearOutput(rank: rank));
      \(store.lines.joined(separator: "\n"))
        result[uint(gid)] = \(dialect.store(stored, dtype: kernel.output.dtype));
      }
      """

    var block: [String] = []
    // Outer coordinates from the batch index.
    var step = 1
    var outer: [Int: String] = [:]
    for axis in outerAxes.reversed() {
      block.append("  int o\(axis) = (batch / \(step)) % \(kernel.shape[axis]);")
      outer[axis] = "o\(axis)"
      step *= kernel.shape[axis]
    }
    // M rows (clamped, so loads stay in bounds; stores are guarded) and N columns' coordinates.
    for i in 0..<tileM { block.append("  int mr\(i) = min(m0 + \(i), M - 1);") }
    for j in 0..<tileN {
      block.append("  int nc\(j) = min(n0 + \(j), N - 1);")
      var inner = 1
      for axis in nAxes.reversed() {
        block.append("  int n\(j)_\(axis) = (nc\(j) / \(inner)) % \(kernel.shape[axis]);")
        inner *= kernel.shape[axis]
      }
    }
    func arguments(row i: Int?, column j: Int?, unclampedRow: Bool = false) -> [String] {
      (0..<rank).map { axis in
        if let name = outer[axis] { return name }
        if axis == mAxis { return i.map { unclampedRow ? "m0 + \($0)" : "mr\($0)" } ?? "0" }
        return j.map { "n\($0)_\(axis)" } ?? "0"
      }
    }
    let loopArguments = loops.map { "v\($0.variable)" }
    for i in 0..<tileM { for j in 0..<tileN { block.append("  float acc\(i)_\(j) = 0.0;") } }
    var indent = "  "
    for loop in loops {
      block.append("\(indent)for (int v\(loop.variable) = 0; v\(loop.variable) < \(loop.extent); ++v\(loop.variable)) {")
      indent += "  "
    }
    for i in 0..<tileM {
      block.append("\(indent)float a\(i) = kiln_a(\((arguments(row: i, column: nil) + loopArguments).joined(separator: ", ")));")
    }
    for j in 0..<tileN {
      block.append("\(indent)float b\(j) = kiln_b(\((arguments(row: nil, column: j) + loopArguments).joined(separator: ", ")));")
    }
    for i in 0..<tileM { for j in 0..<tileN { block.append("\(indent)acc\(i)_\(j) += a\(i) * b\(j);") } }
    for _ in loops {
      indent.removeLast(2)
      block.append("\(indent)}")
    }
    for i in 0..<tileM {
      for j in 0..<tileN {
        let guardText = (i > 0 ? ["m0 + \(i) < M"] : []) + (j > 0 ? ["n0 + \(j) < N"] : [])
        let call = "kiln_store(\(arguments(row: i, column: j, unclampedRow: true).joined(separator: ", ")), acc\(i)_\(j));"
        block.append(guardText.isEmpty ? "  \(call)" : "  if (\(guardText.joined(separator: " && "))) \(call)")
      }
    }
    let replacements: [(String, String)] = [
      ("@BINDINGS@", bindings), ("@HELPERS@", GLSLDialect.helpers), ("@M@", "\(m)"), ("@N@", "\(n)"),
      ("@BATCH@", "\(batchCount)"), ("@TM@", "\(tileM)"), ("@TN@", "\(tileN)"), ("@LANES@", "\(lanes)"),
      ("@OPERANDS@", operands), ("@BLOCK@", block.joined(separator: "\n")),
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

extension Expr {
  /// The output axes this expression reads.
  var coordinatesUsed: Set<Int> {
    switch self {
    case .literal, .variable: return []
    case .coordinate(let axis): return [axis]
    case .load(_, let index): return index.coordinatesUsed
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): return a.coordinatesUsed
    case .binary(_, let a, let b): return a.coordinatesUsed.union(b.coordinatesUsed)
    case .select(let c, let a, let b): return c.coordinatesUsed.union(a.coordinatesUsed).union(b.coordinatesUsed)
    case .reduce(_, _, _, let body): return body.coordinatesUsed
    }
  }

  /// Whether a `.reduce` occurs anywhere in this expression.
  var hasReduction: Bool {
    switch self {
    case .literal, .variable, .coordinate: return false
    case .load(_, let index): return index.hasReduction
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): return a.hasReduction
    case .binary(_, let a, let b): return a.hasReduction || b.hasReduction
    case .select(let c, let a, let b): return c.hasReduction || a.hasReduction || b.hasReduction
    case .reduce: return true
    }
  }

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
