import KilnIR

// Elementwise operators: unary math, binary and variadic broadcasting ops, comparisons, logic,
// Where, Cast, Clip, Identity and Dropout.

extension OpRegistry {
  static func elementwiseSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    // Unary ops that keep their operand's type.
    let floatUnary: [String: Set<String>] = [
      "Sqrt": [], "Exp": [], "Log": [], "Erf": [], "Tanh": [], "Sigmoid": [], "Reciprocal": [],
      "Floor": [], "Ceil": [], "HardSwish": [], "LeakyRelu": ["alpha"], "HardSigmoid": ["alpha", "beta"],
      "Gelu": ["approximate"], "Round": [], "Sin": [], "Cos": [], "Tan": [], "Asin": [], "Acos": [], "Atan": [],
      "Sinh": [], "Cosh": [], "Asinh": [], "Acosh": [], "Atanh": [], "Softplus": [], "Softsign": [], "Mish": [],
      "Elu": ["alpha"], "Selu": ["alpha", "gamma"], "Celu": ["alpha"], "ThresholdedRelu": ["alpha"],
      "Swish": ["alpha"],
    ]
    for (op, attributes) in floatUnary {
      specs[op] = OpSpec(
        attributes: attributes, inputs: 1...1, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          try Shapes.requireFloat(x)
          if ctx.node.op == "Gelu" {
            let mode = try ctx.node.string("approximate", default: "none")
            guard mode == "none" || mode == "tanh" else {
              throw ONNXImportError.unsupported("approximate '\(mode)' is not supported (none, tanh)")
            }
          }
          return [x]
        },
        fold: Fold.unaryFloat)
    }
    for (op, attributes) in ["Relu": [], "Neg": [], "Abs": [], "Sign": [], "Shrink": ["lambd", "bias"]] as [String: Set<String>] {
      specs[op] = OpSpec(
        attributes: attributes, inputs: 1...1, outputs: 1...1,
        infer: { ctx in
          let x = try ctx.type(0)
          try Shapes.requireNumeric(x)
          return [x]
        },
        fold: Fold.unaryFloat)
    }
    specs["Not"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireBool(x)
        return [x]
      },
      fold: Fold.unaryFloat)
    specs["IsNaN"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        return [x.with(dtype: .bool)]
      })
    specs["IsInf"] = OpSpec(
      attributes: ["detect_negative", "detect_positive"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireFloat(x)
        return [x.with(dtype: .bool)]
      })
    specs["BitwiseNot"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireInteger(x)
        return [x]
      })
    specs["Identity"] = OpSpec(
      attributes: [], inputs: 1...1, outputs: 1...1, isAlias: true,
      infer: { ctx in [try ctx.type(0)] },
      fold: { ctx in ctx.data(0).map { [$0] } })
    specs["Dropout"] = OpSpec(
      attributes: ["ratio", "seed", "is_test"], inputs: 1...3, outputs: 1...2, dropsUnusedOutputs: true,
      isAlias: true,
      infer: { ctx in
        let x = try ctx.type(0)
        if ctx.opset >= 12, ctx.hasInput(2) {
          guard let training = ctx.inputData[2] else {
            throw ONNXImportError.unsupported(
              "a training_mode computed at run time is not supported (Kiln compiles for inference)")
          }
          if training.scalarBool != false {
            throw ONNXImportError.unsupported("training_mode = true is not supported (Kiln compiles for inference)")
          }
        }
        if ctx.opset < 12, ctx.inputCount > 1 {
          throw ONNXImportError.model("Dropout before opset 12 takes one input, got \(ctx.inputCount)")
        }
        var results = [x]
        if ctx.outputCount == 2 { results.append(x.with(dtype: ctx.opset >= 10 ? .bool : x.dtype)) }
        return results
      },
      fold: { ctx in
        guard let x = ctx.data(0) else { return nil }
        if ctx.outputTypes.count == 2 {
          return [x, TensorData(type: ctx.outputTypes[1], repeating: 1)]
        }
        return [x]
      })

    // Broadcasting binary ops.
    for op in ["Add", "Sub", "Mul", "Div"] {
      specs[op] = OpSpec(
        attributes: ["broadcast", "axis"], inputs: 2...2, outputs: 1...1,
        infer: { ctx in
          try legacyBroadcast(&ctx)
          let a = try ctx.type(0)
          let b = try ctx.type(1)
          let dtype = try Shapes.sameDType([a, b])
          try Shapes.requireNumeric(a)
          return [TensorType(dtype, try Shapes.broadcast([a, b]))]
        },
        fold: Fold.binary)
    }
    specs["Mod"] = OpSpec(
      attributes: ["fmod"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let a = try ctx.type(0)
        let b = try ctx.type(1)
        let dtype = try Shapes.sameDType([a, b])
        try Shapes.requireNumeric(a)
        let fmod = try ctx.node.int("fmod", default: 0)
        guard fmod == 0 || fmod == 1 else { throw ONNXImportError.attribute("fmod must be 0 or 1, got \(fmod)") }
        if fmod == 0, dtype.isFloat {
          throw ONNXImportError.attribute("fmod = 0 is only valid for integer inputs, got \(dtype.rawValue)")
        }
        return [TensorType(dtype, try Shapes.broadcast([a, b]))]
      },
      fold: Fold.binary)
    for op in ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitShift"] {
      specs[op] = OpSpec(
        attributes: op == "BitShift" ? ["direction"] : [], inputs: 2...2, outputs: 1...1,
        infer: { ctx in
          let a = try ctx.type(0)
          let b = try ctx.type(1)
          let dtype = try Shapes.sameDType([a, b])
          try Shapes.requireInteger(a)
          if ctx.node.op == "BitShift" {
            let direction = try ctx.node.string("direction", default: "")
            guard direction == "LEFT" || direction == "RIGHT" else {
              throw ONNXImportError.attribute("direction must be LEFT or RIGHT, got '\(direction)'")
            }
          }
          return [TensorType(dtype, try Shapes.broadcast([a, b]))]
        },
        fold: Fold.binary)
    }
    specs["PRelu"] = OpSpec(
      attributes: [], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let slope = try ctx.type(1)
        _ = try Shapes.sameDType([x, slope])
        try Shapes.requireNumeric(x)
        // Before opset 7 a 1-D slope holds one value per channel (axis 1); from opset 7 on the
        // slope broadcasts to X unidirectionally.
        if ctx.opset < 7, x.rank >= 2, slope.shape == [x.shape[1]] { return [x] }
        guard Broadcast.canBroadcast(slope.shape, to: x.shape) else {
          throw ONNXImportError.shape("slope shape \(slope.shape) does not broadcast to \(x.shape)")
        }
        return [x]
      })
    specs["Pow"] = OpSpec(
      attributes: ["broadcast", "axis"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        try legacyBroadcast(&ctx)
        let a = try ctx.type(0)
        let b = try ctx.type(1)
        try Shapes.requireNumeric(a)
        try Shapes.requireNumeric(b, "exponent")
        return [TensorType(a.dtype, try Shapes.broadcast([a, b]))]
      },
      fold: Fold.binary)
    for op in ["And", "Or", "Xor"] {
      specs[op] = OpSpec(
        attributes: ["broadcast", "axis"], inputs: 2...2, outputs: 1...1,
        infer: { ctx in
          try legacyBroadcast(&ctx)
          let a = try ctx.type(0)
          let b = try ctx.type(1)
          try Shapes.requireBool(a)
          try Shapes.requireBool(b)
          return [TensorType(.bool, try Shapes.broadcast([a, b]))]
        },
        fold: Fold.binary)
    }
    for op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"] {
      specs[op] = OpSpec(
        attributes: ["broadcast", "axis"], inputs: 2...2, outputs: 1...1,
        infer: { ctx in
          try legacyBroadcast(&ctx)
          let a = try ctx.type(0)
          let b = try ctx.type(1)
          _ = try Shapes.sameDType([a, b])
          return [TensorType(.bool, try Shapes.broadcast([a, b]))]
        },
        fold: Fold.binary)
    }

    // Variadic broadcasting ops.
    for op in ["Max", "Min", "Sum", "Mean"] {
      specs[op] = OpSpec(
        attributes: [], inputs: 1...Int.max, outputs: 1...1,
        infer: { ctx in
          let types = try (0..<ctx.inputCount).map { try ctx.type($0) }
          let dtype = try Shapes.sameDType(types)
          try Shapes.requireNumeric(types[0])
          if ctx.node.op == "Mean" { try Shapes.requireFloat(types[0]) }
          return [TensorType(dtype, try Shapes.broadcast(types))]
        },
        fold: Fold.binary)
    }

    specs["Where"] = OpSpec(
      attributes: [], inputs: 3...3, outputs: 1...1,
      infer: { ctx in
        let condition = try ctx.type(0)
        let x = try ctx.type(1)
        let y = try ctx.type(2)
        try Shapes.requireBool(condition, "condition")
        let dtype = try Shapes.sameDType([x, y], what: "X and Y")
        return [TensorType(dtype, try Shapes.broadcast([condition, x, y]))]
      },
      fold: Fold.where_)

    specs["Cast"] = OpSpec(
      attributes: ["to", "saturate", "round_mode"], inputs: 1...1, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let code = try ctx.node.requiredInt("to")
        guard let code32 = Int32(exactly: code), let dtype = DType(onnxCode: code32) else {
          throw ONNXImportError(
            .unsupportedType, "cast to \(TensorDecoder.typeName(Int32(clamping: code))) is not supported")
        }
        try castRoundMode(ctx.node)
        return [x.with(dtype: dtype)]
      },
      fold: Fold.cast)

    specs["CastLike"] = OpSpec(
      attributes: ["saturate", "round_mode"], inputs: 2...2, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try castRoundMode(ctx.node)
        return [x.with(dtype: try ctx.type(1).dtype)]
      },
      fold: Fold.cast)

    specs["QuantizeLinear"] = OpSpec(
      attributes: ["axis", "block_size", "output_dtype", "saturate", "precision"], inputs: 2...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let scale = try ctx.type(1)
        try Shapes.requireFloat(x)
        try Shapes.requireFloat(scale, "scale")
        var dtype = DType.uint8
        if let zeroPoint = ctx.optionalType(2) { dtype = zeroPoint.dtype }
        if let code = try ctx.node.int("output_dtype"), code != 0 {
          guard let code32 = Int32(exactly: code), let declared = DType(onnxCode: code32) else {
            throw ONNXImportError(.unsupportedType, "output_dtype \(code) is not supported")
          }
          dtype = declared
        }
        guard dtype.isInteger || (dtype.isMiniFloat && dtype != .float8e8m0) else {
          throw ONNXImportError(.unsupportedType, "quantizing to \(dtype.rawValue) is not supported")
        }
        return [x.with(dtype: dtype)]
      })
    specs["DequantizeLinear"] = OpSpec(
      attributes: ["axis", "block_size", "output_dtype"], inputs: 2...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        let scale = try ctx.type(1)
        try Shapes.requireFloat(scale, "scale")
        guard x.dtype.isInteger || x.dtype.isMiniFloat else {
          throw ONNXImportError(.unsupportedType, "dequantizing \(x.dtype.rawValue) is not supported")
        }
        var dtype = scale.dtype
        if let code = try ctx.node.int("output_dtype"), code != 0 {
          guard let code32 = Int32(exactly: code), let declared = DType(onnxCode: code32), declared.isFloat else {
            throw ONNXImportError(.unsupportedType, "output_dtype \(code) is not supported")
          }
          dtype = declared
        }
        return [x.with(dtype: dtype)]
      })

    specs["Clip"] = OpSpec(
      attributes: ["min", "max"], inputs: 1...3, outputs: 1...1,
      infer: { ctx in
        let x = try ctx.type(0)
        try Shapes.requireNumeric(x)
        if ctx.opset < 11 {
          guard ctx.inputCount == 1 else {
            throw ONNXImportError.model("Clip before opset 11 takes one input (min and max are attributes)")
          }
        } else {
          if ctx.node.hasAttribute("min") || ctx.node.hasAttribute("max") {
            throw ONNXImportError.unsupported("attributes 'min'/'max' are not valid from opset 11 on (they are inputs)")
          }
          for slot in [1, 2] {
            guard let bound = ctx.optionalType(slot) else { continue }
            guard bound.dtype == x.dtype, bound.elementCount == 1 else {
              throw ONNXImportError.shape("Clip bound \(slot) must be a scalar \(x.dtype.rawValue), got \(bound)")
            }
          }
        }
        return [x]
      },
      fold: Fold.clip)
    return specs
  }

  /// Opsets before 7 spell broadcasting with `broadcast`/`axis` attributes. Kiln accepts the forms
  /// that mean the same as NumPy broadcasting and removes the attributes, so later stages see
  /// only the modern semantics.
  static func legacyBroadcast(_ ctx: inout OpContext) throws {
    let hasLegacy = ctx.node.hasAttribute("broadcast") || ctx.node.hasAttribute("axis")
    guard hasLegacy else { return }
    guard ctx.opset < 7 else {
      throw ONNXImportError.unsupported("attributes 'broadcast'/'axis' are not valid from opset 7 on")
    }
    let a = try ctx.type(0)
    let b = try ctx.type(1)
    if try ctx.node.int("broadcast", default: 0) == 0 {
      guard a.shape == b.shape else {
        throw ONNXImportError.shape("broadcast = 0 needs equal shapes, got \(a.shape) and \(b.shape)")
      }
    } else {
      if let axis = try ctx.node.int("axis") {
        guard axis == a.rank - b.rank || axis == -b.rank else {
          throw ONNXImportError.unsupported(
            "legacy broadcast with axis \(axis) of \(b.shape) onto \(a.shape) is not supported")
        }
      }
      guard Broadcast.canBroadcast(b.shape, to: a.shape) else {
        throw ONNXImportError.shape("cannot broadcast \(b.shape) onto \(a.shape)")
      }
    }
    ctx.node.attributes["broadcast"] = nil
    ctx.node.attributes["axis"] = nil
  }
}
