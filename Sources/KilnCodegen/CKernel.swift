import Foundation
import KilnCompiler
import KilnIR

/// Emits kernels as C functions following the Kiln CPU ABI: each call runs a range of
/// workgroups of `elementsPerWorkgroup` output elements, one loop iteration per element.
public enum CKernel {
  public static let elementsPerWorkgroup = 1024

  /// One translation unit holding every kernel of a model, each as its schedule says.
  public static func translationUnit(for kernels: [Kernel], schedules: [CPUSchedule]) -> String {
    precondition(kernels.count == schedules.count, "one schedule per kernel")
    var out = NativeToolchain.kilnCPUABIHeader
    out += """

      #include <math.h>
      #include <stdbool.h>
      #include <string.h>

      KILN_CPU_DEFINE_ABI_VERSION();

      static inline float kiln_bf16_load(uint16_t bits) { uint32_t w = (uint32_t)bits << 16; float f; memcpy(&f, &w, 4); return f; }
      static inline uint16_t kiln_bf16_store(float f) {
        if (isnan(f)) return 0x7fc0u;
        uint32_t w; memcpy(&w, &f, 4);
        return (uint16_t)((w + 0x7fffu + ((w >> 16) & 1u)) >> 16);
      }
      static inline double kiln_pow(double a, double b) { return pow(a, b); }
      static inline uint16_t kiln_f16_bits(_Float16 h) { uint16_t w; memcpy(&w, &h, 2); return w; }
      static inline float kiln_f16_value(uint16_t w) { _Float16 h; memcpy(&h, &w, 2); return (float)h; }
      static inline uint32_t kiln_f32_bits(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }
      static inline float kiln_f32_value(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
      static inline uint64_t kiln_f64_bits(double f) { uint64_t w; memcpy(&w, &f, 8); return w; }
      static inline double kiln_f64_value(uint64_t w) { double f; memcpy(&f, &w, 8); return f; }

      // float exp and erf without libm calls and without branches, so loops over them vectorise.
      // exp: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^6 (relative error
      // about 1e-7), 2^n applied as two halves so results fall to denormals and 0, or rise to
      // infinity, as they should. NaN passes through.
      static inline float kiln_expf(float x) {
        float c = x < -110.0f ? -110.0f : (x > 90.0f ? 90.0f : x);
        float n = __builtin_rintf(c * 1.44269504088896341f);
        float r = c - n * 0.693359375f + n * 2.12194440e-4f;
        float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f + r * 0.00138888892f)))));
        int32_t k = (int32_t)n;
        int32_t h = k >> 1;
        float s1 = kiln_f32_value((uint32_t)(h + 127) << 23);
        float s2 = kiln_f32_value((uint32_t)(k - h + 127) << 23);
        float e = p * s1 * s2;
        return x != x ? x : e;
      }
      // erf: its Taylor series near 0 (to x^9), Abramowitz and Stegun 7.1.26 elsewhere (absolute
      // error below 1.5e-7); odd, and saturating at +-1.
      static inline float kiln_erff(float x) {
        float a = x < 0.0f ? -x : x;
        float t = 1.0f / (1.0f + 0.3275911f * a);
        float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t * kiln_expf(-a * a);
        float a2 = a * a;
        float small = a * (1.12837917f + a2 * (-0.376126389f + a2 * (0.112837917f + a2 * (-0.0268661706f + a2 * 0.00522397762f))));
        float v = a < 0.5f ? small : y;
        v = x < 0.0f ? -v : v;
        return x != x ? x : v;
      }

      """
    out += LowPrecisionCode.helpers(for: kernels.flatMap { $0.inputs.map(\.dtype) + [$0.output.dtype] }, .c)
    let winograds = schedules.map { schedule -> CWinogradTemplate? in if case .winograd(let t) = schedule { t } else { nil } }
    let templates = schedules.map { schedule -> CMatMulTemplate? in if case .gemm(let t) = schedule { t } else { nil } }
    let windows = schedules.map { schedule -> CWindowTemplate? in if case .window(let t) = schedule { t } else { nil } }
    if templates.contains(where: { $0 != nil }) || windows.contains(where: { $0 != nil }) || winograds.contains(where: { $0 != nil }) {
      out += CMatMulSupport.source
    }
    if winograds.contains(where: { $0 != nil }) { out += CWinogradTemplate.support }
    // Kernels that differ only in name (repeated blocks of a network) share one body: the later
    // ones are entry points that call the first, so the C compiler sees each body once. Their
    // code is compared as generated under one neutral name.
    var firstWithBody: [String: String] = [:]
    for (index, kernel) in kernels.enumerated() {
      if templates[index]?.prefersCoarseChunks == true || winograds[index] != nil {
        out += "\nKILN_CPU_EXPORT const uint32_t \(kernel.name)_chunks_per_thread = 1;\n"
      }
      let body = schedules[index].source(for: kernel, named: "kiln_body")
      if let first = firstWithBody[body] {
        out += "\n// \(kernel.sourceOps.joined(separator: ", ")): the same code as \(first)\n"
        out += "KILN_CPU_EXPORT void \(kernel.name)(const kiln_cpu_dispatch *d) { \(first)(d); }\n"
      } else {
        firstWithBody[body] = kernel.name
        out += "\n" + schedules[index].source(for: kernel)
      }
    }
    return out
  }

  /// The generic form: one loop iteration per output element.
  static func function(for kernel: Kernel) -> String {
    let dialect = CDialect()
    var out = entry(kernel, comment: kernel.sourceOps.joined(separator: ", "))
    out += "  const int64_t first = (int64_t)d->workgroup_begin * \(elementsPerWorkgroup);\n"
    out += "  int64_t last = (int64_t)d->workgroup_end * \(elementsPerWorkgroup);\n"
    out += "  if (last > \(kernel.output.elementCount)) last = \(kernel.output.elementCount);\n"
    // Rows without per-element coordinate arithmetic, even where nothing simplifies: a broadcast
    // operand's index is then invariant along the row and the row vectorises.
    if InteriorSpecialization(kernel) != nil || (kernel.shape.last ?? 0 >= 8 && kernel.shape.count > 1) {
      return out + rowLoops(kernel, dialect: dialect)
    }
    out += "  for (int64_t gid = first; gid < last; ++gid) {\n"
    var emitter = ExprEmitter(dialect: dialect, kernel: kernel)
    emitter.withIndent(1) { emitter in
      for (axis, text) in dialect.coordinates(of: "gid", shape: kernel.shape).enumerated() {
        emitter.line("int64_t c\(axis) = \(text);")
      }
      let value = emitter.emit(kernel.body)
      emitter.line("result[gid] = \(dialect.store(value, dtype: kernel.output.dtype));")
    }
    out += emitter.lines.joined(separator: "\n") + "\n  }\n}\n"
    return out
  }

  /// A kernel's comment line, entry point and bindings (`b<i>` read-only, `result`).
  static func entry(_ kernel: Kernel, comment: String) -> String {
    let dialect = CDialect()
    var out = "// \(comment)\n"
    out += "KILN_CPU_EXPORT void \(kernel.name)(const kiln_cpu_dispatch *d) {\n"
    for (index, input) in kernel.inputs.enumerated() {
      let t = dialect.storageType(input.dtype)
      out += "  const \(t) *restrict b\(index) = (const \(t) *)d->bindings[\(index)];\n"
    }
    let outType = dialect.storageType(kernel.output.dtype)
    out += "  \(outType) *result = (\(outType) *)d->bindings[\(kernel.inputs.count)];\n"
    return out
  }

  /// The per-element loops as rows of the innermost axis. Conditions that only outer coordinates
  /// decide (a concatenation's choice of input) are decided once per row (`InvariantConditions`).
  /// With an interior, the columns before and after it run the full body and the interior runs
  /// the simplified one (see `InteriorSpecialization`), which the C compiler can vectorise along
  /// the row.
  static func rowLoops(_ kernel: Kernel, dialect: CDialect) -> String {
    let last = kernel.shape.count - 1
    let width = kernel.shape[last]
    var lines = ["  for (int64_t gid = first; gid < last;) {"]
    lines.append("    const int64_t row = gid / \(width), rowBase = row * \(width);")
    lines.append("    const int64_t start = gid - rowBase, end = (last - rowBase < \(width) ? last - rowBase : \(width));")
    for (axis, text) in dialect.coordinates(of: "row", shape: Array(kernel.shape.dropLast())).enumerated() {
      lines.append("    const int64_t c\(axis) = \(text); (void)c\(axis);")
    }
    func loop(_ body: Expr, from: String, to: String, indent: Int) -> [String] {
      let pad = String(repeating: "  ", count: indent)
      var emitter = ExprEmitter(dialect: dialect, kernel: kernel)
      emitter.withIndent(indent + 1) { emitter in
        let value = emitter.emit(body)
        emitter.line("result[rowBase + c\(last)] = \(dialect.store(value, dtype: kernel.output.dtype));")
      }
      return ["\(pad)for (int64_t c\(last) = \(from); c\(last) < \(to); ++c\(last)) {"] + emitter.lines + ["\(pad)}"]
    }
    /// The row's segments for `body`.
    func segments(_ body: Expr, indent: Int) -> [String] {
      var specialised = kernel
      specialised.body = body
      guard let interior = InteriorSpecialization(specialised) else { return loop(body, from: "start", to: "end", indent: indent) }
      let pad = String(repeating: "  ", count: indent)
      let (low, high) = (interior.columns.lowerBound, interior.columns.upperBound + 1)
      let (from, to) = ("(start > \(low) ? start : \(low))", "(end < \(high) ? end : \(high))")
      var out = loop(body, from: "start", to: "(end < \(low) ? end : \(low))", indent: indent)
      if let rows = interior.rows {
        // Interior rows of a 2-D window: the interior columns there need no mask at all.
        let axis = last - 1
        out.append("\(pad)if (c\(axis) >= \(rows.range.lowerBound) && c\(axis) <= \(rows.range.upperBound)) {")
        out += loop(rows.body, from: from, to: to, indent: indent + 1)
        out.append("\(pad)} else {")
        out += loop(interior.body, from: from, to: to, indent: indent + 1)
        out.append("\(pad)}")
      } else {
        out += loop(interior.body, from: from, to: to, indent: indent)
      }
      return out + loop(body, from: "(start > \(high) ? start : \(high))", to: "end", indent: indent)
    }
    if let invariant = InvariantConditions(kernel.body, kernel: kernel, varying: [last], variables: []) {
      lines += branches(invariant, dialect: dialect, kernel: kernel, indent: 2, emit: segments)
    } else {
      lines += segments(kernel.body, indent: 2)
    }
    lines += ["    gid = rowBase + end;", "  }", "}"]
    return lines.joined(separator: "\n") + "\n"
  }

  /// Nested `if`s on the hoisted conditions, with `emit` called for each outcome's body.
  static func branches(
    _ invariant: InvariantConditions, dialect: CDialect, kernel: Kernel, indent: Int, emit: (Expr, Int) -> [String]
  ) -> [String] {
    var lines: [String] = []
    func level(_ decision: InvariantConditions.Decision, indent: Int) {
      guard case .decide(let condition, let holds, let fails) = decision else {
        lines += emit(decision.bodies[0], indent)
        return
      }
      let pad = String(repeating: "  ", count: indent)
      var emitter = ExprEmitter(dialect: dialect, kernel: kernel)
      var text = ""
      emitter.withIndent(indent) { emitter in text = emitter.emit(condition) }
      lines += emitter.lines
      lines.append("\(pad)if (\(text)) {")
      level(holds, indent: indent + 1)
      lines.append("\(pad)} else {")
      level(fails, indent: indent + 1)
      lines.append("\(pad)}")
    }
    level(invariant.root, indent: indent)
    return lines
  }

  /// Workgroups a generic kernel of `elementCount` outputs needs.
  public static func workgroups(for elementCount: Int) -> Int {
    (elementCount + elementsPerWorkgroup - 1) / elementsPerWorkgroup
  }
}

struct CDialect: KernelDialect {
  func typeName(_ type: ValueType) -> String {
    switch type {
    case .index: return "int64_t"
    case .scalar(let dtype):
      switch dtype {
      case .float32, .float16, .bfloat16: return "float"
      case .float64: return "double"
      case .int8: return "int8_t"
      case .int16: return "int16_t"
      case .int32: return "int32_t"
      case .int64: return "int64_t"
      case .uint8: return "uint8_t"
      case .uint16: return "uint16_t"
      case .uint32: return "uint32_t"
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
    case .float16: "_Float16"
    case .bfloat16: "uint16_t"
    case .bool: "uint8_t"
    default: typeName(.scalar(dtype))
    }
  }

  func literal(_ literal: Literal) -> String {
    switch literal.type {
    case .index: return int64Literal(literal.integer)
    case .scalar(let dtype):
      switch dtype {
      case .bool: return literal.float != 0 ? "true" : "false"
      case .float32, .float16, .bfloat16: return floatLiteral(Double(Float(literal.float)), suffix: "f")
      case .float64: return floatLiteral(literal.float, suffix: "")
      case .int64: return int64Literal(literal.integer)
      case .uint64: return "UINT64_C(\(literal.unsigned))"
      default: return "((\(typeName(literal.type)))\(literal.integer)LL)"
      }
    }
  }

  private func int64Literal(_ value: Int64) -> String {
    value == Int64.min ? "INT64_MIN" : "INT64_C(\(value))"
  }

  private func floatLiteral(_ value: Double, suffix: String) -> String {
    if value.isNaN { return suffix == "f" ? "((float)NAN)" : "((double)NAN)" }
    if value.isInfinite { return value > 0 ? "((\(suffix == "f" ? "float" : "double"))INFINITY)" : "(-(\(suffix == "f" ? "float" : "double"))INFINITY)" }
    // Hexadecimal floating literals are exact.
    return "(\(String(format: "%a", value))\(suffix))"
  }

  func load(input: Int, dtype: DType, index: String) -> String {
    convertLoaded("b\(input)[\(index)]", dtype: dtype)
  }

  /// A stored element converted to its compute type.
  func convertLoaded(_ element: String, dtype: DType) -> String {
    if LowPrecisionCode.isLowPrecision(dtype) { return LowPrecisionCode.load(element, dtype: dtype, .c) }
    switch dtype {
    case .float16: return "(float)\(element)"
    case .bfloat16: return "kiln_bf16_load(\(element))"
    case .bool: return "(\(element) != 0)"
    default: return element
    }
  }

  func store(_ value: String, dtype: DType) -> String {
    if LowPrecisionCode.isLowPrecision(dtype) { return LowPrecisionCode.store(value, dtype: dtype, .c) }
    return switch dtype {
    case .float16: "(_Float16)(\(value))"
    case .bfloat16: "kiln_bf16_store(\(value))"
    case .bool: "(uint8_t)((\(value)) ? 1 : 0)"
    default: value
    }
  }

  private func math(_ function: String, _ type: ValueType, _ args: String...) -> String {
    let name = type == .scalar(.float64) ? function : function + "f"
    return "\(name)(\(args.joined(separator: ", ")))"
  }

  func unary(_ op: UnaryOp, _ type: ValueType, _ a: String) -> String {
    let t = typeName(type)
    switch op {
    case .negate: return "(\(t))(-\(a))"
    case .abs: return type.isFloat ? math("fabs", type, a) : (type.isSigned ? "(\(t))((\(a) < 0) ? -\(a) : \(a))" : a)
    case .exp where type == .scalar(.float32): return "kiln_expf(\(a))"
    case .erf where type == .scalar(.float32): return "kiln_erff(\(a))"
    case .sqrt, .exp, .log, .erf, .tanh, .floor, .ceil, .sin, .cos, .tan, .asin, .acos, .atan, .sinh, .cosh, .asinh, .acosh, .atanh:
      return math(op.rawValue, type, a)
    case .round: return math("nearbyint", type, a)
    case .sigmoid where type == .scalar(.float32): return "(1.0f / (1.0f + kiln_expf(-\(a))))"
    case .sigmoid: return "((\(t))1 / ((\(t))1 + \(math("exp", type, "-\(a)"))))"
    case .reciprocal: return "((\(t))1 / \(a))"
    case .sign: return "(\(t))((\(a) > 0) - (\(a) < 0))"
    case .logicalNot: return "(!\(a))"
    case .bitwiseNot: return "(\(t))(~\(a))"
    case .isNaN: return type.isFloat ? "(isnan(\(a)) != 0)" : "false"
    case .isPositiveInfinity: return type.isFloat ? "(isinf(\(a)) && \(a) > 0)" : "false"
    case .isNegativeInfinity: return type.isFloat ? "(isinf(\(a)) && \(a) < 0)" : "false"
    }
  }

  func binary(_ op: BinaryOp, _ type: ValueType, _ a: String, _ b: String) -> String {
    let t = typeName(type)
    switch op {
    case .add: return "(\(t))(\(a) + \(b))"
    case .subtract: return "(\(t))(\(a) - \(b))"
    case .multiply: return "(\(t))(\(a) * \(b))"
    case .divide:
      if type.isFloat { return "(\(a) / \(b))" }
      // Division by zero and INT_MIN / -1 would trap: hostile inputs must not crash the process.
      if type.isSigned { return "(\(t))((\(b) == 0) ? 0 : ((\(b) == -1) ? -\(a) : \(a) / \(b)))" }
      return "(\(t))((\(b) == 0) ? 0 : \(a) / \(b))"
    case .floorDivide:
      return "((\(a) >= 0) ? (\(a) / \(b)) : ((\(a) - \(b) + 1) / \(b)))"
    case .remainder:
      if type.isFloat { return math("fmod", type, a, b) }
      if type.isSigned { return "(\(t))((\(b) == 0 || \(b) == -1) ? 0 : \(a) % \(b))" }
      return "(\(t))((\(b) == 0) ? 0 : \(a) % \(b))"
    case .modulo:
      if type.isFloat {
        let r = math("fmod", type, a, b)
        return "((\(r) != 0 && ((\(r) < 0) != (\(b) < 0))) ? \(r) + \(b) : \(r))"
      }
      if type.isSigned {
        let r = "((\(b) == 0 || \(b) == -1) ? 0 : \(a) % \(b))"
        return "(\(t))(((\(r) != 0) && ((\(r) < 0) != (\(b) < 0))) ? \(r) + \(b) : \(r))"
      }
      return "(\(t))((\(b) == 0) ? 0 : \(a) % \(b))"
    case .power:
      if type.isFloat { return math("pow", type, a, b) }
      return "(\(t))nearbyint(pow((double)\(a), (double)\(b)))"
    case .minimum:
      if type.isFloat { return "(isnan(\(a)) ? \(a) : (isnan(\(b)) ? \(b) : ((\(a) < \(b)) ? \(a) : \(b))))" }
      return "((\(a) < \(b)) ? \(a) : \(b))"
    case .maximum:
      if type.isFloat { return "(isnan(\(a)) ? \(a) : (isnan(\(b)) ? \(b) : ((\(a) > \(b)) ? \(a) : \(b))))" }
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
    case .bitwiseAnd: return "(\(t))(\(a) & \(b))"
    case .bitwiseOr: return "(\(t))(\(a) | \(b))"
    case .bitwiseXor: return "(\(t))(\(a) ^ \(b))"
    case .shiftLeft: return "(\(t))(((uint64_t)\(b) >= \(bitWidth(type))) ? 0 : (\(a) << \(b)))"
    case .shiftRight: return "(\(t))(((uint64_t)\(b) >= \(bitWidth(type))) ? 0 : (\(a) >> \(b)))"
    case .atan2: return math("atan2", type, a, b)
    }
  }

  private func bitWidth(_ type: ValueType) -> Int {
    switch type {
    case .index: 64
    case .scalar(let dtype): dtype.byteSize * 8
    }
  }

  func cast(_ value: String, from: ValueType, to: ValueType) -> String {
    if to == .bool { return "(\(value) != 0)" }
    return "((\(typeName(to)))(\(value)))"
  }

  /// Through an unsigned integer of the width; floats with memcpy (no aliasing rules broken).
  func bitcast(_ value: String, from: DType, to: DType) -> String {
    if LowPrecisionCode.isLowPrecision(from) {
      return bitcast(LowPrecisionCode.store(value, dtype: from, .c), from: .uint8, to: to)
    }
    if LowPrecisionCode.isLowPrecision(to) {
      return LowPrecisionCode.load(bitcast(value, from: from, to: .uint8), dtype: to, .c)
    }
    let bits: String
    switch from {
    case .float32: bits = "kiln_f32_bits(\(value))"
    case .float64: bits = "kiln_f64_bits(\(value))"
    case .float16: bits = "kiln_f16_bits((_Float16)(\(value)))"
    case .bfloat16: bits = "kiln_bf16_store(\(value))"
    case .bool: bits = "((uint8_t)((\(value)) ? 1 : 0))"
    default: bits = "((uint\(from.byteSize * 8)_t)(\(value)))"
    }
    switch to {
    case .float32: return "kiln_f32_value(\(bits))"
    case .float64: return "kiln_f64_value(\(bits))"
    case .float16: return "kiln_f16_value(\(bits))"
    case .bfloat16: return "kiln_bf16_load(\(bits))"
    case .bool: return "(\(bits) != 0)"
    default: return "((\(typeName(.scalar(to))))\(bits))"
    }
  }

  func maximumValue(_ type: ValueType) -> String {
    switch type {
    case .index: return "INT64_MAX"
    case .scalar(let dtype):
      switch dtype {
      case .float32, .float16, .bfloat16: return "INFINITY"
      case .float64: return "((double)INFINITY)"
      case .int8: return "INT8_MAX"
      case .int16: return "INT16_MAX"
      case .int32: return "INT32_MAX"
      case .int64: return "INT64_MAX"
      case .uint8: return "UINT8_MAX"
      case .uint16: return "UINT16_MAX"
      case .uint32: return "UINT32_MAX"
      case .uint64: return "UINT64_MAX"
      case .bool: return "true"
      default: return maximumValue(.compute(dtype))  // the low-precision types
      }
    }
  }

  func minimumValue(_ type: ValueType) -> String {
    switch type {
    case .index: return "INT64_MIN"
    case .scalar(let dtype):
      switch dtype {
      case .float32, .float16, .bfloat16: return "(-INFINITY)"
      case .float64: return "(-(double)INFINITY)"
      case .int8: return "INT8_MIN"
      case .int16: return "INT16_MIN"
      case .int32: return "INT32_MIN"
      case .int64: return "INT64_MIN"
      case .uint8, .uint16, .uint32, .uint64: return "0"
      case .bool: return "false"
      default: return minimumValue(.compute(dtype))  // the low-precision types
      }
    }
  }

  func isNaN(_ value: String, _ type: ValueType) -> String { "isnan(\(value))" }
}
