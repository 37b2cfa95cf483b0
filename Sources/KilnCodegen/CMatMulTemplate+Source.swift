import KilnCompiler
import KilnIR

/// The C of a scheduled GEMM: the packing functions of each operand that is not pre-packed (strided
/// copies, masked AVX2 window gathers, or per-lane evaluation of the operand's expression), the
/// entry point that walks its tiles, and the fused epilogue applied to each finished tile.
extension CMatMulTemplate {
  /// Packs rows [r0, r1) (A: m, B: n) and reductions [k0, k0 + kc) into panels of `width`
  /// interleaved rows: `dst[panel * kc * width + k * width + lane]`.
  func packLines(_ operand: Operand) -> [String] {
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
  func panelLoops(_ contraction: Contraction, axes: [Int], width: Int, perLane: [String], perPanel: [String] = []) -> [String] {
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

  /// The AVX2 comparison of `d` (8 x int32) with 0 under `op`, or nil for an operator that is no
  /// comparison.
  static func comparison(_ op: BinaryOp, _ d: String) -> String? {
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
  func windowGatherLines(_ window: MaskedWindow, contraction: Contraction, axes: [Int], width: Int) -> [String] {
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
  func declarations(_ variables: [(id: Int, extent: Int)]) -> [String] {
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
  func panels(_ operand: Operand, into out: inout [String], indent: String) -> (pointer: String, stride: String, step: String) {
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
  func packCall(_ operand: Operand, from first: String, to last: String) -> String {
    "\(kernel.name)_pack_\(operand.a ? "a" : "b")\(operand.contraction)(\(bindingArguments), batchc, \(first), \(last), k0, kc, \(operand.a ? "packa" : "packb"));"
  }

  /// A B operand that is row-major along N and not pre-packed, read in place: the C pointer to
  /// its column n0 at reduction step k0, and the floats from one reduction step to the next.
  func inPlace(_ operand: Operand) -> (pointer: String, kStride: Int)? {
    guard !operand.a, !prepacked.contains(operand), let load = flatLoad(operand), load.stride == 1 else { return nil }
    var base = "INT64_C(\(load.map.constant))"
    for (slot, axis) in batchAxes.enumerated() where load.map.coefficient(.coordinate(axis)) != 0 {
      base += " + batchc[\(slot)] * \(load.map.coefficient(.coordinate(axis)))"
    }
    return ("b\(load.input) + \(base) + n0 + k0 * INT64_C(\(load.kStride))", load.kStride)
  }

  /// Applies the epilogue to the tile [m0, m1) x [n0, n1) in place, stepping the N coordinates.
  func epilogueLines() -> [String] {
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
