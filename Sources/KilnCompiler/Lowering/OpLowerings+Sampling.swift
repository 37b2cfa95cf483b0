import KilnIR

// Sampling and rearranging ops: GridSample, AffineGrid, DeformConv, Col2Im, CenterCropPad,
// ReverseSequence and MaxUnpool.
//
// Data-dependent positions (GridSample, DeformConv) are computed in float; every tap is read at an
// index clamped into its tensor and masked by a select when the position falls outside it, so no
// load ever leaves its tensor.

extension OpLowerings {
  static let samplingOps = [
    "GridSample", "AffineGrid", "DeformConv", "Col2Im", "CenterCropPad", "ReverseSequence", "MaxUnpool",
  ]

  static func samplingLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "GridSample": return gridSample
    case "AffineGrid": return affineGrid
    case "DeformConv": return deformConv
    case "Col2Im": return col2Im
    case "CenterCropPad": return centerCropPad
    case "ReverseSequence": return reverseSequence
    case "MaxUnpool": return maxUnpool
    default: return nil
    }
  }

  // MARK: GridSample

  /// GridSample: Y[n, c, o] interpolates X[n, c] at the position grid[n, o, :] (normalised to
  /// [-1, 1], innermost spatial axis first), exactly as the ONNX reference: positions are
  /// denormalised, rounded half to even in nearest mode, then brought back inside the borders
  /// (border, reflection) before the taps are taken; each tap index is resolved by the padding mode.
  static let gridSample = OpLowering(.movement) { ctx, _, coordinates in
    let x = try ctx.shape(0)
    let sampler = try GridSampler(ctx)
    let spatial = x.count - 2
    let grid = Array(coordinates[0..<1]) + Array(coordinates[2...])
    let axes = try (0..<spatial).map { i in
      let normalized = try ctx.element(1, at: grid + [.index(spatial - 1 - i)], as: sampler.type)
      return sampler.taps(normalized: normalized, length: x[2 + i])
    }
    // Nearest reads elements as they are; the other modes weigh them in the sampler's float type.
    let type = sampler.mode == .nearest ? try ctx.computeType(0) : sampler.type
    let value = try interpolate(ctx, input: 0, prefix: Array(coordinates[..<2]), axes: axes, type: type)
    return ctx.outputComputeType() == type ? value : .cast(value, ctx.outputComputeType())
  }

  /// Sum over every combination of one tap per axis of the taps' weights times input `input`'s
  /// element at `prefix` + the taps' indices (zero where a tap is outside). Taps without weights
  /// (nearest) contribute the element itself.
  static func interpolate(
    _ ctx: LoweringContext, input: Int, prefix: [Expr], axes: [[SampleTap]], type: ValueType
  ) throws -> Expr {
    let zero = Expr.constant(0, type)
    func combine(_ axis: Int, _ indices: [Expr], _ inside: [Expr]) throws -> Expr {
      if axis == axes.count {
        return .choose(.all(inside), try ctx.element(input, at: prefix + indices, as: type), zero)
      }
      var sum: Expr?
      for tap in axes[axis] {
        var term = try combine(axis + 1, indices + [tap.index], inside + [tap.inside])
        if let weight = tap.weight { term = .binary(.multiply, weight, term) }
        sum = sum.map { .binary(.add, $0, term) } ?? term
      }
      return sum ?? zero
    }
    return try combine(0, [], [])
  }
}

/// One interpolation tap on one axis: an in-range index, whether the unclamped tap was inside
/// (else it reads as zero), and its weight (nil in nearest mode).
struct SampleTap {
  var index: Expr
  var inside: Expr
  var weight: Expr?
}

/// GridSample's mode, padding and coordinate convention, and the taps they give one axis.
struct GridSampler {
  enum Mode { case nearest, linear, cubic }
  enum Padding: String { case zeros, border, reflection }

  var mode: Mode
  var padding: Padding
  var alignCorners: Bool
  /// The type positions and weights compute in.
  var type: ValueType

  init(mode: Mode, padding: Padding, alignCorners: Bool, type: ValueType) {
    self.mode = mode
    self.padding = padding
    self.alignCorners = alignCorners
    self.type = type
  }

  init(_ ctx: LoweringContext) throws {
    let modeName = try ctx.stringAttribute("mode", default: ctx.opset < 20 ? "bilinear" : "linear")
    switch modeName {
    case "nearest": mode = .nearest
    case "linear", "bilinear": mode = .linear
    case "cubic", "bicubic": mode = .cubic
    default: throw ctx.error("attribute 'mode' '\(modeName)' is not supported (linear, nearest, cubic)")
    }
    let paddingName = try ctx.stringAttribute("padding_mode", default: "zeros")
    guard let padding = Padding(rawValue: paddingName) else {
      throw ctx.error("attribute 'padding_mode' '\(paddingName)' is not supported (zeros, border, reflection)")
    }
    self.padding = padding
    alignCorners = try ctx.intAttribute("align_corners", default: 0) != 0
    let inputType = try ctx.computeType(0)
    type = inputType.isFloat ? inputType : .float32
    if mode != .nearest && !inputType.isFloat {
      throw ctx.error("mode '\(modeName)' needs a float input, got \(try ctx.dtype(0).rawValue)")
    }
  }

  private func c(_ value: Double) -> Expr { .constant(value, type) }
  private func add(_ a: Expr, _ b: Expr) -> Expr { .binary(.add, a, b) }
  private func sub(_ a: Expr, _ b: Expr) -> Expr { .binary(.subtract, a, b) }
  private func mul(_ a: Expr, _ b: Expr) -> Expr { .binary(.multiply, a, b) }

  /// The pixel range positions are kept in: pixel centres with align_corners, else pixel edges.
  func borders(_ length: Int) -> (low: Double, high: Double) {
    alignCorners ? (0, Double(length - 1)) : (-0.5, Double(length) - 0.5)
  }

  /// The taps of one axis of `length` for a normalised coordinate.
  func taps(normalized: Expr, length: Int) -> [SampleTap] {
    // x = (n + 1) / 2 * (L - 1) with align_corners, else ((n + 1) * L - 1) / 2.
    let shifted = add(normalized, c(1))
    var position =
      alignCorners
      ? mul(mul(shifted, c(0.5)), c(Double(length - 1)))
      : mul(sub(mul(shifted, c(Double(length))), c(1)), c(0.5))
    if mode == .nearest { position = .unary(.round, position) }
    return taps(position: keptInside(position, length: length), length: length)
  }

  /// The taps around an unnormalised `position` (already brought inside by the padding mode).
  func taps(position: Expr, length: Int) -> [SampleTap] {
    switch mode {
    case .nearest:
      return [resolve(.cast(position, .index), length: length, weight: nil)]
    case .linear:
      let floorPosition = Expr.unary(.floor, position)
      let t = sub(position, floorPosition)
      let low = Expr.cast(floorPosition, .index)
      return [resolve(low, length: length, weight: sub(c(1), t)), resolve(low + 1, length: length, weight: t)]
    case .cubic:
      let floorPosition = Expr.unary(.floor, position)
      let low = Expr.cast(floorPosition, .index)
      let weights = cubicWeights(sub(position, floorPosition))
      return (0..<4).map { resolve(low + ($0 - 1), length: length, weight: weights[$0]) }
    }
  }

  /// Keys' cubic convolution weights (A = -0.75) of the taps at -1, 0, 1, 2 for fraction `t`.
  func cubicWeights(_ t: Expr) -> [Expr] {
    let a = -0.75
    /// |s| in [1, 2): ((A s - 5A) s + 8A) s - 4A; |s| < 1: ((A + 2) s - (A + 3)) s^2 + 1.
    func outer(_ s: Expr) -> Expr { sub(mul(add(mul(sub(mul(c(a), s), c(5 * a)), s), c(8 * a)), s), c(4 * a)) }
    func inner(_ s: Expr) -> Expr { add(mul(mul(sub(mul(c(a + 2), s), c(a + 3)), s), s), c(1)) }
    let u = sub(c(1), t)
    return [outer(add(t, c(1))), inner(t), inner(u), outer(sub(c(2), t))]
  }

  /// The position after the padding mode's treatment of positions outside the borders: border
  /// clamps them to the pixel centres, reflection mirrors them back; zeros keeps them (bounded
  /// so that the float-to-index conversion stays in range: every tap is outside either way).
  func keptInside(_ position: Expr, length: Int) -> Expr {
    let (low, high) = borders(length)
    let outside = Expr.binary(.logicalOr, .binary(.less, position, c(low)), .binary(.greater, position, c(high)))
    switch padding {
    case .zeros:
      return .binary(.minimum, .binary(.maximum, position, c(-4)), c(Double(length + 3)))
    case .border:
      let clamped = Expr.binary(.minimum, .binary(.maximum, position, c(0)), c(Double(length - 1)))
      return .select(outside, clamped, position)
    case .reflection:
      return reflect(position, low: low, high: high)
    }
  }

  /// Mirrors `x` at the borders until it lies in `low...high`, as the reference's _gs_reflect.
  func reflect(_ x: Expr, low: Double, high: Double) -> Expr {
    let range = high - low
    guard range > 0 else { return c(low) }
    let below = Expr.binary(.less, x, c(low))
    let above = Expr.binary(.greater, x, c(high))
    let distance = Expr.select(below, sub(c(low), x), sub(x, c(high)))
    let folds = Expr.unary(.floor, .binary(.divide, distance, c(range)))
    let rest = sub(distance, mul(folds, c(range)))
    let even = Expr.binary(.equal, .binary(.remainder, folds, c(2)), c(0))
    let fromLow = Expr.select(even, add(c(low), rest), sub(c(high), rest))
    let fromHigh = Expr.select(even, sub(c(high), rest), add(c(low), rest))
    return .select(below, fromLow, .select(above, fromHigh, x))
  }

  /// A tap at integer `index` resolved by the padding mode: zeros reads outside taps as zero,
  /// border clamps them, reflection mirrors them at the borders.
  func resolve(_ index: Expr, length: Int, weight: Expr?) -> SampleTap {
    switch padding {
    case .zeros:
      return SampleTap(index: index.clamped(0, length - 1), inside: index.inRange(0, length), weight: weight)
    case .border:
      return SampleTap(index: index.clamped(0, length - 1), inside: .trueValue, weight: weight)
    case .reflection:
      let (low, high) = borders(length)
      let mirrored = Expr.cast(reflect(.cast(index, type), low: low, high: high), .index)
      return SampleTap(index: mirrored.clamped(0, length - 1), inside: .trueValue, weight: weight)
    }
  }
}

extension OpLowerings {
  // MARK: AffineGrid

  /// AffineGrid: grid[n, s..., j] = sum over k of theta[n, j, k] * base_k + theta[n, j, r], where
  /// base_k is the normalised position along spatial axis r-1-k (x is the innermost axis):
  /// -1 + i * 2/(L-1) with align_corners (-1 when L is 1), else -1 + (2i + 1)/L.
  static let affineGrid = OpLowering(.movement) { ctx, _, coordinates in
    let output = ctx.outputShape()
    let spatial = output.count - 2
    let type = ctx.outputComputeType()
    let alignCorners = try ctx.intAttribute("align_corners", default: 0) != 0
    let n = coordinates[0]
    let j = coordinates[spatial + 1]
    var sum = try ctx.element(0, at: [n, j, .index(spatial)], as: type)
    for k in 0..<spatial {
      let axis = spatial - 1 - k
      let length = output[1 + axis]
      let step = alignCorners ? (length > 1 ? 2 / Double(length - 1) : 0) : 2 / Double(length)
      let start = alignCorners ? -1 : -1 + step / 2
      let base = Expr.binary(
        .add, .binary(.multiply, .cast(coordinates[1 + axis], type), .constant(step, type)), .constant(start, type))
      let term = Expr.binary(.multiply, try ctx.element(0, at: [n, j, .index(k)], as: type), base)
      sum = .binary(.add, sum, term)
    }
    return sum
  }

  // MARK: DeformConv

  /// DeformConv: out[n, m, o] = B[m] + sum over the group's channels c and taps k of
  /// W[m, c, k] * mask[n, g_o*K + k, o] * X[n, ic] sampled bilinearly (zero outside) at
  /// o*s - pad + k*d + offset[n, (g_o*K + k)*r + axis, o], where g_o is the offset group of ic.
  static let deformConv = OpLowering(.reduction) { ctx, _, coordinates in
    let x = try ctx.shape(0)
    let w = try ctx.shape(1)
    let type = ctx.outputComputeType()
    guard x.count >= 3, w.count == x.count else {
      throw ctx.error("input \(x) and weight \(w) must have equal rank 3 or more")
    }
    let spatial = x.count - 2
    let group = try ctx.intAttribute("group", default: 1)
    let offsetGroup = try ctx.intAttribute("offset_group", default: 1)
    let (filters, channelsPerGroup) = (w[0], w[1])
    guard group >= 1, filters % group == 0, channelsPerGroup * group == x[1], offsetGroup >= 1,
      x[1] % offsetGroup == 0
    else {
      throw ctx.error("group \(group) and offset_group \(offsetGroup) do not fit input \(x) and weight \(w)")
    }
    let kernel = Array(w[2...])
    let geometry = try WindowGeometry(
      ctx, kernel: kernel, input: Array(x[2...]), output: Array(ctx.outputShape()[2...]))
    let m = coordinates[1]
    let spatialOut = Array(coordinates[2...])
    var variables: [(variable: Int, extent: Int)] = []
    let channel = channelWithinGroup(ctx, channelsPerGroup: channelsPerGroup, variables: &variables)
    let (taps, tapVariables) = geometry.taps(ctx)
    variables += tapVariables
    let groupIndex = group == 1 ? Expr.index(0) : m.floorDivided(by: filters / group)
    let inputChannel = groupIndex * channelsPerGroup + channel
    let tapChannel =
      inputChannel.floorDivided(by: x[1] / offsetGroup) * kernel.reduce(1, *)
      + Expr.linearIndex(taps, shape: kernel)
    let sampler = GridSampler(mode: .linear, padding: .zeros, alignCorners: true, type: type)
    let axes = try (0..<spatial).map { i in
      let offset = try ctx.element(2, at: [coordinates[0], tapChannel * spatial + i] + spatialOut, as: type)
      let base = Expr.cast(geometry.position(i, output: spatialOut[i], tap: taps[i]), type)
      let position = sampler.keptInside(.binary(.add, base, offset), length: x[2 + i])
      return sampler.taps(position: position, length: x[2 + i])
    }
    var body = try interpolate(ctx, input: 0, prefix: [coordinates[0], inputChannel], axes: axes, type: type)
    body = .binary(.multiply, try ctx.element(1, at: [m, channel] + taps, as: type), body)
    if ctx.hasInput(4) {
      body = .binary(.multiply, body, try ctx.element(4, at: [coordinates[0], tapChannel] + spatialOut, as: type))
    }
    var result = Expr.reduce(.sum, over: variables, body: body)
    if ctx.hasInput(3) {
      result = .binary(.add, result, try ctx.element(3, at: [m], as: type))
    }
    return result
  }

  // MARK: Col2Im

  /// Col2Im: image[n, c, p] sums input[n, c*K + k, b] over the block offsets k and block
  /// positions b with b*s - pad + k*d = p (K is the block size, b and k row-major).
  static let col2Im = OpLowering(.reduction) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    guard let image = try ctx.constantInts(1, "image_shape"), let block = try ctx.constantInts(2, "block_shape") else {
      throw ctx.error("image_shape and block_shape are required")
    }
    let n = image.count
    let strides = try ctx.intsAttribute("strides") ?? Array(repeating: 1, count: n)
    let dilations = try ctx.intsAttribute("dilations") ?? Array(repeating: 1, count: n)
    let pads = try ctx.intsAttribute("pads") ?? Array(repeating: 0, count: 2 * n)
    guard block.count == n, strides.count == n, dilations.count == n, pads.count == 2 * n,
      strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 })
    else {
      throw ctx.error(
        "block_shape \(block), strides \(strides), dilations \(dilations), pads \(pads) must fit \(n) axes")
    }
    let counts = (0..<n).map { (i: Int) -> Int in
      let padded: Int = image[i] + pads[i] + pads[i + n]
      let span: Int = dilations[i] * (block[i] - 1) + 1
      return (padded - span) / strides[i] + 1
    }
    guard input.count == 3, input[2] == counts.reduce(1, *) else {
      throw ctx.error("input \(input) does not hold \(counts) blocks")
    }
    var variables: [(variable: Int, extent: Int)] = []
    var offsets: [Expr] = []
    var positions: [Expr] = []
    var conditions: [Expr] = []
    for i in 0..<n {
      let k: Expr
      if block[i] == 1 {
        k = .index(0)
      } else {
        let variable = ctx.freshVariable()
        variables.append((variable, block[i]))
        k = .variable(variable)
      }
      let start = coordinates[2 + i] + pads[i] - k * dilations[i]
      let position = start.floorDivided(by: strides[i])
      var condition = [position.isAtLeast(0), position.isLess(than: counts[i])]
      if strides[i] > 1 { condition.append(.binary(.equal, start.modulo(strides[i]), .index(0))) }
      conditions.append(.all(condition))
      offsets.append(k)
      positions.append(position.clamped(0, counts[i] - 1))
    }
    let row = coordinates[1] * block.reduce(1, *) + Expr.linearIndex(offsets, shape: block)
    let value = try ctx.element(0, at: [coordinates[0], row, Expr.linearIndex(positions, shape: counts)])
    let zero = Expr.constant(0, try ctx.computeType(0))
    return .reduce(.sum, over: variables, body: .choose(.all(conditions), value, zero))
  }

  // MARK: CenterCropPad

  /// CenterCropPad: each listed axis is cropped to a centred window (its start rounded down) or
  /// zero-padded on both sides (the odd pixel at the end).
  static let centerCropPad = OpLowering(.movement) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    let output = ctx.outputShape()
    var mapped: [Expr] = []
    var conditions: [Expr] = []
    for (axis, extent) in input.enumerated() {
      let target = output[axis]
      if target <= extent {
        mapped.append(coordinates[axis] + (extent - target) / 2)
      } else {
        let position = coordinates[axis] - (target - extent) / 2
        conditions.append(position.inRange(0, extent))
        mapped.append(position.clamped(0, extent - 1))
      }
    }
    let zero = Expr.constant(0, try ctx.computeType(0))
    return .choose(.all(conditions), try ctx.element(0, at: mapped), zero)
  }

  // MARK: ReverseSequence

  /// ReverseSequence: along the time axis, the first sequence_lens[b] elements of batch b are
  /// reversed and the rest copied.
  static let reverseSequence = OpLowering(.movement) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    let batchAxis = try ctx.intAttribute("batch_axis", default: 1)
    let timeAxis = try ctx.intAttribute("time_axis", default: 0)
    guard Set([batchAxis, timeAxis]) == [0, 1], input.count >= 2 else {
      throw ctx.error("batch_axis \(batchAxis) and time_axis \(timeAxis) must be 0 and 1")
    }
    let time = coordinates[timeAxis]
    let length = Expr.cast(try ctx.element(1, at: [coordinates[batchAxis]]), .index)
    let source = Expr.choose(.binary(.less, time, length), length - 1 - time, time)
    var mapped = coordinates
    mapped[timeAxis] = source.clamped(0, input[timeAxis] - 1)
    return try ctx.element(0, at: mapped)
  }

  // MARK: MaxUnpool

  /// MaxUnpool, as the ONNX reference: each X element is written at its flat index into the
  /// unpooled shape ((in - 1) * stride - pads + kernel per axis; the last write wins), which is
  /// then placed at the origin of a larger output_shape, the rest zero. Indices are data, so
  /// every output element searches all of them (the last match), which costs the input's size.
  static let maxUnpool = OpLowering(.reduction, region: .gatherScatter) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    let spatial = input.count - 2
    guard let kernel = try ctx.intsAttribute("kernel_shape"), kernel.count == spatial else {
      throw ctx.error("attribute 'kernel_shape' must have \(spatial) values")
    }
    let strides = try ctx.intsAttribute("strides") ?? Array(repeating: 1, count: spatial)
    let pads = try ctx.intsAttribute("pads") ?? Array(repeating: 0, count: 2 * spatial)
    guard strides.count == spatial, pads.count == 2 * spatial else {
      throw ctx.error("strides \(strides) and pads \(pads) must fit \(spatial) spatial axes")
    }
    let unpooled =
      Array(input.prefix(2))
      + (0..<spatial).map { i in (input[i + 2] - 1) * strides[i] - pads[i] - pads[i + spatial] + kernel[i] }
    var inside: [Expr] = []
    var clamped = Array(coordinates.prefix(2))
    for i in 2..<input.count {
      if ctx.outputShape()[i] > unpooled[i] { inside.append(coordinates[i].isLess(than: unpooled[i])) }
      clamped.append(coordinates[i].clamped(0, unpooled[i] - 1))
    }
    let target = Expr.cast(Expr.linearIndex(clamped, shape: unpooled), .int64)
    let variable = ctx.freshVariable()
    let total = input.reduce(1, *)
    func index(_ linear: Expr) throws -> Expr {
      try ctx.element(1, at: Expr.coordinates(ofLinear: linear, shape: input), as: .int64)
    }
    let hit = Expr.select(
      .binary(.equal, try index(.variable(variable)), target), .constant(1, .int64), .constant(0, .int64))
    let last = Expr.reduce(.argmax(selectLast: true), variable: variable, extent: total, body: hit)
    inside.append(.binary(.equal, try index(last), target))
    let value = try ctx.element(0, at: Expr.coordinates(ofLinear: last, shape: input))
    return .choose(.all(inside), value, .constant(0, try ctx.computeType(0)))
  }
}
