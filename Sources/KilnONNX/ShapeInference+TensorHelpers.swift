import KilnIR

// The shape rules of the data-movement operators (ShapeInference+Tensor.swift), which folding
// uses too: Slice geometry, Reshape's shape, Split's sizes, Einsum's, Resize's, Range's count.

/// Per-axis start, step and length of a Slice over every dimension of its input.
struct SliceGeometry {
  var starts: [Int]
  var steps: [Int]
  var shape: [Int]

  init(input: [Int], starts rawStarts: [Int], ends rawEnds: [Int], axes rawAxes: [Int]?, steps rawSteps: [Int]?) throws
  {
    let rank = input.count
    let axes = try Shapes.axes(rawAxes ?? Array(0..<rawStarts.count), rank: rank)
    let steps = rawSteps ?? Array(repeating: 1, count: rawStarts.count)
    guard rawEnds.count == rawStarts.count, axes.count == rawStarts.count, steps.count == rawStarts.count else {
      throw ONNXImportError.attribute(
        "starts \(rawStarts), ends \(rawEnds), axes \(rawAxes ?? []) and steps \(rawSteps ?? []) "
          + "must have equal lengths")
    }
    self.starts = Array(repeating: 0, count: rank)
    self.steps = Array(repeating: 1, count: rank)
    self.shape = input
    for (i, axis) in axes.enumerated() {
      let dim = input[axis]
      let step = steps[i]
      guard step != 0 else { throw ONNXImportError.attribute("Slice step on axis \(axis) is 0") }
      var start = rawStarts[i]
      var end = rawEnds[i]
      if start < 0 { start += dim }
      if end < 0 { end += dim }
      let count: Int
      if step > 0 {
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        count = end > start ? (end - start - 1) / step + 1 : 0
      } else {
        start = min(max(start, 0), dim - 1)
        end = min(max(end, -1), dim - 1)
        let magnitude = step == .min ? Int.max : -step
        count = start > end ? (start - end - 1) / magnitude + 1 : 0
      }
      self.starts[axis] = count > 0 ? start : 0
      self.steps[axis] = step
      self.shape[axis] = count
    }
  }
}

extension OpRegistry {

  static func requireIndices(_ indices: TensorType) throws {
    guard indices.dtype == .int64 || indices.dtype == .int32 else {
      throw ONNXImportError.shape("indices must be int32 or int64, got \(indices.dtype.rawValue)")
    }
  }

  /// The output shape of an Einsum `equation` over operands of `shapes`: explicit output
  /// subscripts after `->`, else the letters used once, sorted, after the ellipsis axes.
  static func einsumShape(_ rawEquation: String, _ shapes: [[Int]]) throws -> [Int] {
    let equation = rawEquation.filter { !$0.isWhitespace }
    let sides = equation.components(separatedBy: "->")
    guard sides.count <= 2 else { throw ONNXImportError.attribute("equation '\(rawEquation)' is malformed") }
    let operands = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    guard operands.count == shapes.count else {
      throw ONNXImportError.shape("equation '\(rawEquation)' names \(operands.count) operands, got \(shapes.count)")
    }
    var extents: [Character: Int] = [:]
    var counts: [Character: Int] = [:]
    var ellipsis: [Int] = []
    func record(_ letter: Character, _ extent: Int) throws {
      if let known = extents[letter], known != extent, known != 1, extent != 1 {
        throw ONNXImportError.shape("subscript '\(letter)' has extents \(known) and \(extent)")
      }
      extents[letter] = max(extents[letter] ?? 1, extent)
      counts[letter, default: 0] += 1
    }
    for (text, shape) in zip(operands, shapes) {
      let letters = Array(text)
      guard letters.allSatisfy({ $0 == "." || $0.isLetter }) else {
        throw ONNXImportError.attribute("equation '\(rawEquation)' has an invalid subscript")
      }
      var named = letters
      var ellipsisShape: [Int] = []
      if let dot = letters.firstIndex(of: ".") {
        guard letters.count >= dot + 3, letters[dot..<(dot + 3)].allSatisfy({ $0 == "." }),
          !letters[(dot + 3)...].contains(".")
        else { throw ONNXImportError.attribute("equation '\(rawEquation)' has a malformed ellipsis") }
        named = Array(letters[..<dot]) + Array(letters[(dot + 3)...])
        let own = shape.count - named.count
        guard own >= 0 else { throw ONNXImportError.shape("operand '\(text)' does not match shape \(shape)") }
        ellipsisShape = Array(shape[dot..<(dot + own)])
        let namedShape = Array(shape[..<dot]) + Array(shape[(dot + own)...])
        for (letter, extent) in zip(named, namedShape) { try record(letter, extent) }
      } else {
        guard named.count == shape.count else {
          throw ONNXImportError.shape("operand '\(text)' does not match shape \(shape)")
        }
        for (letter, extent) in zip(named, shape) { try record(letter, extent) }
      }
      guard let merged = Broadcast.shape(ellipsis, ellipsisShape) else {
        throw ONNXImportError.shape("ellipsis dims \(ellipsis) and \(ellipsisShape) cannot be broadcast")
      }
      ellipsis = merged
    }
    guard sides.count == 2 else {
      return ellipsis + extents.keys.filter { counts[$0] == 1 }.sorted().map { extents[$0] ?? 1 }
    }
    var shape: [Int] = []
    let output = Array(sides[1])
    var i = 0
    while i < output.count {
      if output[i] == "." {
        guard i + 2 < output.count, output[i + 1] == ".", output[i + 2] == "." else {
          throw ONNXImportError.attribute("equation '\(rawEquation)' has a malformed ellipsis")
        }
        shape += ellipsis
        i += 3
        continue
      }
      guard let extent = extents[output[i]] else {
        throw ONNXImportError.attribute("output subscript '\(output[i])' is not an input subscript")
      }
      shape.append(extent)
      i += 1
    }
    return shape
  }

  static func shapeRange(_ ctx: OpContext) throws -> Range<Int> {
    let rank = try ctx.type(0).rank
    func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + rank : value, 0), rank) }
    let start = clamp(try ctx.node.int("start", default: 0))
    let end = clamp(try ctx.node.int("end", default: rank))
    return start..<max(start, end)
  }

  static func constantValue(_ node: Node) throws -> TensorData {
    let present = node.attributes.keys.sorted()
    guard present.count == 1, let name = present.first, let value = node.attributes[name] else {
      throw ONNXImportError.attribute("Constant needs exactly one value attribute, got \(present)")
    }
    switch (name, value) {
    case ("value", .tensor(let data)): return data
    case ("value_float", .float(let v)): return TensorData([v], shape: [])
    case ("value_floats", .floats(let v)): return TensorData(v)
    case ("value_int", .int(let v)): return TensorData([v], shape: [])
    case ("value_ints", .ints(let v)): return TensorData(v)
    case ("value_string", _), ("value_strings", _):
      throw ONNXImportError(.unsupportedType, "string constants are not supported")
    case ("sparse_value", _):
      throw ONNXImportError(.unsupportedType, "sparse constants are not supported")
    default:
      throw ONNXImportError.attribute("attribute '\(name)' has kind \(value.kindName), which does not fit its name")
    }
  }

  static func constantOfShapeValue(_ node: Node) throws -> TensorData {
    guard let value = try node.tensor("value") else { return TensorData([Float(0)], shape: [1]) }
    guard value.elementCount == 1 else {
      throw ONNXImportError.attribute("value must hold one element, got \(value.type)")
    }
    return value
  }

  static func rangeCount(_ values: [TensorData]) throws -> Int {
    let count: Int
    if values[0].dtype.isFloat {
      let d = values.map { $0.scalarDouble ?? 0 }
      guard d[2] != 0, d.allSatisfy(\.isFinite) else {
        throw ONNXImportError.shape("Range needs finite operands and a non-zero delta, got \(d)")
      }
      let n = ((d[1] - d[0]) / d[2]).rounded(.up)
      guard n < 9.0e18 else { throw ONNXImportError.budget("Range has too many elements") }
      count = n > 0 ? Int(n) : 0
    } else {
      let v = values.map { $0.scalarInt64 ?? 0 }
      guard v[2] != 0 else { throw ONNXImportError.shape("Range delta is 0") }
      let (difference, overflow) = v[1].subtractingReportingOverflow(v[0])
      let (quotient, divideOverflow) = difference.dividedReportingOverflow(by: v[2])
      guard !overflow, !divideOverflow else { throw ONNXImportError.budget("Range element count overflows") }
      let remainder = difference % v[2]
      let rounded = remainder != 0 && (remainder > 0) == (v[2] > 0) ? quotient + 1 : quotient
      count = Int(max(0, rounded))
    }
    return count
  }

  static func reshapeShape(_ input: [Int], _ requested: [Int], allowZero: Bool) throws -> [Int] {
    let total = try Shapes.product(input)
    var shape: [Int] = []
    var inferred: Int?
    for (i, dim) in requested.enumerated() {
      switch dim {
      case -1:
        guard inferred == nil else { throw ONNXImportError.shape("reshape target \(requested) has more than one -1") }
        inferred = i
        shape.append(1)
      case 0 where !allowZero:
        guard i < input.count else {
          throw ONNXImportError.shape(
            "reshape target \(requested) copies dim \(i), but the input \(input) has rank \(input.count)")
        }
        shape.append(input[i])
      default:
        guard dim >= 0 else { throw ONNXImportError.shape("reshape target \(requested) has invalid dim \(dim)") }
        shape.append(dim)
      }
    }
    let known = try Shapes.product(shape)
    if let inferred {
      guard known > 0, total % known == 0 else {
        throw ONNXImportError.shape("cannot reshape \(input) (\(total) elements) to \(requested)")
      }
      shape[inferred] = total / known
    } else if known != total {
      throw ONNXImportError.shape("cannot reshape \(input) (\(total) elements) to \(requested)")
    }
    return shape
  }

  static func transposePermutation(_ node: Node, rank: Int) throws -> [Int] {
    let perm = try node.ints("perm", default: Array((0..<rank).reversed()))
    guard perm.count == rank, Set(perm) == Set(0..<rank) else {
      throw ONNXImportError.attribute("perm \(perm) is not a permutation of 0..<\(rank)")
    }
    return perm
  }

  static func splitSizes(_ ctx: OpContext) throws -> (axis: Int, sizes: [Int]) {
    let x = try ctx.type(0)
    let axis = try Shapes.axis(try ctx.node.int("axis", default: 0), rank: x.rank)
    let dim = x.shape[axis]
    let n = ctx.outputCount
    var sizes: [Int]?
    if ctx.opset < 13 {
      sizes = try ctx.node.ints("split")
      if ctx.inputCount > 1 { throw ONNXImportError.unsupported("split as an input before opset 13 is not supported") }
    } else {
      if ctx.node.hasAttribute("split") {
        throw ONNXImportError.unsupported("attribute 'split' is not valid from opset 13 on (it is an input)")
      }
      sizes = try ctx.constantInts(1, "split")
    }
    if let numOutputs = try ctx.node.int("num_outputs") {
      guard ctx.opset >= 18, sizes == nil, numOutputs == n else {
        throw ONNXImportError.attribute(
          "num_outputs \(numOutputs) does not match \(n) outputs (or is combined with split)")
      }
    }
    if let sizes {
      guard sizes.count == n, sizes.allSatisfy({ $0 >= 0 && $0 <= dim }),
        try sizes.reduce(0, { try Shapes.add($0, $1) }) == dim
      else {
        throw ONNXImportError.shape("split \(sizes) does not divide axis \(axis) of size \(dim) into \(n) outputs")
      }
      return (axis, sizes)
    }
    if ctx.opset >= 18 {
      let chunk = (dim + n - 1) / n
      let last = dim - chunk * (n - 1)
      guard last >= 0 else {
        throw ONNXImportError.shape("cannot split axis \(axis) of size \(dim) into \(n) outputs")
      }
      return (axis, Array(repeating: chunk, count: n - 1) + [last])
    }
    guard dim % n == 0 else {
      throw ONNXImportError.shape("axis \(axis) of size \(dim) does not split evenly into \(n) outputs")
    }
    return (axis, Array(repeating: dim / n, count: n))
  }

  static func sliceGeometry(_ ctx: OpContext) throws -> SliceGeometry {
    let x = try ctx.type(0)
    if ctx.opset < 10 {
      guard ctx.inputCount == 1 else { throw ONNXImportError.model("Slice before opset 10 takes one input") }
      return try SliceGeometry(
        input: x.shape, starts: try ctx.node.requiredInts("starts"), ends: try ctx.node.requiredInts("ends"),
        axes: try ctx.node.ints("axes"), steps: nil)
    }
    if ctx.node.hasAttribute("starts") || ctx.node.hasAttribute("ends") || ctx.node.hasAttribute("axes") {
      throw ONNXImportError.unsupported("attributes 'starts'/'ends'/'axes' are not valid from opset 10 on")
    }
    guard let starts = try ctx.constantInts(1, "starts"), let ends = try ctx.constantInts(2, "ends") else {
      throw ONNXImportError.model("Slice needs starts and ends")
    }
    return try SliceGeometry(
      input: x.shape, starts: starts, ends: ends, axes: try ctx.constantInts(3, "axes"),
      steps: try ctx.constantInts(4, "steps"))
  }

  static func resizeType(_ ctx: OpContext) throws -> TensorType {
    let x = try ctx.type(0)
    let mode = try ctx.node.string("mode", default: "nearest")
    guard mode == "nearest" || mode == "linear" || mode == "cubic" else {
      throw ONNXImportError.unsupported("mode '\(mode)' is not supported (nearest, linear, cubic)")
    }
    guard [0, 1].contains(try ctx.node.int("antialias", default: 0)) else {
      throw ONNXImportError.attribute("antialias must be 0 or 1")
    }
    let coordinateModes = [
      "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
      "tf_half_pixel_for_nn", "tf_crop_and_resize",
    ]
    let coordinateMode = try ctx.node.string("coordinate_transformation_mode", default: "half_pixel")
    guard coordinateModes.contains(coordinateMode) else {
      throw ONNXImportError.unsupported("coordinate_transformation_mode '\(coordinateMode)' is not supported")
    }
    let nearestMode = try ctx.node.string("nearest_mode", default: "round_prefer_floor")
    guard ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"].contains(nearestMode) else {
      throw ONNXImportError.unsupported("nearest_mode '\(nearestMode)' is not supported")
    }
    let scalesSlot = ctx.opset < 11 ? 1 : 2
    let sizesSlot = 3
    if ctx.opset < 11, ctx.inputCount != 2 {
      throw ONNXImportError.model("Resize before opset 11 takes X and scales")
    }
    if coordinateMode == "tf_crop_and_resize", ctx.opset >= 11 {
      _ = try ctx.constant(1, "roi")
    }
    let axes = try Shapes.axes(try ctx.node.ints("axes", default: Array(0..<x.rank)), rank: x.rank)
    let scales = try ctx.constant(scalesSlot, "scales").flatMap { $0.elementCount > 0 ? $0 : nil }
    let sizes = try ctx.constant(sizesSlot, "sizes").flatMap { $0.elementCount > 0 ? $0 : nil }
    var shape = x.shape
    switch (scales, sizes) {
    case (let scales?, nil):
      let values = scales.doubles()
      guard values.count == axes.count, values.allSatisfy({ $0 > 0 && $0.isFinite }) else {
        throw ONNXImportError.shape("scales \(values) must be \(axes.count) positive values")
      }
      for (i, axis) in axes.enumerated() {
        let scaled = (Double(x.shape[axis]) * values[i]).rounded(.down)
        guard scaled < 9.0e18 else { throw ONNXImportError.budget("Resize output overflows") }
        shape[axis] = Int(scaled)
      }
    case (nil, let sizes?):
      let values = sizes.int64s().map { Int($0) }
      guard values.count == axes.count, values.allSatisfy({ $0 >= 0 }) else {
        throw ONNXImportError.shape("sizes \(values) must be \(axes.count) non-negative values")
      }
      let policy = try ctx.node.string("keep_aspect_ratio_policy", default: "stretch")
      switch policy {
      case "stretch":
        for (i, axis) in axes.enumerated() { shape[axis] = values[i] }
      case "not_larger", "not_smaller":
        let ratios = axes.enumerated().map { Double(values[$0.offset]) / Double(max(x.shape[$0.element], 1)) }
        let scale = (policy == "not_larger" ? ratios.min() : ratios.max()) ?? 1
        for axis in axes {
          let scaled = (scale * Double(x.shape[axis])).rounded()
          guard scaled < 9.0e18 else { throw ONNXImportError.budget("Resize output overflows") }
          shape[axis] = Int(scaled)
        }
      default:
        throw ONNXImportError.unsupported("keep_aspect_ratio_policy '\(policy)' is not supported")
      }
    case (nil, nil):
      throw ONNXImportError.shape("Resize needs scales or sizes")
    case (.some, .some):
      throw ONNXImportError.shape("Resize takes scales or sizes, not both")
    }
    return x.with(shape: shape)
  }
}
