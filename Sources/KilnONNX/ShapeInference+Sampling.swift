import KilnIR

// Sampling and rearranging operators: GridSample, AffineGrid, DeformConv, Col2Im, CenterCropPad,
// ReverseSequence and MaxUnpool.

extension OpRegistry {
  static func samplingSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    specs["GridSample"] = OpSpec(
      attributes: ["align_corners", "mode", "padding_mode"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let grid = try ctx.type(1)
        try Shapes.requireFloat(grid, "grid")
        try Shapes.requireRank(x, atLeast: 3)
        let spatial = x.rank - 2
        guard ctx.opset >= 20 || spatial == 2 else {
          throw ONNXImportError.shape("GridSample before opset 20 takes a 4-D input, got \(x.shape)")
        }
        guard grid.rank == x.rank, grid.shape[0] == x.shape[0], grid.shape[x.rank - 1] == spatial else {
          throw ONNXImportError.shape(
            "grid shape \(grid.shape) must be [\(x.shape[0]), spatial..., \(spatial)] for input \(x.shape)")
        }
        if try GridSampleAttributes(ctx.node).mode != .nearest { try Shapes.requireFloat(x) }
        return [x.with(shape: Array(x.shape.prefix(2)) + Array(grid.shape[1..<(grid.rank - 1)]))]
      })

    specs["AffineGrid"] = OpSpec(
      attributes: ["align_corners"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let theta = try ctx.type(0)
        try Shapes.requireFloat(theta, "theta")
        guard let size = try ctx.constantInts(1, "size") else { throw ONNXImportError.model("missing size") }
        guard size.count == 4 || size.count == 5, size.allSatisfy({ $0 > 0 }) else {
          throw ONNXImportError.shape("size \(size) must be 4 or 5 positive values (N, C, spatial...)")
        }
        let spatial = size.count - 2
        guard theta.shape == [size[0], spatial, spatial + 1] else {
          throw ONNXImportError.shape("theta shape \(theta.shape) must be [\(size[0]), \(spatial), \(spatial + 1)]")
        }
        return [theta.with(shape: [size[0]] + Array(size[2...]) + [spatial])]
      })

    specs["DeformConv"] = OpSpec(
      attributes: ["dilations", "group", "kernel_shape", "offset_group", "pads", "strides"],
      inputs: 3...5, outputs: 1...1,
      infer: { ctx in try [deformConvType(ctx)] })

    specs["Col2Im"] = OpSpec(
      attributes: ["dilations", "pads", "strides"], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard let image = try ctx.constantInts(1, "image_shape"), let block = try ctx.constantInts(2, "block_shape")
        else { throw ONNXImportError.model("missing image_shape or block_shape") }
        let geometry = try Col2ImGeometry(ctx.node, image: image, block: block)
        let blockSize = try Shapes.product(block)
        guard x.rank == 3, x.shape[1] % blockSize == 0 else {
          throw ONNXImportError.shape(
            "input shape \(x.shape) must be [N, C x \(blockSize), L] for block_shape \(block)")
        }
        let blocks = try Shapes.product(geometry.blockCounts)
        guard x.shape[2] == blocks else {
          throw ONNXImportError.shape(
            "input shape \(x.shape) has \(x.shape[2]) blocks; image_shape \(image) and block_shape \(block) give \(blocks)"
          )
        }
        return [x.with(shape: [x.shape[0], x.shape[1] / blockSize] + image)]
      })

    specs["CenterCropPad"] = OpSpec(
      attributes: ["axes"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard let target = try ctx.constantInts(1, "shape") else { throw ONNXImportError.model("missing shape") }
        let axes = try Shapes.axes(try ctx.node.ints("axes", default: Array(0..<x.rank)), rank: x.rank)
        guard target.count == axes.count, target.allSatisfy({ $0 >= 0 }) else {
          throw ONNXImportError.shape("shape \(target) must have \(axes.count) non-negative values (one per axis)")
        }
        var shape = x.shape
        for (axis, extent) in zip(axes, target) { shape[axis] = extent }
        return [x.with(shape: shape)]
      })

    specs["ReverseSequence"] = OpSpec(
      attributes: ["batch_axis", "time_axis"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let lengths = try ctx.type(1)
        try Shapes.requireInteger(lengths, "sequence_lens")
        try Shapes.requireRank(x, atLeast: 2)
        let batchAxis = try ctx.node.int("batch_axis", default: 1)
        let timeAxis = try ctx.node.int("time_axis", default: 0)
        guard Set([batchAxis, timeAxis]) == [0, 1] else {
          throw ONNXImportError.attribute("batch_axis \(batchAxis) and time_axis \(timeAxis) must be 0 and 1")
        }
        guard lengths.shape == [x.shape[batchAxis]] else {
          throw ONNXImportError.shape("sequence_lens shape \(lengths.shape) must be [\(x.shape[batchAxis])]")
        }
        return [x]
      })

    specs["MaxUnpool"] = OpSpec(
      attributes: ["kernel_shape", "pads", "strides"], inputs: 2...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let indices = try ctx.type(1)
        try Shapes.requireRank(x, atLeast: 3)
        guard indices.shape == x.shape, indices.dtype == .int64 else {
          throw ONNXImportError.shape("indices \(indices) must be int64 of the input shape \(x.shape)")
        }
        let natural = try maxUnpoolShape(ctx.node, input: x.shape)
        guard let requested = try ctx.constantInts(2, "output_shape") else { return [x.with(shape: natural)] }
        guard requested.count == x.rank, zip(requested, natural).allSatisfy({ $0 >= $1 }) else {
          throw ONNXImportError.shape(
            "output_shape \(requested) must have rank \(x.rank) and be at least the unpooled shape \(natural)")
        }
        return [x.with(shape: requested)]
      })

    return specs
  }

  /// DeformConv: the convolution output shape, which the offset input's spatial shape repeats.
  private static func deformConvType(_ ctx: OpContext) throws -> TensorType {
    let x = try ctx.type(0)
    let w = try ctx.type(1)
    let offset = try ctx.type(2)
    try Shapes.requireFloat(x)
    try Shapes.requireRank(x, atLeast: 3)
    guard w.rank == x.rank, offset.rank == x.rank else {
      throw ONNXImportError.shape("weight \(w.shape) and offset \(offset.shape) must have the input's rank \(x.rank)")
    }
    let kernel = Array(w.shape.dropFirst(2))
    if let declared = try ctx.node.ints("kernel_shape"), declared != kernel {
      throw ONNXImportError.shape("kernel_shape \(declared) does not match weight shape \(w.shape)")
    }
    let group = try ctx.node.int("group", default: 1)
    let offsetGroup = try ctx.node.int("offset_group", default: 1)
    let (channels, filters) = (x.shape[1], w.shape[0])
    guard group >= 1, try Shapes.multiply(w.shape[1], group) == channels, filters % group == 0 else {
      throw ONNXImportError.shape("group \(group) does not fit input channels \(channels) and weight shape \(w.shape)")
    }
    guard offsetGroup >= 1, channels % offsetGroup == 0 else {
      throw ONNXImportError.attribute("offset_group \(offsetGroup) must divide the input channels \(channels)")
    }
    let window = try Window(ctx.node, kernel: kernel)
    let spatial = try window.outputShape(Array(x.shape.dropFirst(2)))
    let taps = try Shapes.product(kernel)
    let outputShape = [x.shape[0], filters] + spatial
    let offsetShape = [x.shape[0], try Shapes.multiply(offsetGroup * taps, kernel.count)] + spatial
    guard offset.shape == offsetShape else {
      throw ONNXImportError.shape("offset shape \(offset.shape) must be \(offsetShape)")
    }
    if let bias = ctx.optionalType(3), bias.shape != [filters] {
      throw ONNXImportError.shape("bias shape \(bias.shape) must be [\(filters)]")
    }
    if let mask = ctx.optionalType(4), mask.shape != [x.shape[0], offsetGroup * taps] + spatial {
      throw ONNXImportError.shape("mask shape \(mask.shape) must be \([x.shape[0], offsetGroup * taps] + spatial)")
    }
    return x.with(shape: outputShape)
  }

  /// MaxUnpool's natural output shape: (in - 1) * stride - pad_begin - pad_end + kernel per axis.
  private static func maxUnpoolShape(_ node: Node, input: [Int]) throws -> [Int] {
    let n = input.count - 2
    let kernel = try node.requiredInts("kernel_shape")
    let strides = try node.ints("strides", default: Array(repeating: 1, count: n))
    let pads = try node.ints("pads", default: Array(repeating: 0, count: 2 * n))
    guard kernel.count == n, strides.count == n, pads.count == 2 * n, kernel.allSatisfy({ $0 > 0 }),
      strides.allSatisfy({ $0 > 0 }), pads.allSatisfy({ $0 >= 0 })
    else {
      throw ONNXImportError.attribute(
        "kernel_shape \(kernel), strides \(strides) and pads \(pads) must fit \(n) spatial axes")
    }
    let spatial = try (0..<n).map { i in
      let extent = try Shapes.multiply(input[i + 2] - 1, strides[i]) - pads[i] - pads[i + n] + kernel[i]
      guard extent > 0 else { throw ONNXImportError.shape("unpooled axis \(i + 2) has extent \(extent)") }
      return extent
    }
    return Array(input.prefix(2)) + spatial
  }
}

/// GridSample's attributes, validated (opset 16 spells the modes bilinear and bicubic).
struct GridSampleAttributes {
  enum Mode { case nearest, linear, cubic }
  enum Padding: String { case zeros, border, reflection }
  var mode: Mode
  var padding: Padding
  var alignCorners: Bool

  init(_ node: Node) throws {
    let modeName = try node.string("mode", default: node.version < 20 ? "bilinear" : "linear")
    switch modeName {
    case "nearest": mode = .nearest
    case "linear", "bilinear": mode = .linear
    case "cubic", "bicubic": mode = .cubic
    default: throw ONNXImportError.unsupported("mode '\(modeName)' is not supported (linear, nearest, cubic)")
    }
    let paddingName = try node.string("padding_mode", default: "zeros")
    guard let padding = Padding(rawValue: paddingName) else {
      throw ONNXImportError.unsupported("padding_mode '\(paddingName)' is not supported (zeros, border, reflection)")
    }
    self.padding = padding
    alignCorners = try node.int("align_corners", default: 0) != 0
  }
}

/// Col2Im's sliding-block geometry over the image axes.
struct Col2ImGeometry {
  var blockCounts: [Int]

  init(_ node: Node, image: [Int], block: [Int]) throws {
    let n = image.count
    let strides = try node.ints("strides", default: Array(repeating: 1, count: n))
    let dilations = try node.ints("dilations", default: Array(repeating: 1, count: n))
    let pads = try node.ints("pads", default: Array(repeating: 0, count: 2 * n))
    guard n >= 1, block.count == n, image.allSatisfy({ $0 > 0 }), block.allSatisfy({ $0 > 0 }) else {
      throw ONNXImportError.shape("image_shape \(image) and block_shape \(block) must be positive, of equal length")
    }
    guard strides.count == n, dilations.count == n, pads.count == 2 * n, strides.allSatisfy({ $0 > 0 }),
      dilations.allSatisfy({ $0 > 0 }), pads.allSatisfy({ $0 >= 0 })
    else {
      throw ONNXImportError.attribute(
        "strides \(strides), dilations \(dilations) and pads \(pads) must fit \(n) image axes")
    }
    blockCounts = try (0..<n).map { i in
      let span = try Shapes.multiply(dilations[i], block[i] - 1) + 1
      let count = (image[i] + pads[i] + pads[i + n] - span) / strides[i] + 1
      guard image[i] + pads[i] + pads[i + n] >= span, count >= 1 else {
        throw ONNXImportError.shape("block \(block) does not fit the padded image axis \(i) (\(image[i]))")
      }
      return count
    }
  }
}
