import KilnIR

// Resize (opsets 10-19+) and Upsample (7-9): nearest, (n-)linear and (n-)cubic interpolation.
//
// Every axis maps output coordinate x to an input position x_ori = a*x + b (the coordinate
// transformation modes are all affine). Nearest indices are computed at compile time, exactly as
// the ONNX reference does in double precision, and then expressed as exact integer arithmetic,
// clamp(floor((A*x + B) / D), 0, L-1), found by search; only when no small formula matches is
// the position computed in float at run time. Linear mode computes the position in float and
// weights 2^k loads, one per corner of the interpolation cell; cubic mode weights 4^k loads
// (four taps per axis, clamped to the edge, with the reference's cubic coefficients).

extension OpLowerings {
  static func resize(_ node: Node) throws -> OpLowering {
    return OpLowering(.movement) { ctx, _, coordinates in
      let plan = try ResizePlan(ctx)
      return try plan.value(ctx, at: coordinates)
    }
  }
}

/// How one axis of a Resize maps output coordinates to input positions.
struct ResizeAxis {
  var inputLength: Int
  var outputLength: Int
  var scale: Double
  var transform: String
  var roiStart = 0.0
  var roiEnd = 1.0

  /// The reference's "output width": the scale times the input length (not rounded).
  var outputWidth: Double { scale * Double(inputLength) }

  /// x_ori for output coordinate `x`, evaluated as the ONNX reference does.
  func original(_ x: Int) -> Double {
    let x = Double(x)
    let length = Double(inputLength)
    switch transform {
    case "align_corners":
      return outputWidth == 1 ? 0 : x * (length - 1) / (outputWidth - 1)
    case "asymmetric":
      return x / scale
    case "tf_crop_and_resize":
      let span = roiEnd - roiStart
      let base = outputWidth == 1 ? span * (length - 1) / 2 : x * span * (length - 1) / (outputWidth - 1)
      return base + roiStart * (length - 1)
    case "pytorch_half_pixel":
      return outputWidth == 1 ? -0.5 : (x + 0.5) / scale - 0.5
    case "half_pixel_symmetric":
      let adjustment = Double(outputLength) / outputWidth
      let offset = length / 2 * (1 - adjustment)
      return offset + (x + 0.5) / scale - 0.5
    case "tf_half_pixel_for_nn":
      return (x + 0.5) / scale
    default:  // half_pixel
      return (x + 0.5) / scale - 0.5
    }
  }

  /// x_ori = slope * x + intercept.
  var affine: (slope: Double, intercept: Double) {
    let length = Double(inputLength)
    switch transform {
    case "align_corners":
      return outputWidth == 1 ? (0, 0) : ((length - 1) / (outputWidth - 1), 0)
    case "asymmetric":
      return (1 / scale, 0)
    case "tf_crop_and_resize":
      let span = roiEnd - roiStart
      if outputWidth == 1 { return (0, span * (length - 1) / 2 + roiStart * (length - 1)) }
      return (span * (length - 1) / (outputWidth - 1), roiStart * (length - 1))
    case "pytorch_half_pixel":
      return outputWidth == 1 ? (0, -0.5) : (1 / scale, 0.5 / scale - 0.5)
    case "half_pixel_symmetric":
      let adjustment = Double(outputLength) / outputWidth
      return (1 / scale, length / 2 * (1 - adjustment) + 0.5 / scale - 0.5)
    case "tf_half_pixel_for_nn":
      return (1 / scale, 0.5 / scale)
    default:
      return (1 / scale, 0.5 / scale - 0.5)
    }
  }

  /// The reference skips an axis whose scale is 1 (within 1e-9) and whose length is unchanged.
  var isIdentity: Bool {
    let roiIdentity = transform != "tf_crop_and_resize" || (Swift.abs(roiStart) < 1e-9 && Swift.abs(roiEnd - 1) < 1e-9)
    return Swift.abs(scale - 1) <= 1e-9 && inputLength == outputLength && roiIdentity
  }

  /// The output coordinates whose position lies inside the input (tf_crop_and_resize
  /// extrapolates elsewhere): a contiguous range since positions are monotone.
  func insideRange() -> Range<Int>? {
    guard transform == "tf_crop_and_resize" else { return 0..<outputLength }
    let limit = Double(inputLength - 1)
    let inside = (0..<outputLength).filter { original($0) >= 0 && original($0) <= limit }
    guard let first = inside.first, let last = inside.last else { return 0..<0 }
    guard inside.count == last - first + 1 else { return nil }
    return first..<(last + 1)
  }
}

/// The whole Resize: per-axis mappings plus mode and extrapolation.
struct ResizePlan {
  var axes: [ResizeAxis]
  /// Linear or cubic: the value is a weighted sum of taps.
  var linear: Bool
  var cubic = false
  var cubicA = -0.75
  var excludeOutside = false
  /// Linear and cubic downsampling stretch the filter by 1/scale (opset 18 `antialias`).
  var antialias = false
  var nearestMode: String
  var extrapolation: Double

  init(_ ctx: LoweringContext) throws {
    let input = try ctx.shape(0)
    let output = ctx.outputShape()
    let rank = input.count
    guard output.count == rank else { throw ctx.error("output rank \(output.count) differs from input rank \(rank)") }
    let legacy = ctx.node.op == "Upsample" || ctx.opset < 11
    let mode = try ctx.stringAttribute("mode", default: "nearest")
    switch mode {
    case "nearest": linear = false
    case "linear", "bilinear": linear = true
    case "cubic", "bicubic":
      linear = true
      cubic = true
      cubicA = try ctx.floatAttribute("cubic_coeff_a", default: -0.75)
      excludeOutside = try ctx.intAttribute("exclude_outside", default: 0) != 0
    default: throw ctx.error("attribute 'mode' '\(mode)' is not supported (nearest, linear, cubic)")
    }
    antialias = try ctx.intAttribute("antialias", default: 0) != 0 && linear
    let transform =
      legacy ? "asymmetric" : try ctx.stringAttribute("coordinate_transformation_mode", default: "half_pixel")
    let transforms = [
      "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
      "tf_crop_and_resize",
    ]
    guard transforms.contains(transform) else {
      throw ctx.error("attribute 'coordinate_transformation_mode' '\(transform)' is not supported")
    }
    nearestMode = legacy ? "simple" : try ctx.stringAttribute("nearest_mode", default: "round_prefer_floor")
    guard ["simple", "round_prefer_floor", "round_prefer_ceil", "floor", "ceil"].contains(nearestMode) else {
      throw ctx.error("attribute 'nearest_mode' '\(nearestMode)' is not supported")
    }
    extrapolation = try ctx.floatAttribute("extrapolation_value", default: 0)

    // Resized axes and their scales.
    let resized = try ctx.normalizedAxes(
      ctx.opset >= 18 && ctx.node.op == "Resize" ? try ctx.intsAttribute("axes") ?? Array(0..<rank) : Array(0..<rank),
      rank: rank)
    var scales = [Double](repeating: 1, count: rank)
    if ctx.node.op == "Upsample" && ctx.opset < 9 {
      guard let values = try ctx.floatsAttribute("scales"), values.count == rank else {
        throw ctx.error("attribute 'scales' must have \(rank) values")
      }
      scales = values
    } else if legacy {
      guard let values = try ctx.constantDoubles(1, "scales"), values.count == rank else {
        throw ctx.error("input 1 (scales) must have \(rank) values")
      }
      scales = values
    } else if let values = try ctx.constantDoubles(2, "scales") {
      guard values.count == resized.count else {
        throw ctx.error("scales \(values) must have \(resized.count) values")
      }
      for (i, axis) in resized.enumerated() { scales[axis] = values[i] }
    } else if let sizes = try ctx.constantInts(3, "sizes") {
      guard sizes.count == resized.count else { throw ctx.error("sizes \(sizes) must have \(resized.count) values") }
      let ratios = resized.enumerated().map { Double(sizes[$0.offset]) / Double(input[$0.element]) }
      let policy = try ctx.stringAttribute("keep_aspect_ratio_policy", default: "stretch")
      switch policy {
      case "stretch":
        for (i, axis) in resized.enumerated() { scales[axis] = ratios[i] }
      case "not_larger", "not_smaller":
        let scale = (policy == "not_larger" ? ratios.min() : ratios.max()) ?? 1
        for axis in resized { scales[axis] = scale }
      default:
        throw ctx.error("attribute 'keep_aspect_ratio_policy' '\(policy)' is not supported")
      }
    } else {
      throw ctx.error("needs scales or sizes")
    }
    guard scales.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw ctx.error("scales \(scales) must be positive") }

    var roi = [Double]()
    if transform == "tf_crop_and_resize" {
      guard let values = try ctx.constantDoubles(1, "roi") else {
        throw ctx.error("coordinate_transformation_mode tf_crop_and_resize needs the roi input")
      }
      roi = values
    }
    axes = (0..<rank).map { axis in
      ResizeAxis(inputLength: input[axis], outputLength: output[axis], scale: scales[axis], transform: transform)
    }
    if !roi.isEmpty {
      let count = roi.count / 2
      guard roi.count % 2 == 0, count == rank || count == resized.count else {
        throw ctx.error("roi \(roi) must have 2 x \(resized.count) values")
      }
      let listed = count == rank ? Array(0..<rank) : resized
      for (i, axis) in listed.enumerated() {
        axes[axis].roiStart = roi[i]
        axes[axis].roiEnd = roi[i + count]
      }
    }
  }

  /// The nearest input index for output coordinate `x` of `axis`, clamped into the input.
  func nearestIndex(_ axis: ResizeAxis, _ x: Int) -> Int {
    let position = axis.original(x)
    var index: Double
    if position == position.rounded(.down) {
      index = position
    } else {
      let low = position.rounded(.down)
      let fraction = position - low
      switch nearestMode {
      case "round_prefer_floor": index = fraction <= 0.5 ? low : low + 1
      case "round_prefer_ceil": index = fraction < 0.5 ? low : low + 1
      case "floor": index = low
      case "ceil": index = low + 1
      default: index = axis.scale < 1 ? low + 1 : low  // "simple": opset 10 and Upsample
      }
    }
    return Int(Swift.min(Swift.max(index, 0), Double(axis.inputLength - 1)))
  }

  func value(_ ctx: LoweringContext, at coordinates: [Expr]) throws -> Expr {
    let inputType = try ctx.computeType(0)
    let outputType = ctx.outputComputeType()
    var inside: [Expr] = []
    // Per axis: either a fixed index expression or a float interpolation (i0, i1, w0, w1).
    var fixed: [Expr?] = []
    var interpolated: [[(index: Expr, weight: Expr)]?] = []
    let weightType: ValueType = inputType.isFloat ? inputType : .float32
    for (d, axis) in axes.enumerated() {
      let x = coordinates[d]
      if axis.isIdentity {
        fixed.append(x)
        interpolated.append(nil)
        continue
      }
      guard let range = axis.insideRange() else {
        throw ctx.error("internal: resize positions on axis \(d) are not monotone")
      }
      if range.isEmpty {
        return .constant(extrapolation, outputType)
      }
      if range != 0..<axis.outputLength {
        inside.append(.all([x.isAtLeast(range.lowerBound), x.isLess(than: range.upperBound)]))
      }
      let limit = Double(axis.inputLength - 1)
      if antialias && axis.scale < 1 {
        let (slope, intercept) = axis.affine
        let position = Expr.binary(
          .add, .binary(.multiply, .cast(x, weightType), .constant(slope, weightType)), .constant(intercept, weightType))
        fixed.append(nil)
        interpolated.append(antialiasTaps(position, axis: axis, weightType))
        continue
      }
      let exact = (0..<axis.outputLength).allSatisfy { x in
        let p = Swift.min(Swift.max(axis.original(x), 0), limit)
        // Cubic taps at an integer position outside the input would still weight the edge.
        return p == p.rounded(.down) && (!cubic || p == axis.original(x))
      }
      if !linear || exact || axis.inputLength == 1 {
        let targets = (0..<axis.outputLength).map {
          linear ? Int(Swift.min(Swift.max(axis.original($0), 0), limit)) : nearestIndex(axis, $0)
        }
        fixed.append(Self.indexExpression(x, targets: targets, axis: axis, nearestMode: linear ? "floor" : nearestMode))
        interpolated.append(nil)
        continue
      }
      let (slope, intercept) = axis.affine
      let position = Expr.binary(
        .add, .binary(.multiply, .cast(x, weightType), .constant(slope, weightType)), .constant(intercept, weightType))
      if cubic {
        fixed.append(nil)
        interpolated.append(cubicTaps(position, length: axis.inputLength, weightType))
        continue
      }
      let clampedPosition = Expr.binary(
        .minimum, .binary(.maximum, position, .constant(0, weightType)), .constant(limit, weightType))
      let floorPosition = Expr.unary(.floor, clampedPosition)
      let low = Expr.cast(floorPosition, .index).clamped(0, axis.inputLength - 1)
      let high = Expr.indexMin(low + 1, .index(axis.inputLength - 1))
      let highWeight = Expr.binary(.subtract, clampedPosition, floorPosition)
      let lowWeight = Expr.binary(.subtract, .constant(1, weightType), highWeight)
      fixed.append(nil)
      interpolated.append([(low, lowWeight), (high, highWeight)])
    }

    func corner(_ d: Int, _ chosen: [Expr]) throws -> Expr {
      if d == axes.count { return try ctx.element(0, at: chosen, as: linear ? weightType : inputType) }
      if let index = fixed[d] { return try corner(d + 1, chosen + [index]) }
      guard let taps = interpolated[d], !taps.isEmpty else {
        throw ctx.error("internal: resize axis \(d) has no mapping")
      }
      var sum: Expr?
      for tap in taps {
        let term = Expr.binary(.multiply, tap.weight, try corner(d + 1, chosen + [tap.index]))
        sum = sum.map { .binary(.add, $0, term) } ?? term
      }
      return sum ?? .constant(0, weightType)
    }
    var result = try corner(0, [])
    if linear && interpolated.contains(where: { $0 != nil }) && !outputType.isFloat {
      // Integer outputs round half to even and saturate, as the reference does.
      let dtype = ctx.outputType().dtype
      let rounded = Expr.unary(.round, result)
      let low = Expr.cast(TypeBounds.lowest(outputType, storage: dtype), weightType)
      let high = Expr.cast(TypeBounds.highest(outputType, storage: dtype), weightType)
      result = .cast(.binary(.minimum, .binary(.maximum, rounded, low), high), outputType)
    } else if linear {
      result = weightType == outputType ? result : .cast(result, outputType)
    }
    return inside.isEmpty ? result : .choose(.all(inside), result, .constant(extrapolation, outputType))
  }

  /// Downsampling with antialias: the linear (triangle) or cubic filter stretched by 1/scale, over
  /// the taps base + i for i in start..<start+n, where base = ceil(p) - 1 (the input index left of
  /// p, or p - 1 when p is whole) and the filter is taken at scale * (i - (p - base)). Weights are
  /// normalised to sum to 1; taps beyond the edge repeat it, or weigh 0 with exclude_outside.
  func antialiasTaps(_ position: Expr, axis: ResizeAxis, _ type: ValueType) -> [(index: Expr, weight: Expr)] {
    func c(_ value: Double) -> Expr { .constant(value, type) }
    func add(_ a: Expr, _ b: Expr) -> Expr { .binary(.add, a, b) }
    func sub(_ a: Expr, _ b: Expr) -> Expr { .binary(.subtract, a, b) }
    func mul(_ a: Expr, _ b: Expr) -> Expr { .binary(.multiply, a, b) }
    let scale = axis.scale
    let support = cubic ? 2.0 : 1.0
    let start = Int((-support / scale).rounded(.down)) + 1
    let count = 2 - 2 * start
    let baseFloat = sub(Expr.unary(.ceil, position), c(1))
    let ratio = sub(position, baseFloat)
    let base = Expr.cast(baseFloat, .index)
    let a = cubicA
    var weights: [Expr] = []
    var raw: [Expr] = []
    for i in start..<(start + count) {
      let s = Expr.unary(.abs, mul(c(scale), sub(c(Double(i)), ratio)))
      var weight: Expr
      if cubic {
        // |s| <= 1: (A + 2)|s|^3 - (A + 3)|s|^2 + 1; 1 < |s| < 2: A|s|^3 - 5A|s|^2 + 8A|s| - 4A; else 0.
        let inner = add(mul(sub(mul(c(a + 2), s), c(a + 3)), mul(s, s)), c(1))
        let outer = sub(mul(add(mul(sub(mul(c(a), s), c(5 * a)), s), c(8 * a)), s), c(4 * a))
        weight = .select(
          .binary(.lessEqual, s, c(1)), inner, .select(.binary(.less, s, c(2)), outer, c(0)))
      } else {
        weight = .binary(.maximum, sub(c(1), s), c(0))
      }
      let index = base + i
      if excludeOutside {
        weight = .select(.all([index.isAtLeast(0), index.isLess(than: axis.inputLength)]), weight, c(0))
      }
      weights.append(weight)
      raw.append(index)
    }
    let total = weights.dropFirst().reduce(weights[0]) { add($0, $1) }
    return zip(raw, weights).map { index, weight in (index.clamped(0, axis.inputLength - 1), .binary(.divide, weight, total)) }
  }

  /// The four cubic taps around `position` (not clamped): indices floor(p) - 1 ... floor(p) + 2
  /// clamped to the edge, weights the cubic convolution coefficients of the fraction; with
  /// exclude_outside, taps outside the input weigh 0 and the rest are renormalised.
  func cubicTaps(_ position: Expr, length: Int, _ type: ValueType) -> [(index: Expr, weight: Expr)] {
    func c(_ value: Double) -> Expr { .constant(value, type) }
    func add(_ a: Expr, _ b: Expr) -> Expr { .binary(.add, a, b) }
    func sub(_ a: Expr, _ b: Expr) -> Expr { .binary(.subtract, a, b) }
    func mul(_ a: Expr, _ b: Expr) -> Expr { .binary(.multiply, a, b) }
    let a = cubicA
    let floorPosition = Expr.unary(.floor, position)
    let t = sub(position, floorPosition)
    let u = sub(c(1), t)
    /// |s| in [1, 2): ((A s - 5A) s + 8A) s - 4A; |s| < 1: ((A + 2) s - (A + 3)) s^2 + 1.
    func outer(_ s: Expr) -> Expr { sub(mul(add(mul(sub(mul(c(a), s), c(5 * a)), s), c(8 * a)), s), c(4 * a)) }
    func inner(_ s: Expr) -> Expr { add(mul(sub(mul(c(a + 2), s), c(a + 3)), mul(s, s)), c(1)) }
    var weights = [outer(add(t, c(1))), inner(t), inner(u), outer(add(u, c(1)))]
    let base = Expr.cast(floorPosition, .index)
    let raw = (0..<4).map { base + ($0 - 1) }
    if excludeOutside {
      let inside = raw.map { Expr.all([$0.isAtLeast(0), $0.isLess(than: length)]) }
      weights = zip(weights, inside).map { weight, inside in .select(inside, weight, c(0)) }
      let total = weights.dropFirst().reduce(weights[0]) { add($0, $1) }
      weights = weights.map { .binary(.divide, $0, total) }
    }
    return zip(raw, weights).map { index, weight in (index.clamped(0, length - 1), weight) }
  }

  /// An index expression equal to `targets[x]` (each inside the input) for every output
  /// coordinate `x`: exact integer arithmetic when a small formula fits, else float arithmetic.
  /// Coordinates that a tf_crop_and_resize extrapolates still get in-bounds indices.
  static func indexExpression(_ x: Expr, targets: [Int], axis: ResizeAxis, nearestMode: String) -> Expr {
    let range = 0..<targets.count
    let length = axis.inputLength
    if length == 1 || Set(targets).count <= 1 { return .index(targets.first ?? 0) }
    if range.allSatisfy({ targets[$0] == $0 }) { return x }
    if let fit = fitFloor(targets: targets, range: range, length: length, slope: axis.affine.slope) {
      var result = (x * fit.a + fit.b).floorDivided(by: fit.d)
      let ends = [range.lowerBound, range.upperBound - 1].map {
        Int((Double(fit.a * $0 + fit.b) / Double(fit.d)).rounded(.down))
      }
      if (ends.min() ?? 0) < 0 { result = Expr.indexMax(result, .index(0)) }
      if (ends.max() ?? 0) > length - 1 { result = Expr.indexMin(result, .index(length - 1)) }
      return result
    }
    // Float fallback: position then rounding, in float32.
    let (slope, intercept) = axis.affine
    let position = Expr.binary(
      .add, .binary(.multiply, .cast(x, .float32), .constant(slope, .float32)), .constant(intercept, .float32))
    let rounded: Expr
    switch nearestMode {
    case "floor": rounded = .unary(.floor, position)
    case "ceil": rounded = .unary(.ceil, position)
    case "round_prefer_ceil": rounded = .unary(.floor, .binary(.add, position, .constant(0.5, .float32)))
    case "round_prefer_floor": rounded = .unary(.ceil, .binary(.subtract, position, .constant(0.5, .float32)))
    default: rounded = .unary(axis.scale < 1 ? .ceil : .floor, position)
    }
    return Expr.cast(rounded, .index).clamped(0, length - 1)
  }

  /// Searches integers a, b and d > 0 with clamp(floor((a*x + b) / d), 0, length - 1) ==
  /// targets[x] for every x in `range`, small enough that a*x + b fits 32 bits.
  static func fitFloor(targets: [Int], range: Range<Int>, length: Int, slope: Double) -> (a: Int, b: Int, d: Int)? {
    let count = range.count
    let maximumDenominator = Swift.max(64, Swift.min(4096, 2_000_000 / Swift.max(count, 1)))
    for d in 1...maximumDenominator {
      let center = slope * Double(d)
      guard center.isFinite, Swift.abs(center) < 1e9 else { return nil }
      let base = Int(center.rounded(.down))
      for a in [base, base + 1, base - 1] {
        var lower = Int.min
        var upper = Int.max
        for x in range {
          let t = targets[x]
          if t > 0 { lower = Swift.max(lower, d * t - a * x) }
          if t < length - 1 { upper = Swift.min(upper, d * t + d - 1 - a * x) }
          if lower > upper { break }
        }
        guard lower <= upper else { continue }
        let b = lower == Int.min ? (upper == Int.max ? 0 : upper) : lower
        let largest = Swift.abs(a) * Swift.max(range.upperBound, 1) + Swift.abs(b)
        if largest < Int(Int32.max) { return (a, b, d) }
      }
    }
    return nil
  }
}
