import KilnCompiler
import KilnIR

/// Schedules a region's stated contraction — `epilogue(sum_k A * B)`, where A does not depend on
/// some output axis block N and B not on an output axis M — and instantiates the register-blocked template
/// `shaders/matmul_tiled.comp` for them, fusing the epilogue. MatMul and Gemm match with k the
/// contracted axis; Conv matches as an implicit GEMM: M is the output channel (the weights are A),
/// N the flattened spatial axes, k the (channel, taps) loops, and B is the input read through the
/// window's clamped index with the padding mask. Every other kernel uses the generic
/// one-invocation-per-element emitter.
///
/// Where an operand's index allows it (see `vectorA`, `vectorB`), the template reads it as aligned
/// vec4s and blocks larger tiles: on lavapipe every non-uniform load is a loop over the SIMD lanes,
/// so loads per multiply-add are what the kernel's speed comes down to.
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
  /// B as aligned vec4 loads (one per 4 columns of a tile) when it is a plain load whose index is
  /// the flattened N coordinate plus terms that are multiples of 4; nil for scalar loads.
  var vectorB: VectorLoad?
  /// A as aligned vec4 loads along the flattened reduction, four steps of k at a time, when it is a
  /// plain load whose index is `base + k` (the loops flatten contiguously, as MatMul's K and a
  /// convolution's (channel, kh, kw) do) with `base` and K multiples of 4; nil for scalar loads.
  var vectorA: VectorLoad?
  var kernel: Kernel
  /// Operands larger than this are bound in parts (`VulkanBindingLayout`), read with scalar loads.
  var maximumBindingBytes = VulkanBindingLayout.guaranteedBytes
  /// The GLSL of this kernel's types, buffers and operations.
  var dialect: GLSLDialect { GLSLDialect(kernel, maximumBindingBytes: maximumBindingBytes, index32: true) }

  /// A float32 operand read four consecutive elements at a time through a vec4 view of its buffer.
  struct VectorLoad: Sendable, Hashable {
    var input: Int
    var index: AffineIndex

    /// `(index - flattened) / 4` as GLSL, where `flattened` is the N (for B) or k (for A) term the
    /// caller adds itself: the other coordinates' terms (named by `arguments`, per axis), the
    /// reduction variables' terms when `variables`, and the constant when `constant`. Each of
    /// those is a multiple of 4 (checked when the load was matched).
    func quarterIndex(arguments: [String], skipping: [Int], variables: Bool, constant: Bool) -> String {
      var parts: [String] = []
      for (term, coefficient) in index.terms.sorted(by: { "\($0.key)" < "\($1.key)" }) {
        switch term {
        case .coordinate(let axis) where !variables && !skipping.contains(axis):
          parts.append("\(arguments[axis]) * \(coefficient / 4)")
        case .variable(let v) where variables:
          parts.append("v\(v) * \(coefficient / 4)")
        default: break
        }
      }
      if constant, index.constant != 0 { parts.append("\(index.constant / 4)") }
      return parts.isEmpty ? "0" : parts.joined(separator: " + ")
    }
  }

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
  static let components = ["x", "y", "z", "w"]
  static let accumulator = Expr.cast(.variable(accumulatorVariable), .float32)

  /// The match for `kernel`, or nil when it is not a float32 sum of products of this shape.
  public static func match(_ kernel: Kernel, maximumBindingBytes: Int = VulkanBindingLayout.guaranteedBytes) -> MatMulTemplate? {
    let rank = kernel.shape.count
    guard rank >= 1, kernel.output.dtype == .float32, kernel.fitsInt32Indices else { return nil }
    // One stated contraction of two or more factors; the epilogue is the body around it.
    guard kernel.region.contractions.count == 1, let contraction = kernel.region.contractions.first,
      contraction.reduction.type == .float32, contraction.factors.count >= 2
    else { return nil }
    let epilogue = kernel.body.replacing { $0 == contraction.reduction ? accumulator : nil }
    guard !epilogue.containsReduction else { return nil }
    let loops = contraction.loops.map { Loop(variable: $0.variable, extent: $0.extent) }
    let x = contraction.factors.dropLast().dropFirst().reduce(contraction.factors[0]) { .binary(.multiply, $0, $1) }
    let y = contraction.factors[contraction.factors.count - 1]
    let condition = contraction.conditions.isEmpty ? nil : Expr.all(contraction.conditions)
    guard !x.containsReduction, !y.containsReduction, condition?.containsReduction != true else { return nil }
    var best: MatMulTemplate?
    for (a, b) in [(x, y), (y, x)] {
      for maskB in [true, false] where condition != nil || maskB {
        let maskedA = condition.map { maskB ? a : Expr.select($0, a, .literal(.of(0, .float32))) } ?? a
        let maskedB = condition.map { maskB ? Expr.select($0, b, .literal(.of(0, .float32))) : b } ?? b
        guard let candidate = build(kernel, loops, maskedA, maskedB, epilogue, maximumBindingBytes) else { continue }
        if best == nil || (best?.mAxis == nil && candidate.mAxis != nil) { best = candidate }
      }
    }
    return best
  }

  /// N is the longest run of trailing axes A does not read; M the innermost other axis B does not
  /// read and A does.
  private static func build(
    _ kernel: Kernel, _ loops: [Loop], _ a: Expr, _ b: Expr, _ epilogue: Expr, _ maximumBindingBytes: Int
  ) -> MatMulTemplate? {
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
    let layout = VulkanBindingLayout(kernel, maximumBytes: maximumBindingBytes)
    let vectorB = vectorLoad(b, kernel: kernel, layout: layout, along: nAxes.map { (.coordinate($0), kernel.shape[$0]) }, loops: loops)
    let vectorA =
      mAxis == nil
      ? nil : vectorLoad(a, kernel: kernel, layout: layout, along: loops.map { (.variable($0.variable), $0.extent) }, loops: loops)
    let batchCount = outerAxes.reduce(1) { $0 * kernel.shape[$1] }
    let (tileM, tileN) =
      vectorB == nil && vectorA == nil
      ? (mAxis == nil ? 1 : min(tileM, m), min(mAxis == nil ? rowTileN : tileN, n))
      : vectorTile(m: mAxis == nil ? 1 : m, n: n, k: k, batch: batchCount, vectorB: vectorB != nil)
    let tilesN = (n + tileN - 1) / tileN
    let lanes = min(maximumLanes, (tilesN + 7) / 8 * 8)
    return MatMulTemplate(
      batchShape: outerAxes.map { kernel.shape[$0] }, m: m, n: n, k: k, tileM: tileM, tileN: tileN, lanes: lanes,
      mAxis: mAxis, nAxes: nAxes, outerAxes: outerAxes, loops: loops, a: a, b: b, epilogue: epilogue,
      vectorB: vectorB, vectorA: vectorA, kernel: kernel, maximumBindingBytes: maximumBindingBytes)
  }

  /// `operand` as aligned vec4 loads along `flattened` (B: the N axes; A: the reduction loops), or
  /// nil: a float32 load whose index is `base + f`, f the flattened position (coefficient 1 on the
  /// innermost term, the inner extents' product on each outer one; a term of extent 1 may have any
  /// coefficient), with the flattened extent, the constant and every other term's coefficient
  /// multiples of 4. Each aligned group of four is then four consecutive, 16-byte-aligned elements
  /// inside the tensor. An input bound in parts has no vec4 view.
  private static func vectorLoad(
    _ operand: Expr, kernel: Kernel, layout: VulkanBindingLayout, along flattened: [(term: AffineIndex.Term, extent: Int)],
    loops: [Loop]
  ) -> VectorLoad? {
    guard case .load(let input, .float32, let index) = operand.kind, !layout.isSplit(input: input),
      let affine = AffineIndex(index)
    else { return nil }
    let extent = flattened.reduce(1) { $0 * $1.extent }
    guard extent % 4 == 0, affine.constant % 4 == 0 else { return nil }
    var stride = 1
    for (term, extent) in flattened.reversed() {
      if extent > 1, affine.coefficient(term) != stride { return nil }
      stride *= extent
    }
    // A loop of extent 1 only ever adds 0.
    let alwaysZero = Set(loops.filter { $0.extent == 1 }.map { AffineIndex.Term.variable($0.variable) })
    for (term, coefficient) in affine.terms where !alwaysZero.contains(term) && !flattened.contains(where: { $0.term == term }) {
      guard coefficient % 4 == 0 else { return nil }
    }
    return VectorLoad(input: input, index: affine)
  }

  /// Tile of the vec4 path, the tuning table for lavapipe (the only Vulkan device measured so far).
  /// There each non-uniform load is a loop over the 8 SIMD lanes (one loop for all four components
  /// of a vec4), so the larger the block per invocation, the fewer loads per multiply-add. On a
  /// 1024^3 MatMul, 4x4 ran in 544 ms, 4x8 in 271, 8x16 in 113, 8x32 in 107-115 (noisy) and 16x16
  /// in 95-96. The 16x16 block is for contractions of at least 2^30 multiply-adds only: on the
  /// benchmark networks it ran within noise of 8x16 (ResNet-50 2215 vs 2243 ms) and its larger
  /// shaders added 0.55 s to ResNet-50's Vulkan compile. The block shrinks (N first, then M) until
  /// the kernel has at least `minimumTiles` invocations, to keep both cores' lanes busy.
  static let vectorTiles = [(16, 16), (8, 16), (4, 16), (4, 8), (2, 8), (2, 4), (1, 4)]
  static let largeTileWork = 1 << 30
  /// With scalar B loads (a padded window), many rows share each column's loads instead
  /// (light SqueezeNet: 8x4, 16x4 and 16x8 all within 5%; 32x4 about 10% slower).
  static let scalarBTiles = [(16, 4), (8, 4), (4, 4), (2, 4), (1, 4)]
  static let minimumTiles = 256

  static func vectorTile(m: Int, n: Int, k: Int, batch: Int, vectorB: Bool) -> (Int, Int) {
    let large = batch * m * n * k >= largeTileWork
    for (tm, tn) in vectorB ? vectorTiles : scalarBTiles where large || tm * tn <= 128 {
      let tm = min(tm, m)
      let tn = min(tn, (n + 3) / 4 * 4)
      if batch * ((m + tm - 1) / tm) * ((n + tn - 1) / tn) >= minimumTiles { return (tm, tn) }
    }
    return (1, 4)
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
    let rank = kernel.shape.count
    var bindings = dialect.bufferDeclarations(vectorViews: Set([vectorA?.input, vectorB?.input].compactMap { $0 }))
    bindings.removeLast()
    var operands = operandFunctions()
    if vectorA != nil || vectorB != nil {
      operands += "\n" + store4Function()
    }

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
    if vectorA != nil || vectorB != nil {
      vectorBlock(&block, arguments: { arguments(row: $0, column: $1) }, loopArguments: loopArguments)
      // One guarded store call per row and column group: the loop over the group's four
      // columns lives in kiln_store4, which keeps the module (and its compile time) small.
      let outerNames = outerAxes.map { outer[$0]! }
      for i in 0..<tileM {
        for q in 0..<tileN / 4 {
          block.append("  kiln_store4(\((outerNames + ["m0 + \(i)", "n0 + \(4 * q)", "acc\(i)_\(q)"]).joined(separator: ", ")));")
        }
      }
    } else {
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
    }
    // The kernel's name follows `#version` as a comment.
    return ShaderTemplate.matmulTiled.instantiate(
      header: ["// \(kernel.name): \(kernel.sourceOps.joined(separator: ", ")) (matmul_tiled)"],
      [
        .bindings: .code(bindings), .helpers: .code(dialect.helperFunctions()), .m: .integer(m), .n: .integer(n),
        .batch: .integer(batchCount), .tm: .integer(tileM), .tn: .integer(tileN), .lanes: .integer(lanes),
        .operands: .code(operands), .block: .code(block.joined(separator: "\n")),
      ])
  }

  /// The operand loaders `kiln_a` / `kiln_b` (of the output coordinates and the loop variables)
  /// and the epilogue `kiln_store` (of the output coordinates and the sum), which the compiler inlines.
  func operandFunctions() -> String {
    let dialect = self.dialect
    let rank = kernel.shape.count
    let coordinates = (0..<rank).map { "c\($0)" }
    let parameters = (coordinates.map { "int \($0)" } + loops.map { "int v\($0.variable)" }).joined(separator: ", ")
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
        \(dialect.storeOutput(at: "gid", stored))
      }
      """
    return operands
  }

  /// `kiln_store4(outer coordinates..., m, n, v)`: stores v's four values at row m and columns
  /// n...n+3, skipping rows and columns past the output's end.
  private func store4Function() -> String {
    let rank = kernel.shape.count
    let parameters = outerAxes.map { "int o\($0)" } + ["int m", "int n", "vec4 v"]
    var lines = ["void kiln_store4(\(parameters.joined(separator: ", "))) {", "  if (m >= M) return;"]
    lines.append("  for (int c = 0; c < 4; ++c) {")
    lines.append("    int nc = n + c;")
    lines.append("    if (nc >= N) return;")
    var inner = 1
    for axis in nAxes.reversed() {
      lines.append("    int n_\(axis) = (nc / \(inner)) % \(kernel.shape[axis]);")
      inner *= kernel.shape[axis]
    }
    let arguments = (0..<rank).map { axis -> String in
      if axis == mAxis { return "m" }
      if nAxes.contains(axis) { return "n_\(axis)" }
      return "o\(axis)"
    }
    lines.append("    kiln_store(\(arguments.joined(separator: ", ")), v[c]);")
    lines.append("  }")
    lines.append("}")
    return lines.joined(separator: "\n") + "\n"
  }

  /// The reduction and accumulators of the vec4 path: accumulators are vec4s over groups of four
  /// columns; A is four steps of k per vec4 load (`vectorA`) or one scalar per step; B is one vec4
  /// load per group (`vectorB`) or four scalar loads gathered into one.
  private func vectorBlock(
    _ block: inout [String], arguments: (Int?, Int?) -> [String], loopArguments: [String]
  ) {
    let groups = tileN / 4
    for i in 0..<tileM { for q in 0..<groups { block.append("  vec4 acc\(i)_\(q) = vec4(0.0);") } }
    // Where each row of A and each column group of B starts, in vec4s, outside the reduction.
    if let vectorA {
      for i in 0..<tileM {
        let base = vectorA.quarterIndex(arguments: arguments(i, nil), skipping: [], variables: false, constant: true)
        block.append("  int ab\(i) = \(base);")
      }
    }
    if let vectorB {
      for q in 0..<groups {
        let base = vectorB.quarterIndex(arguments: arguments(nil, 4 * q), skipping: nAxes, variables: false, constant: true)
        block.append("  int bb\(q) = (nc\(4 * q) >> 2) + \(base);")
      }
    }
    var indent = "  "
    func step(_ a: (Int) -> String) {
      for q in 0..<groups {
        if let vectorB {
          let offset = vectorB.quarterIndex(arguments: [], skipping: [], variables: true, constant: false)
          block.append("\(indent)vec4 bq\(q) = b\(vectorB.input)v[bb\(q) + \(offset)];")
        } else {
          let loads = (0..<4).map { "kiln_b(\((arguments(nil, 4 * q + $0) + loopArguments).joined(separator: ", ")))" }
          block.append("\(indent)vec4 bq\(q) = vec4(\(loads.joined(separator: ", ")));")
        }
      }
      for i in 0..<tileM { for q in 0..<groups { block.append("\(indent)acc\(i)_\(q) += \(a(i)) * bq\(q);") } }
    }
    if let vectorA {
      block.append("  for (int kk = 0; kk < \(k); kk += 4) {")
      indent = "    "
      for i in 0..<tileM { block.append("\(indent)vec4 aq\(i) = b\(vectorA.input)v[ab\(i) + (kk >> 2)];") }
      for u in 0..<4 {
        block.append("\(indent){")
        indent += "  "
        // The loop variables are the digits of k = kk + u, for B's index.
        var stride = 1
        for loop in loops.reversed() {
          block.append("\(indent)int v\(loop.variable) = ((kk + \(u)) / \(stride)) % \(loop.extent);")
          stride *= loop.extent
        }
        step { "aq\($0).\(Self.components[u])" }
        indent.removeLast(2)
        block.append("\(indent)}")
      }
      block.append("  }")
    } else {
      for loop in loops {
        block.append("\(indent)for (int v\(loop.variable) = 0; v\(loop.variable) < \(loop.extent); ++v\(loop.variable)) {")
        indent += "  "
      }
      for i in 0..<tileM {
        block.append("\(indent)float a\(i) = kiln_a(\((arguments(i, nil) + loopArguments).joined(separator: ", ")));")
      }
      step { "a\($0)" }
      for _ in loops {
        indent.removeLast(2)
        block.append("\(indent)}")
      }
    }
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
