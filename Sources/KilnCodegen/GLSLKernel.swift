import Foundation
import KilnCompiler
import KilnIR

/// Emits a kernel as a GLSL compute shader: one invocation per output element, 64 per workgroup,
/// the workgroup grid folded into x and y so any element count fits the 65535-per-axis limit.
public enum GLSLKernel {
  public static let workgroupSize = 64

  /// The version, extensions, a comment naming the kernel (and `note`) and the workgroup size.
  static func header(_ kernel: Kernel, note: String = "") -> String {
    """
    #version 450
    #extension GL_EXT_shader_explicit_arithmetic_types : require
    #extension GL_EXT_shader_16bit_storage : require
    #extension GL_EXT_shader_8bit_storage : require
    // \(kernel.name): \(kernel.sourceOps.joined(separator: ", "))\(note)
    layout(local_size_x = \(workgroupSize)) in;

    """
  }

  /// - Parameter maximumBindingBytes: operands larger than this are bound in parts (see
  ///   `VulkanBindingLayout`).
  public static func source(for kernel: Kernel, maximumBindingBytes: Int = VulkanBindingLayout.guaranteedBytes) -> String {
    let dialect = GLSLDialect(kernel, maximumBindingBytes: maximumBindingBytes)
    var out = header(kernel)
    out += dialect.bufferDeclarations()
    out += dialect.helperFunctions()
    let index = dialect.typeName(.index)
    out += """
      void main() {
        uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
        \(index) gid = \(index)(group) * \(index)(\(workgroupSize)) + \(index)(gl_LocalInvocationID.x);
        if (gid >= \(dialect.literal(.index(kernel.output.elementCount)))) return;

      """
    var emitter = ExprEmitter(dialect: dialect, kernel: kernel)
    for (axis, text) in dialect.coordinates(of: "gid", shape: kernel.shape).enumerated() {
      emitter.line("\(index) c\(axis) = \(text);")
    }
    let value = emitter.emit(kernel.body)
    emitter.line(dialect.storeOutput(at: "gid", value))
    out += emitter.lines.joined(separator: "\n") + "\n}\n"
    return out
  }
}

/// GLSL for one kernel: its types, literals and operations, and its buffers as
/// `layout` binds them (input i is `b<i>`, the output `result`; an operand bound in parts is
/// read and written through `kiln_in<i>` and `kiln_out`).
struct GLSLDialect: KernelDialect {
  /// Whether `.index` is a 32-bit int (else int64_t).
  let index32: Bool
  let layout: VulkanBindingLayout
  let kernel: Kernel

  init(_ kernel: Kernel, maximumBindingBytes: Int = VulkanBindingLayout.guaranteedBytes, index32: Bool? = nil) {
    self.kernel = kernel
    self.layout = VulkanBindingLayout(kernel, maximumBytes: maximumBindingBytes)
    self.index32 = index32 ?? kernel.fitsInt32Indices
  }

  /// The kernel's storage buffers, one declaration per line: input i as `b<i>` (or its parts
  /// `b<i>_<p>`) with a vec4 view `b<i>v` for each input in `vectorViews` (never a split one),
  /// then the output as `result` (or `result_<p>`), then the split-K scratch buffer.
  func bufferDeclarations(
    vectorViews: Set<Int> = [], scratch: Bool = false, scratchType: String = "float", readableOutput: Bool = false
  ) -> String {
    var out = ""
    func declare(_ operand: VulkanBindingLayout.Operand, block: String, array: String, qualifier: String) {
      let type = storageType(operand.dtype)
      if !operand.isSplit {
        out += "layout(std430, set = 0, binding = \(operand.first)) \(qualifier) buffer \(block) { \(type) \(array)[]; };\n"
        return
      }
      for part in 0..<operand.parts {
        out += "layout(std430, set = 0, binding = \(operand.first + part)) \(qualifier) buffer \(block)_\(part) { \(type) \(array)_\(part)[]; };\n"
      }
    }
    for (index, operand) in layout.operands.dropLast().enumerated() {
      declare(operand, block: "In\(index)", array: "b\(index)", qualifier: "readonly")
    }
    for input in vectorViews.sorted() {
      precondition(!layout.isSplit(input: input), "a vec4 view of input \(input), which is bound in parts")
      out += "layout(std430, set = 0, binding = \(layout.operands[input].first)) readonly buffer In\(input)v { vec4 b\(input)v[]; };\n"
    }
    declare(layout.output, block: "Out", array: "result", qualifier: readableOutput ? "" : "writeonly")
    if scratch {
      out += "layout(std430, set = 0, binding = \(layout.scratchBinding)) buffer Scratch { \(scratchType) scratch[]; };\n"
    }
    return out
  }

  /// The shared helper functions, the low-precision types' conversions and the accessors of
  /// operands bound in parts, in that order (each uses the ones before).
  func helperFunctions(readableOutput: Bool = false) -> String {
    var out = Self.helpers
    out += LowPrecisionCode.helpers(for: kernel.inputs.map(\.dtype) + [kernel.output.dtype], .glsl)
    let index = typeName(.index)
    /// Part and offset of element `i` of an operand split into parts of `count` elements.
    func locate(_ count: Int) -> [String] {
      ["  \(index) p = i / \(literal(.index(count)));", "  uint o = uint(i - p * \(literal(.index(count))));"]
    }
    for (input, operand) in layout.operands.dropLast().enumerated() where operand.isSplit {
      let type = typeName(.compute(operand.dtype))
      var lines = ["\(type) kiln_in\(input)(\(index) i) {"] + locate(operand.elementsPerPart)
      for part in 0..<operand.parts {
        let value = convertLoaded("b\(input)_\(part)[o]", dtype: operand.dtype)
        lines.append(part < operand.parts - 1 ? "  if (p == \(literal(.index(part)))) return \(value);" : "  return \(value);")
      }
      out += (lines + ["}", ""]).joined(separator: "\n")
    }
    if layout.output.isSplit {
      let operand = layout.output
      var lines = ["void kiln_out(\(index) i, \(typeName(.compute(operand.dtype))) v) {"] + locate(operand.elementsPerPart)
      for part in 0..<operand.parts {
        let store = "result_\(part)[o] = \(store("v", dtype: operand.dtype));"
        lines.append(part < operand.parts - 1 ? "  if (p == \(literal(.index(part)))) { \(store) return; }" : "  \(store)")
      }
      out += (lines + ["}", ""]).joined(separator: "\n")
      if readableOutput {
        var loads = ["\(typeName(.compute(operand.dtype))) kiln_out_load(\(index) i) {"] + locate(operand.elementsPerPart)
        for part in 0..<operand.parts {
          let value = convertLoaded("result_\(part)[o]", dtype: operand.dtype)
          loads.append(part < operand.parts - 1 ? "  if (p == \(literal(.index(part)))) return \(value);" : "  return \(value);")
        }
        out += (loads + ["}", ""]).joined(separator: "\n")
      }
    }
    return out
  }

  /// Output element `index`, as stored, converted to its compute type (custom programs only:
  /// their output is declared readable).
  func loadOutput(at index: String) -> String {
    if layout.output.isSplit { return "kiln_out_load(\(index))" }
    return convertLoaded("result[uint(\(index))]", dtype: layout.output.dtype)
  }

  /// The statement storing `value` (of the output's compute type) as output element `index`.
  func storeOutput(at index: String, _ value: String) -> String {
    if layout.output.isSplit { return "kiln_out(\(index), \(value));" }
    return "result[uint(\(index))] = \(store(value, dtype: kernel.output.dtype));"
  }

  static let helpers = """
    float kiln_erf(float x) {
      // Abramowitz & Stegun 7.1.26 refined: |error| < 1.5e-7.
      float s = sign(x);
      float a = abs(x);
      float t = 1.0 / (1.0 + 0.3275911 * a);
      float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
      return s * y;
    }
    float kiln_pow(float a, float b) {
      if (b == 0.0) return 1.0;
      if (a < 0.0 && b == floor(b)) {
        float m = pow(-a, b);
        return (mod(b, 2.0) == 1.0) ? -m : m;
      }
      return pow(a, b);
    }
    uint kiln_bf16_bits(float v) {
      uint bits = floatBitsToUint(v);
      if (isnan(v)) return 0x7fc0u;
      return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    }

    """

  func typeName(_ type: ValueType) -> String {
    switch type {
    case .index: return index32 ? "int" : "int64_t"
    case .scalar(let dtype):
      switch dtype {
      case .float32, .float16, .bfloat16: return "float"
      case .float64: return "double"
      case .int8: return "int8_t"
      case .int16: return "int16_t"
      case .int32: return "int"
      case .int64: return "int64_t"
      case .uint8: return "uint8_t"
      case .uint16: return "uint16_t"
      case .uint32: return "uint"
      case .uint64: return "uint64_t"
      case .bool: return "bool"
      case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4,
        .int2, .uint2:
        return typeName(ValueType.compute(dtype))
      }
    }
  }

  func storageType(_ dtype: DType) -> String {
    if LowPrecisionCode.isLowPrecision(dtype) { return "uint8_t" }
    return switch dtype {
    case .float16: "float16_t"
    case .bfloat16: "uint16_t"
    case .bool: "uint8_t"
    default: typeName(.scalar(dtype))
    }
  }

  func literal(_ literal: Literal) -> String {
    switch literal.type {
    case .index:
      return index32 ? "\(literal.integer)" : int64Literal(literal.integer)
    case .scalar(let dtype):
      switch dtype {
      case .bool: return literal.float != 0 ? "true" : "false"
      case .float32, .float16, .bfloat16:
        return "uintBitsToFloat(0x\(String(Float(literal.float).bitPattern, radix: 16))u)"
      case .float64:
        let bits = literal.float.bitPattern
        return "packDouble2x32(uvec2(0x\(String(UInt32(truncatingIfNeeded: bits), radix: 16))u, 0x\(String(UInt32(truncatingIfNeeded: bits >> 32), radix: 16))u))"
      case .int64: return int64Literal(literal.integer)
      case .uint64: return "\(literal.unsigned)ul"
      case .int32: return literal.integer == Int64(Int32.min) ? "(-2147483647 - 1)" : "int(\(literal.integer))"
      case .uint32: return "\(UInt32(truncatingIfNeeded: literal.unsigned))u"
      default: return "\(typeName(literal.type))(\(literal.integer))"
      }
    }
  }

  private func int64Literal(_ value: Int64) -> String {
    value == Int64.min ? "(-9223372036854775807l - 1l)" : "\(value)l"
  }

  func load(input: Int, dtype: DType, index: String) -> String {
    if layout.isSplit(input: input) { return "kiln_in\(input)(\(index))" }
    return convertLoaded("b\(input)[uint(\(index))]", dtype: dtype)
  }

  /// A stored element converted to its compute type.
  private func convertLoaded(_ element: String, dtype: DType) -> String {
    if LowPrecisionCode.isLowPrecision(dtype) { return LowPrecisionCode.load(element, dtype: dtype, .glsl) }
    switch dtype {
    case .float16: return "float(\(element))"
    case .bfloat16: return "uintBitsToFloat(uint(\(element)) << 16)"
    case .bool: return "(\(element) != uint8_t(0))"
    default: return element
    }
  }

  func store(_ value: String, dtype: DType) -> String {
    if LowPrecisionCode.isLowPrecision(dtype) { return LowPrecisionCode.store(value, dtype: dtype, .glsl) }
    return switch dtype {
    case .float16: "float16_t(\(value))"
    case .bfloat16: "uint16_t(kiln_bf16_bits(\(value)))"
    case .bool: "uint8_t(\(value) ? 1 : 0)"
    default: value
    }
  }

  /// A float function on float or double (GLSL has no double transcendental functions).
  private func floatCall(_ function: String, _ type: ValueType, _ a: String) -> String {
    if type == .scalar(.float64) { return "double(\(function)(float(\(a))))" }
    return "\(function)(\(a))"
  }

  func unary(_ op: UnaryOp, _ type: ValueType, _ a: String) -> String {
    let t = typeName(type)
    switch op {
    case .negate: return "(-\(a))"
    case .abs: return type.isSigned ? "((\(a) < \(t)(0)) ? -\(a) : \(a))" : a
    case .sqrt: return "sqrt(\(a))"
    case .exp, .log, .tanh, .sin, .cos, .tan, .asin, .acos, .atan, .sinh, .cosh, .asinh, .acosh, .atanh:
      return floatCall(op.rawValue, type, a)
    case .erf: return floatCall("kiln_erf", type, a)
    case .sigmoid: return "(\(t)(1) / (\(t)(1) + \(floatCall("exp", type, "-\(a)"))))"
    case .floor: return "floor(\(a))"
    case .ceil: return "ceil(\(a))"
    case .round: return "roundEven(\(a))"
    case .reciprocal: return "(\(t)(1) / \(a))"
    case .sign: return "((\(a) > \(t)(0)) ? \(t)(1) : ((\(a) < \(t)(0)) ? \(t)(-1) : \(t)(0)))"
    case .logicalNot: return "(!\(a))"
    case .bitwiseNot: return "(~\(a))"
    case .isNaN: return type.isFloat ? "isnan(\(a))" : "false"
    case .isPositiveInfinity: return type.isFloat ? "(isinf(\(a)) && \(a) > \(t)(0))" : "false"
    case .isNegativeInfinity: return type.isFloat ? "(isinf(\(a)) && \(a) < \(t)(0))" : "false"
    }
  }

  func binary(_ op: BinaryOp, _ type: ValueType, _ a: String, _ b: String) -> String {
    let t = typeName(type)
    switch op {
    case .add: return "(\(a) + \(b))"
    case .subtract: return "(\(a) - \(b))"
    case .multiply: return "(\(a) * \(b))"
    case .divide:
      if type.isFloat { return "(\(a) / \(b))" }
      return "((\(b) == \(t)(0)) ? \(t)(0) : (\(a) / \(b)))"
    case .floorDivide:
      return "((\(a) >= \(t)(0)) ? (\(a) / \(b)) : ((\(a) - \(b) + \(t)(1)) / \(b)))"
    case .remainder:
      if type.isFloat { return "(\(a) - \(b) * trunc(\(a) / \(b)))" }
      return "((\(b) == \(t)(0)) ? \(t)(0) : (\(a) - \(b) * (\(a) / \(b))))"
    case .modulo:
      if type.isFloat { return "(\(a) - \(b) * floor(\(a) / \(b)))" }
      let r = "((\(b) == \(t)(0)) ? \(t)(0) : (\(a) - \(b) * (\(a) / \(b))))"
      return type.isSigned ? "(((\(r) != \(t)(0)) && ((\(r) < \(t)(0)) != (\(b) < \(t)(0)))) ? (\(r) + \(b)) : \(r))" : r
    case .power:
      if type == .scalar(.float64) { return "double(kiln_pow(float(\(a)), float(\(b))))" }
      if type.isFloat { return "kiln_pow(\(a), \(b))" }
      return "\(t)(roundEven(kiln_pow(float(\(a)), float(\(b)))))"
    case .minimum:
      if type.isFloat { return "(isnan(\(a)) ? \(a) : (isnan(\(b)) ? \(b) : min(\(a), \(b))))" }
      return "((\(a) < \(b)) ? \(a) : \(b))"
    case .maximum:
      if type.isFloat { return "(isnan(\(a)) ? \(a) : (isnan(\(b)) ? \(b) : max(\(a), \(b))))" }
      return "((\(a) > \(b)) ? \(a) : \(b))"
    case .equal: return "(\(a) == \(b))"
    case .notEqual: return "(\(a) != \(b))"
    case .less: return "(\(a) < \(b))"
    case .lessEqual: return "(\(a) <= \(b))"
    case .greater: return "(\(a) > \(b))"
    case .greaterEqual: return "(\(a) >= \(b))"
    case .logicalAnd: return "(\(a) && \(b))"
    case .logicalOr: return "(\(a) || \(b))"
    case .logicalXor: return "(\(a) != \(b))"
    case .bitwiseAnd: return "(\(a) & \(b))"
    case .bitwiseOr: return "(\(a) | \(b))"
    case .bitwiseXor: return "(\(a) ^ \(b))"
    case .shiftLeft: return "((\(b) >= \(t)(\(bitWidth(type)))) ? \(t)(0) : (\(a) << \(b)))"
    case .shiftRight: return "((\(b) >= \(t)(\(bitWidth(type)))) ? \(t)(0) : (\(a) >> \(b)))"
    case .atan2:
      if type == .scalar(.float64) { return "double(atan(float(\(a)), float(\(b))))" }
      return "atan(\(a), \(b))"
    }
  }

  private func bitWidth(_ type: ValueType) -> Int {
    switch type {
    case .index: index32 ? 32 : 64
    case .scalar(let dtype): dtype.byteSize * 8
    }
  }

  func cast(_ value: String, from: ValueType, to: ValueType) -> String {
    if to == .bool { return from.isBool ? value : "(\(value) != \(typeName(from))(0))" }
    if from == .bool { return "\(typeName(to))(\(value) ? 1 : 0)" }
    // Narrow integer types convert through 32-bit ints where GLSL lacks a direct constructor.
    return "\(typeName(to))(\(value))"
  }

  /// Through an unsigned integer of the width: float16 with the core pack/unpack functions
  /// (no float16 arithmetic needed), bfloat16 as the upper half of a float32.
  func bitcast(_ value: String, from: DType, to: DType) -> String {
    if LowPrecisionCode.isLowPrecision(from) {
      return bitcast(LowPrecisionCode.store(value, dtype: from, .glsl), from: .uint8, to: to)
    }
    if LowPrecisionCode.isLowPrecision(to) {
      return LowPrecisionCode.load(bitcast(value, from: from, to: .uint8), dtype: to, .glsl)
    }
    let bits: String
    switch from {
    case .float32: bits = "floatBitsToUint(\(value))"
    case .float64: bits = "doubleBitsToUint64(\(value))"
    case .float16: bits = "uint16_t(packHalf2x16(vec2(\(value), 0.0)) & 0xffffu)"
    case .bfloat16: bits = "uint16_t(kiln_bf16_bits(\(value)))"
    case .bool: bits = "uint8_t(\(value) ? 1 : 0)"
    default: bits = "\(unsignedName(from))(\(value))"
    }
    switch to {
    case .float32: return "uintBitsToFloat(\(bits))"
    case .float64: return "uint64BitsToDouble(\(bits))"
    case .float16: return "unpackHalf2x16(uint(\(bits))).x"
    case .bfloat16: return "uintBitsToFloat(uint(\(bits)) << 16)"
    case .bool: return "(\(bits) != uint8_t(0))"
    default: return "\(typeName(.scalar(to)))(\(bits))"
    }
  }

  /// The unsigned integer type as wide as `dtype`.
  private func unsignedName(_ dtype: DType) -> String {
    switch dtype.byteSize {
    case 1: "uint8_t"
    case 2: "uint16_t"
    case 4: "uint"
    default: "uint64_t"
    }
  }

  func maximumValue(_ type: ValueType) -> String {
    switch type {
    case .index: return index32 ? "2147483647" : "9223372036854775807l"
    case .scalar(let dtype):
      switch dtype {
      case .float32, .float16, .bfloat16: return "uintBitsToFloat(0x7f800000u)"
      case .float64: return "packDouble2x32(uvec2(0u, 0x7ff00000u))"
      case .int8: return "int8_t(127)"
      case .int16: return "int16_t(32767)"
      case .int32: return "2147483647"
      case .int64: return "9223372036854775807l"
      case .uint8: return "uint8_t(255)"
      case .uint16: return "uint16_t(65535)"
      case .uint32: return "4294967295u"
      case .uint64: return "18446744073709551615ul"
      case .bool: return "true"
      default: return maximumValue(.compute(dtype))  // the low-precision types
      }
    }
  }

  func minimumValue(_ type: ValueType) -> String {
    switch type {
    case .index: return index32 ? "(-2147483647 - 1)" : "(-9223372036854775807l - 1l)"
    case .scalar(let dtype):
      switch dtype {
      case .float32, .float16, .bfloat16: return "uintBitsToFloat(0xff800000u)"
      case .float64: return "packDouble2x32(uvec2(0u, 0xfff00000u))"
      case .int8: return "int8_t(-128)"
      case .int16: return "int16_t(-32768)"
      case .int32: return "(-2147483647 - 1)"
      case .int64: return "(-9223372036854775807l - 1l)"
      case .uint8: return "uint8_t(0)"
      case .uint16: return "uint16_t(0)"
      case .uint32: return "0u"
      case .uint64: return "0ul"
      case .bool: return "false"
      default: return minimumValue(.compute(dtype))  // the low-precision types
      }
    }
  }

  func isNaN(_ value: String, _ type: ValueType) -> String { "isnan(\(value))" }
}
