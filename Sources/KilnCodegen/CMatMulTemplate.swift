import KilnCompiler
import KilnIR

/// Schedules a region's stated float32 contractions — `epilogue(sum_k A(m, k) * B(k, n))` — and
/// emits them for the CPU device as a cache-blocked GEMM: packed A and B panels, a register-blocked 6x16 microkernel
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
  var kernel: Kernel
  /// The distinct contractions of the body (a residual block's shortcut convolution adds a second
  /// one); all share the output tiling, each accumulates into its own tile.
  let contractions: [Contraction]
  /// The kernel body with contraction i replaced by `accumulator(i)`.
  let epilogue: Expr
  let batchAxes: [Int]
  let mAxes: [Int]
  let nAxes: [Int]
  public let batch: Int
  public let m: Int
  public let n: Int
  /// The first contraction's reduction extent.
  public var k: Int { contractions[0].k }
  let mc: Int
  let nc: Int
  /// Operands read from pre-packed constants (see `prepack`): the kernel reads their panels in
  /// place instead of packing them on every call.
  public var prepacked: Set<Operand> = []

  /// One side of one contraction: the A (M) side or the B (N) side of contraction `contraction`.
  public struct Operand: Hashable, Sendable {
    public var contraction: Int
    public var a: Bool
    /// The constant holds Winograd-transformed weights (`CWinogradTemplate.prepack`), not GEMM
    /// panels: the kernel runs as a Winograd convolution.
    public var winograd: Bool
    public init(contraction: Int, a: Bool, winograd: Bool = false) {
      self.contraction = contraction
      self.a = a
      self.winograd = winograd
    }
  }

  /// Microkernel tile: MR rows of A by NR columns of B (must match `CMatMulSupport`).
  static let mr = 6
  static let nr = 16

  /// Most contractions one kernel may carry.
  static let maximumContractions = 4

  static func accumulator(_ index: Int) -> Expr {
    .cast(.variable(MatMulTemplate.accumulatorVariable + index), .float32)
  }

  /// One `sum_k A(m, k) * B(k, n)`.
  struct Contraction: Sendable {
    /// Reduction variables (id, extent), outermost first; the flattened K runs over them row-major.
    var variables: [(id: Int, extent: Int)]
    var aSide = Side(factors: [], conditions: [])
    var bSide = Side(factors: [], conditions: [])
    /// Factors and masking conditions, before they are assigned to a side.
    var items: [(expr: Expr, isCondition: Bool)] = []
    var k: Int { variables.reduce(1) { $0 * $1.extent } }
    var kc: Int { min(k, 256) }
  }

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

  /// One workgroup per output tile, M tiles fastest: a call that runs a range of workgroups (the
  /// CPU pool hands each thread contiguous ranges) multiplies each packed B panel by every M tile
  /// of the range that shares its N tile, so B is packed once per range, not once per tile.
  public var workgroups: Int { batch * tilesN * tilesM }
  var tilesM: Int { (m + mc - 1) / mc }
  var tilesN: Int { (n + nc - 1) / nc }

  /// The match for `kernel`, or nil when it is not a float32 sum of products this template runs.
  public static func match(_ kernel: Kernel, prepacked: Set<Operand> = []) -> CMatMulTemplate? {
    guard let (epilogue, parsed) = parse(kernel) else { return nil }
    var contractions = parsed
    let shape = kernel.shape
    let nonUnit = shape.indices.filter { shape[$0] != 1 }
    // Every contraction's items, flattened (the split below must suit them all).
    let items = contractions.flatMap(\.items)
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
    var flat = 0
    for index in contractions.indices {
      for item in contractions[index].items {
        switch (isB[flat], item.isCondition) {
        case (true, false): contractions[index].bSide.factors.append(item.expr)
        case (true, true): contractions[index].bSide.conditions.append(item.expr)
        case (false, false): contractions[index].aSide.factors.append(item.expr)
        case (false, true): contractions[index].aSide.conditions.append(item.expr)
        }
        flat += 1
      }
      contractions[index].items = []
    }
    let extent = { (axes: [Int]) in axes.reduce(1) { $0 * shape[$1] } }
    let (batch, m, n) = (extent(batchAxes), extent(mAxes), extent(nAxes))
    let k = contractions.reduce(0) { $0 + $1.k }
    // Small contractions stay with the generic emitter (tiling overhead would dominate).
    guard m * n * k >= 512 else { return nil }
    // One row of A over a short reduction (a depthwise convolution: the weights depend on the
    // channel, an N axis) is no GEMM: the per-element loops do it faster.
    guard m > 1 || k >= 64 else { return nil }
    let roundUp = { (value: Int, step: Int) in (value + step - 1) / step * step }
    // At most 120 x 384, M split evenly: M = 128 is two tiles of 66 and 62 rows, not 120 and 8.
    let even = { (extent: Int, most: Int, step: Int) in roundUp((extent + (extent + most - 1) / most - 1) / ((extent + most - 1) / most), step) }
    var mc = even(m, 120, mr)
    var nc = min(roundUp(n, nr), 384)
    func template() -> CMatMulTemplate {
      var template = CMatMulTemplate(
        kernel: kernel, contractions: contractions, epilogue: epilogue, batchAxes: batchAxes, mAxes: mAxes, nAxes: nAxes,
        batch: batch, m: m, n: n, mc: mc, nc: nc)
      template.prepacked = prepacked
      return template
    }
    func groups() -> Int { batch * ((m + mc - 1) / mc) * ((n + nc - 1) / nc) }
    // Enough workgroups to keep the pool busy on big enough problems. When N is one tile and B is
    // packed on every call (a padded window, or a ragged N such as 7x7 = 49), split only M,
    // finely, so that one call packs B once for many M tiles (see `prefersCoarseChunks`).
    if m * n * k >= 1 << 20 {
      if nc >= n, template().packsBPerCall {
        while groups() < 16, mc > 12 { mc = roundUp(mc / 2, mr) }
      } else {
        while groups() < 8, nc > 64 { nc = roundUp(nc / 2, nr) }
        while groups() < 8, mc > 24 { mc = roundUp(mc / 2, mr) }
      }
    }
    return template()
  }

  /// `kernel`'s stated contractions (up to `maximumContractions`, float32) as factors and the
  /// conditions masking them to zero (`Contraction.items`: a stated factor that is itself a
  /// product or a zero-masked value, such as a fused Pad's, splits further), and the epilogue that
  /// combines them (reading contraction i as `accumulator(i)`); nil when the region states none
  /// or holds another reduction.
  static func parse(_ kernel: Kernel) -> (epilogue: Expr, contractions: [Contraction])? {
    let stated = kernel.region.contractions
    guard !kernel.shape.isEmpty, kernel.output.dtype == .float32, kernel.fitsInt32Indices, !stated.isEmpty,
      stated.count <= maximumContractions, stated.allSatisfy({ $0.reduction.type == .float32 })
    else { return nil }
    let epilogue = kernel.body.replacing { expr in
      stated.firstIndex { $0.reduction == expr }.map(accumulator)
    }
    let accumulators = Set(stated.indices.map { MatMulTemplate.accumulatorVariable + $0 })
    guard !epilogue.containsReduction, !epilogue.usesVariable(except: accumulators) else { return nil }
    var contractions: [Contraction] = []
    for contraction in stated {
      let reductionIDs = Set(contraction.loops.map(\.variable))
      var factors: [Expr] = []
      var conditions = contraction.conditions.flatMap(conjuncts)
      func split(_ e: Expr) {
        switch e.kind {
        case .binary(.multiply, let a, let b):
          split(a)
          split(b)
        case .select(let c, let a, let z) where z.isPositiveZero(.float32):
          conditions += conjuncts(c)
          split(a)
        default: factors.append(e)
        }
      }
      contraction.factors.forEach(split)
      let items = factors.map { (expr: $0, isCondition: false) } + conditions.map { (expr: $0, isCondition: true) }
      guard items.allSatisfy({ !$0.expr.containsReduction && !$0.expr.usesVariable(except: reductionIDs) }) else { return nil }
      var parsed = Contraction(variables: contraction.loops.map { (id: $0.variable, extent: $0.extent) })
      parsed.items = items
      contractions.append(parsed)
    }
    return (epilogue, contractions)
  }

  /// Whether some B operand is packed on every call: not pre-packed, and not row-major along N
  /// with whole micro-panels (which the kernel reads in place). A row-major B of ragged N counts
  /// as packed: narrow tiles pack it all, and wide ones (see `source`) still pack their tail, so
  /// the tiling keeps one N tile and fine M tiles for both.
  var packsBPerCall: Bool {
    contractions.indices.contains { index in
      let operand = Operand(contraction: index, a: false)
      guard !prepacked.contains(operand) else { return false }
      guard let load = flatLoad(operand) else { return true }
      return load.stride != 1 || n % Self.nr != 0
    }
  }

  /// Whether the CPU pool should hand each thread one contiguous range of this kernel's
  /// workgroups (the `_chunks_per_thread` symbol): with one N tile and B packed on every call,
  /// each range then packs B once, where finer ranges would each pack it again.
  public var prefersCoarseChunks: Bool { tilesN == 1 && tilesM > 1 && packsBPerCall }

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
    Self.coordinateLines(axes, shape: kernel.shape, from: flat, indent: indent)
  }

  /// Statements setting the coordinates of `axes` (row-major, the last fastest, extents from
  /// `shape`) from their flattened index `flat`.
  static func coordinateLines(_ axes: [Int], shape: [Int], from flat: String, indent: String) -> [String] {
    var lines: [String] = []
    var step = 1
    for axis in axes.reversed() {
      let quotient = step == 1 ? flat : "(\(flat)) / \(step)"
      lines.insert("\(indent)c\(axis) = (\(quotient)) % \(shape[axis]);", at: 0)
      step *= shape[axis]
    }
    return lines
  }

  /// The conjuncts of `condition` (`a && b && ...`), left to right.
  static func conjuncts(_ condition: Expr) -> [Expr] {
    if case .binary(.logicalAnd, let a, let b) = condition.kind { return conjuncts(a) + conjuncts(b) }
    return [condition]
  }

  /// Statements setting every reduction variable from the flattened reduction index `k`.
  static func variableLines(_ variables: [(id: Int, extent: Int)], indent: String) -> [String] {
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
    guard side.conditions.isEmpty, side.factors.count == 1, case .load(let input, .float32, let index) = side.factors[0].kind,
      let map = AffineIndex(index)
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

  /// `operand` as one affine load (see `affine`) whose reduction variables also flatten with a
  /// common stride: element (row r, flattened k) is at `base + r * stride + k * kStride`.
  private func flatLoad(_ operand: Operand) -> (input: Int, map: AffineIndex, stride: Int, kStride: Int)? {
    let contraction = contractions[operand.contraction]
    guard let (input, map, stride) = affine(operand.a ? contraction.aSide : contraction.bSide, axes: operand.a ? mAxes : nAxes)
    else { return nil }
    var step = 1
    var kStride: Int?
    for (id, extent) in contraction.variables.reversed() {
      defer { step *= extent }
      guard extent > 1 else { continue }
      let coefficient = map.coefficient(.variable(id))
      guard coefficient % step == 0 else { return nil }
      if let kStride, kStride != coefficient / step { return nil }
      kStride = coefficient / step
    }
    return (input, map, stride, kStride ?? 0)
  }

  /// Operands that may be pre-packed when their input is a constant: one affine load (see
  /// `flatLoad`) that no batch coordinate moves, of an input nothing else in the kernel reads.
  public var prepackCandidates: [(operand: Operand, input: Int)] {
    var result: [(operand: Operand, input: Int)] = []
    for index in contractions.indices {
      for a in [true, false] {
        let operand = Operand(contraction: index, a: a)
        guard let load = flatLoad(operand) else { continue }
        let groupAxes = Set(a ? mAxes : nAxes)
        let moved = load.map.terms.contains { term, _ in
          if case .coordinate(let axis) = term { return !groupAxes.contains(axis) && kernel.shape[axis] != 1 }
          return false
        }
        let readers = epilogue.loads(input: load.input) ? 2 : contractions.reduce(0) { count, c in
          count + (c.aSide.value.loads(input: load.input) ? 1 : 0) + (c.bSide.value.loads(input: load.input) ? 1 : 0)
        }
        if !moved, readers == 1 { result.append((operand, load.input)) }
      }
    }
    return result
  }

  /// The panels the kernel reads for `operand` when it is pre-packed, from the input's values:
  /// `ceil(rows / width)` panels of `k x width` (rows past the end are zero), where rows are M
  /// (width 6) for an A operand and N (width 16) for a B operand. Nil when `operand` is not a
  /// candidate or an index falls outside `values`.
  public func prepack(_ operand: Operand, values: [Float]) -> [Float]? {
    guard let load = flatLoad(operand) else { return nil }
    let (rows, width, k) = (operand.a ? m : n, operand.a ? Self.mr : Self.nr, contractions[operand.contraction].k)
    let panels = (rows + width - 1) / width
    var packed = [Float](repeating: 0, count: panels * width * k)
    let valid = values.withUnsafeBufferPointer { source in
      packed.withUnsafeMutableBufferPointer { target in
        for row in 0..<rows {
          let rowBase = load.map.constant + row * load.stride
          let panelBase = (row / width) * k * width + row % width
          for kk in 0..<k {
            let index = rowBase + kk * load.kStride
            guard index >= 0, index < source.count else { return false }
            target[panelBase + kk * width] = source[index]
          }
        }
        return true
      }
    }
    return valid ? packed : nil
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
    Self.emitValue(expr, kernel: kernel, into: target, indent: indent)
  }

  /// `target = expr;` as C statements over `kernel`'s inputs, in a block at `indent`.
  static func emitValue(_ expr: Expr, kernel: Kernel, into target: String, indent: Int) -> [String] {
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
  private func packLines(_ operand: Operand) -> [String] {
    let (contraction, a, index) = (contractions[operand.contraction], operand.a, operand.contraction)
    let (side, axes, width) = a ? (contraction.aSide, mAxes, Self.mr) : (contraction.bSide, nAxes, Self.nr)
    let name = (a ? "a" : "b") + "\(index)"
    let variables = contraction.variables
    var out: [String] = []
    out.append("__attribute__((noinline)) static void \(kernel.name)_pack_\(name)(\(bindingParameters), const int64_t *batchc, int64_t r0, int64_t r1, int64_t k0, int64_t kc, float *restrict dst) {")
    out += declarations(variables)
    if let (input, map, stride, kStride) = flatLoad(operand) {
      // Every variable is 0 here: `k * kStride` is the flattened reduction's offset.
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
    let window = width % 8 == 0 ? maskedWindow(side) : nil
    if let window {
      out += windowGatherLines(window, contraction: contraction, axes: axes, width: width)
      out.append("#else")
    }
    // Generic: the coordinates of each lane once per panel, the variables once per k.
    out.append("  int64_t lanec[\(max(axes.count, 1))][\(width)];")
    out += panelLoops(
      contraction, axes: axes, width: width, perLane: axes.enumerated().map { slot, axis in "lanec[\(slot)][lane] = c\(axis);" })
    func laneLoop(_ value: Expr, indent: Int) -> [String] {
      let pad = String(repeating: "  ", count: indent)
      // Scalar on purpose: vectorising this data-dependent body costs compile time, not run time.
      var lines = ["\(pad)_Pragma(\"clang loop vectorize(disable)\") for (int lane = 0; lane < \(width); ++lane) {"]
      for (slot, axis) in axes.enumerated() { lines.append("\(pad)  c\(axis) = lanec[\(slot)][lane];") }
      lines.append("\(pad)  float value;")
      lines += emitValue(value, into: "value", indent: indent + 1)
      lines.append("\(pad)  dst[lane] = value;")
      lines.append("\(pad)}")
      return lines
    }
    // Conditions the reduction step alone decides (a concatenated input's choice of operand)
    // are decided once per step, not once per lane.
    if let invariant = InvariantConditions(side.value, kernel: kernel, varying: Set(axes), variables: Set(variables.map(\.id))) {
      out += CKernel.branches(invariant, dialect: CDialect(), kernel: kernel, indent: 3, emit: laneLoop)
    } else {
      out += laneLoop(side.value, indent: 3)
    }
    out.append("      dst += \(width);")
    out.append("    }")
    out.append("  }")
    if window != nil { out.append("#endif") }
    out.append("}")
    return out
  }

  /// The loops both packing forms share, opened: panels of `width` rows from r0 to r1; per lane
  /// its coordinates (lanes past r1 repeat row r1 - 1) and `perLane`; then the reduction steps
  /// k0..<k0 + kc with every variable set. The caller writes the step's body and closes both.
  private func panelLoops(_ contraction: Contraction, axes: [Int], width: Int, perLane: [String], perPanel: [String] = []) -> [String] {
    var out = ["  for (int64_t r = r0; r < r1; r += \(width)) {"]
    out.append("    for (int lane = 0; lane < \(width); ++lane) {")
    out.append("      int64_t row = r + lane < r1 ? r + lane : r1 - 1;")
    out += coordinateLines(axes, from: "row", indent: "      ")
    out += perLane.map { "      " + $0 }
    out.append("    }")
    out += perPanel.map { "    " + $0 }
    out.append("    for (int64_t k = k0; k < k0 + kc; ++k) {")
    out += Self.variableLines(contraction.variables, indent: "      ")
    return out
  }

  /// A side that reads one float32 input under affine masks: `select(all(d_j op_j 0), load(input,
  /// index), 0)` where every `d_j` and the index are affine once the clamps that the masks make
  /// redundant are dropped. A padded convolution window (im2col) is one.
  struct MaskedWindow {
    var input: Int
    var index: AffineIndex
    var conditions: [(difference: AffineIndex, op: BinaryOp)]

    /// `bound` on a condition's variable terms T, narrowed by the condition `T + c op 0`; nil for
    /// a comparison that is not a bound (equal, not equal).
    static func narrowed(_ bound: (lo: Int, hi: Int), constant c: Int, op: BinaryOp) -> (lo: Int, hi: Int)? {
      var bound = bound
      switch op {
      case .greaterEqual: bound.lo = max(bound.lo, -c)
      case .greater: bound.lo = max(bound.lo, -c + 1)
      case .lessEqual: bound.hi = min(bound.hi, -c)
      case .less: bound.hi = min(bound.hi, -c - 1)
      default: return nil
      }
      return bound
    }
  }

  func maskedWindow(_ side: Side) -> MaskedWindow? { Self.maskedWindow(side, kernel: kernel) }

  static func maskedWindow(_ side: Side, kernel: Kernel) -> MaskedWindow? {
    guard side.factors.count == 1, !side.conditions.isEmpty, case .load(let input, .float32, let rawIndex) = side.factors[0].kind,
      kernel.inputs[input].elementCount > 0, kernel.inputs[input].elementCount < Int(Int32.max)
    else { return nil }
    // What the masks say of each masked expression: its lower and upper bounds.
    var bounds: [Expr: (lower: Int, upper: Int)] = [:]
    var conditions: [(difference: AffineIndex, op: BinaryOp)] = []
    for condition in side.conditions {
      guard case .binary(let op, let x, let y) = condition.kind, Self.comparison(op, "") != nil,
        x.type == .index, y.type == .index, let difference = AffineIndex(.binary(.subtract, x, y))
      else { return nil }
      conditions.append((difference, op))
      guard case .literal(let literal) = y.kind else { continue }
      let value = Int(literal.integer)
      var bound = bounds[x] ?? (Int.min, Int.max)
      switch op {
      case .less: bound.upper = min(bound.upper, value - 1)
      case .lessEqual: bound.upper = min(bound.upper, value)
      case .greater: bound.lower = max(bound.lower, value + 1)
      case .greaterEqual: bound.lower = max(bound.lower, value)
      case .equal: bound = (max(bound.lower, value), min(bound.upper, value))
      default: break
      }
      bounds[x] = bound
    }
    // Where the masks hold, min(e, hi) and max(e, lo) of a masked e within [lo, hi] are e.
    let unclamped = rawIndex.rebuilt { e in
      guard case .binary(let op, let inner, let b) = e.kind, op == .minimum || op == .maximum,
        case .literal(let literal) = b.kind, let bound = bounds[inner]
      else { return e }
      let limit = Int(literal.integer)
      return (op == .minimum ? bound.upper <= limit : bound.lower >= limit) ? inner : e
    }
    guard let index = AffineIndex(unclamped) else { return nil }
    return MaskedWindow(input: input, index: index, conditions: conditions)
  }

  /// The AVX2 comparison of `d` (8 x int32) with 0 under `op`, or nil for an operator that is no
  /// comparison.
  private static func comparison(_ op: BinaryOp, _ d: String) -> String? {
    switch op {
    case .greaterEqual: "kiln_i8_cmpgt(\(d), kiln_i8_set1(-1))"
    case .greater: "kiln_i8_cmpgt(\(d), kiln_i8_zero())"
    case .less: "kiln_i8_cmpgt(kiln_i8_zero(), \(d))"
    case .lessEqual: "kiln_i8_cmpgt(kiln_i8_set1(1), \(d))"
    case .equal: "kiln_i8_cmpeq(\(d), kiln_i8_zero())"
    case .notEqual: "kiln_i8_xor(kiln_i8_cmpeq(\(d), kiln_i8_zero()), kiln_i8_set1(-1))"
    default: nil
    }
  }

  /// The AVX2 packing of a masked window (the object built for x86-64-v3; the generic loop follows
  /// under `#else`): each lane's share of the index and of every mask once per panel, the
  /// reduction's share once per k, then eight lanes at a time a masked gather, which reads nothing
  /// where a mask fails. Where eight lanes read consecutive elements (columns of one output row,
  /// stride 1: known once per panel) and every mask holds, one unaligned load replaces the gather;
  /// where they read every other element (stride 2), two loads and a shuffle do (the second load
  /// starts at the seventh element, so nothing past the last lane's element is read).
  /// Lanes past r1 repeat row r1 - 1, as the generic loop's do.
  private func windowGatherLines(_ window: MaskedWindow, contraction: Contraction, axes: [Int], width: Int) -> [String] {
    func split(_ map: AffineIndex) -> (lane: String, k: String) {
      var lane = "INT64_C(0)"
      for (term, coefficient) in map.terms.sorted(by: { "\($0.key)" < "\($1.key)" }) {
        if case .coordinate(let axis) = term, axes.contains(axis) { lane += " + c\(axis) * \(coefficient)" }
      }
      return (lane, baseText(map, groupAxes: axes))
    }
    let parts = ([window.index] + window.conditions.map(\.difference)).map(split)
    let vectors = width / 8
    var out = ["#if defined(__AVX2__)"]
    out.append("  int32_t lanes[\(parts.count)][\(width)] __attribute__((aligned(32)));")
    let perPanel = [
      "int runs[\(vectors)], pairs[\(vectors)];",
      "for (int h = 0; h < \(vectors); ++h) {",
      "  runs[h] = 1;",
      "  pairs[h] = 1;",
      "  for (int i = 1; i < 8; ++i) {",
      "    runs[h] &= lanes[0][8 * h + i] == lanes[0][8 * h] + i;",
      "    pairs[h] &= lanes[0][8 * h + i] == lanes[0][8 * h] + 2 * i;",
      "  }",
      "}",
    ]
    out += panelLoops(
      contraction, axes: axes, width: width, perLane: parts.enumerated().map { slot, part in "lanes[\(slot)][lane] = (int32_t)(\(part.lane));" },
      perPanel: perPanel)
    out.append("      const int32_t k0part = (int32_t)(\(parts[0].k));")
    out.append("      const kiln_i8 at0 = kiln_i8_set1(k0part);")
    for (slot, part) in parts.enumerated().dropFirst() { out.append("      const kiln_i8 at\(slot) = kiln_i8_set1((int32_t)(\(part.k)));") }
    out.append("      for (int h = 0; h < \(vectors); ++h) {")
    out.append("        kiln_i8 inside = kiln_i8_set1(-1);")
    for (slot, condition) in window.conditions.enumerated() {
      let d = "kiln_i8_add(kiln_i8_load((const kiln_i8 *)(lanes[\(slot + 1)] + 8 * h)), at\(slot + 1))"
      out.append("        inside = kiln_i8_and(inside, \(Self.comparison(condition.op, d)!));")
    }
    out.append("        const int all = kiln_i8_all(inside);")
    out.append("        if (runs[h] && all) {")
    out.append("          kiln_f8_storeu(dst + 8 * h, kiln_f8_loadu(b\(window.input) + lanes[0][8 * h] + k0part));")
    out.append("        } else if (pairs[h] && all) {")
    out.append("          const float *p = b\(window.input) + lanes[0][8 * h] + k0part;")
    out.append("          kiln_f8_storeu(dst + 8 * h, kiln_f8_even(kiln_f8_loadu(p), kiln_f8_loadu(p + 7)));")
    out.append("        } else {")
    out.append("          const kiln_i8 at = kiln_i8_and(kiln_i8_add(kiln_i8_load((const kiln_i8 *)(lanes[0] + 8 * h)), at0), inside);")
    out.append("          kiln_f8_storeu(dst + 8 * h, kiln_f8_gather(kiln_f8_zero(), b\(window.input), at, kiln_i8_as_f8(inside), 4));")
    out.append("        }")
    out.append("      }")
    out.append("      dst += \(width);")
    out.append("    }")
    out.append("  }")
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
  private func declarations(_ variables: [(id: Int, extent: Int)]) -> [String] {
    var out: [String] = []
    out.append("  (void)result;")
    for index in kernel.inputs.indices { out.append("  (void)b\(index);") }
    for axis in kernel.shape.indices {
      let batchSlot = batchAxes.firstIndex(of: axis)
      let value = batchSlot.map { "batchc[\($0)]" } ?? "0"
      out.append("  int64_t c\(axis) = \(value); (void)c\(axis);")
    }
    if batchAxes.isEmpty { out.append("  (void)batchc;") }
    for (id, _) in variables { out.append("  int64_t v\(id) = 0; (void)v\(id);") }
    return out
  }

  /// The opening of a template's entry point `name`: the signature, then `b0`, `b1`, ... for the
  /// kernel's inputs and `result` for its output, each a restrict pointer into its binding.
  static func entryLines(name: String, kernel: Kernel) -> [String] {
    let dialect = CDialect()
    var out = ["KILN_CPU_EXPORT void \(name)(const kiln_cpu_dispatch *d) {"]
    for (index, input) in kernel.inputs.enumerated() {
      let t = dialect.storageType(input.dtype)
      out.append("  const \(t) *restrict b\(index) = (const \(t) *)d->bindings[\(index)];")
    }
    let outType = dialect.storageType(kernel.output.dtype)
    out.append("  \(outType) *restrict result = (\(outType) *)d->bindings[\(kernel.inputs.count)];")
    return out
  }

  /// The kernel's C: its two packing functions and the entry point.
  /// The schedule in a few words: the GEMM shapes and tiles.
  public var summary: String {
    let shapes = contractions.map { "\(batch)x\(m)x\(n)x\($0.k)" }.joined(separator: " + ")
    return "cpu gemm \(shapes), tiles \(mc)x\(nc)"
  }

  public func source() -> String {
    var out: [String] = ["// \(kernel.sourceOps.joined(separator: ", ")) (\(summary))"]
    for index in contractions.indices {
      for a in [true, false] where !prepacked.contains(Operand(contraction: index, a: a)) {
        out += packLines(Operand(contraction: index, a: a))
      }
    }
    out += Self.entryLines(name: kernel.name, kernel: kernel)
    let kc = contractions.map(\.kc).max() ?? 1
    let panelA = (mc + Self.mr - 1) / Self.mr * Self.mr * kc
    let panelB = (nc + Self.nr - 1) / Self.nr * Self.nr * kc
    var allocated: [String] = []
    for (name, floats, a) in [("packa", panelA, true), ("packb", panelB, false)]
    where contractions.indices.contains(where: { !prepacked.contains(Operand(contraction: $0, a: a)) }) {
      out.append("  float *\(name) = kiln_gemm_alloc(\(floats));")
      allocated.append(name)
    }
    // Contractions after the first accumulate into private tiles.
    for index in contractions.indices.dropFirst() {
      out.append("  float *tile\(index) = kiln_gemm_alloc(\(mc * nc));")
      allocated.append("tile\(index)")
    }
    out.append("  if (\(allocated.isEmpty ? "0" : allocated.map { "!\($0)" }.joined(separator: " || "))) {")
    out.append("    \(allocated.map { "kiln_gemm_free(\($0));" }.joined(separator: " "))")
    out.append("    return;")
    out.append("  }")
    out.append("  for (int64_t wg = d->workgroup_begin, end = d->workgroup_end; wg < end;) {")
    out.append("    const int64_t tmBegin = wg % \(tilesM), tn = (wg / \(tilesM)) % \(tilesN), batch = wg / \(tilesM * tilesN);")
    out.append("    const int64_t tmEnd = end - wg < \(tilesM) - tmBegin ? tmBegin + (end - wg) : \(tilesM);")
    out.append("    wg += tmEnd - tmBegin;")
    out.append("    int64_t batchc[\(max(batchAxes.count, 1))] = {0};")
    out += coordinateLines(batchAxes, from: "batch", indent: "    ").enumerated().map { slot, line in
      line.replacingOccurrences(of: "c\(batchAxes[slot]) = ", with: "batchc[\(slot)] = ")
    }
    out.append("    const int64_t n0 = tn * \(nc), n1 = n0 + \(nc) < \(n) ? n0 + \(nc) : \(n);")
    out.append("    float *out = result + batch * INT64_C(\(m * n));")
    let mRange = "const int64_t m0 = tm * \(mc), m1 = m0 + \(mc) < \(m) ? m0 + \(mc) : \(m);"
    let hasEpilogue = contractions.count > 1 || epilogue != Self.accumulator(0)
    if contractions.count == 1 {
      // One contraction accumulates straight into the output: each B panel is packed once and
      // multiplied by every M tile of the range, then the epilogue runs over the finished tiles.
      let contraction = contractions[0]
      let bOperand = Operand(contraction: 0, a: false)
      // A B read in place covers a wide tile's whole micro-panels [n0, nd); only a ragged tail
      // [nd, n1) is packed. Measured on MobileNet-v2: its 14x14 1x1 convolutions (N 196) ran
      // 2-8% faster this way than when packing all of B per tile; its 7x7 ones (N 49: three
      // panels of rows 196 bytes apart) 8-10% slower, so narrow tiles pack as before.
      let direct = nc >= 8 * Self.nr ? inPlace(bOperand) : nil
      if direct != nil {
        out.append("    const int64_t nd = n0 + (n1 - n0) / \(Self.nr) * \(Self.nr);")
      }
      out.append("    for (int64_t k0 = 0; k0 < \(contraction.k); k0 += \(contraction.kc)) {")
      out.append("      const int64_t kc = \(contraction.k) - k0 < \(contraction.kc) ? \(contraction.k) - k0 : \(contraction.kc);")
      let b = direct == nil ? panels(bOperand, into: &out, indent: "      ") : nil
      if direct != nil { out.append("      if (nd < n1) \(packCall(bOperand, from: "nd", to: "n1"))") }
      out.append("      for (int64_t tm = tmBegin; tm < tmEnd; ++tm) {")
      out.append("        \(mRange)")
      let a = panels(Operand(contraction: 0, a: true), into: &out, indent: "        ")
      let block = "kiln_gemm_block(kc, \(a.pointer), \(a.stride), "
      if let direct {
        out.append("        if (nd > n0) \(block)\(direct.pointer), INT64_C(\(Self.nr)), INT64_C(\(direct.kStride)), out + m0 * \(n) + n0, \(n), m1 - m0, nd - n0, k0 > 0);")
        out.append("        if (nd < n1) \(block)packb, kc * \(Self.nr), INT64_C(\(Self.nr)), out + m0 * \(n) + nd, \(n), m1 - m0, n1 - nd, k0 > 0);")
      } else if let b {
        out.append("        \(block)\(b.pointer), \(b.stride), \(b.step), out + m0 * \(n) + n0, \(n), m1 - m0, n1 - n0, k0 > 0);")
      }
      out.append("      }")
      out.append("    }")
      if hasEpilogue {
        out.append("    for (int64_t tm = tmBegin; tm < tmEnd; ++tm) {")
        out.append("    \(mRange)")
        out += epilogueLines()
        out.append("    }")
      }
    } else {
      // Later contractions accumulate into private tiles of one M tile: one M tile at a time.
      out.append("    for (int64_t tm = tmBegin; tm < tmEnd; ++tm) {")
      out.append("    \(mRange)")
      for (index, contraction) in contractions.enumerated() {
        let (tile, ldc) = index == 0 ? ("out + m0 * \(n) + n0", n) : ("tile\(index)", nc)
        out.append("    for (int64_t k0 = 0; k0 < \(contraction.k); k0 += \(contraction.kc)) {")
        out.append("      const int64_t kc = \(contraction.k) - k0 < \(contraction.kc) ? \(contraction.k) - k0 : \(contraction.kc);")
        let b = panels(Operand(contraction: index, a: false), into: &out, indent: "      ")
        let a = panels(Operand(contraction: index, a: true), into: &out, indent: "      ")
        out.append("      kiln_gemm_block(kc, \(a.pointer), \(a.stride), \(b.pointer), \(b.stride), \(b.step), \(tile), \(ldc), m1 - m0, n1 - n0, k0 > 0);")
        out.append("    }")
      }
      out += epilogueLines()
      out.append("    }")
    }
    out.append("  }")
    out.append("  \(allocated.map { "kiln_gemm_free(\($0));" }.joined(separator: " "))")
    out.append("}")
    return out.joined(separator: "\n") + "\n"
  }

  /// The panels of `operand` for the block at rows m0 (A) or n0 (B) and reductions [k0, k0 + kc):
  /// packed into the scratch buffer by the packing function; pre-packed, read in place; or, for a
  /// B that is row-major along N (a 1x1 convolution's input, a MatMul's right operand), read in
  /// place from the input when the tile's columns are whole micro-panels (the last tile of a
  /// ragged N is packed, so no read goes past the input). Returns the panels' C pointer, the
  /// floats from one panel to the next, and from one reduction step to the next within a panel.
  private func panels(_ operand: Operand, into out: inout [String], indent: String) -> (pointer: String, stride: String, step: String) {
    let (width, k) = (operand.a ? Self.mr : Self.nr, contractions[operand.contraction].k)
    let (scratch, first, last) = operand.a ? ("packa", "m0", "m1") : ("packb", "n0", "n1")
    let load = flatLoad(operand)
    if prepacked.contains(operand), let load {
      return ("b\(load.input) + (\(first) / \(width)) * INT64_C(\(k * width)) + k0 * \(width)", "INT64_C(\(k * width))", "INT64_C(\(width))")
    }
    let pack = packCall(operand, from: first, to: last)
    guard let direct = inPlace(operand) else {
      out.append(indent + pack)
      return (scratch, "kc * \(width)", "INT64_C(\(width))")
    }
    let name = "direct\(operand.contraction)"
    out.append("\(indent)const float *\(name) = (n1 - n0) % \(width) == 0 ? \(direct.pointer) : 0;")
    out.append("\(indent)if (!\(name)) \(pack)")
    return ("(\(name) ? \(name) : \(scratch))", "(\(name) ? INT64_C(\(width)) : kc * \(width))", "(\(name) ? INT64_C(\(direct.kStride)) : INT64_C(\(width)))")
  }

  /// The call that packs `operand`'s panels for rows (A) or columns (B) [first, last) into the scratch buffer.
  private func packCall(_ operand: Operand, from first: String, to last: String) -> String {
    "\(kernel.name)_pack_\(operand.a ? "a" : "b")\(operand.contraction)(\(bindingArguments), batchc, \(first), \(last), k0, kc, \(operand.a ? "packa" : "packb"));"
  }

  /// A B operand that is row-major along N and not pre-packed, read in place: the C pointer to
  /// its column n0 at reduction step k0, and the floats from one reduction step to the next.
  private func inPlace(_ operand: Operand) -> (pointer: String, kStride: Int)? {
    guard !operand.a, !prepacked.contains(operand), let load = flatLoad(operand), load.stride == 1 else { return nil }
    var base = "INT64_C(\(load.map.constant))"
    for (slot, axis) in batchAxes.enumerated() where load.map.coefficient(.coordinate(axis)) != 0 {
      base += " + batchc[\(slot)] * \(load.map.coefficient(.coordinate(axis)))"
    }
    return ("b\(load.input) + \(base) + n0 + k0 * INT64_C(\(load.kStride))", load.kStride)
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
    for index in contractions.indices.dropFirst() {
      out.append("        float v\(MatMulTemplate.accumulatorVariable + index) = tile\(index)[(mi - m0) * \(nc) + (ni - n0)];")
    }
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
  /// Whether a variable other than `allowed` (or a reduction) appears.
  func usesVariable(except allowed: Set<Int>) -> Bool {
    contains { expr in
      switch expr.kind {
      case .variable(let id): !allowed.contains(id)
      case .reduce: true
      default: false
      }
    }
  }

  /// Whether this is the literal +0 of `type`.
  func isPositiveZero(_ type: ValueType) -> Bool {
    guard case .literal(let literal) = kind else { return false }
    return literal.type == type && literal.float == 0 && literal.float.sign == .plus
  }
}
