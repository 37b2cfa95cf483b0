import KilnCompiler
import KilnIR

/// Recognises float32 NCHW 3x3 convolutions with stride 1, dilation 1 and one group —
/// `epilogue(sum_{ci, kh, kw} select(inside, X[n, ci, oh + kh - pt, ow + kw - pl], 0) *
/// W[co, ci, kh, kw])` — and emits them for the CPU device as Winograd F(4x4, 3x3) convolutions.
///
/// Each 4x4 output tile reads a 6x6 input patch d; per (output channel, input channel) the tile is
/// `A^T [(G g G^T) . (B^T d B)] A` (Lavin and Gray's matrices over the points 0, +-1, +-2 and
/// infinity), so summed over input channels it is 36 independent GEMMs, one per position p of
/// the 6x6 transformed tile: `M_p[co, tile] = sum_ci U_p[co, ci] V_p[ci, tile]`. That is 36
/// multiplies per 16 outputs where the direct convolution needs 144: 4x fewer, paid for with the
/// input and output transforms and a 4x larger weight array.
///
/// The weights' transform `U = G g G^T` runs at compile time (`prepack`, through
/// `WeightPrepacking`), laid out as the register-blocked microkernel's A panels (6 output
/// channels interleaved along the input channels), one panel set per position. A kernel only
/// takes this path when its weights were so transformed: the marker operand `weightsOperand` in
/// its pre-packed set says so.
///
/// A workgroup is (image, block of `tileBlock` tiles, group of `filterBlock` output channels). It
/// copies the block's input rows per channel into a zero-padded strip, transforms eight tiles at
/// a time into V (the microkernel's B panels: 16 tiles interleaved along the input channels),
/// runs `kiln_gemm_block` for each position and slice of output channels into a scratch M,
/// transforms M back into 4x4 tiles written to the output, and applies the fused epilogue
/// (everything after the reduction: bias, Relu, a residual) to them in place. Consecutive
/// workgroups of one call that share the image and tile block reuse V.
public struct CWinogradTemplate: Sendable {
  var kernel: Kernel
  let epilogue: Expr
  /// The input convolved (X) and the weights (W).
  let input: Int
  public let weightInput: Int
  let weightMap: AffineIndex
  let channelVariable: Int?
  let khVariable: Int
  let kwVariable: Int
  /// X at padded row R, column C (R = oh + kh, C = ow + kw), image n, channel ci:
  /// `base + rowStride * R + columnStride * C + batchStride * n + channelStride * ci`.
  let base: Int
  let rowStride: Int
  let columnStride: Int
  let batchStride: Int
  let channelStride: Int
  /// Padded rows and columns that hold input and that some output reads (the rest is zero).
  let rows: ClosedRange<Int>?
  let columns: ClosedRange<Int>?
  public let batch: Int
  public let filters: Int
  public let channels: Int
  public let height: Int
  public let width: Int
  /// Tiles per image and per workgroup; output channels per workgroup and per GEMM slice.
  let tileBlock: Int
  let filterBlock: Int
  let filterSlice: Int

  var tilesH: Int { (height + 3) / 4 }
  var tilesW: Int { (width + 3) / 4 }
  var tiles: Int { tilesH * tilesW }
  var blocks: Int { (tiles + tileBlock - 1) / tileBlock }
  var filterGroups: Int { (filters + filterBlock - 1) / filterBlock }
  /// Tile columns of V and M, whole micro-panels of 16.
  var tileColumns: Int { (tileBlock + 15) / 16 * 16 }
  var filterPanels: Int { (filters + 5) / 6 }
  /// Floats from one position's V (M) to the next: a cache line more than the data, so that the
  /// 36 rows the transforms write (read) at once do not all map to one L1 set.
  var vStride: Int { channels * tileColumns + 16 }
  var mStride: Int { filterSlice * tileColumns + 16 }
  /// Padded row length of the strip and most padded rows a block covers.
  var stripWidth: Int { 4 * tilesW + 2 }
  var stripRows: Int {
    var most = 0
    for block in 0..<blocks {
      let t0 = block * tileBlock
      let t1 = min(t0 + tileBlock, tiles)
      most = max(most, (t1 - 1) / tilesW - t0 / tilesW + 1)
    }
    return 4 * most + 2
  }

  public var workgroups: Int { batch * blocks * filterGroups }

  /// The pre-packed set's marker for a kernel whose weights `prepack` transformed.
  public static let weightsOperand = CMatMulTemplate.Operand(contraction: 0, a: true, winograd: true)

  /// Input channels per GEMM call (the B panel of 16 tiles stays in L1).
  static let channelBlock = 256

  /// The match for `kernel`, or nil when it is not such a convolution or (with `profitable`) not
  /// one of the shapes where this path measured faster than the implicit GEMM.
  public static func match(_ kernel: Kernel, profitable: Bool = false) -> CWinogradTemplate? {
    guard kernel.shape.count == 4, kernel.output.dtype == .float32, kernel.fitsInt32Indices,
      let (epilogue, contractions) = CMatMulTemplate.parse(kernel), contractions.count == 1
    else { return nil }
    let (batch, filters, height, width) = (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3])
    let contraction = contractions[0]
    let factors = contraction.items.filter { !$0.isCondition }.map(\.expr)
    let conditions = contraction.items.filter(\.isCondition).map(\.expr)
    guard factors.count == 2, height >= 2, width >= 2 else { return nil }
    let planeAxes: Set<Int> = [2, 3]
    let windowed = factors.filter { !$0.coordinatesUsed.isDisjoint(with: planeAxes) }
    guard windowed.count == 1, let weightFactor = factors.first(where: { $0 != windowed[0] }) else { return nil }
    // The window: one float32 load under the padding masks (or none).
    let window: CMatMulTemplate.MaskedWindow
    if conditions.isEmpty {
      guard case .load(let input, .float32, let index) = windowed[0].kind, let map = AffineIndex(index)
      else { return nil }
      window = CMatMulTemplate.MaskedWindow(input: input, index: map, conditions: [])
    } else {
      guard let masked = CMatMulTemplate.maskedWindow(CMatMulTemplate.Side(factors: windowed, conditions: conditions), kernel: kernel)
      else { return nil }
      window = masked
    }
    // The weights: one float32 load, affine in the output channel and the reduction variables.
    guard case .load(let weightInput, _, let weightIndex) = weightFactor.kind, weightInput != window.input,
      kernel.inputs[weightInput].dtype == .float32, let weightMap = AffineIndex(weightIndex),
      !epilogue.loads(input: weightInput), !windowed[0].loads(input: weightInput),
      !conditions.contains(where: { $0.loads(input: weightInput) })
    else { return nil }
    let index = window.index
    let (rowStride, columnStride) = (index.coefficient(.coordinate(2)), index.coefficient(.coordinate(3)))
    guard rowStride > 0, columnStride > 0, rowStride != columnStride, index.coefficient(.coordinate(1)) == 0 else { return nil }
    // Taps: a variable of extent 3 stepping the window's row (column) as the output row (column) does.
    let variables = contraction.variables
    guard let kh = variables.first(where: { $0.extent == 3 && index.coefficient(.variable($0.id)) == rowStride }),
      let kw = variables.first(where: { $0.extent == 3 && index.coefficient(.variable($0.id)) == columnStride && $0.id != kh.id })
    else { return nil }
    let rest = variables.filter { $0.id != kh.id && $0.id != kw.id }
    guard rest.count <= 1 else { return nil }
    let channelVariable = rest.first
    let channels = channelVariable?.extent ?? 1
    let channelStride = channelVariable.map { index.coefficient(.variable($0.id)) } ?? 0
    // Nothing else moves the window (stride 1, dilation 1, one group) or the weights.
    for term in index.terms.keys {
      switch term {
      case .coordinate(let axis) where axis == 0 || axis == 2 || axis == 3: continue
      case .variable(let id) where id == kh.id || id == kw.id || id == channelVariable?.id: continue
      default: return nil
      }
    }
    for term in weightMap.terms.keys {
      switch term {
      case .coordinate(1): continue
      case .variable(let id) where id == kh.id || id == kw.id || id == channelVariable?.id: continue
      default: return nil
      }
    }
    // The masks: bounds on R = oh + kh and C = ow + kw only.
    var rowBound = (lo: 0, hi: height + 1)
    var columnBound = (lo: 0, hi: width + 1)
    for (difference, op) in window.conditions {
      let isRow = difference.terms == [.coordinate(2): 1, .variable(kh.id): 1]
      let isColumn = difference.terms == [.coordinate(3): 1, .variable(kw.id): 1]
      guard isRow || isColumn else { return nil }
      guard let bound = CMatMulTemplate.MaskedWindow.narrowed(isRow ? rowBound : columnBound, constant: difference.constant, op: op)
      else { return nil }
      if isRow { rowBound = bound } else { columnBound = bound }
    }
    let inputCount = kernel.inputs[window.input].elementCount
    guard inputCount > 0, inputCount < Int(Int32.max) else { return nil }
    // Tiling: V (36 x channels x tile columns) near 512 KiB, 16 to 64 tiles; M slices near
    // 36 x 1536 floats; enough workgroups to keep the pool busy.
    let tiles = ((height + 3) / 4) * ((width + 3) / 4)
    let most = min(64, max(16, 3584 / max(channels, 1) / 16 * 16))
    let blocks = (tiles + most - 1) / most
    let tileBlock = min(((tiles + blocks - 1) / blocks + 7) / 8 * 8, tiles)
    let columns = (tileBlock + 15) / 16 * 16
    let roundUp6 = { (value: Int) in (value + 5) / 6 * 6 }
    var filterBlock = roundUp6(filters)
    while batch * blocks * ((filters + filterBlock - 1) / filterBlock) < 16, filterBlock > 24 { filterBlock = roundUp6(filterBlock / 2) }
    let filterSlice = min(filterBlock, max(6, 1536 / columns / 6 * 6))
    let template = CWinogradTemplate(
      kernel: kernel, epilogue: epilogue, input: window.input, weightInput: weightInput, weightMap: weightMap,
      channelVariable: channelVariable?.id, khVariable: kh.id, kwVariable: kw.id, base: index.constant, rowStride: rowStride,
      columnStride: columnStride, batchStride: index.coefficient(.coordinate(0)), channelStride: channelStride,
      rows: rowBound.lo <= rowBound.hi ? rowBound.lo...rowBound.hi : nil,
      columns: columnBound.lo <= columnBound.hi ? columnBound.lo...columnBound.hi : nil, batch: batch, filters: filters,
      channels: channels, height: height, width: width, tileBlock: tileBlock, filterBlock: filterBlock, filterSlice: filterSlice)
    guard !profitable || template.isProfitable else { return nil }
    return template
  }

  /// Whether this shape measured faster than the implicit GEMM (`CMatMulTemplate`): at least
  /// 16 tiles per image (outputs of 13x13 and up) and channel counts within those measured.
  ///
  /// Per-dispatch times, Winograd / implicit GEMM: medians of ratios paired within a round
  /// (`kiln bench --profile-runs 10`, 7 to 9 rounds), on the 2-core AMD EPYC dev VM, shared and
  /// noisy; Relu epilogues:
  /// - ResNet-50: 64 -> 64 at 56x56 (196 tiles) 0.34-0.36 (1.45 ms -> 0.50 ms); 128 -> 128 at
  ///   28x28 (49 tiles) 0.34-0.38 (1.43 -> 0.54); 256 -> 256 at 14x14 (16 tiles) 0.44-0.51
  ///   (1.42 -> 0.70); 512 -> 512 at 7x7 (4 tiles) 1.57-1.76 (1.86 -> 3.2),
  ///   slower: 4 tiles fill a quarter of the microkernel's 16 columns (the narrow 8-column kernel
  ///   runs, half wasted), and the transformed weights (36 x 512 x 512 floats, 38 MB) are read
  ///   from memory for 4 columns each, where the GEMM reads 9.4 MB for 49.
  /// - SqueezeNet: 16 -> 64 at 55x55 0.71-0.72 (0.36 ms -> 0.25 ms); 32 -> 128 at 27x27 0.64
  ///   (0.33 -> 0.22); 48 -> 192 at 13x13 0.73-0.78 (0.19 -> 0.14); 64 -> 256 at 13x13 0.77-0.80
  ///   (0.31 -> 0.25).
  /// (7x7 measured before workgroups were handed out one range per thread.)
  /// The wins shrink as tiles per image fall (the GEMM's N) and the weights grow; shapes outside
  /// the measured channel counts (fewer than 16 input or 64 output channels, more than 256) keep
  /// the implicit GEMM.
  var isProfitable: Bool {
    tiles >= 16 && (16...256).contains(channels) && (64...256).contains(filters)
  }

  // MARK: Weights

  /// F(4x4, 3x3)'s G (6 x 3).
  static let g: [[Double]] = [
    [1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
    [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1],
  ]

  /// The transformed weights from the weight input's values: for each of the 36 positions p,
  /// `ceil(filters / 6)` panels of `channels x 6` (output channels interleaved along the input
  /// channels; channels past `filters` are zero) holding `(G g G^T)[p / 6][p % 6]` of the 3x3
  /// kernel g of each (output, input) channel pair. Nil when an index falls outside `values`.
  public func prepack(values: [Float]) -> [Float]? {
    let panelFloats = filterPanels * 6 * channels
    guard 36 * panelFloats < Int(Int32.max) else { return nil }
    var packed = [Float](repeating: 0, count: 36 * panelFloats)
    let coStride = weightMap.coefficient(.coordinate(1))
    let ciStride = channelVariable.map { weightMap.coefficient(.variable($0)) } ?? 0
    let (khStride, kwStride) = (weightMap.coefficient(.variable(khVariable)), weightMap.coefficient(.variable(kwVariable)))
    // Flat scratch reused for every channel pair (no allocation per pair: ResNet-50 has half a
    // million of them): g (3 x 3), G g (6 x 3) and G itself (6 x 3), row-major.
    var kernel3 = [Double](repeating: 0, count: 9)
    var gg = [Double](repeating: 0, count: 18)
    let gFlat = Self.g.flatMap { $0 }
    let valid = packed.withUnsafeMutableBufferPointer { target -> Bool in
      for co in 0..<filters {
        for ci in 0..<channels {
          for kh in 0..<3 {
            for kw in 0..<3 {
              let index = weightMap.constant + co * coStride + ci * ciStride + kh * khStride + kw * kwStride
              guard index >= 0, index < values.count else { return false }
              kernel3[kh * 3 + kw] = Double(values[index])
            }
          }
          // G g (6 x 3), then (G g) G^T (6 x 6).
          for i in 0..<6 {
            for j in 0..<3 {
              gg[i * 3 + j] = gFlat[i * 3] * kernel3[j] + gFlat[i * 3 + 1] * kernel3[3 + j] + gFlat[i * 3 + 2] * kernel3[6 + j]
            }
          }
          let column = (co / 6) * 6 * channels + ci * 6 + co % 6
          for i in 0..<6 {
            for j in 0..<6 {
              let u = gg[i * 3] * gFlat[j * 3] + gg[i * 3 + 1] * gFlat[j * 3 + 1] + gg[i * 3 + 2] * gFlat[j * 3 + 2]
              target[(i * 6 + j) * panelFloats + column] = Float(u)
            }
          }
        }
      }
      return true
    }
    guard valid else { return nil }
    return packed
  }

  // MARK: Emission

  /// B^T applied along one axis of six values (`x(k)` names the k-th), into `y0`..`y5`.
  private static func inputTransform(_ x: (Int) -> String, into y: (Int) -> String, indent: String) -> [String] {
    [
      "\(indent)\(y(0)) = 4.0f * \(x(0)) - 5.0f * \(x(2)) + \(x(4));",
      "\(indent)\(y(1)) = -4.0f * (\(x(1)) + \(x(2))) + \(x(3)) + \(x(4));",
      "\(indent)\(y(2)) = 4.0f * (\(x(1)) - \(x(2))) - \(x(3)) + \(x(4));",
      "\(indent)\(y(3)) = 2.0f * (\(x(3)) - \(x(1))) - \(x(2)) + \(x(4));",
      "\(indent)\(y(4)) = 2.0f * (\(x(1)) - \(x(3))) - \(x(2)) + \(x(4));",
      "\(indent)\(y(5)) = 4.0f * \(x(1)) - 5.0f * \(x(3)) + \(x(5));",
    ]
  }

  /// A^T applied along one axis of six values, into `y0`..`y3`.
  private static func outputTransform(_ x: (Int) -> String, into y: (Int) -> String, indent: String) -> [String] {
    [
      "\(indent)\(y(0)) = \(x(0)) + \(x(1)) + \(x(2)) + \(x(3)) + \(x(4));",
      "\(indent)\(y(1)) = \(x(1)) - \(x(2)) + 2.0f * (\(x(3)) - \(x(4)));",
      "\(indent)\(y(2)) = \(x(1)) + \(x(2)) + 4.0f * (\(x(3)) + \(x(4)));",
      "\(indent)\(y(3)) = \(x(1)) - \(x(2)) + 8.0f * (\(x(3)) - \(x(4))) + \(x(5));",
    ]
  }

  /// The schedule in a few words: the convolution's shape and blocking.
  public var summary: String {
    "cpu winograd F(4x4,3x3): \(batch)x\(filters)x\(channels), \(height)x\(width), tiles \(tilesH)x\(tilesW) in blocks of \(tileBlock), filters \(filterBlock) per group, \(filterSlice) per slice"
  }

  /// The kernel's C: the input transform of one tile block and the entry point.
  public func source() -> String {
    let name = kernel.name
    let (tw, columnsV, stripW) = (tilesW, tileColumns, stripWidth)
    let vFloats = 36 * vStride
    let mFloats = 36 * mStride
    let stripFloats = stripRows * stripW + 64
    var out = ["// \(kernel.sourceOps.joined(separator: ", ")) (\(summary))"]
    // The input transform of tiles [t0, t1) of image n into v.
    out.append("__attribute__((noinline)) static void \(name)_winograd_input(const float *restrict x, int64_t n, int64_t t0, int64_t t1, float *restrict strip, float *restrict v) {")
    out.append("  const int64_t th0 = t0 / \(tw), th1 = (t1 - 1) / \(tw);")
    out.append("  const int64_t r0 = 4 * th0, rowCount = 4 * (th1 - th0) + 6;")
    out.append("  for (int64_t ci = 0; ci < \(channels); ++ci) {")
    out.append("    const float *src = x + INT64_C(\(base)) + n * INT64_C(\(batchStride)) + ci * INT64_C(\(channelStride));")
    out.append("    for (int64_t r = 0; r < rowCount; ++r) {")
    out.append("      const int64_t R = r0 + r;")
    out.append("      float *row = strip + r * \(stripW);")
    if let rows = rows, let columns = columns, columns.lowerBound < stripW {
      let (c0, c1) = (columns.lowerBound, min(columns.upperBound, stripW - 1))
      out.append("      if (R < \(rows.lowerBound) || R > \(rows.upperBound)) {")
      out.append("        for (int64_t c = 0; c < \(stripW); ++c) row[c] = 0.0f;")
      out.append("        continue;")
      out.append("      }")
      out.append("      for (int64_t c = 0; c < \(c0); ++c) row[c] = 0.0f;")
      if columnStride == 1 {
        out.append("      memcpy(row + \(c0), src + R * INT64_C(\(rowStride)) + \(c0), \(c1 - c0 + 1) * sizeof(float));")
      } else {
        out.append("      for (int64_t c = \(c0); c <= \(c1); ++c) row[c] = src[R * INT64_C(\(rowStride)) + c * INT64_C(\(columnStride))];")
      }
      out.append("      for (int64_t c = \(c1 + 1); c < \(stripW); ++c) row[c] = 0.0f;")
    } else {
      out.append("      (void)R; (void)src;")
      out.append("      for (int64_t c = 0; c < \(stripW); ++c) row[c] = 0.0f;")
    }
    out.append("    }")
    // Eight tiles at a time, one per lane (lanes past t1 repeat tile t1 - 1).
    out.append("    for (int64_t t = t0; t < t1; t += 8) {")
    out.append("      kiln_w8 d[6][6], e[6][6];")
    out.append("      const float *p[8];")
    out.append("      for (int l = 0; l < 8; ++l) {")
    out.append("        const int64_t tt = t + l < t1 ? t + l : t1 - 1;")
    out.append("        p[l] = strip + 4 * (tt / \(tw) - th0) * \(stripW) + 4 * (tt % \(tw));")
    out.append("      }")
    // Row i of the eight patches, transposed: lane l of d[i][j] is tile l's element (i, j).
    out.append("      for (int i = 0; i < 6; ++i) {")
    out.append("        kiln_w8 r[8];")
    out.append("        for (int l = 0; l < 8; ++l) r[l] = kiln_w8_loadu(p[l] + i * \(stripW));")
    out.append("        kiln_w8_transpose(r);")
    out.append("        for (int j = 0; j < 6; ++j) d[i][j] = r[j];")
    out.append("      }")
    out.append("      for (int j = 0; j < 6; ++j) {")
    out += Self.inputTransform({ "d[\($0)][j]" }, into: { "e[\($0)][j]" }, indent: "        ")
    out.append("      }")
    out.append("      float *dst = v + ((t - t0) / 16) * INT64_C(\(channels * 16)) + ci * 16 + (t - t0) % 16;")
    out.append("      for (int i = 0; i < 6; ++i) {")
    out.append("        kiln_w8 y[6];")
    out += Self.inputTransform({ "e[i][\($0)]" }, into: { "y[\($0)]" }, indent: "        ")
    out.append("        for (int j = 0; j < 6; ++j) kiln_w8_storeu(dst + (i * 6 + j) * INT64_C(\(vStride)), y[j]);")
    out.append("      }")
    out.append("    }")
    out.append("  }")
    out.append("}")

    out += CMatMulTemplate.entryLines(name: name, kernel: kernel)
    for axis in kernel.shape.indices { out.append("  int64_t c\(axis) = 0; (void)c\(axis);") }
    out.append("  float *v = kiln_gemm_alloc(\(vFloats));")
    out.append("  float *m = kiln_gemm_alloc(\(mFloats));")
    out.append("  float *strip = kiln_gemm_alloc(\(stripFloats));")
    out.append("  if (!v || !m || !strip) {")
    out.append("    kiln_gemm_free(v); kiln_gemm_free(m); kiln_gemm_free(strip);")
    out.append("    return;")
    out.append("  }")
    // Tile columns past a block's last are computed and thrown away: zeros, not stale garbage.
    out.append("  memset(v, 0, \(vFloats) * sizeof(float));")
    out.append("  memset(m, 0, \(mFloats) * sizeof(float));")
    out.append("  int64_t cached = -1;")
    out.append("  for (int64_t wg = d->workgroup_begin; wg < d->workgroup_end; ++wg) {")
    out.append("    const int64_t group = wg % \(filterGroups), imageBlock = wg / \(filterGroups);")
    out.append("    const int64_t n = imageBlock / \(blocks), t0 = (imageBlock % \(blocks)) * \(tileBlock);")
    out.append("    const int64_t t1 = t0 + \(tileBlock) < \(tiles) ? t0 + \(tileBlock) : \(tiles);")
    out.append("    if (imageBlock != cached) {")
    out.append("      \(name)_winograd_input(b\(input), n, t0, t1, strip, v);")
    out.append("      cached = imageBlock;")
    out.append("    }")
    out.append("    c0 = n;")
    out.append("    float *plane0 = result + n * INT64_C(\(filters * height * width));")
    out.append("    const int64_t mEnd = (group + 1) * \(filterBlock) < \(filters) ? (group + 1) * \(filterBlock) : \(filters);")
    out.append("    for (int64_t m0 = group * \(filterBlock); m0 < mEnd; m0 += \(filterSlice)) {")
    out.append("      const int64_t m1 = m0 + \(filterSlice) < mEnd ? m0 + \(filterSlice) : mEnd;")
    out.append("      for (int p = 0; p < 36; ++p) {")
    out.append("        for (int64_t k0 = 0; k0 < \(channels); k0 += \(Self.channelBlock)) {")
    out.append("          const int64_t kc = \(channels) - k0 < \(Self.channelBlock) ? \(channels) - k0 : \(Self.channelBlock);")
    out.append("          kiln_gemm_block(kc, b\(weightInput) + p * INT64_C(\(filterPanels * 6 * channels)) + (m0 / 6) * INT64_C(\(6 * channels)) + k0 * 6, INT64_C(\(6 * channels)),")
    out.append("                          v + p * INT64_C(\(vStride)) + k0 * 16, INT64_C(\(channels * 16)), 16, m + p * INT64_C(\(mStride)), \(columnsV), m1 - m0, t1 - t0, k0 > 0);")
    out.append("        }")
    out.append("      }")
    // The output transform, eight tiles at a time, into the output planes.
    out.append("      for (int64_t co = m0; co < m1; ++co) {")
    out.append("        float *plane = plane0 + co * INT64_C(\(height * width));")
    out.append("        for (int64_t t = t0; t < t1; t += 8) {")
    out.append("          const float *src = m + (co - m0) * \(columnsV) + (t - t0);")
    out.append("          kiln_w8 e[4][6];")
    out.append("          for (int j = 0; j < 6; ++j) {")
    out.append("            kiln_w8 x[6];")
    out.append("            for (int i = 0; i < 6; ++i) x[i] = kiln_w8_loadu(src + (i * 6 + j) * INT64_C(\(mStride)));")
    out += Self.outputTransform({ "x[\($0)]" }, into: { "e[\($0)][j]" }, indent: "            ")
    out.append("          }")
    out.append("          const int lanes = t1 - t < 8 ? (int)(t1 - t) : 8;")
    out.append("          for (int i = 0; i < 4; ++i) {")
    out.append("            kiln_w8 r[8];")
    out += Self.outputTransform({ "e[i][\($0)]" }, into: { "r[\($0)]" }, indent: "            ")
    out.append("            r[4] = r[5] = r[6] = r[7] = (kiln_w8){0, 0, 0, 0, 0, 0, 0, 0};")
    // Lane l of r[j] is tile l's element (i, j); transposed, r[l] holds tile l's row i.
    out.append("            kiln_w8_transpose(r);")
    out.append("            for (int l = 0; l < lanes; ++l) {")
    out.append("              const int64_t oh = 4 * ((t + l) / \(tw)) + i, ow = 4 * ((t + l) % \(tw));")
    out.append("              if (oh >= \(height)) continue;")
    out.append("              float *o = plane + oh * \(width) + ow;")
    out.append("              if (ow + 4 <= \(width)) {")
    out.append("                memcpy(o, &r[l], 4 * sizeof(float));")
    out.append("              } else {")
    out.append("                float row[8];")
    out.append("                memcpy(row, &r[l], sizeof(row));")
    out.append("                for (int j = 0; j < \(width) - ow; ++j) o[j] = row[j];")
    out.append("              }")
    out.append("            }")
    out.append("          }")
    out.append("        }")
    if epilogue != CMatMulTemplate.accumulator(0) {
      // The epilogue over the block's outputs, row by row.
      out.append("        c1 = co;")
      out.append("        for (int64_t th = t0 / \(tw); th <= (t1 - 1) / \(tw); ++th) {")
      out.append("          const int64_t first = th * \(tw) > t0 ? 0 : t0 - th * \(tw);")
      out.append("          const int64_t last = (th + 1) * \(tw) < t1 ? \(tw) : t1 - th * \(tw);")
      out.append("          const int64_t owEnd = 4 * last < \(width) ? 4 * last : \(width);")
      out.append("          for (c2 = 4 * th; c2 < 4 * th + 4 && c2 < \(height); ++c2) {")
      out.append("            float *row = plane + c2 * \(width);")
      out.append("            for (c3 = 4 * first; c3 < owEnd; ++c3) {")
      out.append("              float v\(MatMulTemplate.accumulatorVariable) = row[c3];")
      out += CMatMulTemplate.emitValue(epilogue, kernel: kernel, into: "row[c3]", indent: 7)
      out.append("            }")
      out.append("          }")
      out.append("        }")
    }
    out.append("      }")
    out.append("    }")
    out.append("  }")
    out.append("  kiln_gemm_free(v); kiln_gemm_free(m); kiln_gemm_free(strip);")
    out.append("}")
    return out.joined(separator: "\n") + "\n"
  }

  /// The 8-lane vector type and its unaligned load and store, for every object (clang and GCC
  /// vector extensions: AVX in the x86-64-v3 object, pairs of SSE registers in the baseline one).
  static let support = #"""

    typedef float kiln_w8 __attribute__((vector_size(32), aligned(32)));
    static inline kiln_w8 kiln_w8_loadu(const float *p) { kiln_w8 v; memcpy(&v, p, sizeof(v)); return v; }
    static inline void kiln_w8_storeu(float *p, kiln_w8 v) { memcpy(p, &v, sizeof(v)); }
    /* r[i] lane j becomes r[j] lane i. */
    static inline void kiln_w8_transpose(kiln_w8 r[8]) {
    #if defined(__clang__)
      const kiln_w8 t0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);
      const kiln_w8 t1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);
      const kiln_w8 t2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);
      const kiln_w8 t3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);
      const kiln_w8 t4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);
      const kiln_w8 t5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);
      const kiln_w8 t6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);
      const kiln_w8 t7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
      const kiln_w8 s0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
      const kiln_w8 s1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
      const kiln_w8 s2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
      const kiln_w8 s3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
      const kiln_w8 s4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
      const kiln_w8 s5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
      const kiln_w8 s6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
      const kiln_w8 s7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
      r[0] = __builtin_shufflevector(s0, s4, 0, 1, 2, 3, 8, 9, 10, 11);
      r[1] = __builtin_shufflevector(s1, s5, 0, 1, 2, 3, 8, 9, 10, 11);
      r[2] = __builtin_shufflevector(s2, s6, 0, 1, 2, 3, 8, 9, 10, 11);
      r[3] = __builtin_shufflevector(s3, s7, 0, 1, 2, 3, 8, 9, 10, 11);
      r[4] = __builtin_shufflevector(s0, s4, 4, 5, 6, 7, 12, 13, 14, 15);
      r[5] = __builtin_shufflevector(s1, s5, 4, 5, 6, 7, 12, 13, 14, 15);
      r[6] = __builtin_shufflevector(s2, s6, 4, 5, 6, 7, 12, 13, 14, 15);
      r[7] = __builtin_shufflevector(s3, s7, 4, 5, 6, 7, 12, 13, 14, 15);
    #else
      float a[8][8];
      memcpy(a, r, sizeof(a));
      for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) memcpy((float *)&r[j] + i, &a[i][j], sizeof(float));
    #endif
    }

    """#
}
