import KilnCompiler
import KilnIR

/// Recognises padded windowed sums over the output's two trailing axes — a depthwise
/// convolution, `epilogue(sum_taps W(c, tap) * select(inside, X[c, oh + dh*kh - ph, ow + dw*kw -
/// pw], 0))`, where no factor but the window uses the output position — and emits them for the
/// CPU device one output plane per workgroup, as a direct convolution over a zero-padded copy of
/// the plane's input.
///
/// The generic per-element loops vectorise such a kernel along the output row only, and
/// MobileNet's rows of 7, 14 or 28 (NCHW, so nothing to vectorise across) hardly vectorise at
/// all. Here the plane's input is first copied into a buffer with the padding as zeros, rows
/// `PW` long; with strides (sh, sw) it is split into sh x sw phase planes (padded row r and
/// column c go to phase (r % sh, c % sw), at row r / sh and column c / sw), so that every tap
/// reads one phase plane at stride 1. Output position (oh, ow) of a "virtual" plane with rows
/// `PW` long (the real rows and a few columns that are thrown away) then reads tap t at the fixed
/// distance `offset(t)` from its own flattened position, whichever row it is in: eight
/// consecutive virtual outputs are one unaligned load and one FMA per tap, with no masks. The
/// epilogue then writes the real columns to the output. The object built without AVX2 runs the
/// same order as one multiply-add loop per tap.
public struct CWindowTemplate: Sendable {
  let kernel: Kernel
  let epilogue: Expr
  /// The reduction variables (id, extent), outermost first: the taps, flattened row-major.
  let variables: [(id: Int, extent: Int)]
  /// The product of the factors that use no plane axis (the tap's weight); nil when there are none.
  let weight: Expr?
  let input: Int
  /// The window's index less its plane and tap terms: the plane's origin in the input.
  let origin: AffineIndex
  /// Input elements from one window row (column) to the next.
  let rowStride: Int
  let columnStride: Int
  /// Window rows and columns that hold input (the rest is padding), in padded coordinates.
  let rows: ClosedRange<Int>
  let columns: ClosedRange<Int>
  /// Per variable: its step in padded rows and columns (a dilation).
  let rowStep: [Int: Int]
  let columnStep: [Int: Int]
  /// The window's strides: padded rows (columns) from one output row (column) to the next.
  let strideH: Int
  let strideW: Int
  let outerAxes: [Int]
  let height: Int
  let width: Int
  /// The padded plane's rows and row length, and those of each phase plane.
  let paddedHeight: Int
  let paddedWidth: Int
  var phaseHeight: Int { (paddedHeight + strideH - 1) / strideH }
  var phaseWidth: Int { (paddedWidth + strideW - 1) / strideW }
  public let planes: Int
  var taps: Int { variables.reduce(1) { $0 * $1.extent } }

  /// Most taps (their weights sit in registers or on the stack) and padded elements per plane.
  static let maximumTaps = 64
  static let maximumPadded = 1 << 20

  public var workgroups: Int { planes }

  /// The match for `kernel`, or nil when it is not a padded stride-1 window this template runs.
  public static func match(_ kernel: Kernel) -> CWindowTemplate? {
    let shape = kernel.shape
    guard shape.count >= 3, let (epilogue, contractions) = CMatMulTemplate.parse(kernel), contractions.count == 1 else { return nil }
    let contraction = contractions[0]
    let (hAxis, wAxis) = (shape.count - 2, shape.count - 1)
    let (height, width) = (shape[hAxis], shape[wAxis])
    let factors = contraction.items.filter { !$0.isCondition }.map(\.expr)
    let conditions = contraction.items.filter(\.isCondition).map(\.expr)
    let windowed = factors.filter { !$0.coordinatesUsed.isDisjoint(with: [hAxis, wAxis]) }
    guard windowed.count == 1, height * width >= 8, contraction.k > 1, contraction.k <= maximumTaps,
      let window = CMatMulTemplate.maskedWindow(CMatMulTemplate.Side(factors: windowed, conditions: conditions), kernel: kernel)
    else { return nil }
    let variableIDs = Set(contraction.variables.map(\.id))

    // The masks bound two linear forms, one per plane axis: L = o + sum(step_v * v) within
    // [lo, hi] (the input's rows or columns, shifted by the padding).
    var bounds: [[AffineIndex.Term: Int]: (lo: Int, hi: Int)] = [:]
    for (difference, op) in window.conditions {
      let c = difference.constant
      var bound = bounds[difference.terms] ?? (Int.min, Int.max)
      switch op {
      case .greaterEqual: bound.lo = max(bound.lo, -c)
      case .greater: bound.lo = max(bound.lo, -c + 1)
      case .lessEqual: bound.hi = min(bound.hi, -c)
      case .less: bound.hi = min(bound.hi, -c - 1)
      default: return nil
      }
      bounds[difference.terms] = bound
    }
    func form(_ axis: Int) -> (stride: Int, steps: [Int: Int], lo: Int, hi: Int)? {
      let matching = bounds.filter { $0.key[.coordinate(axis)] != nil }
      guard matching.count == 1, let (terms, bound) = matching.first, bound.lo != Int.min, bound.hi != Int.max, bound.lo <= bound.hi,
        let stride = terms[.coordinate(axis)], (1...4).contains(stride)
      else { return nil }
      var steps: [Int: Int] = [:]
      for (term, coefficient) in terms where term != .coordinate(axis) {
        guard case .variable(let id) = term, variableIDs.contains(id), coefficient > 0 else { return nil }
        steps[id] = coefficient
      }
      return (stride, steps, bound.lo, bound.hi)
    }
    guard bounds.count == 2, let h = form(hAxis), let w = form(wAxis) else { return nil }

    // The index must be origin + rowStride * L_h + columnStride * L_w.
    let (hIndex, wIndex) = (window.index.coefficient(.coordinate(hAxis)), window.index.coefficient(.coordinate(wAxis)))
    guard hIndex != 0, wIndex != 0, hIndex % h.stride == 0, wIndex % w.stride == 0 else { return nil }
    let (rowStride, columnStride) = (hIndex / h.stride, wIndex / w.stride)
    var originTerms = window.index.terms
    originTerms[.coordinate(hAxis)] = nil
    originTerms[.coordinate(wAxis)] = nil
    for id in variableIDs {
      let expected = rowStride * (h.steps[id] ?? 0) + columnStride * (w.steps[id] ?? 0)
      guard window.index.coefficient(.variable(id)) == expected else { return nil }
      originTerms[.variable(id)] = nil
    }
    guard originTerms.keys.allSatisfy({ if case .coordinate(let axis) = $0 { axis < hAxis } else { false } }) else { return nil }
    var origin = window.index
    origin.terms = originTerms

    let extents = Dictionary(uniqueKeysWithValues: contraction.variables.map { ($0.id, $0.extent) })
    let reach = { (steps: [Int: Int]) in steps.reduce(0) { $0 + $1.value * ((extents[$1.key] ?? 1) - 1) } }
    let (paddedHeight, paddedWidth) = (h.stride * (height - 1) + reach(h.steps) + 1, w.stride * (width - 1) + reach(w.steps) + 1)
    // Thrown-away virtual columns: at most as many as real ones.
    let phaseWidth = (paddedWidth + w.stride - 1) / w.stride
    guard phaseWidth <= 2 * width, paddedHeight * paddedWidth <= maximumPadded else { return nil }
    let others = factors.filter { $0 != windowed[0] }
    return CWindowTemplate(
      kernel: kernel, epilogue: epilogue, variables: contraction.variables,
      weight: others.dropFirst().reduce(others.first) { product, factor in product.map { .binary(.multiply, $0, factor) } },
      input: window.input, origin: origin, rowStride: rowStride, columnStride: columnStride, rows: h.lo...h.hi,
      columns: w.lo...w.hi, rowStep: h.steps, columnStep: w.steps, strideH: h.stride, strideW: w.stride, outerAxes: Array(0..<hAxis), height: height, width: width,
      paddedHeight: paddedHeight, paddedWidth: paddedWidth, planes: kernel.output.elementCount / (height * width))
  }

  // MARK: Emission

  /// Each tap's distance, in the phase planes, from the virtual output that reads it.
  var offsets: [Int] {
    (0..<taps).map { flat in
      var rest = flat
      var (row, column) = (0, 0)
      for (id, extent) in variables.reversed() {
        let v = rest % extent
        rest /= extent
        row += v * (rowStep[id] ?? 0)
        column += v * (columnStep[id] ?? 0)
      }
      let phase = (row % strideH) * strideW + column % strideW
      return phase * phaseHeight * phaseWidth + (row / strideH) * phaseWidth + column / strideW
    }
  }

  /// The kernel's C.
  public func source() -> String {
    let dialect = CDialect()
    let (hAxis, wAxis) = (kernel.shape.count - 2, kernel.shape.count - 1)
    let virtual = (height * phaseWidth + 7) / 8 * 8
    // Virtual outputs read past their own position by a tap's offset: the phase planes carry a
    // zeroed tail for the last vector's (and phase cells no padded element maps to stay zero).
    let padded = strideH * strideW * phaseHeight * phaseWidth
    let tail = 2 * phaseWidth + 8
    var out = [
      "// \(kernel.sourceOps.joined(separator: ", ")) (cpu window: \(planes) planes of \(height)x\(width), \(taps) taps, stride \(strideH)x\(strideW), padded \(paddedHeight)x\(paddedWidth))"
    ]
    out.append("KILN_CPU_EXPORT void \(kernel.name)(const kiln_cpu_dispatch *d) {")
    for (index, input) in kernel.inputs.enumerated() {
      let t = dialect.storageType(input.dtype)
      out.append("  const \(t) *restrict b\(index) = (const \(t) *)d->bindings[\(index)];")
    }
    out.append("  float *restrict result = (float *)d->bindings[\(kernel.inputs.count)];")
    for axis in kernel.shape.indices { out.append("  int64_t c\(axis) = 0; (void)c\(axis);") }
    for (id, _) in variables { out.append("  int64_t v\(id) = 0; (void)v\(id);") }
    out.append("  static const int32_t offsets[\(taps)] = {\(offsets.map(String.init).joined(separator: ", "))};")
    out.append("  float *plane = kiln_gemm_alloc(\(padded + tail));")
    out.append("  float *sums = kiln_gemm_alloc(\(virtual));")
    out.append("  if (!plane || !sums) {")
    out.append("    kiln_gemm_free(plane); kiln_gemm_free(sums);")
    out.append("    return;")
    out.append("  }")
    out.append("  for (int64_t i = 0; i < \(padded + tail); ++i) plane[i] = 0.0f;")
    out.append("  for (int64_t wg = d->workgroup_begin; wg < d->workgroup_end; ++wg) {")
    var step = 1
    var coordinates: [String] = []
    for axis in outerAxes.reversed() {
      let quotient = step == 1 ? "wg" : "wg / \(step)"
      coordinates.insert("    c\(axis) = (\(quotient)) % \(kernel.shape[axis]);", at: 0)
      step *= kernel.shape[axis]
    }
    out += coordinates
    out.append("    float weights[\(taps)];")
    out.append("    for (int64_t k = 0; k < \(taps); ++k) {")
    out += CMatMulTemplate.variableLines(variables, indent: "      ")
    if let weight {
      out += CMatMulTemplate.emitValue(weight, kernel: kernel, into: "weights[k]", indent: 3)
    } else {
      out.append("      weights[k] = 1.0f;")
    }
    out.append("    }")
    // The plane's input, into the phase planes.
    var originText = "INT64_C(\(origin.constant))"
    for (term, coefficient) in origin.terms.sorted(by: { "\($0.key)" < "\($1.key)" }) {
      if case .coordinate(let axis) = term { originText += " + c\(axis) * \(coefficient)" }
    }
    let firstColumn = min(max(columns.lowerBound, 0), paddedWidth)
    let endColumn = max(min(columns.upperBound + 1, paddedWidth), firstColumn)
    out.append("    const int64_t origin = \(originText);")
    // The padding: phase cells outside the input were zeroed once and are never written.
    let phase = phaseHeight * phaseWidth
    let firstRow = min(max(rows.lowerBound, 0), paddedHeight)
    let endRow = max(min(rows.upperBound + 1, paddedHeight), firstRow)
    out.append("    for (int64_t qh = \(firstRow); qh < \(endRow); ++qh) {")
    out.append("      float *row = plane + (qh % \(strideH)) * \(strideW * phase) + (qh / \(strideH)) * \(phaseWidth);")
    out.append("      const int64_t first = origin + qh * INT64_C(\(rowStride));")
    out.append("      for (int64_t qw = \(firstColumn); qw < \(endColumn); ++qw) row[(qw % \(strideW)) * \(phase) + qw / \(strideW)] = b\(input)[first + qw * INT64_C(\(columnStride))];")
    out.append("    }")
    out.append("#if defined(__AVX2__)")
    out.append("    kiln_f8 w[\(taps)];")
    out.append("    for (int64_t k = 0; k < \(taps); ++k) w[k] = kiln_f8_broadcast(weights + k);")
    out.append("    for (int64_t o = 0; o < \(virtual); o += 8) {")
    out.append("      kiln_f8 acc = kiln_f8_zero();")
    out.append("      for (int64_t k = 0; k < \(taps); ++k) acc = kiln_f8_fma(kiln_f8_loadu(plane + o + offsets[k]), w[k], acc);")
    out.append("      kiln_f8_store(sums + o, acc);")
    out.append("    }")
    out.append("#else")
    out.append("    for (int64_t o = 0; o < \(virtual); ++o) sums[o] = 0.0f;")
    out.append("    for (int64_t k = 0; k < \(taps); ++k) {")
    out.append("      const float weight = weights[k];")
    out.append("      const float *tap = plane + offsets[k];")
    out.append("      for (int64_t o = 0; o < \(virtual); ++o) sums[o] += weight * tap[o];")
    out.append("    }")
    out.append("#endif")
    out.append("    float *out = result + wg * INT64_C(\(height * width));")
    out.append("    for (c\(hAxis) = 0; c\(hAxis) < \(height); ++c\(hAxis)) {")
    out.append("      for (c\(wAxis) = 0; c\(wAxis) < \(width); ++c\(wAxis)) {")
    out.append("        float v\(MatMulTemplate.accumulatorVariable) = sums[c\(hAxis) * \(phaseWidth) + c\(wAxis)];")
    out += CMatMulTemplate.emitValue(epilogue, kernel: kernel, into: "out[c\(hAxis) * \(width) + c\(wAxis)]", indent: 4)
    out.append("      }")
    out.append("    }")
    out.append("  }")
    out.append("  kiln_gemm_free(plane); kiln_gemm_free(sums);")
    out.append("}")
    return out.joined(separator: "\n") + "\n"
  }
}
