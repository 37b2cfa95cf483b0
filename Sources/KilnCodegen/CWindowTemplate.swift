import KilnCompiler
import KilnIR

/// Recognises windowed reductions over the output's two trailing axes — a depthwise
/// convolution, `epilogue(sum_taps W(c, tap) * select(inside, X[c, oh*sh + dh*kh - ph, ow*sw +
/// dw*kw - pw], 0))`, where no factor but the window uses the output position, or a max pool,
/// `epilogue(max_taps select(inside, X[...], -inf))` — and emits them for the CPU device one
/// output plane per workgroup, as a direct convolution (or maximum) over a padded copy of the
/// plane's input. The masks say which rows and columns of the window hold input; a window
/// without masks (no padding) of two taps is read from its index alone.
///
/// The generic per-element loops vectorise such a kernel along the output row only, and
/// MobileNet's rows of 7, 14 or 28 (NCHW, so nothing to vectorise across) hardly vectorise at
/// all. Here the plane's input is first copied into a buffer with the padding as zeros (-infinity
/// for a maximum), rows
/// `PW` long; with strides (sh, sw) it is split into sh x sw phase planes (padded row r and
/// column c go to phase (r % sh, c % sw), at row r / sh and column c / sw), so that every tap
/// reads one phase plane at stride 1. Output position (oh, ow) of a "virtual" plane with rows
/// `PW` long (the real rows and a few columns that are thrown away) then reads tap t at the fixed
/// distance `offset(t)` from its own flattened position, whichever row it is in: eight
/// consecutive virtual outputs are one unaligned load and one FMA (or NaN-keeping maximum) per
/// tap, with no masks. The
/// epilogue then writes the real columns to the output. The object built without AVX2 runs the
/// same order as one multiply-add loop per tap.
public struct CWindowTemplate: Sendable {
  var kernel: Kernel
  /// `.sum` (of a window element times a weight) or `.maximum` (of a window element).
  let op: ReduceOp
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

  /// The window's reduction, split: the epilogue over it, its variables, the factors of one
  /// element (a sum of products) or the one element (a maximum), and the conditions masking it.
  private struct Reduction {
    var op: ReduceOp
    var epilogue: Expr
    var variables: [(id: Int, extent: Int)]
    var factors: [Expr]
    var conditions: [Expr]
  }

  /// A stated float32 sum of products (`CMatMulTemplate.parse`), or a stated float32 window
  /// maximum of one loaded element (a max pool: padding reads as -infinity); nil for anything else.
  private static func reduction(_ kernel: Kernel) -> Reduction? {
    if let (epilogue, contractions) = CMatMulTemplate.parse(kernel) {
      guard contractions.count == 1 else { return nil }
      let items = contractions[0].items
      return Reduction(
        op: .sum, epilogue: epilogue, variables: contractions[0].variables, factors: items.filter { !$0.isCondition }.map(\.expr),
        conditions: items.filter(\.isCondition).map(\.expr))
    }
    guard !kernel.shape.isEmpty, kernel.output.dtype == .float32, kernel.fitsInt32Indices,
      kernel.region.maxima.count == 1, let maximum = kernel.region.maxima.first, case .load = maximum.element.kind,
      maximum.element.type == .float32
    else { return nil }
    let epilogue = kernel.body.replacing { $0 == maximum.reduction ? CMatMulTemplate.accumulator(0) : nil }
    let variables = maximum.loops.map { (id: $0.variable, extent: $0.extent) }
    let conditions = maximum.conditions.flatMap(CMatMulTemplate.conjuncts)
    let ids = Set(variables.map(\.id))
    guard !epilogue.containsReduction, !epilogue.usesVariable(except: [MatMulTemplate.accumulatorVariable]),
      ([maximum.element] + conditions).allSatisfy({ !$0.usesVariable(except: ids) })
    else { return nil }
    return Reduction(op: .maximum, epilogue: epilogue, variables: variables, factors: [maximum.element], conditions: conditions)
  }

  /// The match for `kernel`, or nil when it is not a window this template runs.
  public static func match(_ kernel: Kernel) -> CWindowTemplate? {
    let shape = kernel.shape
    guard shape.count >= 3, let reduction = reduction(kernel) else { return nil }
    let (hAxis, wAxis) = (shape.count - 2, shape.count - 1)
    let (height, width) = (shape[hAxis], shape[wAxis])
    let windowed = reduction.factors.filter { !$0.coordinatesUsed.isDisjoint(with: [hAxis, wAxis]) }
    let taps = reduction.variables.reduce(1) { $0 * $1.extent }
    guard windowed.count == 1, height * width >= 8, taps > 1, taps <= maximumTaps else { return nil }
    let window: CMatMulTemplate.MaskedWindow
    if reduction.conditions.isEmpty {
      guard case .load(let input, .float32, let index) = windowed[0].kind,
        kernel.inputs[input].elementCount < Int(Int32.max), let map = AffineIndex(index)
      else { return nil }
      window = CMatMulTemplate.MaskedWindow(input: input, index: map, conditions: [])
    } else {
      guard let masked = CMatMulTemplate.maskedWindow(CMatMulTemplate.Side(factors: windowed, conditions: reduction.conditions), kernel: kernel)
      else { return nil }
      window = masked
    }
    let extents = Dictionary(uniqueKeysWithValues: reduction.variables.map { ($0.id, $0.extent) })
    guard let forms = window.conditions.isEmpty ? unmaskedForms(window.index, hAxis: hAxis, wAxis: wAxis, extents: extents)
      : maskedForms(window, hAxis: hAxis, wAxis: wAxis, extents: extents)
    else { return nil }
    let (h, w) = forms

    // The index must be origin + rowStride * L_h + columnStride * L_w.
    let (hIndex, wIndex) = (window.index.coefficient(.coordinate(hAxis)), window.index.coefficient(.coordinate(wAxis)))
    guard hIndex > 0, wIndex > 0, hIndex % h.stride == 0, wIndex % w.stride == 0 else { return nil }
    let (rowStride, columnStride) = (hIndex / h.stride, wIndex / w.stride)
    var originTerms = window.index.terms
    originTerms[.coordinate(hAxis)] = nil
    originTerms[.coordinate(wAxis)] = nil
    for (id, extent) in reduction.variables {
      let expected = rowStride * (h.steps[id] ?? 0) + columnStride * (w.steps[id] ?? 0)
      guard extent == 1 || window.index.coefficient(.variable(id)) == expected else { return nil }
      originTerms[.variable(id)] = nil
    }
    guard originTerms.keys.allSatisfy({ if case .coordinate(let axis) = $0 { axis < hAxis } else { false } }) else { return nil }
    var origin = window.index
    origin.terms = originTerms

    let reach = { (steps: [Int: Int]) in steps.reduce(0) { $0 + $1.value * ((extents[$1.key] ?? 1) - 1) } }
    let (paddedHeight, paddedWidth) = (h.stride * (height - 1) + reach(h.steps) + 1, w.stride * (width - 1) + reach(w.steps) + 1)
    // Thrown-away virtual columns: at most as many as real ones.
    let phaseWidth = (paddedWidth + w.stride - 1) / w.stride
    guard phaseWidth <= 2 * width, paddedHeight * paddedWidth <= maximumPadded else { return nil }
    // An unmasked window reads every padded cell.
    let (rows, columns) = window.conditions.isEmpty ? (0...(paddedHeight - 1), 0...(paddedWidth - 1)) : (h.lo...h.hi, w.lo...w.hi)
    let others = reduction.factors.filter { $0 != windowed[0] }
    return CWindowTemplate(
      kernel: kernel, op: reduction.op, epilogue: reduction.epilogue, variables: reduction.variables,
      weight: others.dropFirst().reduce(others.first) { product, factor in product.map { .binary(.multiply, $0, factor) } },
      input: window.input, origin: origin, rowStride: rowStride, columnStride: columnStride, rows: rows, columns: columns,
      rowStep: h.steps, columnStep: w.steps, strideH: h.stride, strideW: w.stride, outerAxes: Array(0..<hAxis), height: height,
      width: width, paddedHeight: paddedHeight, paddedWidth: paddedWidth, planes: kernel.output.elementCount / (height * width))
  }

  /// One plane axis's linear form L = stride * o + sum(step_v * v), and the range of L that holds
  /// input (the rest is padding).
  typealias Form = (stride: Int, steps: [Int: Int], lo: Int, hi: Int)

  /// The forms the masks bound: two linear forms, one per plane axis, each within [lo, hi] (the
  /// input's rows or columns, shifted by the padding).
  private static func maskedForms(
    _ window: CMatMulTemplate.MaskedWindow, hAxis: Int, wAxis: Int, extents: [Int: Int]
  ) -> (Form, Form)? {
    var bounds: [[AffineIndex.Term: Int]: (lo: Int, hi: Int)] = [:]
    for (difference, op) in window.conditions {
      guard
        let bound = CMatMulTemplate.MaskedWindow.narrowed(bounds[difference.terms] ?? (Int.min, Int.max), constant: difference.constant, op: op)
      else { return nil }
      bounds[difference.terms] = bound
    }
    func form(_ axis: Int) -> Form? {
      let matching = bounds.filter { $0.key[.coordinate(axis)] != nil }
      guard matching.count == 1, let (terms, bound) = matching.first, bound.lo != Int.min, bound.hi != Int.max, bound.lo <= bound.hi,
        let stride = terms[.coordinate(axis)], (1...4).contains(stride)
      else { return nil }
      var steps: [Int: Int] = [:]
      for (term, coefficient) in terms where term != .coordinate(axis) {
        guard case .variable(let id) = term, extents[id] != nil, coefficient > 0 else { return nil }
        steps[id] = coefficient
      }
      return (stride, steps, bound.lo, bound.hi)
    }
    guard bounds.count == 2, let h = form(hAxis), let w = form(wAxis) else { return nil }
    return (h, w)
  }

  /// The forms of a window without masks (no padding): two taps, the one with the larger
  /// coefficient in the index along rows, the other along columns, each axis's stride and step
  /// the quotients by the greatest common divisor of its coefficients. Any such factorisation
  /// reads exactly the elements the kernel does, and those between them.
  private static func unmaskedForms(_ index: AffineIndex, hAxis: Int, wAxis: Int, extents: [Int: Int]) -> (Form, Form)? {
    let taps = extents.filter { $0.value > 1 }.map { (id: $0.key, coefficient: index.coefficient(.variable($0.key))) }
      .sorted { $0.coefficient > $1.coefficient }
    let (hIndex, wIndex) = (index.coefficient(.coordinate(hAxis)), index.coefficient(.coordinate(wAxis)))
    guard taps.count == 2, taps[1].coefficient > 0, hIndex > 0, wIndex > 0 else { return nil }
    func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
    func form(_ coefficient: Int, _ tap: (id: Int, coefficient: Int)) -> Form? {
      let unit = gcd(coefficient, tap.coefficient)
      guard (1...4).contains(coefficient / unit) else { return nil }
      return (coefficient / unit, [tap.id: tap.coefficient / unit], Int.min, Int.max)
    }
    guard let h = form(hIndex, taps[0]), let w = form(wIndex, taps[1]) else { return nil }
    return (h, w)
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

  /// The schedule in a few words: planes, taps, strides and the padded plane.
  public var summary: String {
    "cpu window: \(planes) planes of \(height)x\(width), \(taps) taps, stride \(strideH)x\(strideW), padded \(paddedHeight)x\(paddedWidth)"
  }

  /// The kernel's C.
  public func source() -> String {
    let (hAxis, wAxis) = (kernel.shape.count - 2, kernel.shape.count - 1)
    let virtual = (height * phaseWidth + 7) / 8 * 8
    // Virtual outputs read past their own position by a tap's offset: the phase planes carry a
    // tail for the last vector's, filled with the padding value once (as are phase cells that no
    // padded element maps to).
    let padded = strideH * strideW * phaseHeight * phaseWidth
    let tail = 2 * phaseWidth + 8
    var out = [
      "// \(kernel.sourceOps.joined(separator: ", ")) (\(summary))"
    ]
    out += CMatMulTemplate.entryLines(name: kernel.name, kernel: kernel)
    for axis in kernel.shape.indices { out.append("  int64_t c\(axis) = 0; (void)c\(axis);") }
    for (id, _) in variables { out.append("  int64_t v\(id) = 0; (void)v\(id);") }
    out.append("  static const int32_t offsets[\(taps)] = {\(offsets.map(String.init).joined(separator: ", "))};")
    out.append("  float *plane = kiln_gemm_alloc(\(padded + tail));")
    out.append("  float *sums = kiln_gemm_alloc(\(virtual));")
    out.append("  if (!plane || !sums) {")
    out.append("    kiln_gemm_free(plane); kiln_gemm_free(sums);")
    out.append("    return;")
    out.append("  }")
    // Padding is what the reduction ignores: 0 for a sum, -infinity for a maximum.
    let padding = op == .maximum ? "(-INFINITY)" : "0.0f"
    out.append("  for (int64_t i = 0; i < \(padded + tail); ++i) plane[i] = \(padding);")
    out.append("  for (int64_t wg = d->workgroup_begin; wg < d->workgroup_end; ++wg) {")
    out += CMatMulTemplate.coordinateLines(outerAxes, shape: kernel.shape, from: "wg", indent: "    ")
    if op == .sum {
      out.append("    float weights[\(taps)];")
      out.append("    for (int64_t k = 0; k < \(taps); ++k) {")
      out += CMatMulTemplate.variableLines(variables, indent: "      ")
      if let weight {
        out += CMatMulTemplate.emitValue(weight, kernel: kernel, into: "weights[k]", indent: 3)
      } else {
        out.append("      weights[k] = 1.0f;")
      }
      out.append("    }")
    }
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
    // One loop per phase column: a strided read and a contiguous write each.
    for p in 0..<strideW {
      let j0 = max(firstColumn - p + strideW - 1, 0) / strideW
      let j1 = max(endColumn - p + strideW - 1, 0) / strideW
      guard j1 > j0 else { continue }
      out.append("      for (int64_t j = \(j0); j < \(j1); ++j) row[\(p * phase) + j] = b\(input)[first + \(p * columnStride) + j * INT64_C(\(strideW * columnStride))];")
    }
    out.append("    }")
    out.append("#if defined(__AVX2__)")
    if op == .maximum {
      // vmaxps keeps its second operand where either is NaN: NaN already taken stays, and a
      // NaN element is blended in, as the per-element loop's maximum propagates NaN.
      out.append("    for (int64_t o = 0; o < \(virtual); o += 8) {")
      out.append("      kiln_f8 acc = kiln_f8_loadu(plane + o + offsets[0]);")
      out.append("      for (int64_t k = 1; k < \(taps); ++k) acc = kiln_f8_max_nan(acc, kiln_f8_loadu(plane + o + offsets[k]));")
      out.append("      kiln_f8_store(sums + o, acc);")
      out.append("    }")
      out.append("#else")
      out.append("    for (int64_t o = 0; o < \(virtual); ++o) sums[o] = plane[o + offsets[0]];")
      out.append("    for (int64_t k = 1; k < \(taps); ++k) {")
      out.append("      const float *tap = plane + offsets[k];")
      out.append("      for (int64_t o = 0; o < \(virtual); ++o) sums[o] = (tap[o] > sums[o] || isnan(tap[o])) ? tap[o] : sums[o];")
      out.append("    }")
    } else {
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
    }
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
