import KilnIR

// Conv, ConvTranspose and the pools. A tap that falls in the padding reads its input at a
// clamped (in-bounds) position and is masked by a select, so no load ever leaves its tensor.

/// Sliding-window geometry over the spatial axes (axis 2 on) of a Conv or pool.
struct WindowGeometry {
  var kernel: [Int]
  var strides: [Int]
  var dilations: [Int]
  var padBegin: [Int]
  var padEnd: [Int]
  var input: [Int]
  var output: [Int]

  /// Reads strides, dilations, pads and auto_pad for spatial `input` and `output` extents.
  init(_ ctx: LoweringContext, kernel: [Int], input: [Int], output: [Int], dilationsAllowed: Bool = true) throws {
    let n = kernel.count
    self.kernel = kernel
    self.input = input
    self.output = output
    strides = try ctx.intsAttribute("strides") ?? Array(repeating: 1, count: n)
    dilations =
      dilationsAllowed
      ? try ctx.intsAttribute("dilations") ?? Array(repeating: 1, count: n) : Array(repeating: 1, count: n)
    guard input.count == n, output.count == n else {
      throw ctx.error("kernel \(kernel) does not match the spatial input \(input) and output \(output)")
    }
    guard strides.count == n, strides.allSatisfy({ $0 > 0 }) else {
      throw ctx.error("attribute 'strides' \(strides) must be \(n) positive values")
    }
    guard dilations.count == n, dilations.allSatisfy({ $0 > 0 }) else {
      throw ctx.error("attribute 'dilations' \(dilations) must be \(n) positive values")
    }
    let autoPad = try ctx.stringAttribute("auto_pad", default: "NOTSET")
    switch autoPad {
    case "NOTSET", "":
      let pads = try ctx.intsAttribute("pads") ?? Array(repeating: 0, count: 2 * n)
      guard pads.count == 2 * n else { throw ctx.error("attribute 'pads' \(pads) must have \(2 * n) values") }
      padBegin = Array(pads[..<n])
      padEnd = Array(pads[n...])
    case "VALID":
      padBegin = Array(repeating: 0, count: n)
      padEnd = padBegin
    case "SAME_UPPER", "SAME_LOWER":
      var begin: [Int] = []
      var end: [Int] = []
      for i in 0..<n {
        let total = Swift.max(0, (output[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i])
        let head = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2
        begin.append(head)
        end.append(total - head)
      }
      padBegin = begin
      padEnd = end
    default:
      throw ctx.error("attribute 'auto_pad' '\(autoPad)' is not supported (NOTSET, SAME_UPPER, SAME_LOWER, VALID)")
    }
  }

  /// The input position read by output position `o` and tap `k` on spatial axis `i`.
  func position(_ i: Int, output o: Expr, tap k: Expr) -> Expr {
    o * strides[i] + k * dilations[i] - padBegin[i]
  }

  /// Whether some output position and tap on axis `i` falls outside the input.
  func leavesInput(_ i: Int) -> Bool {
    padBegin[i] > 0 || (output[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] - padBegin[i] > input[i] - 1
  }

  /// One reduction variable per spatial axis whose kernel is longer than one.
  func taps(_ ctx: LoweringContext) -> (taps: [Expr], variables: [(variable: Int, extent: Int)]) {
    var taps: [Expr] = []
    var variables: [(variable: Int, extent: Int)] = []
    for extent in kernel {
      if extent == 1 {
        taps.append(.index(0))
      } else {
        let variable = ctx.freshVariable()
        variables.append((variable, extent))
        taps.append(.variable(variable))
      }
    }
    return (taps, variables)
  }

  /// Clamped input positions and the in-bounds condition for output `spatial` and `taps`.
  func window(output spatial: [Expr], taps: [Expr]) -> (positions: [Expr], inside: Expr) {
    var positions: [Expr] = []
    var conditions: [Expr] = []
    for i in kernel.indices {
      let p = position(i, output: spatial[i], tap: taps[i])
      if leavesInput(i) {
        conditions.append(.all([p.isAtLeast(0), p.isLess(than: input[i])]))
        positions.append(p.clamped(0, input[i] - 1))
      } else {
        positions.append(p)
      }
    }
    return (positions, .all(conditions))
  }
}

extension OpLowerings {
  // MARK: Conv

  /// Conv: out[n, m, o] = B[m] + sum over the group's channels c and taps k of
  /// X[n, g*C/group + c, o*s + k*d - pad] * W[m, c, k].
  static let conv = OpLowering(.reduction, region: .contraction) { ctx, _, coordinates in
    let x = try ctx.shape(0)
    let w = try ctx.shape(1)
    let type = ctx.outputComputeType()
    guard x.count >= 3, w.count == x.count else {
      throw ctx.error("input \(x) and weight \(w) must have equal rank 3 or more")
    }
    let group = try ctx.intAttribute("group", default: 1)
    let filters = w[0]
    let channelsPerGroup = w[1]
    guard group >= 1, filters % group == 0, channelsPerGroup * group == x[1] else {
      throw ctx.error("group \(group) does not fit input channels \(x[1]) and weight shape \(w)")
    }
    let kernel = Array(w[2...])
    if let declared = try ctx.intsAttribute("kernel_shape"), declared != kernel {
      throw ctx.error("attribute 'kernel_shape' \(declared) does not match weight shape \(w)")
    }
    let geometry = try WindowGeometry(
      ctx, kernel: kernel, input: Array(x[2...]), output: Array(ctx.outputShape()[2...]))
    let m = coordinates[1]
    let groupIndex = group == 1 ? Expr.index(0) : m.floorDivided(by: filters / group)
    var variables: [(variable: Int, extent: Int)] = []
    let channel = channelWithinGroup(ctx, channelsPerGroup: channelsPerGroup, variables: &variables)
    let (taps, tapVariables) = geometry.taps(ctx)
    variables += tapVariables
    let (positions, inside) = geometry.window(output: Array(coordinates[2...]), taps: taps)
    let input = try ctx.element(0, at: [coordinates[0], groupIndex * channelsPerGroup + channel] + positions, as: type)
    let weight = try ctx.element(1, at: [m, channel] + taps, as: type)
    var result = ctx.sumOfProducts(over: variables, factors: [input, weight], conditions: [inside], type: type)
    if ctx.hasInput(2) {
      result = .binary(.add, result, try ctx.element(2, at: [m], as: type))
    }
    return result
  }

  /// ConvTranspose as a gather: out[n, m, o] = B[m] + sum over the group's input channels c and
  /// taps k with o = i*s + k*d - pad for an input position i of X[n, c, i] * W[c, m', k].
  static let convTranspose = OpLowering(.reduction, region: .contraction) { ctx, _, coordinates in
    let x = try ctx.shape(0)
    let w = try ctx.shape(1)
    let type = ctx.outputComputeType()
    guard x.count >= 3, w.count == x.count else {
      throw ctx.error("input \(x) and weight \(w) must have equal rank 3 or more")
    }
    let n = x.count - 2
    let group = try ctx.intAttribute("group", default: 1)
    guard group >= 1, w[0] == x[1], x[1] % group == 0 else {
      throw ctx.error("group \(group) does not fit input channels \(x[1]) and weight shape \(w)")
    }
    let channelsPerGroup = x[1] / group
    let filtersPerGroup = w[1]
    let kernel = Array(w[2...])
    let input = Array(x[2...])
    let output = Array(ctx.outputShape()[2...])
    let strides = try ctx.intsAttribute("strides") ?? Array(repeating: 1, count: n)
    let dilations = try ctx.intsAttribute("dilations") ?? Array(repeating: 1, count: n)
    let outputPadding = try ctx.intsAttribute("output_padding") ?? Array(repeating: 0, count: n)
    guard strides.count == n, dilations.count == n, outputPadding.count == n,
      strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 })
    else {
      throw ctx.error(
        "strides \(strides), dilations \(dilations) and output_padding \(outputPadding) must have \(n) values")
    }
    let autoPad = try ctx.stringAttribute("auto_pad", default: "NOTSET")
    // As the ONNX reference: explicit pads win; SAME_* derives them from the output size
    // (floor halves, the odd one at the end for SAME_UPPER); otherwise there is no begin pad
    // and an output_shape larger than the natural one extends the end.
    var padBegin: [Int]
    if let pads = try ctx.intsAttribute("pads"), autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER" {
      guard pads.count == 2 * n else { throw ctx.error("attribute 'pads' \(pads) must have \(2 * n) values") }
      padBegin = Array(pads[..<n])
    } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
      padBegin = (0..<n).map { i in
        let total = strides[i] * (input[i] - 1) + outputPadding[i] + (kernel[i] - 1) * dilations[i] + 1 - output[i]
        let half = Int((Double(total) / 2).rounded(.down))
        return autoPad == "SAME_UPPER" ? half : total - half
      }
    } else {
      padBegin = Array(repeating: 0, count: n)
    }

    let m = coordinates[1]
    let groupIndex = group == 1 ? Expr.index(0) : m.floorDivided(by: filtersPerGroup)
    let filter = group == 1 ? m : m.modulo(filtersPerGroup)
    var variables: [(variable: Int, extent: Int)] = []
    let channel = channelWithinGroup(ctx, channelsPerGroup: channelsPerGroup, variables: &variables)
    var positions: [Expr] = []
    var taps: [Expr] = []
    var conditions: [Expr] = []
    for i in 0..<n {
      let target = coordinates[2 + i] + padBegin[i]
      let (s, d, k) = (strides[i], dilations[i], kernel[i])
      if d == 1 && s > 1 {
        // Only taps congruent to the target modulo the stride hit it: k = r + j*s.
        let residue = target.modulo(s)
        let steps = (k + s - 1) / s
        let j: Expr
        if steps == 1 {
          j = .index(0)
        } else {
          let variable = ctx.freshVariable()
          variables.append((variable, steps))
          j = .variable(variable)
        }
        let tap = residue + j * s
        let position = target.floorDivided(by: s) - j
        conditions.append(.all([tap.isLess(than: k), position.isAtLeast(0), position.isLess(than: input[i])]))
        taps.append(tap.clamped(0, k - 1))
        positions.append(position.clamped(0, input[i] - 1))
      } else {
        let tap: Expr
        if k == 1 {
          tap = .index(0)
        } else {
          let variable = ctx.freshVariable()
          variables.append((variable, k))
          tap = .variable(variable)
        }
        let offset = target - tap * d
        let position = offset.floorDivided(by: s)
        var condition = [position.isAtLeast(0), position.isLess(than: input[i])]
        if s > 1 { condition.append(.binary(.equal, offset.modulo(s), .index(0))) }
        conditions.append(.all(condition))
        taps.append(tap)
        positions.append(position.clamped(0, input[i] - 1))
      }
    }
    let inputChannel = groupIndex * channelsPerGroup + channel
    let value = try ctx.element(0, at: [coordinates[0], inputChannel] + positions, as: type)
    let weight = try ctx.element(1, at: [inputChannel, filter] + taps, as: type)
    var result = ctx.sumOfProducts(over: variables, factors: [value, weight], conditions: [.all(conditions)], type: type)
    if ctx.hasInput(2) {
      result = .binary(.add, result, try ctx.element(2, at: [m], as: type))
    }
    return result
  }

  // MARK: Pools

  static func poolGeometry(_ ctx: LoweringContext, dilationsAllowed: Bool = true) throws -> WindowGeometry {
    let x = try ctx.shape(0)
    guard x.count >= 3 else { throw ctx.error("input must have rank 3 or more, got \(x)") }
    guard let kernel = try ctx.intsAttribute("kernel_shape"), kernel.count == x.count - 2, kernel.allSatisfy({ $0 > 0 })
    else {
      throw ctx.error("attribute 'kernel_shape' must have \(x.count - 2) positive values")
    }
    return try WindowGeometry(
      ctx, kernel: kernel, input: Array(x[2...]), output: Array(ctx.outputShape()[2...]),
      dilationsAllowed: dilationsAllowed)
  }

  /// MaxPool: the maximum over the window, padding never chosen. Output 1 (Indices) is the
  /// flat input index of the first maximum (row-major, or column-major over the spatial axes
  /// with storage_order 1).
  static let maxPool = OpLowering(.reduction, region: .window) { ctx, output, coordinates in
    let geometry = try poolGeometry(ctx)
    let type = try ctx.computeType(0)
    let lowest = TypeBounds.lowest(type, storage: try ctx.dtype(0))
    let spatial = Array(coordinates[2...])
    if output == 0 {
      let (taps, variables) = geometry.taps(ctx)
      let (positions, inside) = geometry.window(output: spatial, taps: taps)
      let x = try ctx.element(0, at: Array(coordinates[..<2]) + positions)
      return ctx.windowMaximum(over: variables, element: x, conditions: [inside], lowest: lowest)
    }
    // Indices: one variable over the flattened window, then the winner's input position.
    let storageOrder = try ctx.intAttribute("storage_order", default: 0)
    let windowSize = geometry.kernel.reduce(1, *)
    let variable = ctx.freshVariable()
    let taps = Expr.coordinates(ofLinear: .variable(variable), shape: geometry.kernel)
    let (positions, inside) = geometry.window(output: spatial, taps: taps)
    let x = try ctx.element(0, at: Array(coordinates[..<2]) + positions)
    let best = Expr.reduce(
      .argmax(selectLast: false), variable: variable, extent: windowSize, body: .choose(inside, x, lowest))
    let winner = geometry.window(output: spatial, taps: Expr.coordinates(ofLinear: best, shape: geometry.kernel))
      .positions
    let channels = try ctx.shape(0)[1]
    let plane = geometry.input.reduce(1, *)
    let offset = (coordinates[0] * channels + coordinates[1]) * plane
    let within =
      storageOrder == 0
      ? Expr.linearIndex(winner, shape: geometry.input)
      : Expr.linearIndex(winner.reversed(), shape: geometry.input.reversed())
    return .cast(offset + within, ctx.outputComputeType(1))
  }

  /// AveragePool: the window sum divided by the number of taps inside the input (or, with
  /// count_include_pad, inside the padded input; ceil_mode windows are clipped at its end).
  static let averagePool = OpLowering(.reduction, region: .window) { ctx, _, coordinates in
    let geometry = try poolGeometry(ctx)
    let type = try ctx.computeType(0)
    let includePad = try ctx.intAttribute("count_include_pad", default: 0) != 0
    let spatial = Array(coordinates[2...])
    let (taps, variables) = geometry.taps(ctx)
    let (positions, inside) = geometry.window(output: spatial, taps: taps)
    let x = try ctx.element(0, at: Array(coordinates[..<2]) + positions)
    let sum = ctx.sumOfProducts(over: variables, factors: [x], conditions: [inside], type: type)
    var count = Expr.index(1)
    for i in geometry.kernel.indices {
      let (k, s, d) = (geometry.kernel[i], geometry.strides[i], geometry.dilations[i])
      let start = spatial[i] * s - geometry.padBegin[i]
      let axisCount: Expr
      if includePad {
        let limit = geometry.input[i] + geometry.padEnd[i]
        if (geometry.output[i] - 1) * s + (k - 1) * d - geometry.padBegin[i] <= limit - 1 {
          axisCount = .index(k)
        } else {
          // Taps k with start + k*d < limit.
          axisCount = Expr.indexMin(.index(k - 1), (Expr.index(limit - 1) - start).floorDivided(by: d)) + 1
        }
      } else if !geometry.leavesInput(i) {
        axisCount = .index(k)
      } else {
        // Taps k with 0 <= start + k*d < input.
        let first = Expr.indexMax(.index(0), (Expr.index(0) - start).ceilDivided(by: d))
        let last = Expr.indexMin(.index(k - 1), (Expr.index(geometry.input[i] - 1) - start).floorDivided(by: d))
        axisCount = Expr.indexMax(last - first + 1, .index(1))
      }
      count = count * axisCount
    }
    return .binary(.divide, sum, .cast(count, type))
  }

  /// LpPool: (sum over the window of |x|^p)^(1/p), padding contributing zero.
  static let lpPool = OpLowering(.reduction, region: .window) { ctx, _, coordinates in
    let geometry = try poolGeometry(ctx)
    let type = try ctx.computeType(0)
    let p = try ctx.floatAttribute("p", default: 2)
    let (taps, variables) = geometry.taps(ctx)
    let (positions, inside) = geometry.window(output: Array(coordinates[2...]), taps: taps)
    let x = try ctx.element(0, at: Array(coordinates[..<2]) + positions)
    return lpNorm(ctx.sumOfProducts(over: variables, factors: [lpTerm(x, p: p, type)], conditions: [inside], type: type), p: p, type)
  }

  static func lpTerm(_ x: Expr, p: Double, _ type: ValueType) -> Expr {
    switch p {
    case 1: return .unary(.abs, x)
    case 2: return .binary(.multiply, x, x)
    default: return .binary(.power, .unary(.abs, x), .constant(p, type))
    }
  }

  static func lpNorm(_ sum: Expr, p: Double, _ type: ValueType) -> Expr {
    switch p {
    case 1: return sum
    case 2: return .unary(.sqrt, sum)
    default: return .binary(.power, sum, .constant(1 / p, type))
    }
  }

  /// GlobalAveragePool, GlobalMaxPool, GlobalLpPool: a reduction over every spatial axis.
  static func globalPool(_ op: String) -> OpLowering {
    OpLowering(.reduction, region: .window) { ctx, _, coordinates in
      let x = try ctx.shape(0)
      guard x.count >= 3 else { throw ctx.error("input must have rank 3 or more, got \(x)") }
      let type = try ctx.computeType(0)
      let (mapped, variables) = foldedCoordinates(ctx, coordinates, input: x, axes: Set(2..<x.count), keepDims: true)
      let value = try ctx.element(0, at: mapped)
      switch op {
      case "GlobalMaxPool":
        return ctx.windowMaximum(over: variables, element: value, conditions: [], lowest: value)
      case "GlobalLpPool":
        let p = try ctx.floatAttribute("p", default: 2)
        return lpNorm(ctx.sumOfProducts(over: variables, factors: [lpTerm(value, p: p, type)], type: type), p: p, type)
      default:
        let count = x[2...].reduce(1, *)
        return .binary(.divide, ctx.sumOfProducts(over: variables, factors: [value], type: type), .constant(Double(count), type))
      }
    }
  }
}

extension OpLowerings {
  /// The input channel within a group: a fresh reduction variable over `channelsPerGroup`
  /// (appended to `variables`), or 0 when each group has one channel.
  static func channelWithinGroup(
    _ ctx: LoweringContext, channelsPerGroup: Int, variables: inout [(variable: Int, extent: Int)]
  ) -> Expr {
    guard channelsPerGroup != 1 else { return .index(0) }
    let variable = ctx.freshVariable()
    variables.append((variable, channelsPerGroup))
    return .variable(variable)
  }
}
