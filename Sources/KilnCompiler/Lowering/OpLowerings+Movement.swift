import KilnIR

// Movement ops: each output element is one input element at remapped coordinates. The remapping
// is index arithmetic on the output coordinates; data-dependent indices (Gather) are wrapped into
// range so that no load can read outside its tensor.

extension OpLowerings {
  static let movementOps = [
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile", "Slice", "Pad", "Concat", "Split",
    "Gather", "GatherElements", "GatherND", "DepthToSpace", "SpaceToDepth", "Resize", "Upsample", "Range",
  ]

  static func movementLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "Reshape", "Flatten", "Squeeze", "Unsqueeze": return reshape
    case "Transpose": return transpose
    case "Expand": return expand
    case "Tile": return tile
    case "Slice": return slice
    case "Pad": return pad
    case "Concat": return concat
    case "Split": return split
    case "Gather": return gather
    case "GatherElements": return gatherElements
    case "GatherND": return gatherND
    case "DepthToSpace": return depthToSpace
    case "SpaceToDepth": return spaceToDepth
    case "Resize", "Upsample": return try resize(node)
    case "Range": return range
    default: return nil
    }
  }

  // MARK: Reshape family

  /// Reshape, Flatten, Squeeze, Unsqueeze: the same row-major elements under another shape.
  static let reshape = OpLowering(.movement) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    let output = ctx.outputShape()
    guard input.reduce(1, *) == output.reduce(1, *) else {
      throw ctx.error("cannot view \(input) as \(output): element counts differ")
    }
    return try ctx.element(0, at: reshapeCoordinates(coordinates, from: output, to: input))
  }

  /// Input coordinates of the element at `coordinates` of a tensor of shape `output` viewed as
  /// `input` (equal element counts). Runs of axes whose products match are mapped group by group,
  /// so axes that only move through unit dimensions keep their coordinate.
  static func reshapeCoordinates(_ coordinates: [Expr], from output: [Int], to input: [Int]) -> [Expr] {
    var result = [Expr](repeating: .index(0), count: input.count)
    if output.contains(0) || input.contains(0) { return result }
    let outAxes = output.indices.filter { output[$0] != 1 }
    let inAxes = input.indices.filter { input[$0] != 1 }
    var a = 0
    var b = 0
    while a < outAxes.count && b < inAxes.count {
      var endA = a + 1
      var endB = b + 1
      var productA = output[outAxes[a]]
      var productB = input[inAxes[b]]
      while productA != productB {
        if productA < productB {
          guard endA < outAxes.count else { break }
          productA *= output[outAxes[endA]]
          endA += 1
        } else {
          guard endB < inAxes.count else { break }
          productB *= input[inAxes[endB]]
          endB += 1
        }
      }
      let groupOut = Array(outAxes[a..<endA])
      let groupIn = Array(inAxes[b..<endB])
      if groupOut.count == 1 && groupIn.count == 1 {
        result[groupIn[0]] = coordinates[groupOut[0]]
      } else {
        let linear = Expr.linearIndex(groupOut.map { coordinates[$0] }, shape: groupOut.map { output[$0] })
        let mapped = Expr.coordinates(ofLinear: linear, shape: groupIn.map { input[$0] })
        for (axis, value) in zip(groupIn, mapped) { result[axis] = value }
      }
      a = endA
      b = endB
    }
    return result
  }

  static let transpose = OpLowering(.movement) { ctx, _, coordinates in
    let rank = try ctx.shape(0).count
    let perm = try ctx.intsAttribute("perm") ?? Array((0..<rank).reversed())
    guard perm.count == rank, Set(perm) == Set(0..<rank) else {
      throw ctx.error("attribute 'perm' \(perm) is not a permutation of 0..<\(rank)")
    }
    var input = [Expr](repeating: .index(0), count: rank)
    for (axis, source) in perm.enumerated() { input[source] = coordinates[axis] }
    return try ctx.element(0, at: input)
  }

  static let expand = OpLowering(.movement) { ctx, _, coordinates in
    try ctx.broadcastElement(0, at: coordinates)
  }

  static let tile = OpLowering(.movement) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    guard input.count == coordinates.count else { throw ctx.error("repeats must have one value per input axis") }
    let mapped = input.enumerated().map { axis, extent in
      extent == ctx.outputShape()[axis] ? coordinates[axis] : coordinates[axis].modulo(Swift.max(extent, 1))
    }
    return try ctx.element(0, at: mapped)
  }

  // MARK: Slice

  /// Per-axis first element and step of a Slice over every axis of its input.
  struct SliceGeometry {
    var starts: [Int]
    var steps: [Int]
    var shape: [Int]
  }

  static func sliceGeometry(_ ctx: LoweringContext) throws -> SliceGeometry {
    let input = try ctx.shape(0)
    let starts: [Int]
    let ends: [Int]
    var axes: [Int]?
    var steps: [Int]?
    if ctx.opset < 10 {
      guard let s = try ctx.intsAttribute("starts"), let e = try ctx.intsAttribute("ends") else {
        throw ctx.error("attributes 'starts' and 'ends' are required before opset 10")
      }
      starts = s
      ends = e
      axes = try ctx.intsAttribute("axes")
    } else {
      starts = try ctx.constantInts(1, "starts") ?? []
      ends = try ctx.constantInts(2, "ends") ?? []
      axes = try ctx.constantInts(3, "axes")
      steps = try ctx.constantInts(4, "steps")
    }
    let axisList = try ctx.normalizedAxes(axes ?? Array(0..<starts.count), rank: input.count)
    let stepList = steps ?? Array(repeating: 1, count: starts.count)
    guard ends.count == starts.count, axisList.count == starts.count, stepList.count == starts.count else {
      throw ctx.error(
        "starts \(starts), ends \(ends), axes \(axes ?? []) and steps \(stepList) must have equal lengths")
    }
    var geometry = SliceGeometry(
      starts: Array(repeating: 0, count: input.count), steps: Array(repeating: 1, count: input.count), shape: input)
    for (i, axis) in axisList.enumerated() {
      let dim = input[axis]
      let step = stepList[i]
      guard step != 0 else { throw ctx.error("step on axis \(axis) is 0") }
      var start = starts[i]
      var end = ends[i]
      if start < 0 { start = start &+ dim }
      if end < 0 { end = end &+ dim }
      let count: Int
      if step > 0 {
        start = Swift.min(Swift.max(start, 0), dim)
        end = Swift.min(Swift.max(end, 0), dim)
        count = end > start ? (end - start - 1) / step + 1 : 0
      } else {
        start = Swift.min(Swift.max(start, 0), dim - 1)
        end = Swift.min(Swift.max(end, -1), dim - 1)
        let magnitude = step == .min ? Int.max : -step
        count = start > end ? (start - end - 1) / magnitude + 1 : 0
      }
      geometry.starts[axis] = count > 0 ? start : 0
      geometry.steps[axis] = step
      geometry.shape[axis] = count
    }
    return geometry
  }

  static let slice = OpLowering(.movement) { ctx, _, coordinates in
    let geometry = try sliceGeometry(ctx)
    guard geometry.shape == ctx.outputShape() else {
      throw ctx.error("slice geometry gives shape \(geometry.shape) but the output is \(ctx.outputShape())")
    }
    let mapped = coordinates.enumerated().map { axis, c in c * geometry.steps[axis] + geometry.starts[axis] }
    return try ctx.element(0, at: mapped)
  }

  // MARK: Pad

  /// Pad in every opset form: `paddings`/`value` attributes (opset 1), `pads`/`value`
  /// attributes (2-10), `pads`/`constant_value`/`axes` inputs (11+, axes from 18). Negative
  /// pads crop first; the mode then pads the cropped tensor.
  static let pad = OpLowering(.movement) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    let rank = input.count
    let type = try ctx.computeType(0)
    let mode = try ctx.stringAttribute("mode", default: "constant")
    guard ["constant", "reflect", "edge", "wrap"].contains(mode) else {
      throw ctx.error("attribute 'mode' '\(mode)' is not supported (constant, reflect, edge, wrap)")
    }
    var axes = Array(0..<rank)
    var pads: [Int]
    var value: Expr
    if ctx.opset < 11 {
      guard let attribute = try ctx.intsAttribute("pads") ?? ctx.intsAttribute("paddings") else {
        throw ctx.error("attribute 'pads' is required before opset 11")
      }
      pads = attribute
      value = .constant(try ctx.floatAttribute("value", default: 0), type)
    } else {
      pads = try ctx.constantInts(1, "pads") ?? []
      let hasValue = try ctx.hasInput(2) && ctx.shape(2).reduce(1, *) == 1
      value = hasValue ? try ctx.scalarOperand(2, as: type) : .constant(0, type)
      if let rawAxes = try ctx.constantInts(3, "axes") { axes = try ctx.normalizedAxes(rawAxes, rank: rank) }
    }
    guard pads.count == 2 * axes.count else {
      throw ctx.error("pads \(pads) must have \(2 * axes.count) values")
    }
    var begin = Array(repeating: 0, count: rank)
    var end = Array(repeating: 0, count: rank)
    for (i, axis) in axes.enumerated() {
      begin[axis] = pads[i]
      end[axis] = pads[i + axes.count]
    }
    var mapped: [Expr] = []
    var inside: [Expr] = []
    for axis in 0..<rank {
      // Crop (negative pads) first, then pad the cropped extent.
      let cropBegin = Swift.max(-begin[axis], 0)
      let cropEnd = Swift.max(-end[axis], 0)
      let padBegin = Swift.max(begin[axis], 0)
      let extent = input[axis] - cropBegin - cropEnd
      guard extent >= 0 else { throw ctx.error("pads \(pads) crop axis \(axis) of \(input) below zero") }
      let position = coordinates[axis] - padBegin
      if padBegin == 0 && Swift.max(end[axis], 0) == 0 {
        mapped.append(position + cropBegin)
        continue
      }
      if extent == 0 {
        // Nothing to read: only the constant mode can fill it.
        guard mode == "constant" else { throw ctx.error("mode '\(mode)' cannot pad the empty axis \(axis)") }
        inside.append(.falseValue)
        mapped.append(.index(0))
        continue
      }
      let local: Expr
      switch mode {
      case "constant":
        inside.append(.all([position.isAtLeast(0), position.isLess(than: extent)]))
        local = position.clamped(0, extent - 1)
      case "edge":
        local = position.clamped(0, extent - 1)
      case "wrap":
        local = position.modulo(extent)
      default:  // reflect
        if extent == 1 {
          local = .index(0)
        } else {
          let period = 2 * (extent - 1)
          let phase = position.modulo(period)
          local = .choose(phase.isLess(than: extent), phase, Expr.index(period) - phase)
        }
      }
      mapped.append(local + cropBegin)
    }
    let element = try ctx.element(0, at: mapped)
    return inside.isEmpty ? element : .choose(.all(inside), element, value)
  }

  // MARK: Concat and Split

  /// Concat: a select chain over the inputs by the coordinate on `axis`; every branch's
  /// coordinate is clamped into its input so that no branch can read out of bounds.
  static let concat = OpLowering(.movement) { ctx, _, coordinates in
    let rank = ctx.outputShape().count
    guard let rawAxis = try ctx.intAttribute("axis") ?? (ctx.opset < 4 ? 1 : nil) else {
      throw ctx.error("attribute 'axis' is required from opset 4 on")
    }
    let axis = try ctx.normalizedAxis(rawAxis, rank: rank)
    var pieces: [(offset: Int, size: Int, input: Int)] = []
    var offset = 0
    for i in 0..<ctx.inputCount where ctx.hasInput(i) {
      let size = try ctx.shape(i)[axis]
      if size > 0 { pieces.append((offset, size, i)) }
      offset += size
    }
    guard let last = pieces.last else { throw ctx.error("all inputs are empty") }
    func piece(_ p: (offset: Int, size: Int, input: Int)) throws -> Expr {
      var mapped = coordinates
      mapped[axis] = (coordinates[axis] - p.offset).clamped(0, p.size - 1)
      return try ctx.element(p.input, at: mapped)
    }
    var result = try piece(last)
    for p in pieces.dropLast().reversed() {
      result = .choose(coordinates[axis].isLess(than: p.offset + p.size), try piece(p), result)
    }
    return result
  }

  /// Split: output `o` is the slice of the input on `axis` that follows the earlier outputs.
  static let split = OpLowering(.movement) { ctx, output, coordinates in
    let rank = try ctx.shape(0).count
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: 0), rank: rank)
    let offset = (0..<output).reduce(0) { $0 + ctx.outputShape($1)[axis] }
    var mapped = coordinates
    mapped[axis] = coordinates[axis] + offset
    return try ctx.element(0, at: mapped)
  }

  // MARK: Gathers

  /// A data-dependent index into an axis of `extent`: negative values count from the end;
  /// the non-negative remainder also keeps invalid indices inside the tensor.
  static func wrappedIndex(_ value: Expr, extent: Int) -> Expr {
    Expr.cast(value, .index).modulo(Swift.max(extent, 1))
  }

  static let gather = OpLowering(.movement) { ctx, _, coordinates in
    let data = try ctx.shape(0)
    let indices = try ctx.shape(1)
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: 0), rank: data.count)
    let index = try ctx.element(1, at: Array(coordinates[axis..<(axis + indices.count)]))
    let mapped =
      Array(coordinates[..<axis]) + [wrappedIndex(index, extent: data[axis])]
      + Array(coordinates[(axis + indices.count)...])
    return try ctx.element(0, at: mapped)
  }

  static let gatherElements = OpLowering(.movement) { ctx, _, coordinates in
    let data = try ctx.shape(0)
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: 0), rank: data.count)
    var mapped = coordinates
    mapped[axis] = wrappedIndex(try ctx.element(1, at: coordinates), extent: data[axis])
    return try ctx.element(0, at: mapped)
  }

  /// GatherND: the last axis of `indices` holds coordinates into data's axes after `batch_dims`.
  static let gatherND = OpLowering(.movement) { ctx, _, coordinates in
    let data = try ctx.shape(0)
    let indices = try ctx.shape(1)
    let batch = try ctx.intAttribute("batch_dims", default: 0)
    guard let depth = indices.last, batch >= 0, batch < indices.count, batch + depth <= data.count else {
      throw ctx.error("indices shape \(indices) with batch_dims \(batch) does not fit data shape \(data)")
    }
    let outer = Array(coordinates[..<(indices.count - 1)])
    var mapped = Array(coordinates[..<batch])
    for j in 0..<depth {
      mapped.append(wrappedIndex(try ctx.element(1, at: outer + [.index(j)]), extent: data[batch + j]))
    }
    mapped += coordinates[(indices.count - 1)...]
    return try ctx.element(0, at: mapped)
  }

  // MARK: Depth and space

  /// DepthToSpace (DCR default, or CRD): out[n, c, h*b + i, w*b + j] = in[n, channel, h, w].
  static let depthToSpace = OpLowering(.movement) { ctx, _, coordinates in
    let b = try ctx.intAttribute("blocksize") ?? 0
    guard b > 0, coordinates.count == 4 else { throw ctx.error("needs a 4-D input and a positive blocksize, got \(b)") }
    let mode = try ctx.stringAttribute("mode", default: "DCR")
    let channels = ctx.outputShape()[1]
    let i = coordinates[2].modulo(b)
    let j = coordinates[3].modulo(b)
    let channel: Expr
    switch mode {
    case "DCR": channel = (i * b + j) * channels + coordinates[1]
    case "CRD": channel = coordinates[1] * (b * b) + i * b + j
    default: throw ctx.error("attribute 'mode' must be DCR or CRD, got '\(mode)'")
    }
    return try ctx.element(
      0, at: [coordinates[0], channel, coordinates[2].floorDivided(by: b), coordinates[3].floorDivided(by: b)])
  }

  /// SpaceToDepth: out[n, (i*b + j)*C + c, h, w] = in[n, c, h*b + i, w*b + j].
  static let spaceToDepth = OpLowering(.movement) { ctx, _, coordinates in
    let b = try ctx.intAttribute("blocksize") ?? 0
    guard b > 0, coordinates.count == 4 else { throw ctx.error("needs a 4-D input and a positive blocksize, got \(b)") }
    let channels = try ctx.shape(0)[1]
    let c = coordinates[1].modulo(channels)
    let block = coordinates[1].floorDivided(by: channels)
    let i = block.floorDivided(by: b)
    let j = block.modulo(b)
    return try ctx.element(0, at: [coordinates[0], c, coordinates[2] * b + i, coordinates[3] * b + j])
  }

  /// Range: start + i * delta (the importer folds constant ranges; this covers run-time
  /// start/delta with a static count).
  static let range = OpLowering(.elementwise) { ctx, _, coordinates in
    let type = ctx.outputComputeType()
    let start = try ctx.scalarElement(0, as: type)
    let delta = try ctx.scalarElement(2, as: type)
    return .binary(.add, start, .binary(.multiply, .cast(coordinates[0], type), delta))
  }
}
