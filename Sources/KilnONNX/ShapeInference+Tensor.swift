import KilnIR

// Data-movement and shape-manipulating operators, plus the ops that make tensors from shapes
// (Shape, Size, Constant, ConstantOfShape, Range) and ArgMax/ArgMin.

extension OpRegistry {
  static func tensorSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    specs["Shape"] = OpSpec(
      attributes: ["start", "end"], inputs: 1...1, outputs: 1...1, alwaysFolds: true,
      infer: { ctx in [TensorType(.int64, [try shapeRange(ctx).count])] },
      fold: { ctx in
        let range = try shapeRange(ctx)
        let shape = try ctx.type(0).shape
        return [TensorData(range.map { Int64(shape[$0]) })]
      })
    specs["Size"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1, alwaysFolds: true,
      infer: { _ in [TensorType(.int64, [])] },
      fold: { ctx in [TensorData.scalar(Int64(try ctx.type(0).checkedElementCount()))] })

    specs["Constant"] = OpSpec(
      attributes: [
        "value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings",
        "sparse_value",
      ],
      inputs: 0...0, outputs: 1...1, alwaysFolds: true,
      infer: { ctx in [try constantValue(ctx.node).type] },
      fold: { ctx in [try constantValue(ctx.node)] })

    specs["ConstantOfShape"] = OpSpec(
      attributes: ["value"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        guard let shape = try ctx.constantInts(0, "shape") else { throw ONNXImportError.model("missing shape") }
        guard shape.allSatisfy({ $0 >= 0 }) else {
          throw ONNXImportError.shape("ConstantOfShape shape \(shape) has a negative dimension")
        }
        let dtype = try constantOfShapeValue(ctx.node).dtype
        return [TensorType(dtype, shape)]
      },
      fold: { ctx in
        guard let out = ctx.outputTypes.first else { return nil }
        let value = try constantOfShapeValue(ctx.node)
        return [TensorData(type: out, repeatingElementOf: value)]
      })

    specs["Range"] = OpSpec(
      attributes: [], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let types = try (0..<3).map { try ctx.type($0) }
        let dtype = try Shapes.sameDType(types, what: "start, limit and delta")
        try Shapes.requireNumeric(types[0])
        let values = try (0..<3).map { slot -> TensorData in
          guard let data = try ctx.constant(slot, ["start", "limit", "delta"][slot]), data.elementCount == 1 else {
            throw ONNXImportError.shape("Range operands must be scalars")
          }
          return data
        }
        return [TensorType(dtype, [try rangeCount(values)])]
      },
      fold: Fold.range)

    specs["Reshape"] = OpSpec(
      attributes: ["allowzero"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard let requested = try ctx.constantInts(1, "shape") else { throw ONNXImportError.model("missing shape") }
        let allowZero = ctx.opset >= 14 ? try ctx.node.int("allowzero", default: 0) != 0 : false
        return [x.with(shape: try reshapeShape(x.shape, requested, allowZero: allowZero))]
      },
      fold: Fold.reshape)

    specs["Flatten"] = OpSpec(
      attributes: ["axis"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let rawAxis = try ctx.node.int("axis", default: 1)
        guard rawAxis >= -x.rank, rawAxis <= x.rank else {
          throw ONNXImportError.attribute("axis \(rawAxis) is out of range for rank \(x.rank)")
        }
        let axis = rawAxis < 0 ? rawAxis + x.rank : rawAxis
        return [x.with(shape: [try Shapes.product(x.shape[..<axis]), try Shapes.product(x.shape[axis...])])]
      },
      fold: Fold.reshape)

    specs["Squeeze"] = OpSpec(
      attributes: ["axes"], inputs: 1...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let shape: [Int]
        if let rawAxes = try ctx.axes(attributeBefore: 13, slot: 1) {
          let axes = Set(try Shapes.axes(rawAxes, rank: x.rank))
          for axis in axes where x.shape[axis] != 1 {
            throw ONNXImportError.shape("cannot squeeze axis \(axis) of \(x.shape): its size is not 1")
          }
          shape = x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        } else {
          shape = x.shape.filter { $0 != 1 }
        }
        return [x.with(shape: shape)]
      },
      fold: Fold.reshape)

    specs["Unsqueeze"] = OpSpec(
      attributes: ["axes"], inputs: 1...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard let rawAxes = try ctx.axes(attributeBefore: 13, slot: 1) else {
          throw ONNXImportError.attribute("Unsqueeze needs axes")
        }
        let rank = x.rank + rawAxes.count
        let axes = Set(try Shapes.axes(rawAxes, rank: rank))
        var dims = x.shape.makeIterator()
        let shape = (0..<rank).map { axes.contains($0) ? 1 : (dims.next() ?? 1) }
        return [x.with(shape: shape)]
      },
      fold: Fold.reshape)

    specs["Transpose"] = OpSpec(
      attributes: ["perm"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let perm = try transposePermutation(ctx.node, rank: x.rank)
        return [x.with(shape: perm.map { x.shape[$0] })]
      },
      fold: Fold.transpose)

    specs["Concat"] = OpSpec(
      attributes: ["axis"], inputs: 1...Int.max, outputs: 1...1,
      infer: { ctx in
        let types = try (0..<ctx.inputCount).map { try ctx.type($0) }
        let dtype = try Shapes.sameDType(types)
        let first = types[0]
        let axis = try Shapes.axis(
          ctx.opset < 4 ? try ctx.node.int("axis", default: 1) : try ctx.node.requiredInt("axis"), rank: first.rank)
        var total = 0
        for type in types {
          guard type.rank == first.rank,
            type.shape.enumerated().allSatisfy({ $0.offset == axis || $0.element == first.shape[$0.offset] })
          else {
            throw ONNXImportError.shape("cannot concatenate \(types.map(\.shape)) on axis \(axis)")
          }
          total = try Shapes.add(total, type.shape[axis])
        }
        var shape = first.shape
        shape[axis] = total
        return [TensorType(dtype, shape)]
      },
      fold: Fold.concat)

    specs["Split"] = OpSpec(
      attributes: ["axis", "split", "num_outputs"], inputs: 1...2, outputs: 1...Int.max,
      infer: { ctx in
        let x = try ctx.type(0)
        let (axis, sizes) = try splitSizes(ctx)
        return sizes.map { size in
          var shape = x.shape
          shape[axis] = size
          return x.with(shape: shape)
        }
      },
      fold: Fold.split)

    specs["Slice"] = OpSpec(
      attributes: ["starts", "ends", "axes"], inputs: 1...5, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        return [x.with(shape: try sliceGeometry(ctx).shape)]
      },
      fold: Fold.slice)

    specs["Pad"] = OpSpec(
      attributes: ["mode", "pads", "value"], inputs: 1...4, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let mode = try ctx.node.string("mode", default: "constant")
        let modes = ctx.opset >= 19 ? ["constant", "reflect", "edge", "wrap"] : ["constant", "reflect", "edge"]
        guard modes.contains(mode) else {
          throw ONNXImportError.unsupported("mode '\(mode)' is not supported (\(modes.joined(separator: ", ")))")
        }
        let pads: [Int]
        var axes = Array(0..<x.rank)
        if ctx.opset < 11 {
          guard ctx.inputCount == 1 else { throw ONNXImportError.model("Pad before opset 11 takes one input") }
          pads = try ctx.node.requiredInts("pads")
        } else {
          if ctx.node.hasAttribute("pads") || ctx.node.hasAttribute("value") {
            throw ONNXImportError.unsupported(
              "attributes 'pads'/'value' are not valid from opset 11 on (they are inputs)")
          }
          guard let padsInput = try ctx.constantInts(1, "pads") else { throw ONNXImportError.model("missing pads") }
          pads = padsInput
          if let value = ctx.optionalType(2), value.dtype != x.dtype || value.elementCount != 1 {
            throw ONNXImportError.shape("constant_value must be one \(x.dtype.rawValue) value, got \(value)")
          }
          if let rawAxes = try ctx.constantInts(3, "axes") {
            axes = try Shapes.axes(rawAxes, rank: x.rank)
          }
        }
        guard pads.count == 2 * axes.count else {
          throw ONNXImportError.attribute("pads \(pads) must have \(2 * axes.count) values")
        }
        var shape = x.shape
        for (i, axis) in axes.enumerated() {
          let dim = try Shapes.add(try Shapes.add(shape[axis], pads[i]), pads[i + axes.count])
          guard dim >= 0 else {
            throw ONNXImportError.shape("pads \(pads) make axis \(axis) of \(x.shape) negative")
          }
          shape[axis] = dim
        }
        return [x.with(shape: shape)]
      })

    specs["Expand"] = OpSpec(
      attributes: [], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard let shape = try ctx.constantInts(1, "shape") else { throw ONNXImportError.model("missing shape") }
        guard shape.allSatisfy({ $0 >= 0 }) else {
          throw ONNXImportError.shape("Expand shape \(shape) has a negative dimension")
        }
        guard let out = Broadcast.shape(x.shape, shape) else {
          throw ONNXImportError.shape("cannot expand \(x.shape) to \(shape)")
        }
        return [x.with(shape: out)]
      },
      fold: Fold.expand)

    specs["Tile"] = OpSpec(
      attributes: [], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard let repeats = try ctx.constantInts(1, "repeats") else { throw ONNXImportError.model("missing repeats") }
        guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
          throw ONNXImportError.shape("repeats \(repeats) must be \(x.rank) non-negative values")
        }
        return [x.with(shape: try zip(x.shape, repeats).map { try Shapes.multiply($0, $1) })]
      },
      fold: Fold.tile)

    specs["Gather"] = OpSpec(
      attributes: ["axis"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let data = try ctx.type(0)
        let indices = try ctx.type(1)
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
          throw ONNXImportError.shape("indices must be int32 or int64, got \(indices.dtype.rawValue)")
        }
        try Shapes.requireRank(data, atLeast: 1, "data")
        let axis = try Shapes.axis(try ctx.node.int("axis", default: 0), rank: data.rank)
        if let constant = ctx.inputData[1] {
          let size = Int64(data.shape[axis])
          for index in constant.int64s() where index < -size || index >= size {
            throw ONNXImportError.shape("index \(index) is out of range for axis \(axis) of size \(size)")
          }
        }
        let shape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
        return [data.with(shape: shape)]
      },
      fold: Fold.gather)

    specs["GatherElements"] = OpSpec(
      attributes: ["axis"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let data = try ctx.type(0)
        let indices = try ctx.type(1)
        try requireIndices(indices)
        try Shapes.requireRank(data, atLeast: 1, "data")
        guard indices.rank == data.rank else {
          throw ONNXImportError.shape("indices shape \(indices.shape) must have the rank of data \(data.shape)")
        }
        _ = try Shapes.axis(try ctx.node.int("axis", default: 0), rank: data.rank)
        return [data.with(shape: indices.shape)]
      })

    specs["GatherND"] = OpSpec(
      attributes: ["batch_dims"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let data = try ctx.type(0)
        let indices = try ctx.type(1)
        try requireIndices(indices)
        let batch = try ctx.node.int("batch_dims", default: 0)
        guard let depth = indices.shape.last, batch >= 0, batch < indices.rank, batch + depth <= data.rank,
          Array(indices.shape.prefix(batch)) == Array(data.shape.prefix(batch))
        else {
          throw ONNXImportError.shape(
            "indices shape \(indices.shape) with batch_dims \(batch) does not fit data shape \(data.shape)")
        }
        return [data.with(shape: Array(indices.shape.dropLast()) + Array(data.shape[(batch + depth)...]))]
      })

    for op in ["DepthToSpace", "SpaceToDepth"] {
      specs[op] = OpSpec(
        attributes: op == "DepthToSpace" ? ["blocksize", "mode"] : ["blocksize"], inputs: 1...1, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          let b = try ctx.node.requiredInt("blocksize")
          guard x.rank == 4, b > 0 else {
            throw ONNXImportError.shape("needs a 4-D input and a positive blocksize, got \(x.shape) and \(b)")
          }
          let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
          if ctx.node.op == "SpaceToDepth" {
            guard h % b == 0, w % b == 0 else {
              throw ONNXImportError.shape("spatial dims of \(x.shape) are not multiples of blocksize \(b)")
            }
            return [x.with(shape: [n, try Shapes.multiply(c, b * b), h / b, w / b])]
          }
          let mode = try ctx.node.string("mode", default: "DCR")
          guard mode == "DCR" || mode == "CRD" else {
            throw ONNXImportError.unsupported("mode '\(mode)' is not supported (DCR, CRD)")
          }
          guard c % (b * b) == 0 else {
            throw ONNXImportError.shape("channels of \(x.shape) are not a multiple of blocksize² \(b * b)")
          }
          return [x.with(shape: [n, c / (b * b), try Shapes.multiply(h, b), try Shapes.multiply(w, b)])]
        })
    }

    specs["Upsample"] = OpSpec(
      attributes: ["mode", "scales", "height_scale", "width_scale"], inputs: 1...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let mode = try ctx.node.string("mode", default: "nearest")
        guard ["nearest", "linear", "bilinear"].contains(mode) else {
          throw ONNXImportError.unsupported("mode '\(mode)' is not supported (nearest, linear)")
        }
        let scales: [Double]
        if ctx.opset < 9 {
          guard let values = try ctx.node.floats("scales") else {
            throw ONNXImportError.attribute("Upsample needs attribute 'scales'")
          }
          scales = values.map(Double.init)
        } else {
          guard let data = try ctx.constant(1, "scales") else { throw ONNXImportError.model("missing scales") }
          scales = data.doubles()
        }
        guard scales.count == x.rank, scales.allSatisfy({ $0 > 0 && $0.isFinite }) else {
          throw ONNXImportError.shape("scales \(scales) must be \(x.rank) positive values")
        }
        let shape = try zip(x.shape, scales).map { dim, scale -> Int in
          let scaled = (Double(dim) * scale).rounded(.down)
          guard scaled < 9.0e18 else { throw ONNXImportError.budget("Upsample output overflows") }
          return Int(scaled)
        }
        return [x.with(shape: shape)]
      })

    specs["EyeLike"] = OpSpec(
      attributes: ["dtype", "k"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        guard x.rank == 2 else { throw ONNXImportError.shape("EyeLike needs a 2-D input, got \(x.shape)") }
        guard let code = try ctx.node.int("dtype") else { return [x] }
        guard let code32 = Int32(exactly: code), let dtype = DType(onnxCode: code32) else {
          throw ONNXImportError(.unsupportedType, "dtype \(code) is not supported")
        }
        return [x.with(dtype: dtype)]
      })

    specs["OneHot"] = OpSpec(
      attributes: ["axis"], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let indices = try ctx.type(0)
        let values = try ctx.type(2)
        try Shapes.requireNumeric(indices, "indices")
        guard values.elementCount == 2 else { throw ONNXImportError.shape("values must hold 2 elements, got \(values)") }
        guard let depthData = try ctx.constant(1, "depth"), depthData.elementCount == 1,
          let depthValue = depthData.scalarDouble, depthValue >= 1, depthValue < 1e9
        else { throw ONNXImportError.shape("depth must be one positive number") }
        let rank = indices.rank + 1
        let axis = try Shapes.axis(try ctx.node.int("axis", default: -1), rank: rank)
        var shape = indices.shape
        shape.insert(Int(depthValue.rounded(.towardZero)), at: axis)
        return [values.with(shape: shape)]
      })

    specs["Trilu"] = OpSpec(
      attributes: ["upper"], inputs: 1...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireRank(x, atLeast: 2)
        if let k = ctx.optionalType(1), k.elementCount != 1 || k.dtype != .int64 {
          throw ONNXImportError.shape("k must be an int64 scalar, got \(k)")
        }
        return [x]
      })

    for op in ["CumSum", "CumProd"] {
      specs[op] = OpSpec(
        attributes: ["exclusive", "reverse"], inputs: 2...2, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          try Shapes.requireNumeric(x)
          try Shapes.requireRank(x, atLeast: 1)
          guard let axis = try ctx.constantInts(1, "axis"), axis.count == 1 else {
            throw ONNXImportError.shape("axis must be one integer")
          }
          _ = try Shapes.axis(axis[0], rank: x.rank)
          return [x]
        })
    }

    specs["Einsum"] = OpSpec(
      attributes: ["equation"], inputs: 1...Int.max, outputs: 1...1,
      infer: { ctx in
        let types = try (0..<ctx.inputCount).map { try ctx.type($0) }
        let dtype = try Shapes.sameDType(types)
        try Shapes.requireNumeric(types[0])
        let equation = try ctx.node.string("equation", default: "")
        return [TensorType(dtype, try einsumShape(equation, types.map(\.shape)))]
      })

    specs["Resize"] = OpSpec(
      attributes: [
        "antialias", "axes", "coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside",
        "extrapolation_value", "keep_aspect_ratio_policy", "mode", "nearest_mode",
      ],
      inputs: 2...4, outputs: 1...1,
      infer: { ctx in [try resizeType(ctx)] })

    for op in ["ArgMax", "ArgMin"] {
      specs[op] = OpSpec(
        attributes: ["axis", "keepdims", "select_last_index"], inputs: 1...1, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          try Shapes.requireNumeric(x)
          try Shapes.requireRank(x, atLeast: 1)
          let axis = try Shapes.axis(try ctx.node.int("axis", default: 0), rank: x.rank)
          var shape = x.shape
          if try ctx.node.int("keepdims", default: 1) != 0 { shape[axis] = 1 } else { shape.remove(at: axis) }
          return [TensorType(.int64, shape)]
        })
    }
    return specs
  }
}
