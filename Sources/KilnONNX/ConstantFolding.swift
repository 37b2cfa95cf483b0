import Foundation
import KilnIR

/// Host evaluators used to fold nodes whose operands are all constants. Each returns the result
/// tensors (whose types match the inferred output types) or nil to decline, which keeps the node
/// (for example integer division by zero, or a dtype the evaluator does not handle).
enum Fold {
  // MARK: Element movement

  /// Row-major strides of `shape` (no overflow: the shapes here are already counted).
  static func strides(_ shape: [Int]) -> [Int] {
    var result = [Int](repeating: 1, count: shape.count)
    var running = 1
    for axis in shape.indices.reversed() {
      result[axis] = running
      running *= shape[axis]
    }
    return result
  }

  /// The elements of `data` at `offsets`, as a tensor of `type`.
  static func select(_ data: TensorData, _ offsets: [Int], type: TensorType) throws -> TensorData {
    let size = data.dtype.byteSize
    var bytes = [UInt8]()
    bytes.reserveCapacity(offsets.count * size)
    data.bytes.withUnsafeBufferPointer { source in
      for offset in offsets {
        bytes.append(contentsOf: source[offset * size..<(offset + 1) * size])
      }
    }
    return try TensorData(type: type, bytes: bytes)
  }

  static func reshape(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    return x.reshaped(to: out.shape).map { [$0] }
  }

  static func transpose(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    let perm = try OpRegistry.transposePermutation(ctx.node, rank: x.shape.count)
    let inputStrides = strides(x.shape)
    let offsets = Broadcast.stridedOffsets(shape: out.shape, base: 0, strides: perm.map { inputStrides[$0] })
    return [try select(x, offsets, type: out)]
  }

  static func slice(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    let geometry = try OpRegistry.sliceGeometry(ctx)
    let inputStrides = strides(x.shape)
    let base = zip(geometry.starts, inputStrides).reduce(0) { $0 + $1.0 * $1.1 }
    // An axis keeping one element never steps, so its (possibly huge) step is not multiplied.
    let steps = geometry.shape.indices.map { geometry.shape[$0] > 1 ? geometry.steps[$0] * inputStrides[$0] : 0 }
    let offsets = Broadcast.stridedOffsets(shape: geometry.shape, base: base, strides: steps)
    return [try select(x, offsets, type: out)]
  }

  static func expand(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    return [try select(x, Broadcast.sourceIndices(from: x.shape, to: out.shape), type: out)]
  }

  static func tile(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    let inputStrides = strides(x.shape)
    let count = out.elementCount ?? 0
    var offsets = [Int]()
    offsets.reserveCapacity(count)
    var index = [Int](repeating: 0, count: out.shape.count)
    for _ in 0..<count {
      var offset = 0
      for axis in index.indices { offset += (index[axis] % x.shape[axis]) * inputStrides[axis] }
      offsets.append(offset)
      var axis = index.count - 1
      while axis >= 0 {
        index[axis] += 1
        if index[axis] < out.shape[axis] { break }
        index[axis] = 0
        axis -= 1
      }
    }
    return [try select(x, offsets, type: out)]
  }

  static func concat(_ ctx: OpContext) throws -> [TensorData]? {
    guard let out = ctx.outputTypes.first else { return nil }
    let parts = (0..<ctx.inputCount).compactMap(ctx.data)
    guard parts.count == ctx.inputCount else { return nil }
    let axis = try Shapes.axis(
      ctx.opset < 4 ? try ctx.node.int("axis", default: 1) : try ctx.node.requiredInt("axis"), rank: out.rank)
    let outer = out.shape[..<axis].reduce(1, *)
    let size = out.dtype.byteSize
    var bytes = [UInt8]()
    bytes.reserveCapacity(out.byteCount ?? 0)
    for block in 0..<outer {
      for part in parts {
        let chunk = part.shape[axis...].reduce(1, *) * size
        bytes.append(contentsOf: part.bytes[block * chunk..<(block + 1) * chunk])
      }
    }
    return [try TensorData(type: out, bytes: bytes)]
  }

  static func split(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0) else { return nil }
    let (axis, sizes) = try OpRegistry.splitSizes(ctx)
    let inputStrides = strides(x.shape)
    var start = 0
    var results: [TensorData] = []
    for (i, size) in sizes.enumerated() {
      var shape = x.shape
      shape[axis] = size
      let offsets = Broadcast.stridedOffsets(shape: shape, base: start * inputStrides[axis], strides: inputStrides)
      results.append(try select(x, offsets, type: ctx.outputTypes[i]))
      start += size
    }
    return results
  }

  static func gather(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let indices = ctx.data(1), let out = ctx.outputTypes.first else { return nil }
    let axis = try Shapes.axis(try ctx.node.int("axis", default: 0), rank: x.shape.count)
    let dim = x.shape[axis]
    let outer = x.shape[..<axis].reduce(1, *)
    let inner = x.shape[(axis + 1)...].reduce(1, *)
    var offsets = [Int]()
    offsets.reserveCapacity(out.elementCount ?? 0)
    let normalized = try indices.int64s().map { raw -> Int in
      let index = Int(raw) < 0 ? Int(raw) + dim : Int(raw)
      guard index >= 0, index < dim else {
        throw ONNXImportError.shape("index \(raw) is out of range for axis \(axis) of size \(dim)")
      }
      return index
    }
    for o in 0..<outer {
      for index in normalized {
        let base = (o * dim + index) * inner
        for i in 0..<inner { offsets.append(base + i) }
      }
    }
    return [try select(x, offsets, type: out)]
  }

  static func where_(_ ctx: OpContext) throws -> [TensorData]? {
    guard let condition = ctx.data(0), let x = ctx.data(1), let y = ctx.data(2), let out = ctx.outputTypes.first
    else { return nil }
    let flags = condition.bools()
    let c = Broadcast.sourceIndices(from: condition.shape, to: out.shape)
    let xi = Broadcast.sourceIndices(from: x.shape, to: out.shape)
    let yi = Broadcast.sourceIndices(from: y.shape, to: out.shape)
    let size = out.dtype.byteSize
    var bytes = [UInt8]()
    bytes.reserveCapacity(out.byteCount ?? 0)
    for i in c.indices {
      if flags[c[i]] {
        bytes.append(contentsOf: x.bytes[xi[i] * size..<(xi[i] + 1) * size])
      } else {
        bytes.append(contentsOf: y.bytes[yi[i] * size..<(yi[i] + 1) * size])
      }
    }
    return [try TensorData(type: out, bytes: bytes)]
  }

  static func range(_ ctx: OpContext) throws -> [TensorData]? {
    guard let out = ctx.outputTypes.first, let start = ctx.data(0), let delta = ctx.data(2) else { return nil }
    let n = out.elementCount ?? 0
    if out.dtype.isFloat {
      let s = start.scalarDouble ?? 0
      let d = delta.scalarDouble ?? 0
      return [TensorData(type: out, doubles: (0..<n).map { s + Double($0) * d })]
    }
    let s = start.scalarInt64 ?? 0
    let d = delta.scalarInt64 ?? 0
    return [TensorData(type: out, int64s: (0..<n).map { s &+ Int64($0) &* d })]
  }

  // MARK: Arithmetic

  /// Add, Sub, Mul, Div, Pow, Mod, And, Or, Xor, bitwise ops, comparisons, and variadic
  /// Max/Min/Sum/Mean.
  static func binary(_ ctx: OpContext) throws -> [TensorData]? {
    guard let out = ctx.outputTypes.first else { return nil }
    let operands = (0..<ctx.inputCount).compactMap(ctx.data)
    guard operands.count == ctx.inputCount, let first = operands.first else { return nil }
    let maps = operands.map { Broadcast.sourceIndices(from: $0.shape, to: out.shape) }
    let count = out.elementCount ?? 0
    let op = ctx.node.op
    let comparison = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"].contains(op)
    let useDoubles = operands.contains { $0.dtype.isFloat }
    let fmodAttribute = try ctx.node.int("fmod", default: 0)
    let cRemainder = op == "Mod" && fmodAttribute != 0

    if comparison {
      var result = [Bool]()
      result.reserveCapacity(count)
      if useDoubles {
        let a = operands[0].doubles()
        let b = operands[1].doubles()
        for i in 0..<count { result.append(compare(op, a[maps[0][i]], b[maps[1][i]])) }
      } else if first.dtype == .uint64 {
        let a = operands[0].int64s().map { UInt64(bitPattern: $0) }
        let b = operands[1].int64s().map { UInt64(bitPattern: $0) }
        for i in 0..<count { result.append(compare(op, a[maps[0][i]], b[maps[1][i]])) }
      } else {
        let a = operands[0].int64s()
        let b = operands[1].int64s()
        for i in 0..<count { result.append(compare(op, a[maps[0][i]], b[maps[1][i]])) }
      }
      return [TensorData(result, shape: out.shape)]
    }

    if useDoubles {
      let values = operands.map { $0.doubles() }
      var result = [Double]()
      result.reserveCapacity(count)
      for i in 0..<count {
        var accumulator = values[0][maps[0][i]]
        for k in 1..<max(values.count, 1) {
          let b = values[k][maps[k][i]]
          switch op {
          case "Add", "Sum", "Mean": accumulator += b
          case "Sub": accumulator -= b
          case "Mul": accumulator *= b
          case "Div": accumulator /= b
          case "Pow": accumulator = Foundation.pow(accumulator, b)
          case "Max": accumulator = accumulator.isNaN || b.isNaN ? .nan : Swift.max(accumulator, b)
          case "Min": accumulator = accumulator.isNaN || b.isNaN ? .nan : Swift.min(accumulator, b)
          case "Mod" where cRemainder: accumulator = Foundation.fmod(accumulator, b)
          default: return nil
          }
        }
        if op == "Mean" { accumulator /= Double(values.count) }
        result.append(accumulator)
      }
      return [TensorData(type: out, doubles: result)]
    }

    guard first.dtype != .uint64 || ["Add", "Sub", "Mul", "Sum", "And", "Or"].contains(op) else { return nil }
    let values = operands.map { $0.int64s() }
    var result = [Int64]()
    result.reserveCapacity(count)
    for i in 0..<count {
      var accumulator = values[0][maps[0][i]]
      for k in 1..<max(values.count, 1) {
        let b = values[k][maps[k][i]]
        switch op {
        case "Add", "Sum": accumulator = accumulator &+ b
        case "Sub": accumulator = accumulator &- b
        case "Mul": accumulator = accumulator &* b
        case "Div":
          guard b != 0 else { return nil }
          let (quotient, overflow) = accumulator.dividedReportingOverflow(by: b)
          accumulator = overflow ? accumulator : quotient
        case "Pow":
          guard let power = integerPower(accumulator, b) else { return nil }
          accumulator = power
        case "Max": accumulator = Swift.max(accumulator, b)
        case "Min": accumulator = Swift.min(accumulator, b)
        case "And": accumulator = accumulator != 0 && b != 0 ? 1 : 0
        case "Or": accumulator = accumulator != 0 || b != 0 ? 1 : 0
        case "Xor": accumulator = (accumulator != 0) != (b != 0) ? 1 : 0
        case "BitwiseAnd": accumulator &= b
        case "BitwiseOr": accumulator |= b
        case "BitwiseXor": accumulator ^= b
        case "Mod":
          // fmod = 1: the sign of the dividend (C); fmod = 0: the sign of the divisor (Python).
          guard b != 0 else { return nil }
          let remainder = b == -1 ? 0 : accumulator % b
          accumulator = !cRemainder && remainder != 0 && (remainder < 0) != (b < 0) ? remainder &+ b : remainder
        default: return nil
        }
      }
      result.append(accumulator)
    }
    return [TensorData(type: out, int64s: result)]
  }

  static func compare<T: Comparable>(_ op: String, _ a: T, _ b: T) -> Bool {
    switch op {
    case "Equal": a == b
    case "Less": a < b
    case "Greater": a > b
    case "LessOrEqual": a <= b
    default: a >= b
    }
  }

  /// `base ** exponent` with wrapping multiplication; nil for negative exponents (not integral).
  static func integerPower(_ base: Int64, _ exponent: Int64) -> Int64? {
    guard exponent >= 0 else { return base == 1 ? 1 : nil }
    var result: Int64 = 1
    var factor = base
    var remaining = exponent
    while remaining > 0 {
      if remaining & 1 == 1 { result = result &* factor }
      factor = factor &* factor
      remaining >>= 1
    }
    return result
  }

  /// Unary elementwise math; integer Relu/Neg/Abs and bool Not stay exact.
  static func unaryFloat(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    let op = ctx.node.op
    if !x.dtype.isFloat {
      let values = x.int64s()
      let result: [Int64]
      switch op {
      case "Relu": result = values.map { Swift.max($0, 0) }
      case "Neg": result = values.map { 0 &- $0 }
      case "Abs": result = values.map { $0 < 0 ? 0 &- $0 : $0 }
      case "Not": result = values.map { $0 == 0 ? 1 : 0 }
      default: return nil
      }
      return [TensorData(type: out, int64s: result)]
    }
    let alpha = Double(try ctx.node.float("alpha", default: op == "LeakyRelu" ? 0.01 : 0.2))
    let beta = Double(try ctx.node.float("beta", default: 0.5))
    let tanhGelu = try ctx.node.string("approximate", default: "none") == "tanh"
    let function: (Double) -> Double
    switch op {
    case "Sqrt": function = { $0.squareRoot() }
    case "Exp": function = { Foundation.exp($0) }
    case "Log": function = { Foundation.log($0) }
    case "Erf": function = { Foundation.erf($0) }
    case "Tanh": function = { Foundation.tanh($0) }
    case "Sigmoid": function = { 1 / (1 + Foundation.exp(-$0)) }
    case "Reciprocal": function = { 1 / $0 }
    case "Floor": function = { $0.rounded(.down) }
    case "Ceil": function = { $0.rounded(.up) }
    case "Relu": function = { $0 < 0 ? 0 : $0 }
    case "Neg": function = { -$0 }
    case "Abs": function = { Swift.abs($0) }
    case "LeakyRelu": function = { $0 < 0 ? alpha * $0 : $0 }
    case "HardSigmoid": function = { Swift.max(0, Swift.min(1, alpha * $0 + beta)) }
    case "HardSwish": function = { $0 * Swift.max(0, Swift.min(1, $0 / 6 + 0.5)) }
    case "Gelu":
      function =
        tanhGelu
        ? { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
        : { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
    default: return nil
    }
    return [TensorData(type: out, doubles: x.doubles().map(function))]
  }

  static func clip(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    if x.dtype.isFloat {
      var low = -Double.infinity
      var high = Double.infinity
      if ctx.opset < 11 {
        low = Double(try ctx.node.float("min", default: -.infinity))
        high = Double(try ctx.node.float("max", default: .infinity))
      } else {
        if let bound = ctx.data(1)?.scalarDouble { low = bound }
        if let bound = ctx.data(2)?.scalarDouble { high = bound }
      }
      return [TensorData(type: out, doubles: x.doubles().map { Swift.min(Swift.max($0, low), high) })]
    }
    guard ctx.opset >= 11, x.dtype != .uint64 else { return nil }
    let low = ctx.data(1)?.scalarInt64 ?? .min
    let high = ctx.data(2)?.scalarInt64 ?? .max
    return [TensorData(type: out, int64s: x.int64s().map { Swift.min(Swift.max($0, low), high) })]
  }

  /// ReduceSum/Mean/Max/Min/Prod over non-empty axes.
  static func reduce(_ ctx: OpContext) throws -> [TensorData]? {
    guard let x = ctx.data(0), let out = ctx.outputTypes.first else { return nil }
    let op = ctx.node.op
    guard ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"].contains(op) else { return nil }
    let geometry = try OpRegistry.reductionGeometry(ctx)
    if geometry.axes.isEmpty { return x.reshaped(to: out.shape).map { [$0] } }
    let reduced = Set(geometry.axes)
    guard geometry.axes.allSatisfy({ x.shape[$0] > 0 }) else { return nil }
    // Output strides over the input's axes (0 on reduced axes), in the keep-dims layout.
    let keptShape = x.shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
    let keptStrides = strides(keptShape).enumerated().map { reduced.contains($0.offset) ? 0 : $0.element }
    let targets = Broadcast.stridedOffsets(shape: x.shape, base: 0, strides: keptStrides)
    let outCount = out.elementCount ?? 0
    let groupSize = geometry.axes.reduce(1) { $0 * x.shape[$1] }
    if x.dtype.isFloat || op == "ReduceMean" {
      guard x.dtype.isFloat else { return nil }
      let initial: Double =
        switch op {
        case "ReduceProd": 1
        case "ReduceMax": -.infinity
        case "ReduceMin": .infinity
        default: 0
        }
      var result = [Double](repeating: initial, count: outCount)
      for (value, target) in zip(x.doubles(), targets) {
        switch op {
        case "ReduceProd": result[target] *= value
        case "ReduceMax": result[target] = value.isNaN ? value : Swift.max(result[target], value)
        case "ReduceMin": result[target] = value.isNaN ? value : Swift.min(result[target], value)
        default: result[target] += value
        }
      }
      if op == "ReduceMean" { result = result.map { $0 / Double(groupSize) } }
      return [TensorData(type: out, doubles: result)]
    }
    guard x.dtype != .uint64 else { return nil }
    let initial: Int64 =
      switch op {
      case "ReduceProd": 1
      case "ReduceMax": .min
      case "ReduceMin": .max
      default: 0
      }
    var result = [Int64](repeating: initial, count: outCount)
    for (value, target) in zip(x.int64s(), targets) {
      switch op {
      case "ReduceProd": result[target] = result[target] &* value
      case "ReduceMax": result[target] = Swift.max(result[target], value)
      case "ReduceMin": result[target] = Swift.min(result[target], value)
      default: result[target] = result[target] &+ value
      }
    }
    return [TensorData(type: out, int64s: result)]
  }
}
