import Foundation
import KilnCompiler
import KilnIR

/// A test oracle for the kernel IR: evaluates a kernel's body at every output coordinate in
/// Double / Int64 arithmetic. It also type-checks every expression (operands of one type,
/// boolean conditions, index-typed load indices) and records every load whose index leaves its
/// input, including loads in select branches that are not taken.
struct ExprEvaluator {
  enum Value {
    case float(Double)
    case int(Int64)
    case bool(Bool)

    var double: Double {
      switch self {
      case .float(let v): v
      case .int(let v): Double(v)
      case .bool(let v): v ? 1 : 0
      }
    }

    var integer: Int64 {
      switch self {
      case .float(let v): TensorData.saturatingInt64(v)
      case .int(let v): v
      case .bool(let v): v ? 1 : 0
      }
    }

    var truth: Bool {
      switch self {
      case .float(let v): v != 0
      case .int(let v): v != 0
      case .bool(let v): v
      }
    }
  }

  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  let kernel: Kernel
  /// Each input's elements as doubles (integers exactly up to 2^53).
  let inputs: [[Double]]
  /// Problems found: out-of-bounds loads, type errors.
  private(set) var problems: [String] = []
  /// A custom program's locals and output as they stand.
  private var locals: [Value] = []
  private var output: [Value] = []
  private var scratch: [Int64] = []

  init(kernel: Kernel, inputs: [[Double]]) {
    self.kernel = kernel
    self.inputs = inputs
  }

  /// Every output element, row-major, converted as the store would (rounded to the output
  /// dtype). Throws when the body is ill-typed or reads out of bounds.
  mutating func run() throws -> [Double] {
    if let program = kernel.region.program { return try run(program) }
    let bodyType = try typeCheck(kernel.body)
    guard bodyType == ValueType.compute(kernel.output.dtype) else {
      throw Failure(
        description:
          "body has type \(bodyType), output \(kernel.output.dtype) needs \(ValueType.compute(kernel.output.dtype))")
    }
    let count = kernel.shape.reduce(1, *)
    var results: [Double] = []
    results.reserveCapacity(count)
    var coordinates = [Int64](repeating: 0, count: kernel.shape.count)
    var variables = [Int64](repeating: 0, count: 64)
    for linear in 0..<count {
      var rest = linear
      for axis in stride(from: kernel.shape.count - 1, through: 0, by: -1) {
        coordinates[axis] = Int64(rest % kernel.shape[axis])
        rest /= kernel.shape[axis]
      }
      let value = evaluate(kernel.body, coordinates, &variables)
      results.append(Self.store(value, as: kernel.output.dtype))
      if !problems.isEmpty {
        throw Failure(description: "at output \(coordinates): \(problems.prefix(3).joined(separator: "; "))")
      }
    }
    return results
  }

  /// Runs every invocation of a custom program; its output starts zero.
  private mutating func run(_ program: KernelProgram) throws -> [Double] {
    for expr in Expr.postOrder(program.expressions) { _ = try typeCheck(expr) }
    output = Array(repeating: .int(0), count: kernel.output.elementCount)
    var variables = [Int64](repeating: 0, count: 64)
    for invocation in 0..<program.invocations {
      locals = program.locals.map { $0.isFloat ? .float(0) : $0.isBool ? .bool(false) : .int(0) }
      scratch = Array(repeating: 0, count: program.scratch)
      try execute(program.statements, invocation: Int64(invocation), &variables)
    }
    return output.map { Self.store($0, as: kernel.output.dtype) }
  }

  private mutating func execute(_ statements: [KernelProgram.Statement], invocation: Int64, _ variables: inout [Int64]) throws {
    func value(_ expr: Expr) throws -> Value {
      let result = evaluate(expr, [invocation], &variables)
      if !problems.isEmpty { throw Failure(description: "invocation \(invocation): \(problems.prefix(3).joined(separator: "; "))") }
      return result
    }
    for statement in statements {
      switch statement {
      case .set(let local, let expr): locals[local] = try value(expr)
      case .store(let index, let expr):
        let i = try value(index).integer
        guard i >= 0, i < Int64(output.count) else { throw Failure(description: "store at \(i) outside 0..<\(output.count)") }
        // Stored as the output keeps it, read back as such.
        let stored = Self.store(try value(expr), as: kernel.output.dtype)
        output[Int(i)] = kernel.output.dtype.isFloat ? .float(stored) : kernel.output.dtype == .bool ? .bool(stored != 0) : .int(Int64(stored))
      case .storeScratch(let index, let expr):
        let i = try value(index).integer
        guard i >= 0, i < Int64(scratch.count) else { throw Failure(description: "scratch store at \(i) outside 0..<\(scratch.count)") }
        scratch[Int(i)] = try value(expr).integer
      case .loop(let local, let from, let to, let body):
        locals[local] = try value(from)
        while locals[local].integer < (try value(to)).integer {
          try execute(body, invocation: invocation, &variables)
          locals[local] = .int(locals[local].integer + 1)
        }
      case .repeatWhile(let condition, let body):
        var steps = 0
        while try value(condition).truth {
          try execute(body, invocation: invocation, &variables)
          steps += 1
          if steps > 1 << 24 { throw Failure(description: "a while loop ran 2^24 times") }
        }
      case .branch(let condition, let then, let otherwise):
        try execute(try value(condition).truth ? then : otherwise, invocation: invocation, &variables)
      }
    }
  }

  /// The value a store of `value` into a `dtype` tensor keeps.
  static func store(_ value: Value, as dtype: DType) -> Double {
    switch dtype {
    case .float64: return value.double
    case .float32: return Double(Float(value.double))
    case .float16:
      return Double(FloatConversion.float(fromFloat16Bits: FloatConversion.float16Bits(from: Float(value.double))))
    case .bfloat16:
      return Double(FloatConversion.float(fromBFloat16Bits: FloatConversion.bfloat16Bits(from: Float(value.double))))
    case .bool: return value.truth ? 1 : 0
    case let mini where mini.isMiniFloat: return Self.value(bits: Self.bits(value, stored: mini), as: mini).double
    default: return Double(wrap(value.integer, dtype))
    }
  }

  static func wrap(_ value: Int64, _ dtype: DType) -> Int64 {
    switch dtype {
    case .int8: Int64(Int8(truncatingIfNeeded: value))
    case .int16: Int64(Int16(truncatingIfNeeded: value))
    case .int32: Int64(Int32(truncatingIfNeeded: value))
    case .uint8: Int64(UInt8(truncatingIfNeeded: value))
    case .uint16: Int64(UInt16(truncatingIfNeeded: value))
    case .uint32: Int64(UInt32(truncatingIfNeeded: value))
    case .int4, .uint4, .int2, .uint2: dtype.integerValue(ofStorageBits: dtype.wrappedStorageBits(value))
    default: value
    }
  }

  // MARK: Types

  private func typeCheck(_ expr: Expr) throws -> ValueType {
    func fail(_ message: String) -> Failure { Failure(description: "type error: \(message) in \(expr)") }
    switch expr.kind {
    case .local(let id, let type):
      guard let program = kernel.region.program, program.locals.indices.contains(id), program.locals[id] == type else {
        throw fail("local l\(id) is not declared as \(type)")
      }
      return type
    case .loadOutput(let dtype, let index):
      guard kernel.region.program != nil, dtype == kernel.output.dtype, try typeCheck(index) == .index else {
        throw fail("output read outside a program, or as \(dtype)")
      }
      return .compute(dtype)
    case .loadScratch(let index):
      guard (kernel.region.program?.scratch ?? 0) > 0, try typeCheck(index) == .index else { throw fail("scratch read without scratch") }
      return .int64
    case .literal(let literal): return literal.type
    case .coordinate(let axis):
      guard axis >= 0, axis < kernel.shape.count else { throw fail("coordinate \(axis) out of rank") }
      return .index
    case .variable: return .index
    case .load(let input, let dtype, let index):
      guard input >= 0, input < kernel.inputs.count else { throw fail("load from input \(input)") }
      guard dtype == kernel.inputs[input].dtype else { throw fail("load of input \(input) as \(dtype)") }
      guard try typeCheck(index) == .index else { throw fail("load index is not .index") }
      return .compute(kernel.inputs[input].dtype)
    case .unary(let op, let a):
      let t = try typeCheck(a)
      switch op {
      case .logicalNot:
        guard t == .bool else { throw fail("logicalNot of \(t)") }
        return .bool
      case .isNaN, .isPositiveInfinity, .isNegativeInfinity:
        guard t.isFloat else { throw fail("\(op) of \(t)") }
        return .bool
      case .bitwiseNot:
        guard t.isInteger else { throw fail("bitwiseNot of \(t)") }
        return t
      case .abs, .negate, .sign:
        guard !t.isBool else { throw fail("\(op) of bool") }
        return t
      default:
        guard t.isFloat else { throw fail("\(op) of \(t)") }
        return t
      }
    case .binary(let op, let a, let b):
      let ta = try typeCheck(a)
      let tb = try typeCheck(b)
      guard ta == tb else { throw fail("\(op) of \(ta) and \(tb)") }
      if op.isLogical {
        guard ta == .bool else { throw fail("\(op) of \(ta)") }
        return .bool
      }
      if op.isComparison { return .bool }
      switch op {
      case .bitwiseAnd, .bitwiseOr, .bitwiseXor, .shiftLeft, .shiftRight, .floorDivide:
        guard ta.isInteger else { throw fail("\(op) of \(ta)") }
      case .atan2:
        guard ta.isFloat else { throw fail("\(op) of \(ta)") }
      default:
        guard !ta.isBool else { throw fail("\(op) of bool") }
      }
      return ta
    case .select(let c, let a, let b):
      guard try typeCheck(c) == .bool else { throw fail("select condition is not bool") }
      let ta = try typeCheck(a)
      let tb = try typeCheck(b)
      guard ta == tb else { throw fail("select of \(ta) and \(tb)") }
      return ta
    case .cast(let a, let type):
      _ = try typeCheck(a)
      return type
    case .bitcast(let a, let from, let to):
      guard try typeCheck(a) == .compute(from), from.byteSize == to.byteSize else {
        throw fail("bitcast of \(try typeCheck(a)) as \(from) to \(to)")
      }
      return .compute(to)
    case .reduce(let op, let variable, let extent, let body):
      guard variable >= 0, variable < 64, extent >= 0 else {
        throw fail("reduce variable \(variable) extent \(extent)")
      }
      let t = try typeCheck(body)
      if op.returnsIndex {
        guard !t.isBool else { throw fail("argmax of bool") }
        return .index
      }
      guard !t.isBool else { throw fail("\(op) of bool") }
      return t
    }
  }

  // MARK: Evaluation

  private mutating func evaluate(_ expr: Expr, _ coordinates: [Int64], _ variables: inout [Int64]) -> Value {
    switch expr.kind {
    case .local(let id, _): return locals[id]
    case .loadScratch(let indexExpr):
      let index = evaluate(indexExpr, coordinates, &variables).integer
      guard index >= 0, index < Int64(scratch.count) else {
        problems.append("scratch read at \(index) outside 0..<\(scratch.count)")
        return .int(0)
      }
      return .int(scratch[Int(index)])
    case .loadOutput(_, let indexExpr):
      let index = evaluate(indexExpr, coordinates, &variables).integer
      guard index >= 0, index < Int64(output.count) else {
        problems.append("output read at \(index) outside 0..<\(output.count)")
        return .int(0)
      }
      return output[Int(index)]
    case .literal(let literal):
      if literal.type.isFloat { return .float(literal.float) }
      if literal.type.isBool { return .bool(literal.float != 0) }
      return .int(literal.integer)
    case .coordinate(let axis):
      return .int(coordinates[axis])
    case .variable(let id):
      return .int(variables[id])
    case .load(let input, _, let indexExpr):
      let index = evaluate(indexExpr, coordinates, &variables).integer
      let data = inputs[input]
      guard index >= 0, index < Int64(data.count) else {
        problems.append("load of input \(input) at \(index) outside 0..<\(data.count)")
        return Self.value(0, kernel.inputs[input].dtype)
      }
      return Self.value(data[Int(index)], kernel.inputs[input].dtype)
    case .unary(let op, let a):
      return Self.unary(op, evaluate(a, coordinates, &variables))
    case .binary(let op, let a, let b):
      let x = evaluate(a, coordinates, &variables)
      let y = evaluate(b, coordinates, &variables)
      return binary(op, x, y)
    case .select(let c, let a, let b):
      // Both branches are evaluated so that out-of-bounds loads anywhere are found.
      let condition = evaluate(c, coordinates, &variables).truth
      let x = evaluate(a, coordinates, &variables)
      let y = evaluate(b, coordinates, &variables)
      return condition ? x : y
    case .cast(let a, let type):
      return Self.cast(evaluate(a, coordinates, &variables), type)
    case .bitcast(let a, let from, let to):
      return Self.value(bits: Self.bits(evaluate(a, coordinates, &variables), stored: from), as: to)
    case .reduce(let op, let variable, let extent, let body):
      let saved = variables[variable]
      defer { variables[variable] = saved }
      var accumulator: Value?
      var best: (index: Int64, value: Double)?
      for v in 0..<extent {
        variables[variable] = Int64(v)
        let value = evaluate(body, coordinates, &variables)
        switch op {
        case .argmax(let last), .argmin(let last):
          let isMax: Bool = if case .argmax = op { true } else { false }
          let x = value.double
          if let current = best {
            if x.isNaN { continue }
            let better =
              current.value.isNaN
              || (isMax
                ? (last ? x >= current.value : x > current.value) : (last ? x <= current.value : x < current.value))
            if better { best = (Int64(v), x) }
          } else {
            best = (Int64(v), x)
          }
        default:
          accumulator = accumulator.map { fold(op, $0, value) } ?? value
        }
      }
      if op.returnsIndex { return .int(best?.index ?? 0) }
      if let accumulator { return accumulator }
      // Empty reduction: the identity of the op.
      let type = (try? typeCheck(body)) ?? .float32
      switch op {
      case .sum: return type.isFloat ? .float(0) : .int(0)
      case .product: return type.isFloat ? .float(1) : .int(1)
      case .maximum: return type.isFloat ? .float(-.infinity) : .int(.min)
      default: return type.isFloat ? .float(.infinity) : .int(.max)
      }
    }
  }

  private func fold(_ op: ReduceOp, _ a: Value, _ b: Value) -> Value {
    switch op {
    case .sum: binary(.add, a, b)
    case .product: binary(.multiply, a, b)
    case .maximum: binary(.maximum, a, b)
    default: binary(.minimum, a, b)
    }
  }

  static func value(_ element: Double, _ dtype: DType) -> Value {
    if dtype.isFloat { return .float(element) }
    if dtype == .bool { return .bool(element != 0) }
    return .int(Int64(element))
  }

  /// The bits `value` has when stored as `dtype`, zero-extended.
  static func bits(_ value: Value, stored dtype: DType) -> UInt64 {
    switch dtype {
    case .float32: return UInt64(Float(value.double).bitPattern)
    case .float64: return value.double.bitPattern
    case .float16: return UInt64(FloatConversion.float16Bits(from: Float(value.double)))
    case .bfloat16: return UInt64(FloatConversion.bfloat16Bits(from: Float(value.double)))
    case .bool: return value.truth ? 1 : 0
    case .float8e8m0:
      // As the kernels' store: the exponent field (lowerings round first).
      return UInt64(FloatConversion.float8e8m0Bits(from: Float(value.double), roundMode: .down))
    case let mini where mini.isMiniFloat: return UInt64(FloatConversion.miniFloatBits(from: Float(value.double), as: mini))
    case .int4, .uint4, .int2, .uint2: return dtype.wrappedStorageBits(value.integer)
    default:
      let bits = UInt64(bitPattern: value.integer)
      return dtype.byteSize == 8 ? bits : bits & ((1 << UInt64(dtype.byteSize * 8)) - 1)
    }
  }

  /// The value whose `dtype` storage has `bits`.
  static func value(bits: UInt64, as dtype: DType) -> Value {
    switch dtype {
    case .float32: return .float(Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits))))
    case .float64: return .float(Double(bitPattern: bits))
    case .float16: return .float(Double(FloatConversion.float(fromFloat16Bits: UInt16(truncatingIfNeeded: bits))))
    case .bfloat16: return .float(Double(FloatConversion.float(fromBFloat16Bits: UInt16(truncatingIfNeeded: bits))))
    case .bool: return .bool(bits != 0)
    case let mini where mini.isMiniFloat:
      return .float(Double(FloatConversion.float(fromMiniFloatBits: UInt8(truncatingIfNeeded: bits), as: mini)))
    default: return .int(wrap(Int64(bitPattern: bits), dtype))
    }
  }

  static func cast(_ value: Value, _ type: ValueType) -> Value {
    switch type {
    case .index: return .int(value.integer)
    case .scalar(let dtype):
      switch dtype {
      case .bool: return .bool(value.truth)
      case .float32, .float16, .bfloat16: return .float(Double(Float(value.double)))
      case .float64: return .float(value.double)
      default: return .int(wrap(value.integer, dtype))
      }
    }
  }

  static func unary(_ op: UnaryOp, _ value: Value) -> Value {
    if case .int(let v) = value {
      switch op {
      case .negate: return .int(0 &- v)
      case .abs: return .int(Swift.abs(v))
      case .sign: return .int(v > 0 ? 1 : v < 0 ? -1 : 0)
      case .bitwiseNot: return .int(~v)
      default: break
      }
    }
    if case .bool(let v) = value, op == .logicalNot { return .bool(!v) }
    let x = value.double
    switch op {
    case .negate: return .float(-x)
    case .abs: return .float(Swift.abs(x))
    case .sqrt: return .float(x.squareRoot())
    case .exp: return .float(Foundation.exp(x))
    case .log: return .float(Foundation.log(x))
    case .erf: return .float(Foundation.erf(x))
    case .tanh: return .float(Foundation.tanh(x))
    case .sigmoid: return .float(1 / (1 + Foundation.exp(-x)))
    case .floor: return .float(x.rounded(.down))
    case .ceil: return .float(x.rounded(.up))
    case .round: return .float(x.rounded(.toNearestOrEven))
    case .sin: return .float(Foundation.sin(x))
    case .cos: return .float(Foundation.cos(x))
    case .tan: return .float(Foundation.tan(x))
    case .asin: return .float(Foundation.asin(x))
    case .acos: return .float(Foundation.acos(x))
    case .atan: return .float(Foundation.atan(x))
    case .sinh: return .float(Foundation.sinh(x))
    case .cosh: return .float(Foundation.cosh(x))
    case .asinh: return .float(Foundation.asinh(x))
    case .acosh: return .float(Foundation.acosh(x))
    case .atanh: return .float(Foundation.atanh(x))
    case .reciprocal: return .float(1 / x)
    case .sign: return .float(x > 0 ? 1 : x < 0 ? -1 : x)
    case .logicalNot: return .bool(!value.truth)
    case .bitwiseNot: return .int(~value.integer)
    case .isNaN: return .bool(x.isNaN)
    case .isPositiveInfinity: return .bool(x == .infinity)
    case .isNegativeInfinity: return .bool(x == -.infinity)
    }
  }

  private func binary(_ op: BinaryOp, _ a: Value, _ b: Value) -> Value {
    switch (a, b) {
    case (.int(let x), .int(let y)):
      return Self.integerBinary(op, x, y)
    case (.bool(let x), .bool(let y)):
      switch op {
      case .logicalAnd: return .bool(x && y)
      case .logicalOr: return .bool(x || y)
      case .logicalXor, .notEqual: return .bool(x != y)
      case .equal: return .bool(x == y)
      default: return Self.integerBinary(op, x ? 1 : 0, y ? 1 : 0)
      }
    default:
      return Self.floatBinary(op, a.double, b.double)
    }
  }

  static func integerBinary(_ op: BinaryOp, _ x: Int64, _ y: Int64) -> Value {
    switch op {
    case .add: return .int(x &+ y)
    case .subtract: return .int(x &- y)
    case .multiply: return .int(x &* y)
    case .divide: return .int(y == 0 ? 0 : x / y)
    case .floorDivide:
      guard y != 0 else { return .int(0) }
      let q = x / y
      return .int((x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q)
    case .remainder: return .int(y == 0 ? 0 : x % y)
    case .modulo:
      guard y != 0 else { return .int(0) }
      let r = x % y
      return .int(r != 0 && ((r < 0) != (y < 0)) ? r + y : r)
    case .power:
      if y < 0 { return .int(x == 1 ? 1 : x == -1 ? (y % 2 == 0 ? 1 : -1) : 0) }
      var result: Int64 = 1
      for _ in 0..<y { result = result &* x }
      return .int(result)
    case .minimum: return .int(Swift.min(x, y))
    case .maximum: return .int(Swift.max(x, y))
    case .equal: return .bool(x == y)
    case .notEqual: return .bool(x != y)
    case .less: return .bool(x < y)
    case .lessEqual: return .bool(x <= y)
    case .greater: return .bool(x > y)
    case .greaterEqual: return .bool(x >= y)
    case .logicalAnd: return .bool(x != 0 && y != 0)
    case .logicalOr: return .bool(x != 0 || y != 0)
    case .logicalXor: return .bool((x != 0) != (y != 0))
    case .bitwiseAnd: return .int(x & y)
    case .bitwiseOr: return .int(x | y)
    case .bitwiseXor: return .int(x ^ y)
    case .shiftLeft: return .int(y >= 64 ? 0 : x << y)
    case .shiftRight: return .int(y >= 64 ? 0 : x >> y)
    case .atan2: return .float(Foundation.atan2(Double(x), Double(y)))
    }
  }

  static func floatBinary(_ op: BinaryOp, _ x: Double, _ y: Double) -> Value {
    switch op {
    case .add: return .float(x + y)
    case .subtract: return .float(x - y)
    case .multiply: return .float(x * y)
    case .divide: return .float(x / y)
    case .floorDivide: return .float((x / y).rounded(.down))
    case .remainder: return .float(x.truncatingRemainder(dividingBy: y))
    case .modulo:
      let r = x.truncatingRemainder(dividingBy: y)
      return .float(r != 0 && ((r < 0) != (y < 0)) ? r + y : r)
    case .power: return .float(Foundation.pow(x, y))
    case .minimum: return .float(x.isNaN || y.isNaN ? .nan : Swift.min(x, y))
    case .maximum: return .float(x.isNaN || y.isNaN ? .nan : Swift.max(x, y))
    case .equal: return .bool(x == y)
    case .notEqual: return .bool(x != y)
    case .less: return .bool(x < y)
    case .lessEqual: return .bool(x <= y)
    case .greater: return .bool(x > y)
    case .greaterEqual: return .bool(x >= y)
    case .logicalAnd: return .bool(x != 0 && y != 0)
    case .logicalOr: return .bool(x != 0 || y != 0)
    case .logicalXor: return .bool((x != 0) != (y != 0))
    case .atan2: return .float(Foundation.atan2(x, y))
    default: return .float(.nan)
    }
  }
}
