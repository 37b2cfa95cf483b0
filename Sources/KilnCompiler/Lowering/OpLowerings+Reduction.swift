import KilnIR

// Reductions and contractions: every output element folds many input elements with `.reduce`
// (nested, one reduction per folded axis, innermost over the last axis).

extension OpLowerings {
  static let reductionOps = [
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "CumProd", "LRN", "MatMul", "Gemm",
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
    "Einsum",
  ]

  static func reductionLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
      "ReduceLogSumExp", "ReduceSumSquare":
      return reduce(node.op)
    case "ArgMax": return argReduce(max: true)
    case "ArgMin": return argReduce(max: false)
    case "CumSum": return cumulative(.sum)
    case "CumProd": return cumulative(.product)
    case "LRN": return lrn
    case "MatMul": return matMul
    case "Gemm": return gemm
    case "Conv": return conv
    case "ConvTranspose": return convTranspose
    case "MaxPool": return maxPool
    case "AveragePool": return averagePool
    case "LpPool": return lpPool
    case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool": return globalPool(node.op)
    case "Einsum": return einsum
    default: return nil
    }
  }

  // MARK: ReduceX

  /// The reduced axes of a ReduceX node; nil means "no reduction" (noop_with_empty_axes).
  /// Axes are an attribute before opset 13 (ReduceSum) or 18 (the others), an input after.
  static func reducedAxes(_ ctx: LoweringContext, rank: Int) throws -> [Int]? {
    let inputSince = ctx.node.op == "ReduceSum" ? 13 : 18
    let axes: [Int]?
    if ctx.opset < inputSince {
      axes = try ctx.intsAttribute("axes")
    } else {
      if ctx.node.hasAttribute("axes") {
        throw ctx.error("attribute 'axes' is not valid from opset \(inputSince) on (axes is an input)")
      }
      axes = try ctx.constantInts(1, "axes")
    }
    if let axes, !axes.isEmpty { return try ctx.normalizedAxes(axes, rank: rank) }
    if try ctx.intAttribute("noop_with_empty_axes", default: 0) != 0 { return nil }
    return Array(0..<rank)
  }

  /// Input coordinates for output `coordinates` with `axes` folded: a fresh variable per folded
  /// axis longer than one (in axis order), 0 for folded unit axes.
  static func foldedCoordinates(
    _ ctx: LoweringContext, _ coordinates: [Expr], input: [Int], axes: Set<Int>, keepDims: Bool
  ) -> (coordinates: [Expr], variables: [(variable: Int, extent: Int)]) {
    var mapped: [Expr] = []
    var variables: [(variable: Int, extent: Int)] = []
    var outputAxis = 0
    for (axis, extent) in input.enumerated() {
      if axes.contains(axis) {
        if extent == 1 {
          mapped.append(.index(0))
        } else {
          let variable = ctx.freshVariable()
          variables.append((variable, extent))
          mapped.append(.variable(variable))
        }
        if keepDims { outputAxis += 1 }
      } else {
        mapped.append(coordinates[outputAxis])
        outputAxis += 1
      }
    }
    return (mapped, variables)
  }

  static func reduce(_ op: String) -> OpLowering {
    OpLowering(.reduction) { ctx, _, coordinates in
      let input = try ctx.shape(0)
      guard let axes = try reducedAxes(ctx, rank: input.count) else {
        return try ctx.element(0, at: coordinates)
      }
      let keepDims = try ctx.intAttribute("keepdims", default: 1) != 0
      let (mapped, variables) = foldedCoordinates(ctx, coordinates, input: input, axes: Set(axes), keepDims: keepDims)
      let type = try ctx.computeType(0)
      let x = try ctx.element(0, at: mapped)
      let count = axes.reduce(1) { $0 * input[$1] }
      if type == .bool {
        // ReduceMax/ReduceMin of bool (opset 20) are "any" and "all", folded as integers.
        guard op == "ReduceMax" || op == "ReduceMin" else { throw ctx.error("\(op) does not take bool input") }
        let folded = Expr.reduce(
          op == "ReduceMax" ? .maximum : .minimum, over: variables, body: .cast(x, .scalar(.int32)))
        return .cast(folded, .bool)
      }
      // Sums are stated as contractions (of one factor, or x * x): the CPU schedules run a long
      // one as a GEMM row.
      func sum(_ factors: [Expr]) -> Expr { ctx.sumOfProducts(over: variables, factors: factors, type: type) }
      switch op {
      case "ReduceSum": return sum([x])
      case "ReduceMean": return .binary(.divide, sum([x]), .constant(Double(count), type))
      case "ReduceMax": return .reduce(.maximum, over: variables, body: x)
      case "ReduceMin": return .reduce(.minimum, over: variables, body: x)
      case "ReduceProd": return .reduce(.product, over: variables, body: x)
      case "ReduceL1": return sum([type.isSigned ? .unary(.abs, x) : x])
      case "ReduceL2": return .unary(.sqrt, sum([x, x]))
      case "ReduceSumSquare": return sum([x, x])
      case "ReduceLogSum": return .unary(.log, sum([x]))
      case "ReduceLogSumExp": return .unary(.log, sum([.unary(.exp, x)]))
      default: throw ctx.error("internal: unknown reduction")
      }
    }
  }

  /// ArgMax/ArgMin: the index (int64) of the first, or with select_last_index the last, extreme.
  static func argReduce(max: Bool) -> OpLowering {
    OpLowering(.reduction) { ctx, _, coordinates in
      let input = try ctx.shape(0)
      let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: 0), rank: input.count)
      let keepDims = try ctx.intAttribute("keepdims", default: 1) != 0
      let selectLast = try ctx.opset >= 12 && ctx.intAttribute("select_last_index", default: 0) != 0
      let variable = ctx.freshVariable()
      var mapped = Array(coordinates[..<axis]) + [.variable(variable)]
      mapped += coordinates[(keepDims ? axis + 1 : axis)...]
      let body = try ctx.element(0, at: mapped)
      let op: ReduceOp = max ? .argmax(selectLast: selectLast) : .argmin(selectLast: selectLast)
      return .cast(.reduce(op, variable: variable, extent: input[axis], body: body), ctx.outputComputeType())
    }
  }

  /// LRN: x / (bias + alpha / size * sum of squares over a channel window)^beta.
  static let lrn = OpLowering(.reduction) { ctx, _, coordinates in
    let input = try ctx.shape(0)
    guard input.count >= 3 else { throw ctx.error("input must have rank 3 or more, got \(input)") }
    guard let size = try ctx.intAttribute("size"), size > 0 else {
      throw ctx.error("attribute 'size' must be positive")
    }
    let alpha = try ctx.floatAttribute("alpha", default: 0.0001)
    let beta = try ctx.floatAttribute("beta", default: 0.75)
    let bias = try ctx.floatAttribute("bias", default: 1)
    let type = try ctx.computeType(0)
    let channels = input[1]
    let variable = ctx.freshVariable()
    let channel = coordinates[1] + .variable(variable) - (size - 1) / 2
    var mapped = coordinates
    mapped[1] = channel.clamped(0, channels - 1)
    let x = try ctx.element(0, at: mapped)
    let inside = Expr.all([channel.isAtLeast(0), channel.isLess(than: channels)])
    let squares = Expr.reduce(
      .sum, variable: variable, extent: size, body: .select(inside, .binary(.multiply, x, x), .constant(0, type)))
    let base = Expr.binary(
      .add, .constant(bias, type), .binary(.multiply, .constant(alpha / Double(size), type), squares))
    return .binary(.divide, try ctx.element(0, at: coordinates), .binary(.power, base, .constant(beta, type)))
  }

  // MARK: Matrix products

  /// MatMul with NumPy semantics: batch axes broadcast; a 1-D A is a row, a 1-D B a column,
  /// and the added axis is not in the output.
  static let matMul = OpLowering(.reduction, region: .contraction) { ctx, _, coordinates in
    let a = try ctx.shape(0)
    let b = try ctx.shape(1)
    guard !a.isEmpty, !b.isEmpty else { throw ctx.error("operands must not be scalars, got \(a) and \(b)") }
    let rank = coordinates.count
    let k = a[a.count - 1]
    guard k == (b.count == 1 ? b[0] : b[b.count - 2]) else {
      throw ctx.error("inner dimensions of \(a) and \(b) differ")
    }
    let matrixAxes = (a.count > 1 ? 1 : 0) + (b.count > 1 ? 1 : 0)
    let batchRank = rank - matrixAxes
    let batch = Array(coordinates[..<batchRank])
    let row: Expr? = a.count > 1 ? coordinates[batchRank] : nil
    let column: Expr? = b.count > 1 ? coordinates[rank - 1] : nil
    let variable = ctx.freshVariable()
    let reduced: Expr = k == 1 ? .index(0) : .variable(variable)
    func batchCoordinates(_ shape: [Int]) -> [Expr] {
      let own = shape.count - 2
      return (0..<Swift.max(own, 0)).map { axis in shape[axis] == 1 ? .index(0) : batch[axis + batchRank - own] }
    }
    let left = try ctx.element(0, at: a.count == 1 ? [reduced] : batchCoordinates(a) + [row ?? .index(0), reduced])
    let right = try ctx.element(1, at: b.count == 1 ? [reduced] : batchCoordinates(b) + [reduced, column ?? .index(0)])
    return ctx.sumOfProducts(over: k == 1 ? [] : [(variable, k)], factors: [left, right], type: left.type)
  }

  /// Gemm: alpha * A' * B' + beta * C with optional transposes and C broadcast to [M, N].
  static let gemm = OpLowering(.reduction, region: .contraction) { ctx, _, coordinates in
    let a = try ctx.shape(0)
    guard a.count == 2, try ctx.shape(1).count == 2 else { throw ctx.error("A and B must be 2-D") }
    let type = ctx.outputComputeType()
    let transA = try ctx.intAttribute("transA", default: 0) != 0
    let transB = try ctx.intAttribute("transB", default: 0) != 0
    let alpha = try ctx.floatAttribute("alpha", default: 1)
    let beta = try ctx.floatAttribute("beta", default: 1)
    let k = transA ? a[0] : a[1]
    let variable = ctx.freshVariable()
    let reduced = Expr.variable(variable)
    let (m, n) = (coordinates[0], coordinates[1])
    let left = try ctx.element(0, at: transA ? [reduced, m] : [m, reduced], as: type)
    let right = try ctx.element(1, at: transB ? [n, reduced] : [reduced, n], as: type)
    var result = ctx.sumOfProducts(over: [(variable, k)], factors: [left, right], type: type)
    if alpha != 1 { result = .binary(.multiply, .constant(alpha, type), result) }
    if ctx.hasInput(2), beta != 0 {
      var c = try ctx.broadcastElement(2, at: coordinates, as: type)
      if beta != 1 { c = .binary(.multiply, .constant(beta, type), c) }
      result = .binary(.add, result, c)
    }
    return result
  }

  // MARK: Einsum

  /// Einsum over explicit or implicit output subscripts: summed letters become nested
  /// reductions; repeated letters in one operand read its diagonal; an ellipsis stands for
  /// right-aligned broadcast axes.
  static let einsum = OpLowering(.reduction, region: .contraction) { ctx, _, coordinates in
    let equation = try ctx.stringAttribute("equation", default: "").filter { !$0.isWhitespace }
    let sides = equation.split(separator: ">", omittingEmptySubsequences: false).map(String.init)
    guard sides.count <= 2, sides.count == 1 || sides[0].hasSuffix("-") else {
      throw ctx.error("equation '\(equation)' is malformed")
    }
    let inputs = sides.count == 2 ? String(sides[0].dropLast()) : sides[0]
    let rawOperands = inputs.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    guard rawOperands.count == ctx.inputCount else {
      throw ctx.error("equation '\(equation)' does not match \(ctx.inputCount) inputs")
    }
    // Ellipsis axes get private letters, right-aligned across operands.
    let ellipsisRank =
      try rawOperands.enumerated().map { i, text in
        text.contains("...") ? try ctx.shape(i).count - (text.count - 3) : 0
      }.max() ?? 0
    let ellipsisLetters = (0..<ellipsisRank).compactMap { Unicode.Scalar(0x100 + $0).map(Character.init) }
    func expand(_ text: String, rank: Int) -> [Character] {
      let letters = Array(text)
      guard let dot = letters.firstIndex(of: ".") else { return letters }
      let own = rank - (letters.count - 3)
      return Array(letters[..<dot]) + ellipsisLetters.suffix(Swift.max(own, 0)) + Array(letters[(dot + 3)...])
    }
    let operands = try rawOperands.enumerated().map { i, text in expand(text, rank: try ctx.shape(i).count) }
    var extents: [Character: Int] = [:]
    var counts: [Character: Int] = [:]
    for (i, letters) in operands.enumerated() {
      let shape = try ctx.shape(i)
      guard shape.count == letters.count else {
        throw ctx.error("operand \(i) '\(String(letters))' does not match shape \(shape)")
      }
      for (letter, extent) in zip(letters, shape) {
        if let known = extents[letter], known != extent, known != 1, extent != 1 {
          throw ctx.error("subscript '\(letter)' has extents \(known) and \(extent)")
        }
        extents[letter] = Swift.max(extents[letter] ?? 1, extent)
        counts[letter, default: 0] += 1
      }
    }
    let output: [Character] =
      sides.count == 2
      ? expand(sides[1], rank: coordinates.count)
      : ellipsisLetters + extents.keys.filter { counts[$0] == 1 && !ellipsisLetters.contains($0) }.sorted()
    guard output.count == coordinates.count else { throw ctx.error("output subscripts do not match the output rank") }
    var values: [Character: Expr] = [:]
    for (letter, coordinate) in zip(output, coordinates) { values[letter] = coordinate }
    var variables: [(variable: Int, extent: Int)] = []
    for letter in extents.keys.sorted() where values[letter] == nil {
      let variable = ctx.freshVariable()
      variables.append((variable, extents[letter] ?? 1))
      values[letter] = .variable(variable)
    }
    let type = ctx.outputComputeType()
    var factors: [Expr] = []
    for (i, letters) in operands.enumerated() {
      let shape = try ctx.shape(i)
      let mapped = zip(letters, shape).map { letter, extent in extent == 1 ? Expr.index(0) : values[letter] ?? .index(0)
      }
      factors.append(try ctx.element(i, at: mapped, as: type))
    }
    guard !factors.isEmpty else { throw ctx.error("needs at least one operand") }
    return ctx.sumOfProducts(over: variables, factors: factors, type: type)
  }
}
