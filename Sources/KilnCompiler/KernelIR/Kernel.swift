import KilnIR

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

/// One dispatch's worth of computation: the value of one element of its output tensor, as an
/// expression graph (`Expr`) over the output coordinates.
///
/// The same kernel is emitted as GLSL (one invocation per element, or a template) and as C (a
/// loop per workgroup, or a template).
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
  /// The region's kind and the structure its lowerings stated; its values point into `body`.
  public var region: Region

  /// - Parameter region: nil for a kernel stating no structure: `.reduction` when the body
  ///   reduces, else `.elementwise`.
  public init(name: String, inputs: [Operand], output: Operand, shape: [Int], body: Expr, sourceOps: [String], region: Region? = nil) {
    self.name = name
    self.inputs = inputs
    self.output = output
    self.shape = shape
    self.body = body
    self.sourceOps = sourceOps
    self.region = region ?? Region(kind: body.containsReduction ? .reduction : .elementwise)
  }

  /// The body and the region's values rewritten together by `transform` (see `Expr.rebuilt`),
  /// so the region still points into the body.
  public mutating func rewrite(_ transform: (Expr) throws -> Expr) rethrows {
    let values = region.values
    let results = try Expr.rebuilt([body] + values, transform)
    body = results[0]
    region = region.replacingValues(Array(results.dropFirst()))
  }

  /// Whether every index of this kernel fits a 32-bit signed integer.
  public var fitsInt32Indices: Bool {
    let largest = ([output.elementCount] + inputs.map(\.elementCount)).max() ?? 0
    return largest < Int(Int32.max) && body.maximumExtent < Int(Int32.max)
  }

  /// Binds input `input` as `dtype` (of the same compute type): its operand and every load of it.
  public mutating func retype(input: Int, as dtype: DType) {
    precondition(ValueType.compute(dtype) == ValueType.compute(inputs[input].dtype), "retyping changes the compute type")
    inputs[input].dtype = dtype
    rewrite { expr in
      guard case .load(input, _, let index) = expr.kind else { return expr }
      return .load(input: input, dtype: dtype, index: index)
    }
  }

  /// The type of `expr` (its own: loads carry their dtype).
  public func type(of expr: Expr) -> ValueType { expr.type }
}
