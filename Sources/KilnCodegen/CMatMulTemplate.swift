import KilnCompiler
import KilnIR

/// Recognises float32 contractions — `epilogue(sum_k A(m, k) * B(k, n))` — and emits them for the
/// CPU device as a cache-blocked GEMM: packed A and B panels, a register-blocked 6x16 microkernel
/// (AVX2/FMA in the x86-64-v3 object, portable C in the baseline one; `CMatMulSupport.source`) and
/// the fused epilogue applied to each finished output tile.
///
/// Unlike the Vulkan `MatMulTemplate`, operands need not be plain affine loads: the product's
/// factors are split into an A side (the factors that use no "N" output axis) and a B side (those
/// that use no "M" axis), and each side is evaluated once per packed element by emitted code. A
/// convolution is therefore an implicit GEMM: W[co, c*kh*kw] times the padded, strided input
/// window (the padding `select` goes with the side whose coordinates it tests). Sides that are one
/// affine load (MatMul, Gemm, 1x1 convolutions) pack with strided copies instead.
///
/// Output axes split into leading batch axes (a separate GEMM each), the M axes and the trailing
/// N axes; the output for one batch is then a row-major M x N matrix. Each workgroup computes one
/// `mc` x `nc` tile of one batch over the whole reduction.
public struct CMatMulTemplate: Sendable {
  let kernel: Kernel
  /// Reduction variables (id, extent), outermost first; the flattened K runs over them row-major.
  let variables: [(id: Int, extent: Int)]
  let aSide: Side
  let bSide: Side
  /// The kernel body with the contraction replaced by `MatMulTemplate.accumulator`.
  let epilogue: Expr
  let batchAxes: [Int]
  let mAxes: [Int]
  let nAxes: [Int]
  public let batch: Int
  public let m: Int
  public let n: Int
  public let k: Int
  let mc: Int
  let nc: Int
  let kc: Int

  /// Microkernel tile: MR rows of A by NR columns of B (must match `CMatMulSupport`).
  static let mr = 6
  static let nr = 16

  /// One operand of the product: `select(all(conditions), product(factors), 0)`.
  struct Side: Sendable {
    var factors: [Expr]
    var conditions: [Expr]
    var value: Expr {
      let product = factors.dropFirst().reduce(factors.first ?? .literal(.of(1, .float32))) { .binary(.multiply, $0, $1) }
      guard let first = conditions.first else { return product }
      let condition = conditions.dropFirst().reduce(first) { .binary(.logicalAnd, $0, $1) }
      return .select(condition, product, .literal(.of(0, .float32)))
    }
  }

  public var workgroups: Int { batch * tilesM * tilesN }
  var tilesM: Int { (m + mc - 1) / mc }
  var tilesN: Int { (n + nc - 1) / nc }

  /// The match for `kernel`, or nil when it is not a float32 sum of products this template runs.
  public static func match(_ kernel: Kernel) -> CMatMulTemplate? {
    guard !kernel.shape.isEmpty, kernel.output.dtype == .float32, kernel.fitsInt32Indices else { return nil }
    var nest: (variables: [(id: Int, extent: Int)], body: Expr)?
    var reduction: Expr?
    // Every reduction must be the same one (an epilogue such as Relu's select uses it twice).
    let replaced = kernel.body.replacingReductions { op, variable, extent, body in
      let this = Expr.reduce(op, variable: variable, extent: extent, body: body)
      if let reduction { return reduction == this ? MatMulTemplate.accumulator : nil }
      guard op == .sum else { return nil }
      var variables = [(id: variable, extent: extent)]
      var inner = body
      while case .reduce(.sum, let v, let e, let b) = inner {
        variables.append((v, e))
        inner = b
      }
      guard !inner.containsReduction else { return nil }
      reduction = this
      nest = (variables, inner)
      return MatMulTemplate.accumulator
    }
    guard let epilogue = replaced, let nest, kernel.type(of: nest.body) == .float32 else { return nil }
    guard !epilogue.usesVariable(except: [MatMulTemplate.accumulatorVariable]) else { return nil }
    let reductionIDs = Set(nest.variables.map(\.id))
    // Split the body into factors and the conditions masking them to zero.
    var factors: [Expr] = []
    var conditions: [Expr] = []
    func split(_ e: Expr) {
      switch e {
      case .binary(.multiply, let a, let b):
        split(a)
        split(b)
      case .select(let c, let a, .literal(let zero)) where zero.type == .float32 && zero.float == 0 && zero.float.sign == .plus:
        conjuncts(c)
        split(a)
      default: factors.append(e)
      }
    }
    func conjuncts(_ c: Expr) {
      if case .binary(.logicalAnd, let a, let b) = c {
        conjuncts(a)
        conjuncts(b)
      } else {
        conditions.append(c)
      }
    }
    split(nest.body)
    let items = factors.map { (expr: $0, isCondition: false) } + conditions.map { (expr: $0, isCondition: true) }
    guard items.allSatisfy({ !$0.expr.usesVariable(except: reductionIDs) }) else { return nil }

    let shape = kernel.shape
    let nonUnit = shape.indices.filter { shape[$0] != 1 }
    let uses = items.map { $0.expr.coordinatesUsed.filter { shape[$0] != 1 } }
    // N: trailing axes; the items using any of them form the B side, the rest the A side; M: the
    // axes before N that no B item uses; batch: the rest. Pick the split that fills the most of
    // the microkernel's tile, then the one with the most outputs per GEMM.
    var best: (score: (Int, Int), nAxes: [Int], mAxes: [Int], batchAxes: [Int], isB: [Bool])?
    for split in 0...nonUnit.count {
      let nAxes = Array(nonUnit[split...])
      let isB = uses.map { !$0.isDisjoint(with: nAxes) }
      let bUses = uses.indices.filter { isB[$0] }.reduce(into: Set<Int>()) { $0.formUnion(uses[$1]) }
      var position = split - 1
      var mAxes: [Int] = []
      while position >= 0, !bUses.contains(nonUnit[position]) {
        mAxes.insert(nonUnit[position], at: 0)
        position -= 1
      }
      let m = mAxes.reduce(1) { $0 * shape[$1] }
      let n = nAxes.reduce(1) { $0 * shape[$1] }
      let score = (min(m, mr) * min(n, nr), m * n)
      if let best, best.score >= score { continue }
      best = (score, nAxes, mAxes, position >= 0 ? Array(nonUnit[...position]) : [], isB)
    }
    guard let best else { return nil }
    let (nAxes, mAxes, batchAxes, isB) = (best.nAxes, best.mAxes, best.batchAxes, best.isB)
    var a = Side(factors: [], conditions: [])
    var b = Side(factors: [], conditions: [])
    for (index, item) in items.enumerated() {
      switch (isB[index], item.isCondition) {
      case (true, false): b.factors.append(item.expr)
      case (true, true): b.conditions.append(item.expr)
      case (false, false): a.factors.append(item.expr)
      case (false, true): a.conditions.append(item.expr)
      }
    }
    let extent = { (axes: [Int]) in axes.reduce(1) { $0 * shape[$1] } }
    let (batch, m, n) = (extent(batchAxes), extent(mAxes), extent(nAxes))
    let k = nest.variables.reduce(1) { $0 * $1.extent }
    // Small contractions stay with the generic emitter (tiling overhead would dominate).
    guard m * n * k >= 512 else { return nil }
    let roundUp = { (value: Int, step: Int) in (value + step - 1) / step * step }
    var mc = min(roundUp(m, mr), 120)
    var nc = min(roundUp(n, nr), 384)
    // Enough workgroups to keep the pool busy on big enough problems.
    let wanted = 8
    func groups() -> Int { batch * ((m + mc - 1) / mc) * ((n + nc - 1) / nc) }
    if m * n * k >= 1 << 20 {
      while groups() < wanted, nc > 64 { nc = roundUp(nc / 2, nr) }
      while groups() < wanted, mc > 24 { mc = roundUp(mc / 2, mr) }
    }
    return CMatMulTemplate(
      kernel: kernel, variables: nest.variables, aSide: a, bSide: b, epilogue: epilogue, batchAxes: batchAxes, mAxes: mAxes,
      nAxes: nAxes, batch: batch, m: m, n: n, k: k, mc: mc, nc: nc, kc: min(k, 256))
  }

  // MARK: Emission

  /// Row-major steps of `axes` flattened (the last varies fastest).
  private func steps(_ axes: [Int]) -> [Int: Int] {
    var result: [Int: Int] = [:]
    var step = 1
    for axis in axes.reversed() {
      result[axis] = step
      step *= kernel.shape[axis]
    }
    return result
  }

  /// Statements setting the coordinates of `axes` from the flattened index `flat`.
  private func coordinateLines(_ axes: [Int], from flat: String, indent: String) -> [String] {
    let step = steps(axes)
    return axes.map { axis in
      let s = step[axis] ?? 1
      let quotient = s == 1 ? flat : "(\(flat)) / \(s)"
      return "\(indent)c\(axis) = (\(quotient)) % \(kernel.shape[axis]);"
    }
  }

  /// Statements setting every reduction variable from the flattened reduction index `k`.
  private func variableLines(indent: String) -> [String] {
    var lines: [String] = []
    var step = 1
    for (id, extent) in variables.reversed() {
      let quotient = step == 1 ? "k" : "k / \(step)"
      lines.insert("\(indent)v\(id) = (\(quotient)) % \(extent);", at: 0)
      step *= extent
    }
    return lines
  }

  /// `side` as one affine load whose group axes flatten with a common stride: (input, index map,
  /// stride per flattened row/column).
  private func affine(_ side: Side, axes: [Int]) -> (input: Int, map: AffineIndex, stride: Int)? {
    guard side.conditions.isEmpty, side.factors.count == 1, case .load(let input, let index) = side.factors[0],
      kernel.inputs[input].dtype == .float32, let map = AffineIndex(index)
    else { return nil }
    let step = steps(axes)
    var stride: Int?
    for axis in axes {
      let coefficient = map.coefficient(.coordinate(axis))
      let s = step[axis] ?? 1
      guard coefficient % s == 0 else { return nil }
      if let stride, stride != coefficient / s { return nil }
      stride = coefficient / s
    }
    return (input, map, stride ?? 0)
  }

  /// C for `map` restricted to the batch coordinates and reduction variables.
  private func baseText(_ map: AffineIndex, groupAxes: [Int]) -> String {
    var text = "INT64_C(\(map.constant))"
    for (term, coefficient) in map.terms.sorted(by: { "\($0.key)" < "\($1.key)" }) {
      switch term {
      case .coordinate(let axis) where !groupAxes.contains(axis): text += " + c\(axis) * \(coefficient)"
      case .variable(let id): text += " + v\(id) * \(coefficient)"
      default: break
      }
    }
    return text
  }

  private func emitValue(_ expr: Expr, into target: String, indent: Int) -> [String] {
    var emitter = ExprEmitter(dialect: CDialect(), kernel: kernel)
    var lines: [String] = []
    emitter.withIndent(indent) { emitter in
      let value = emitter.emit(expr)
      emitter.line("\(target) = \(value);")
    }
    lines.append(String(repeating: "  ", count: indent) + "{")
    lines += emitter.lines
    lines.append(String(repeating: "  ", count: indent) + "}")
    return lines
  }

  /// Packs rows [r0, r1) (A: m, B: n) and reductions [k0, k0 + kc) into panels of `width`
  /// interleaved rows: `dst[panel * kc * width + k * width + lane]`.
  private func packLines(_ side: Side, axes: [Int], width: Int, name: String) -> [String] {
    var out: [String] = []
    out.append("static void \(kernel.name)_pack_\(name)(\(bindingParameters), const int64_t *batchc, int64_t r0, int64_t r1, int64_t k0, int64_t kc, float *restrict dst) {")
    out += declarations(includeBatch: true)
    if let (input, map, stride) = affine(side, axes: axes), variables.count == 1 {
      let v = variables[0].id
      let kStride = map.coefficient(.variable(v))
      out.append("  v\(v) = 0;")
      out.append("  const int64_t base = \(baseText(map, groupAxes: axes));")
      out.append("  for (int64_t r = r0; r < r1; r += \(width)) {")
      out.append("    const int64_t rows = r1 - r < \(width) ? r1 - r : \(width);")
      out.append("    for (int64_t k = k0; k < k0 + kc; ++k) {")
      out.append("      const float *src = b\(input) + base + r * \(stride) + k * \(kStride);")
      out.append("      if (rows == \(width)) {")
      out.append("        for (int lane = 0; lane < \(width); ++lane) dst[lane] = src[lane * \(stride)];")
      out.append("      } else {")
      out.append("        for (int lane = 0; lane < \(width); ++lane) dst[lane] = lane < rows ? src[lane * \(stride)] : 0.0f;")
      out.append("      }")
      out.append("      dst += \(width);")
      out.append("    }")
      out.append("  }")
      out.append("}")
      return out
    }
    // Generic: the coordinates of each lane once per panel, the variables once per k.
    out.append("  int64_t lanec[\(max(axes.count, 1))][\(width)];")
    out.append("  for (int64_t r = r0; r < r1; r += \(width)) {")
    out.append("    for (int lane = 0; lane < \(width); ++lane) {")
    out.append("      int64_t row = r + lane < r1 ? r + lane : r1 - 1;")
    out += coordinateLines(axes, from: "row", indent: "      ")
    for (slot, axis) in axes.enumerated() { out.append("      lanec[\(slot)][lane] = c\(axis);") }
    out.append("    }")
    out.append("    for (int64_t k = k0; k < k0 + kc; ++k) {")
    out += variableLines(indent: "      ")
    out.append("      for (int lane = 0; lane < \(width); ++lane) {")
    for (slot, axis) in axes.enumerated() { out.append("        c\(axis) = lanec[\(slot)][lane];") }
    out.append("        float value;")
    out += emitValue(side.value, into: "value", indent: 4)
    out.append("        dst[lane] = value;")
    out.append("      }")
    out.append("      dst += \(width);")
    out.append("    }")
    out.append("  }")
    out.append("}")
    return out
  }

  private var bindingParameters: String {
    let dialect = CDialect()
    var parameters = kernel.inputs.enumerated().map { index, input in
      let t = dialect.storageType(input.dtype)
      return "const \(t) *restrict b\(index)"
    }
    parameters.append("\(dialect.storageType(kernel.output.dtype)) *restrict result")
    return parameters.joined(separator: ", ")
  }

  private var bindingArguments: String {
    (kernel.inputs.indices.map { "b\($0)" } + ["result"]).joined(separator: ", ")
  }

  /// Declarations of every coordinate (batch ones from `batchc`) and reduction variable.
  private func declarations(includeBatch: Bool) -> [String] {
    var out: [String] = []
    out.append("  (void)result;")
    for index in kernel.inputs.indices { out.append("  (void)b\(index);") }
    for axis in kernel.shape.indices {
      let batchSlot = batchAxes.firstIndex(of: axis)
      let value = includeBatch && batchSlot != nil ? "batchc[\(batchSlot ?? 0)]" : "0"
      out.append("  int64_t c\(axis) = \(value); (void)c\(axis);")
    }
    if includeBatch && batchAxes.isEmpty { out.append("  (void)batchc;") }
    for (id, _) in variables { out.append("  int64_t v\(id) = 0; (void)v\(id);") }
    return out
  }

  /// The kernel's C: its two packing functions and the entry point.
  public func source() -> String {
    let dialect = CDialect()
    var out: [String] = ["// \(kernel.sourceOps.joined(separator: ", ")) (cpu gemm \(batch)x\(m)x\(n)x\(k), tiles \(mc)x\(nc)x\(kc))"]
    out += packLines(aSide, axes: mAxes, width: Self.mr, name: "a")
    out += packLines(bSide, axes: nAxes, width: Self.nr, name: "b")
    out.append("KILN_CPU_EXPORT void \(kernel.name)(const kiln_cpu_dispatch *d) {")
    for (index, input) in kernel.inputs.enumerated() {
      let t = dialect.storageType(input.dtype)
      out.append("  const \(t) *restrict b\(index) = (const \(t) *)d->bindings[\(index)];")
    }
    let outType = dialect.storageType(kernel.output.dtype)
    out.append("  \(outType) *restrict result = (\(outType) *)d->bindings[\(kernel.inputs.count)];")
    let panelA = (mc + Self.mr - 1) / Self.mr * Self.mr * kc
    let panelB = (nc + Self.nr - 1) / Self.nr * Self.nr * kc
    out.append("  float *packa = kiln_gemm_alloc(\(panelA));")
    out.append("  float *packb = kiln_gemm_alloc(\(panelB));")
    out.append("  if (!packa || !packb) { kiln_gemm_free(packa); kiln_gemm_free(packb); return; }")
    out.append("  for (int64_t wg = d->workgroup_begin; wg < (int64_t)d->workgroup_end; ++wg) {")
    out.append("    const int64_t tn = wg % \(tilesN), tm = (wg / \(tilesN)) % \(tilesM), batch = wg / \(tilesN * tilesM);")
    out.append("    int64_t batchc[\(max(batchAxes.count, 1))] = {0};")
    out += coordinateLines(batchAxes, from: "batch", indent: "    ").enumerated().map { slot, line in
      line.replacingOccurrences(of: "c\(batchAxes[slot]) = ", with: "batchc[\(slot)] = ")
    }
    out.append("    const int64_t m0 = tm * \(mc), m1 = m0 + \(mc) < \(m) ? m0 + \(mc) : \(m);")
    out.append("    const int64_t n0 = tn * \(nc), n1 = n0 + \(nc) < \(n) ? n0 + \(nc) : \(n);")
    out.append("    float *out = result + batch * INT64_C(\(m * n));")
    out.append("    for (int64_t k0 = 0; k0 < \(k); k0 += \(kc)) {")
    out.append("      const int64_t kc = \(k) - k0 < \(kc) ? \(k) - k0 : \(kc);")
    out.append("      \(kernel.name)_pack_b(\(bindingArguments), batchc, n0, n1, k0, kc, packb);")
    out.append("      \(kernel.name)_pack_a(\(bindingArguments), batchc, m0, m1, k0, kc, packa);")
    out.append("      kiln_gemm_block(kc, packa, packb, out, \(n), m0, m1, n0, n1, k0 > 0);")
    out.append("    }")
    if epilogue != MatMulTemplate.accumulator {
      out += epilogueLines()
    }
    out.append("  }")
    out.append("  kiln_gemm_free(packa);")
    out.append("  kiln_gemm_free(packb);")
    out.append("}")
    return out.joined(separator: "\n") + "\n"
  }

  /// Applies the epilogue to the tile [m0, m1) x [n0, n1) in place, stepping the N coordinates.
  private func epilogueLines() -> [String] {
    var out: [String] = []
    for axis in kernel.shape.indices {
      if let slot = batchAxes.firstIndex(of: axis) {
        out.append("    int64_t c\(axis) = batchc[\(slot)]; (void)c\(axis);")
      } else {
        out.append("    int64_t c\(axis) = 0; (void)c\(axis);")
      }
    }
    out.append("    for (int64_t mi = m0; mi < m1; ++mi) {")
    out += coordinateLines(mAxes, from: "mi", indent: "      ")
    out += coordinateLines(nAxes, from: "n0", indent: "      ")
    out.append("      float *row = out + mi * \(n);")
    out.append("      for (int64_t ni = n0; ni < n1; ++ni) {")
    out.append("        float v\(MatMulTemplate.accumulatorVariable) = row[ni];")
    out += emitValue(epilogue, into: "row[ni]", indent: 4)
    // Step the N coordinates (last fastest) with carries.
    var carry = "        "
    for axis in nAxes.reversed() {
      out.append("\(carry)if (++c\(axis) == \(kernel.shape[axis])) {")
      carry += "  "
      out.append("\(carry)c\(axis) = 0;")
    }
    for _ in nAxes {
      carry.removeLast(2)
      out.append("\(carry)}")
    }
    out.append("      }")
    out.append("    }")
    return out
  }
}

extension Expr {
  /// Output axes this expression reads.
  var coordinatesUsed: Set<Int> {
    switch self {
    case .literal, .variable: []
    case .coordinate(let axis): [axis]
    case .load(_, let index): index.coordinatesUsed
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): a.coordinatesUsed
    case .binary(_, let a, let b): a.coordinatesUsed.union(b.coordinatesUsed)
    case .select(let c, let a, let b): c.coordinatesUsed.union(a.coordinatesUsed).union(b.coordinatesUsed)
    case .reduce(_, _, _, let body): body.coordinatesUsed
    }
  }

  /// Whether a variable other than `allowed` (or a reduction) appears.
  func usesVariable(except allowed: Set<Int>) -> Bool {
    switch self {
    case .literal, .coordinate: false
    case .variable(let id): !allowed.contains(id)
    case .load(_, let index): index.usesVariable(except: allowed)
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): a.usesVariable(except: allowed)
    case .binary(_, let a, let b): a.usesVariable(except: allowed) || b.usesVariable(except: allowed)
    case .select(let c, let a, let b):
      c.usesVariable(except: allowed) || a.usesVariable(except: allowed) || b.usesVariable(except: allowed)
    case .reduce: true
    }
  }
}
