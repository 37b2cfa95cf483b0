import KilnIR

/// The kernel IR: what one dispatch computes, as the value of one output element.
///
/// A kernel has one output tensor of `shape`; element `(c0, c1, ...)` of it is `body`, an
/// expression over the output coordinates (`.coordinate(d)`), reduction variables, literals and
/// loads from the kernel's inputs (materialised tensors, by linear element index). Elementwise and
/// movement ops (transpose, slice, pad, gather, concat, broadcast, reshape) fuse into loads' index
/// expressions; reductions and contractions (MatMul, Conv, pools, ReduceX) are `.reduce` nodes.
/// The same kernel is emitted as GLSL (one invocation per element) and as C (a loop per workgroup).
public indirect enum Expr: Hashable, Sendable {
  /// A literal; its type is `type`.
  case literal(Literal)
  /// The output coordinate along axis `d` (type `.index`).
  case coordinate(Int)
  /// The variable of the enclosing `.reduce` with this id (type `.index`).
  case variable(Int)
  /// Element `index` (type `.index`, a linear element offset) of kernel input `input`.
  case load(input: Int, index: Expr)
  case unary(UnaryOp, Expr)
  case binary(BinaryOp, Expr, Expr)
  /// `condition ? a : b`; `condition` is `.bool`, `a` and `b` have the same type.
  case select(Expr, Expr, Expr)
  /// Converts to `type` with C semantics (float -> int truncates; -> bool is `!= 0`).
  case cast(Expr, ValueType)
  /// Reinterprets the bits of a value stored as `from` as a `to` value of the same width: the
  /// value is first rounded to its storage format (float16/bfloat16 compute as float32), and
  /// the result computes as `ValueType.compute(to)`.
  case bitcast(Expr, from: DType, to: DType)
  /// Folds `body` over `variable` in `0..<extent`. For argmax/argmin the result is the (index)
  /// value of `variable` at the best `body`.
  case reduce(ReduceOp, variable: Int, extent: Int, body: Expr)
}

/// Types kernels compute in. Float16/bfloat16 tensors are loaded as `.float32` and rounded on store
/// (see `compute(_:)` for the low-precision types).
public enum ValueType: Hashable, Sendable, CustomStringConvertible {
  /// A signed integer wide enough for every element index of the kernel.
  case index
  case scalar(DType)

  public static let bool = ValueType.scalar(.bool)
  public static let float32 = ValueType.scalar(.float32)
  public static let int64 = ValueType.scalar(.int64)

  /// The type a tensor of `dtype` computes in.
  /// The 8-bit and 4-bit floats compute as float32 and 4-bit/2-bit integers as int8/uint8: loads
  /// decode and stores encode (rounding, or keeping the low bits of an integer).
  public static func compute(_ dtype: DType) -> ValueType {
    switch dtype {
    case .float16, .bfloat16: .float32
    case .int4, .int2: .scalar(.int8)
    case .uint4, .uint2: .scalar(.uint8)
    default: dtype.isMiniFloat ? .float32 : .scalar(dtype)
    }
  }

  public var isFloat: Bool { if case .scalar(let d) = self { d.isFloat } else { false } }
  public var isBool: Bool { self == .bool }
  public var isInteger: Bool { !isFloat && !isBool }
  public var isSigned: Bool {
    switch self {
    case .index: true
    case .scalar(let d): d.isFloat || d.isSigned
    }
  }

  public var description: String {
    switch self {
    case .index: "index"
    case .scalar(let d): d.rawValue
    }
  }
}

public struct Literal: Hashable, Sendable {
  public var type: ValueType
  /// The value for float types (and bools as 0/1).
  public var float: Double
  /// The exact value for integer types (and `.index`).
  public var integer: Int64
  /// For uint64 values above Int64.max.
  public var unsigned: UInt64

  public static func index(_ value: Int) -> Literal {
    Literal(type: .index, float: Double(value), integer: Int64(value), unsigned: UInt64(bitPattern: Int64(value)))
  }

  public static func of(_ value: Double, _ type: ValueType) -> Literal {
    if type.isFloat || type.isBool {
      return Literal(type: type, float: type.isBool ? (value != 0 && !value.isNaN ? 1 : 0) : value, integer: 0, unsigned: 0)
    }
    let integer = Int64(exactly: value.rounded(.towardZero)) ?? (value < 0 ? Int64.min : Int64.max)
    return Literal(type: type, float: value, integer: integer, unsigned: UInt64(bitPattern: integer))
  }

  public static func integer(_ value: Int64, _ type: ValueType) -> Literal {
    Literal(type: type, float: Double(value), integer: value, unsigned: UInt64(bitPattern: value))
  }

  public static func unsigned(_ value: UInt64, _ type: ValueType) -> Literal {
    Literal(type: type, float: Double(value), integer: Int64(bitPattern: value), unsigned: value)
  }
}

public enum UnaryOp: String, Hashable, Sendable, CaseIterable {
  case negate, abs, sqrt, exp, log, erf, tanh, sigmoid, floor, ceil
  /// Round half to even.
  case round
  case sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh
  case reciprocal, sign
  case logicalNot, bitwiseNot
  case isNaN, isPositiveInfinity, isNegativeInfinity
}

public enum BinaryOp: String, Hashable, Sendable, CaseIterable {
  case add, subtract, multiply
  /// Float division; integer division truncates toward zero (C semantics).
  case divide
  /// Integer division rounding toward negative infinity (index math).
  case floorDivide
  /// Float: fmod (sign of the dividend); integer: C remainder (sign of the dividend).
  case remainder
  /// Integer: remainder with the sign of the divisor (Python); float: the same on floats.
  case modulo
  case power, minimum, maximum
  case equal, notEqual, less, lessEqual, greater, greaterEqual
  case logicalAnd, logicalOr, logicalXor
  case bitwiseAnd, bitwiseOr, bitwiseXor, shiftLeft, shiftRight
  case atan2

  public var isComparison: Bool {
    switch self {
    case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual: true
    default: false
    }
  }

  public var isLogical: Bool { self == .logicalAnd || self == .logicalOr || self == .logicalXor }
}

public enum ReduceOp: Hashable, Sendable {
  case sum, product, maximum, minimum
  /// Index of the first (or last) maximum / minimum; NaN is never selected over a number.
  case argmax(selectLast: Bool)
  case argmin(selectLast: Bool)

  public var returnsIndex: Bool {
    switch self {
    case .argmax, .argmin: true
    default: false
    }
  }
}

/// One dispatch's worth of computation.
public struct Kernel: Hashable, Sendable {
  public struct Operand: Hashable, Sendable {
    public var dtype: DType
    public var elementCount: Int
    public init(dtype: DType, elementCount: Int) {
      self.dtype = dtype
      self.elementCount = elementCount
    }
    public var byteCount: Int { elementCount * dtype.byteSize }
  }

  public var name: String
  /// Inputs in binding order; the output is bound after them.
  public var inputs: [Operand]
  public var output: Operand
  /// Output shape; `.coordinate(d)` ranges over `0..<shape[d]`.
  public var shape: [Int]
  /// The output element's value, of type `ValueType.compute(output.dtype)`.
  public var body: Expr
  /// ONNX node names fused into this kernel.
  public var sourceOps: [String]

  public init(name: String, inputs: [Operand], output: Operand, shape: [Int], body: Expr, sourceOps: [String]) {
    self.name = name
    self.inputs = inputs
    self.output = output
    self.shape = shape
    self.body = body
    self.sourceOps = sourceOps
  }

  /// Whether every index of this kernel fits a 32-bit signed integer.
  public var fitsInt32Indices: Bool {
    let largest = ([output.elementCount] + inputs.map(\.elementCount)).max() ?? 0
    return largest < Int(Int32.max) && body.maximumExtent < Int(Int32.max)
  }

  /// The type of `expr` in this kernel.
  public func type(of expr: Expr) -> ValueType {
    switch expr {
    case .literal(let literal): literal.type
    case .coordinate, .variable: .index
    case .load(let input, _): .compute(inputs[input].dtype)
    case .unary(let op, let operand):
      switch op {
      case .isNaN, .isPositiveInfinity, .isNegativeInfinity, .logicalNot: .bool
      default: type(of: operand)
      }
    case .binary(let op, let a, _):
      op.isComparison || op.isLogical ? .bool : type(of: a)
    case .select(_, let a, _): type(of: a)
    case .cast(_, let type): type
    case .bitcast(_, _, let to): .compute(to)
    case .reduce(let op, _, _, let body): op.returnsIndex ? .index : type(of: body)
    }
  }
}

extension Expr {
  /// The largest reduction extent inside (0 if none).
  public var maximumExtent: Int {
    switch self {
    case .literal, .coordinate, .variable: 0
    case .load(_, let index): index.maximumExtent
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): a.maximumExtent
    case .binary(_, let a, let b): Swift.max(a.maximumExtent, b.maximumExtent)
    case .select(let c, let a, let b): Swift.max(c.maximumExtent, a.maximumExtent, b.maximumExtent)
    case .reduce(_, _, let extent, let body): Swift.max(extent, body.maximumExtent)
    }
  }

  /// Number of nodes (a cost measure for fusion decisions).
  public var nodeCount: Int {
    switch self {
    case .literal, .coordinate, .variable: 1
    case .load(_, let index): 1 + index.nodeCount
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): 1 + a.nodeCount
    case .binary(_, let a, let b): 1 + a.nodeCount + b.nodeCount
    case .select(let c, let a, let b): 1 + c.nodeCount + a.nodeCount + b.nodeCount
    case .reduce(_, _, _, let body): 1 + body.nodeCount
    }
  }

  /// Whether the expression contains a reduction.
  public var containsReduction: Bool {
    switch self {
    case .literal, .coordinate, .variable: false
    case .load(_, let index): index.containsReduction
    case .unary(_, let a), .cast(let a, _), .bitcast(let a, _, _): a.containsReduction
    case .binary(_, let a, let b): a.containsReduction || b.containsReduction
    case .select(let c, let a, let b): c.containsReduction || a.containsReduction || b.containsReduction
    case .reduce: true
    }
  }

  /// Replaces load inputs through `map` (used when a fused producer's inputs are renumbered).
  public func remappingInputs(_ map: (Int) -> Int) -> Expr {
    switch self {
    case .literal, .coordinate, .variable: self
    case .load(let input, let index): .load(input: map(input), index: index.remappingInputs(map))
    case .unary(let op, let a): .unary(op, a.remappingInputs(map))
    case .cast(let a, let t): .cast(a.remappingInputs(map), t)
    case .bitcast(let a, let from, let to): .bitcast(a.remappingInputs(map), from: from, to: to)
    case .binary(let op, let a, let b): .binary(op, a.remappingInputs(map), b.remappingInputs(map))
    case .select(let c, let a, let b): .select(c.remappingInputs(map), a.remappingInputs(map), b.remappingInputs(map))
    case .reduce(let op, let v, let e, let body): .reduce(op, variable: v, extent: e, body: body.remappingInputs(map))
    }
  }
}

// MARK: Index arithmetic with folding

extension Expr {
  public static func index(_ value: Int) -> Expr { .literal(.index(value)) }

  public var indexConstant: Int? {
    if case .literal(let literal) = self, literal.type == .index { return Int(literal.integer) }
    return nil
  }

  public static func + (a: Expr, b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(x + y) }
    if a.indexConstant == 0 { return b }
    if b.indexConstant == 0 { return a }
    return .binary(.add, a, b)
  }

  public static func - (a: Expr, b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(x - y) }
    if b.indexConstant == 0 { return a }
    return .binary(.subtract, a, b)
  }

  public static func * (a: Expr, b: Expr) -> Expr {
    if let x = a.indexConstant, let y = b.indexConstant { return .index(x * y) }
    if a.indexConstant == 0 || b.indexConstant == 0 { return .index(0) }
    if a.indexConstant == 1 { return b }
    if b.indexConstant == 1 { return a }
    return .binary(.multiply, a, b)
  }

  public static func + (a: Expr, b: Int) -> Expr { a + .index(b) }
  public static func - (a: Expr, b: Int) -> Expr { a - .index(b) }
  public static func * (a: Expr, b: Int) -> Expr { a * .index(b) }

  /// Floor division by a positive constant.
  public func floorDivided(by divisor: Int) -> Expr {
    precondition(divisor > 0, "index division by \(divisor)")
    if divisor == 1 { return self }
    if let x = indexConstant { return .index(Int((Double(x) / Double(divisor)).rounded(.down))) }
    return .binary(.floorDivide, self, .index(divisor))
  }

  /// Non-negative remainder by a positive constant.
  public func modulo(_ divisor: Int) -> Expr {
    precondition(divisor > 0, "index modulo by \(divisor)")
    if divisor == 1 { return .index(0) }
    if let x = indexConstant { return .index(((x % divisor) + divisor) % divisor) }
    return .binary(.modulo, self, .index(divisor))
  }

  /// Row-major linear offset of `coordinates` in `shape`.
  public static func linearIndex(_ coordinates: [Expr], shape: [Int]) -> Expr {
    precondition(coordinates.count == shape.count, "rank mismatch in linearIndex")
    var offset = Expr.index(0)
    var step = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
      if shape[axis] != 1 { offset = offset + coordinates[axis] * step }
      step *= shape[axis]
    }
    return offset
  }

  /// Coordinates of a row-major linear offset in `shape` (the inverse of `linearIndex`), for a
  /// linear index known to be in range: the outermost non-unit axis needs no modulo.
  public static func coordinates(ofLinear linear: Expr, shape: [Int]) -> [Expr] {
    var result = [Expr](repeating: .index(0), count: shape.count)
    let outermost = shape.firstIndex { $0 != 1 }
    var step = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
      let quotient = linear.floorDivided(by: step)
      result[axis] = axis == outermost ? quotient : quotient.modulo(shape[axis])
      step *= shape[axis]
    }
    return result
  }

  /// A boolean: `lower <= self < upper` for index expressions.
  public func inRange(_ lower: Int, _ upper: Int) -> Expr {
    if let x = indexConstant { return .literal(.of(x >= lower && x < upper ? 1 : 0, .bool)) }
    return .binary(.logicalAnd, .binary(.greaterEqual, self, .index(lower)), .binary(.less, self, .index(upper)))
  }
}
