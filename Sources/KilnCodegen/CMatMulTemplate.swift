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
  func steps(_ axes: [Int]) -> [Int: Int] {
    var result: [Int: Int] = [:]
    var step = 1
    for axis in axes.reversed() {
      result[axis] = step
      step *= kernel.shape[axis]
    }
    return result
  }

  /// Statements setting the coordinates of `axes` from the flattened index `flat`.
  func coordinateLines(_ axes: [Int], from flat: String, indent: String) -> [String] {
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
  func affine(_ side: Side, axes: [Int]) -> (input: Int, map: AffineIndex, stride: Int)? {
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
  func flatLoad(_ operand: Operand) -> (input: Int, map: AffineIndex, stride: Int, kStride: Int)? {
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
  func baseText(_ map: AffineIndex, groupAxes: [Int]) -> String {
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

  func emitValue(_ expr: Expr, into target: String, indent: Int) -> [String] {
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
