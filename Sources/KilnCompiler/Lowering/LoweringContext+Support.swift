import KilnIR

// Helpers shared by the op lowerings: typed attribute access with LoweringError messages,
// compile-time constant inputs, axis normalisation, and typed element access.

extension LoweringContext {
  /// The opset the node was imported at (fixes its semantics).
  var opset: Int { node.version }

  /// The type input `i` computes in.
  func computeType(_ i: Int) throws -> ValueType { .compute(try dtype(i)) }

  /// The type output `o` computes in.
  func outputComputeType(_ o: Int = 0) -> ValueType { .compute(outputType(o).dtype) }

  func outputShape(_ o: Int = 0) -> [Int] { outputType(o).shape }

  /// Input `i`'s element at `coordinates`, converted to `type` when it computes in another type.
  func element(_ i: Int, at coordinates: [Expr], as type: ValueType) throws -> Expr {
    let value = try element(i, at: coordinates)
    return try computeType(i) == type ? value : .cast(value, type)
  }

  /// Input `i`'s broadcast element, converted to `type` when it computes in another type.
  func broadcastElement(_ i: Int, at coordinates: [Expr], as type: ValueType) throws -> Expr {
    let value = try broadcastElement(i, at: coordinates)
    return try computeType(i) == type ? value : .cast(value, type)
  }

  /// The single element of a scalar-like input (any rank, one element).
  func scalarElement(_ i: Int, as type: ValueType) throws -> Expr {
    let shape = try shape(i)
    guard shape.reduce(1, *) == 1 else {
      throw error("input \(i) must hold exactly one element, got shape \(shape)")
    }
    return try element(i, at: Array(repeating: .index(0), count: shape.count), as: type)
  }

  /// A one-element input as a literal when it is a compile-time constant, else its element.
  func scalarOperand(_ i: Int, as type: ValueType) throws -> Expr {
    if let data = constant(i), data.elementCount == 1 {
      if type.isFloat || type.isBool, let value = data.scalarDouble { return .constant(value, type) }
      if data.dtype == .uint64, let bits = data.scalarInt64 {
        return .literal(.unsigned(UInt64(bitPattern: bits), type))
      }
      if !data.dtype.isFloat, let value = data.scalarInt64 { return .literal(.integer(value, type)) }
    }
    return try scalarElement(i, as: type)
  }

  // MARK: Attributes

  func intAttribute(_ name: String) throws -> Int? {
    switch node.attributes[name] {
    case nil: return nil
    case .int(let value): return Int(value)
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected int")
    }
  }

  func intAttribute(_ name: String, default fallback: Int) throws -> Int {
    try intAttribute(name) ?? fallback
  }

  func intsAttribute(_ name: String) throws -> [Int]? {
    switch node.attributes[name] {
    case nil: return nil
    case .ints(let values): return values.map { Int($0) }
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected ints")
    }
  }

  func floatAttribute(_ name: String) throws -> Double? {
    switch node.attributes[name] {
    case nil: return nil
    case .float(let value): return Double(value)
    case .int(let value): return Double(value)
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected float")
    }
  }

  func floatAttribute(_ name: String, default fallback: Double) throws -> Double {
    try floatAttribute(name) ?? fallback
  }

  func floatsAttribute(_ name: String) throws -> [Double]? {
    switch node.attributes[name] {
    case nil: return nil
    case .floats(let values): return values.map { Double($0) }
    case .ints(let values): return values.map { Double($0) }
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected floats")
    }
  }

  func stringAttribute(_ name: String, default fallback: String) throws -> String {
    switch node.attributes[name] {
    case nil: return fallback
    case .string(let value): return value
    case let other?: throw error("attribute '\(name)' is \(other.kindName), expected string")
    }
  }

  // MARK: Constant inputs

  /// Input `i`'s data when present; throws when it is present but only known at run time.
  /// An omitted optional input, or an empty tensor, is nil.
  func constantInput(_ i: Int, _ what: String) throws -> TensorData? {
    guard hasInput(i) else { return nil }
    guard let data = constant(i) else {
      throw error("input \(i) (\(what)) must be a compile-time constant")
    }
    return data.elementCount == 0 ? nil : data
  }

  /// An integer constant input as [Int]; nil when omitted or empty.
  func constantInts(_ i: Int, _ what: String) throws -> [Int]? {
    guard let data = try constantInput(i, what) else { return nil }
    guard data.dtype.isInteger else {
      throw error("input \(i) (\(what)) must be an integer tensor, got \(data.type)")
    }
    return data.int64s().map { Int($0) }
  }

  /// A numeric constant input as [Double]; nil when omitted or empty.
  func constantDoubles(_ i: Int, _ what: String) throws -> [Double]? {
    try constantInput(i, what)?.doubles()
  }

  /// `axis` normalised for `rank` (negative counts from the end).
  func normalizedAxis(_ axis: Int, rank: Int, _ what: String = "axis") throws -> Int {
    guard axis >= -rank, axis < rank else {
      throw error("\(what) \(axis) is out of range for rank \(rank)")
    }
    return axis < 0 ? axis + rank : axis
  }

  /// Distinct axes normalised for `rank`.
  func normalizedAxes(_ axes: [Int], rank: Int, _ what: String = "axes") throws -> [Int] {
    let result = try axes.map { try normalizedAxis($0, rank: rank, what) }
    guard Set(result).count == result.count else { throw error("\(what) \(axes) repeat an axis") }
    return result
  }
}

// MARK: - Expression building

extension Expr {
  /// A literal of `type` (integers truncate toward zero).
  public static func constant(_ value: Double, _ type: ValueType) -> Expr {
    if type.isFloat || type.isBool { return .literal(.of(value, type)) }
    return .literal(.integer(Int64(exactly: value.rounded(.towardZero)) ?? (value < 0 ? .min : .max), type))
  }

  static let trueValue = Expr.literal(.of(1, .bool))
  static let falseValue = Expr.literal(.of(0, .bool))

  /// The value of a boolean literal; nil for anything else.
  public var boolConstant: Bool? {
    if case .literal(let literal) = kind, literal.type == .bool { return literal.float != 0 }
    return nil
  }

  /// Logical and of `conditions`, folding literals (the empty list is true).
  public static func all(_ conditions: [Expr]) -> Expr {
    var result: Expr?
    for condition in conditions {
      if let known = condition.boolConstant {
        if !known { return .falseValue }
        continue
      }
      result = result.map { .binary(.logicalAnd, $0, condition) } ?? condition
    }
    return result ?? .trueValue
  }

  /// Logical or, folding literals.
  static func any(_ conditions: [Expr]) -> Expr {
    var result: Expr?
    for condition in conditions {
      if let known = condition.boolConstant {
        if known { return .trueValue }
        continue
      }
      result = result.map { .binary(.logicalOr, $0, condition) } ?? condition
    }
    return result ?? .falseValue
  }

  /// `condition ? a : b`, folding a literal condition.
  public static func choose(_ condition: Expr, _ a: Expr, _ b: Expr) -> Expr {
    if let known = condition.boolConstant { return known ? a : b }
    return .select(condition, a, b)
  }

  /// The smaller of two index expressions.
  static func indexMin(_ a: Expr, _ b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(Swift.min(x, y)) }
    return .binary(.minimum, a, b)
  }

  /// The larger of two index expressions.
  static func indexMax(_ a: Expr, _ b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(Swift.max(x, y)) }
    return .binary(.maximum, a, b)
  }

  /// An index expression clamped to `lower...upper`.
  func clamped(_ lower: Int, _ upper: Int) -> Expr {
    Expr.indexMin(Expr.indexMax(self, .index(lower)), .index(upper))
  }

  /// `self < value` for index expressions, folded when constant.
  func isLess(than value: Int) -> Expr {
    if let x = indexConstant { return x < value ? .trueValue : .falseValue }
    return .binary(.less, self, .index(value))
  }

  /// `self >= value` for index expressions, folded when constant.
  func isAtLeast(_ value: Int) -> Expr {
    if let x = indexConstant { return x >= value ? .trueValue : .falseValue }
    return .binary(.greaterEqual, self, .index(value))
  }

  /// Ceiling division by a positive constant.
  func ceilDivided(by divisor: Int) -> Expr {
    (self + (divisor - 1)).floorDivided(by: divisor)
  }

  /// Nested reductions over `variables` (outermost first) of `body`.
  static func reduce(_ op: ReduceOp, over variables: [(variable: Int, extent: Int)], body: Expr) -> Expr {
    var result = body
    for (variable, extent) in variables.reversed() {
      result = .reduce(op, variable: variable, extent: extent, body: result)
    }
    return result
  }
}

/// The most negative and most positive value of a compute type (infinities for floats).
enum TypeBounds {
  static func lowest(_ type: ValueType, storage dtype: DType) -> Expr {
    if type.isFloat { return .constant(-.infinity, type) }
    switch dtype {
    case .int8: return .literal(.integer(Int64(Int8.min), type))
    case .int16: return .literal(.integer(Int64(Int16.min), type))
    case .int32: return .literal(.integer(Int64(Int32.min), type))
    case .int64: return .literal(.integer(Int64.min, type))
    case .bool: return .falseValue
    case .int4, .int2: return .literal(.integer(dtype.integerRange?.lowerBound ?? 0, type))
    default: return .literal(.integer(0, type))
    }
  }

  static func highest(_ type: ValueType, storage dtype: DType) -> Expr {
    if type.isFloat { return .constant(.infinity, type) }
    switch dtype {
    case .int8: return .literal(.integer(Int64(Int8.max), type))
    case .int16: return .literal(.integer(Int64(Int16.max), type))
    case .int32: return .literal(.integer(Int64(Int32.max), type))
    case .int64: return .literal(.integer(Int64.max, type))
    case .uint8: return .literal(.integer(Int64(UInt8.max), type))
    case .uint16: return .literal(.integer(Int64(UInt16.max), type))
    case .uint32: return .literal(.integer(Int64(UInt32.max), type))
    case .uint64: return .literal(.unsigned(UInt64.max, type))
    case .bool: return .trueValue
    case .int4, .uint4, .int2, .uint2: return .literal(.integer(dtype.integerRange?.upperBound ?? 0, type))
    default: return .constant(.infinity, type)
    }
  }
}
