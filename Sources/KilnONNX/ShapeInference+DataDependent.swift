import KilnIR

// Ops whose result sizes depend on data: NonZero, Compress, Unique and NonMaxSuppression. On
// constants they fold to exact results (NonZero, Compress). Otherwise each result holds the most
// elements the op can produce along one axis, and the node gets one more result, the int64 scalar
// extent its kernels compute (`OpSpec.dataDependent`); the runtime trims the results to it.

extension OpRegistry {
  static func dataDependentSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    specs["NonZero"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard x.rank >= 1 else { throw ONNXImportError.shape("NonZero of a scalar is not supported") }
        // Known data decides the count; otherwise every element may be non-zero.
        let count = ctx.inputData[0].map { $0.doubles().filter { $0 != 0 }.count }
        return [TensorType(.int64, [x.rank, try count ?? Shapes.product(x.shape)])]
      },
      fold: { ctx in
        guard let data = ctx.data(0) else { return nil }
        let shape = data.shape
        let nonzero = data.doubles().enumerated().filter { $0.element != 0 }.map(\.offset)
        var values = [Int64](repeating: 0, count: shape.count * nonzero.count)
        for (column, linear) in nonzero.enumerated() {
          var rest = linear
          for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            values[axis * nonzero.count + column] = Int64(rest % shape[axis])
            rest /= shape[axis]
          }
        }
        return [TensorData(type: TensorType(.int64, [shape.count, nonzero.count]), int64s: values)]
      },
      dataDependent: { ctx in ctx.inputData[0] == nil ? [0: 1] : [:] })

    specs["Compress"] = OpSpec(
      attributes: ["axis"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let (x, condition) = (try ctx.type(0), try ctx.type(1))
        try Shapes.requireBool(condition, "condition")
        guard condition.rank == 1 else { throw ONNXImportError.shape("condition must be 1-D, got \(condition.shape)") }
        var shape = x.shape
        var axis = 0
        if let rawAxis = try ctx.node.int("axis") {
          axis = try Shapes.axis(rawAxis, rank: x.rank)
        } else {
          shape = [try Shapes.product(x.shape)]
        }
        let selectable = min(condition.shape[0], shape[axis])
        if let known = ctx.inputData[1] {
          shape[axis] = known.bools().prefix(selectable).filter { $0 }.count
        } else {
          shape[axis] = selectable
        }
        return [x.with(shape: shape)]
      },
      fold: { ctx in
        guard let data = ctx.data(0), let condition = ctx.data(1)?.bools() else { return nil }
        let type = ctx.outputTypes[0]
        let shape = ctx.node.attributes["axis"] == nil ? [data.elementCount] : data.shape
        let axis = try ctx.node.int("axis").map { try Shapes.axis($0, rank: data.shape.count) } ?? 0
        let (outer, inner) = (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
        let kept = condition.prefix(min(condition.count, shape[axis])).enumerated().filter(\.element).map(\.offset)
        let values = data.doubles()
        var result: [Double] = []
        for o in 0..<outer { for j in kept { result += values[((o * shape[axis] + j) * inner)..<((o * shape[axis] + j + 1) * inner)] } }
        return [TensorData(type: type, doubles: result)]
      },
      dataDependent: { ctx in
        guard ctx.inputData[1] == nil else { return [:] }
        return [0: ctx.node.attributes["axis"] == nil ? 0 : try Shapes.axis(try ctx.node.requiredInt("axis"), rank: try ctx.type(0).rank)]
      })

    specs["Unique"] = OpSpec(
      attributes: ["axis", "sorted"], inputs: 1...1, outputs: 1...4,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireNumeric(x)
        let sorted = try ctx.node.int("sorted", default: 1)
        guard sorted == 0 || sorted == 1 else { throw ONNXImportError.attribute("sorted must be 0 or 1, got \(sorted)") }
        var y = [try Shapes.product(x.shape)]
        if let rawAxis = try ctx.node.int("axis") {
          let axis = try Shapes.axis(rawAxis, rank: x.rank)
          y = x.shape
          y[axis] = x.shape[axis]
        }
        let slices = ctx.node.attributes["axis"] == nil ? y[0] : y[try Shapes.axis(try ctx.node.requiredInt("axis"), rank: x.rank)]
        return [x.with(shape: y), TensorType(.int64, [slices]), TensorType(.int64, [slices]), TensorType(.int64, [slices])]
          .prefix(ctx.outputCount).map { $0 }
      },
      dataDependent: { ctx in
        let axis = ctx.node.attributes["axis"] == nil ? 0 : try Shapes.axis(try ctx.node.requiredInt("axis"), rank: try ctx.type(0).rank)
        // Y, indices and counts hold one entry per unique value; inverse_indices one per element.
        var axes: [Int: Int] = [0: axis]
        if ctx.outputCount > 1 { axes[1] = 0 }
        if ctx.outputCount > 3 { axes[3] = 0 }
        return axes
      })

    specs["NonMaxSuppression"] = OpSpec(
      attributes: ["center_point_box"], inputs: 2...5, outputs: 1...1,
      infer: { ctx in
        let (boxes, scores) = (try ctx.type(0), try ctx.type(1))
        guard boxes.dtype == .float32, scores.dtype == .float32 else {
          throw ONNXImportError.shape("boxes and scores must be float32, got \(boxes.dtype.rawValue) and \(scores.dtype.rawValue)")
        }
        guard boxes.rank == 3, scores.rank == 3, boxes.shape[2] == 4, boxes.shape[0] == scores.shape[0], boxes.shape[1] == scores.shape[2]
        else { throw ONNXImportError.shape("boxes \(boxes.shape) and scores \(scores.shape) must be [B, N, 4] and [B, C, N]") }
        let center = try ctx.node.int("center_point_box", default: 0)
        guard center == 0 || center == 1 else { throw ONNXImportError.attribute("center_point_box must be 0 or 1, got \(center)") }
        for (slot, dtype, what) in [(2, DType.int64, "max_output_boxes_per_class"), (3, .float32, "iou_threshold"), (4, .float32, "score_threshold")]
        where ctx.hasInput(slot) {
          let type = try ctx.type(slot)
          guard type.dtype == dtype, (type.elementCount ?? 0) == 1 else {
            throw ONNXImportError.shape("\(what) must be a \(dtype.rawValue) scalar, got \(type)")
          }
        }
        // At most min(N, max_output_boxes_per_class) boxes per batch and class; all N when the
        // limit is computed at run time.
        var perClass = boxes.shape[1]
        if let limit = ctx.inputData.count > 2 ? ctx.inputData[2]?.int64s().first : nil {
          perClass = max(0, min(perClass, Int(clamping: limit)))
        } else if !ctx.hasInput(2) {
          perClass = 0
        }
        let most = try Shapes.multiply(try Shapes.multiply(scores.shape[0], scores.shape[1]), perClass)
        return [TensorType(.int64, [most, 3])]
      },
      dataDependent: { _ in [0: 0] })
    return specs
  }
}
