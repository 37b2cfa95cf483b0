import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnTestSupport
import Testing

/// Both emitters (GLSL for Vulkan, C for the CPU device) run the same kernels on every device and
/// must agree with values computed here in Swift.
@Suite(.serialized)
struct EmitterTests {
  /// Compiles `kernel` for `device`, runs it on `inputs`, returns the output bytes.
  func run(_ kernel: Kernel, inputs: [[UInt8]], on uri: String) throws -> [UInt8] {
    let device = try TestDevices.device(uri)
    let spec: ExecutableSpec
    let groups: WorkgroupCount
    let count = kernel.output.elementCount
    if device.info.driver == "vulkan" {
      let code = try GLSLCompiler().compileToBytes(GLSLKernel.source(for: kernel), name: kernel.name)
      spec = ExecutableSpec(format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: kernel.inputs.count + 1)])
      groups = WorkgroupCount((count + GLSLKernel.workgroupSize - 1) / GLSLKernel.workgroupSize)
    } else {
      let code = try NativeToolchain().compileSharedObject(
        source: CKernel.translationUnit(for: [kernel], schedules: [.loops]), flags: ["-fwrapv"], name: kernel.name)
      spec = ExecutableSpec(format: .sharedObject, code: code, entryPoints: [EntryPoint(name: kernel.name, bindingCount: kernel.inputs.count + 1)])
      groups = WorkgroupCount(CPUSchedule.loops.workgroups(for: kernel))
    }
    let executable = try device.makeExecutable(spec)
    var bindings: [BufferRange] = []
    for bytes in inputs {
      let buffer = try device.allocator.allocate(byteCount: max(bytes.count, 4), access: .deviceLocal)
      try device.write(bytes, to: BufferRange(buffer, offset: 0, length: bytes.count))
      bindings.append(BufferRange(buffer, offset: 0, length: max(bytes.count, 4)))
    }
    let outputBytes = kernel.output.byteCount
    let output = try device.allocator.allocate(byteCount: max(outputBytes, 4), access: .deviceLocal)
    bindings.append(BufferRange(output, offset: 0, length: max(outputBytes, 4)))
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(executable, entryPoint: 0, bindings: bindings, pushConstants: [], workgroups: groups)
    try commands.end()
    try device.submitAndWait(commands)
    let messages = TestDevices.drainValidationMessages()
    #expect(messages.isEmpty, "validation: \(messages)")
    return try device.read(BufferRange(output, offset: 0, length: outputBytes))
  }

  func floats(_ bytes: [UInt8]) -> [Float] {
    bytes.withUnsafeBytes { raw in (0..<bytes.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
  }

  func int64s(_ bytes: [UInt8]) -> [Int64] {
    bytes.withUnsafeBytes { raw in (0..<bytes.count / 8).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) } }
  }

  func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { [UInt8]($0) } }

  @Test(arguments: TestDevices.uris)
  func unaryFloatOpsMatchSwift(uri: String) throws {
    let x: [Float] = [-2.5, -1, -0.5, 0, 0.25, 0.5, 1, 2.5, 3.75, 10]
    let cases: [(UnaryOp, (Float) -> Float)] = [
      (.negate, { -$0 }), (.abs, { abs($0) }), (.exp, { Foundation.exp($0) }), (.tanh, { Foundation.tanh($0) }),
      (.erf, { Foundation.erf($0) }), (.sigmoid, { 1 / (1 + Foundation.exp(-$0)) }), (.floor, { $0.rounded(.down) }),
      (.ceil, { $0.rounded(.up) }), (.round, { $0.rounded(.toNearestOrEven) }), (.sin, { Foundation.sin($0) }),
      (.atan, { Foundation.atan($0) }), (.sign, { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }),
    ]
    for (op, reference) in cases {
      let kernel = Kernel(
        name: "unary_\(op.rawValue)", inputs: [.init(dtype: .float32, elementCount: x.count)],
        output: .init(dtype: .float32, elementCount: x.count), shape: [x.count],
        body: .unary(op, .load(input: 0, dtype: .float32, index: .coordinate(0))), sourceOps: [op.rawValue])
      let got = floats(try run(kernel, inputs: [bytes(x)], on: uri))
      for (index, value) in x.enumerated() {
        let expected = reference(value)
        #expect(abs(got[index] - expected) <= 1e-5 + 1e-5 * abs(expected), "\(op) of \(value) on \(uri): \(got[index]) vs \(expected)")
      }
    }
  }

  @Test(arguments: TestDevices.uris)
  func integerDivisionAndModuloFollowONNX(uri: String) throws {
    let a: [Int64] = [7, -7, 7, -7, 5, 0, Int64.min, 9]
    let b: [Int64] = [2, 2, -2, -2, 0, 3, -1, 4]
    func kernel(_ op: BinaryOp) -> Kernel {
      Kernel(
        name: "int_\(op.rawValue)", inputs: [.init(dtype: .int64, elementCount: a.count), .init(dtype: .int64, elementCount: b.count)],
        output: .init(dtype: .int64, elementCount: a.count), shape: [a.count],
        body: .binary(op, .load(input: 0, dtype: .int64, index: .coordinate(0)), .load(input: 1, dtype: .int64, index: .coordinate(0))), sourceOps: [])
    }
    // Truncating division; division by zero yields 0 instead of trapping; INT64_MIN / -1 wraps.
    let quotient = int64s(try run(kernel(.divide), inputs: [bytes(a), bytes(b)], on: uri))
    #expect(Array(quotient[0..<4]) == [3, -3, -3, 3])
    #expect(quotient[4] == 0 && quotient[5] == 0 && quotient[7] == 2)
    // Python-style modulo takes the divisor's sign.
    let modulo = int64s(try run(kernel(.modulo), inputs: [bytes(a), bytes(b)], on: uri))
    #expect(Array(modulo[0..<4]) == [1, 1, -1, -1])
    // C remainder takes the dividend's sign.
    let remainder = int64s(try run(kernel(.remainder), inputs: [bytes(a), bytes(b)], on: uri))
    #expect(Array(remainder[0..<4]) == [1, -1, 1, -1])
  }

  @Test(arguments: TestDevices.uris)
  func reductionsAndArgmaxOverAnAxis(uri: String) throws {
    // x is 3x5; reduce over axis 1.
    let x: [Float] = [1, 5, 2, 5, 0, -1, -3, -2, -9, -1, 4, 4, 4, 4, 4]
    func reduce(_ op: ReduceOp, dtype: DType) -> Kernel {
      let body = Expr.reduce(op, variable: 0, extent: 5, body: .load(input: 0, dtype: .float32, index: .coordinate(0) * 5 + .variable(0)))
      return Kernel(
        name: "reduce", inputs: [.init(dtype: .float32, elementCount: 15)], output: .init(dtype: dtype, elementCount: 3), shape: [3],
        body: dtype == .int64 ? .cast(body, .int64) : body, sourceOps: [])
    }
    #expect(floats(try run(reduce(.sum, dtype: .float32), inputs: [bytes(x)], on: uri)) == [13, -16, 20])
    #expect(floats(try run(reduce(.maximum, dtype: .float32), inputs: [bytes(x)], on: uri)) == [5, -1, 4])
    #expect(floats(try run(reduce(.minimum, dtype: .float32), inputs: [bytes(x)], on: uri)) == [0, -9, 4])
    #expect(int64s(try run(reduce(.argmax(selectLast: false), dtype: .int64), inputs: [bytes(x)], on: uri)) == [1, 0, 0])
    #expect(int64s(try run(reduce(.argmax(selectLast: true), dtype: .int64), inputs: [bytes(x)], on: uri)) == [3, 4, 4])
    #expect(int64s(try run(reduce(.argmin(selectLast: false), dtype: .int64), inputs: [bytes(x)], on: uri)) == [4, 3, 0])
  }

  @Test(arguments: TestDevices.uris)
  func narrowAndHalfTypesRoundTrip(uri: String) throws {
    // float16 in, bool and uint8 out through casts and comparisons.
    let halves: [Float16] = [-2, -0.5, 0, 0.5, 1.5, 65504]
    let kernel = Kernel(
      name: "half_to_bool", inputs: [.init(dtype: .float16, elementCount: halves.count)],
      output: .init(dtype: .bool, elementCount: halves.count), shape: [halves.count],
      body: .binary(.greater, .load(input: 0, dtype: .float16, index: .coordinate(0)), .literal(.of(0.25, .float32))), sourceOps: [])
    #expect(try run(kernel, inputs: [bytes(halves)], on: uri) == [0, 0, 0, 1, 1, 1])
    let doubled = Kernel(
      name: "half_double", inputs: [.init(dtype: .float16, elementCount: halves.count)],
      output: .init(dtype: .float16, elementCount: halves.count), shape: [halves.count],
      body: .binary(.multiply, .load(input: 0, dtype: .float16, index: .coordinate(0)), .literal(.of(2, .float32))), sourceOps: [])
    let out = try run(doubled, inputs: [bytes(halves)], on: uri)
    let values = out.withUnsafeBytes { raw in (0..<halves.count).map { raw.loadUnaligned(fromByteOffset: $0 * 2, as: Float16.self) } }
    #expect(Array(values.prefix(5)) == [-4, -1, 0, 1, 3])
    #expect(values[5].isInfinite, "65504 * 2 overflows float16 to +inf")
  }

  @Test(arguments: TestDevices.uris)
  func guardedLoadsNeverReadOutOfBounds(uri: String) throws {
    // A 1-D "pad": out[i] = (1 <= i < 5) ? x[i - 1] : -7, with the load only on the true arm.
    let x: [Float] = [10, 20, 30, 40]
    let i = Expr.coordinate(0)
    let kernel = Kernel(
      name: "pad", inputs: [.init(dtype: .float32, elementCount: 4)], output: .init(dtype: .float32, elementCount: 6), shape: [6],
      body: .select(i.inRange(1, 5), .load(input: 0, dtype: .float32, index: i - 1), .literal(.of(-7, .float32))), sourceOps: [])
    #expect(floats(try run(kernel, inputs: [bytes(x)], on: uri)) == [-7, 10, 20, 30, 40, -7])
  }

  @Test func generatedSourcesAreDeterministic() throws {
    let kernel = Kernel(
      name: "k", inputs: [.init(dtype: .float32, elementCount: 12)], output: .init(dtype: .float32, elementCount: 4), shape: [2, 2],
      body: .reduce(.sum, variable: 0, extent: 3, body: .load(input: 0, dtype: .float32, index: .coordinate(0) * 6 + .coordinate(1) * 3 + .variable(0))),
      sourceOps: ["n"])
    #expect(GLSLKernel.source(for: kernel) == GLSLKernel.source(for: kernel))
    #expect(CKernel.translationUnit(for: [kernel], schedules: [.loops]) == CKernel.translationUnit(for: [kernel], schedules: [.loops]))
    // The SPIR-V validates (the optimiser validates its input, GLSLCompiler its output).
    #expect(try !GLSLCompiler().compile(GLSLKernel.source(for: kernel)).isEmpty)
  }

  /// Kernels that differ only in name (repeated blocks) are compiled once: the later ones are entry
  /// points calling the first, and every entry point computes its kernel.
  @Test func kernelsThatDifferOnlyInNameShareOneBody() throws {
    func kernel(_ name: String, scale: Double) -> Kernel {
      Kernel(
        name: name, inputs: [.init(dtype: .float32, elementCount: 8)], output: .init(dtype: .float32, elementCount: 8), shape: [8],
        body: .binary(.multiply, .load(input: 0, dtype: .float32, index: .coordinate(0)), .literal(.of(scale, .float32))), sourceOps: [name])
    }
    let kernels = [kernel("k0_Mul", scale: 2), kernel("k1_Mul", scale: 3), kernel("k2_Mul", scale: 2)]
    let source = CKernel.translationUnit(for: kernels, schedules: kernels.map { CPUSchedule.choose($0) })
    #expect(source.contains("void k2_Mul(const kiln_cpu_dispatch *d) { k0_Mul(d); }"))
    #expect(!source.contains("k1_Mul(d); }"), "k1 multiplies by 3: its own body")
    let device = try TestDevices.device("cpu")
    let code = try NativeToolchain().compileSharedObject(source: source, flags: ["-fwrapv"], name: "shared")
    let executable = try device.makeExecutable(
      ExecutableSpec(format: .sharedObject, code: code, entryPoints: kernels.map { EntryPoint(name: $0.name, bindingCount: 2) }))
    let x: [Float] = (0..<8).map { Float($0) - 3 }
    let input = try device.allocator.allocate(byteCount: 32, access: .deviceLocal)
    try device.write(bytes(x), to: BufferRange(input))
    for (entry, scale) in [(0, Float(2)), (1, 3), (2, 2)] {
      let output = try device.allocator.allocate(byteCount: 32, access: .deviceLocal)
      let commands = try device.makeCommandBuffer()
      try commands.dispatch(
        executable, entryPoint: entry, bindings: [BufferRange(input), BufferRange(output)], pushConstants: [],
        workgroups: WorkgroupCount(CPUSchedule.choose(kernels[entry]).workgroups(for: kernels[entry])))
      try commands.end()
      try device.submitAndWait(commands)
      #expect(floats(try device.read(BufferRange(output))) == x.map { $0 * scale }, "entry point \(kernels[entry].name)")
    }
  }

  /// A padded 3x3 sum pool: the interior columns (1...W-2) need no column mask and no clamp, and
  /// their interior rows no mask at all, so they get simplified bodies; every element, border or
  /// interior, matches a Swift reference on each device.
  @Test(arguments: TestDevices.uris)
  func paddedWindowsGetAnInteriorWithoutMasks(uri: String) throws {
    let (height, width) = (5, 12)
    let (row, column, dy, dx) = (Expr.coordinate(0), Expr.coordinate(1), Expr.variable(0), Expr.variable(1))
    let y = row + dy - 1
    let x = column + dx - 1
    func clamp(_ e: Expr, _ upper: Int) -> Expr { .binary(.minimum, .binary(.maximum, e, .index(0)), .index(upper)) }
    let inside = Expr.binary(.logicalAnd, y.inRange(0, height), x.inRange(0, width))
    let tap = Expr.select(inside, .load(input: 0, dtype: .float32, index: clamp(y, height - 1) * width + clamp(x, width - 1)), .literal(.of(0, .float32)))
    let kernel = Kernel(
      name: "pool", inputs: [.init(dtype: .float32, elementCount: height * width)],
      output: .init(dtype: .float32, elementCount: height * width), shape: [height, width],
      body: .reduce(.sum, variable: 0, extent: 3, body: .reduce(.sum, variable: 1, extent: 3, body: tap)), sourceOps: ["pool"])
    let interior = try #require(InteriorSpecialization(kernel))
    #expect(interior.columns == 1...(width - 2))
    // Rows still reach the padding, so their mask stays; the columns' mask and both clamps of x go.
    #expect(interior.body.conditionalCount < kernel.body.conditionalCount)
    // In the interior rows (1...H-2) of those columns nothing is left to decide.
    let rows = try #require(interior.rows)
    #expect(rows.range == 1...(height - 2))
    #expect(rows.body.conditionalCount == 0)
    let input = (0..<(height * width)).map { Float($0 % 7) - 2.5 }
    let got = floats(try run(kernel, inputs: [bytes(input)], on: uri))
    for r in 0..<height {
      for c in 0..<width {
        var sum: Float = 0
        for i in (r - 1)...(r + 1) where i >= 0 && i < height {
          for j in (c - 1)...(c + 1) where j >= 0 && j < width { sum += input[i * width + j] }
        }
        #expect(got[r * width + c] == sum, "[\(r), \(c)] on \(uri)")
      }
    }
  }

  /// A concatenation along channels (out[c, x] = c < 3 ? a[c, x] : b[c - 3, x]) decides its input
  /// once per row: the C row loop branches on the channel, each branch reads one input, and
  /// every element matches a Swift reference on each device.
  @Test(arguments: TestDevices.uris)
  func rowInvariantConditionsAreDecidedPerRow(uri: String) throws {
    let (first, second, width) = (3, 4, 10)
    let (c, x) = (Expr.coordinate(0), Expr.coordinate(1))
    let inFirst = Expr.binary(.less, c, .index(first))
    let body = Expr.select(
      inFirst, .load(input: 0, dtype: .float32, index: c * width + x), .load(input: 1, dtype: .float32, index: (c - first) * width + x))
    let kernel = Kernel(
      name: "concat",
      inputs: [.init(dtype: .float32, elementCount: first * width), .init(dtype: .float32, elementCount: second * width)],
      output: .init(dtype: .float32, elementCount: (first + second) * width), shape: [first + second, width], body: body,
      sourceOps: ["concat"])
    let invariant = try #require(InvariantConditions(body, kernel: kernel, varying: [1], variables: []))
    #expect(invariant.conditions == [inFirst])
    // Each outcome's body is one load: no select is left.
    #expect(invariant.bodies.allSatisfy { $0.conditionalCount == 0 })
    let a = (0..<(first * width)).map { Float($0) }
    let b = (0..<(second * width)).map { Float(-1 - $0) }
    let got = floats(try run(kernel, inputs: [bytes(a), bytes(b)], on: uri))
    #expect(got == a + b, "on \(uri)")
    // A condition a loaded value decides is not hoisted.
    let loaded = Expr.select(.binary(.less, .cast(.load(input: 0, dtype: .float32, index: x), .index), .index(1)), .literal(.of(1, .float32)), .literal(.of(0, .float32)))
    #expect(InvariantConditions(loaded, kernel: kernel, varying: [1], variables: []) == nil)
  }

  /// A concatenation of four inputs (a chain of selects, as ONNX Concat lowers) becomes four
  /// bodies of one load each: the condition an outer outcome settles is not tested again under
  /// it, and the innermost choice is decided too.
  @Test func chainedConditionsFormATree() {
    let (c, x) = (Expr.coordinate(0), Expr.coordinate(1))
    let bounds = [2, 5, 6]
    var body = Expr.load(input: 3, dtype: .float32, index: (c - bounds[2]) * 8 + x)
    for (input, bound) in bounds.enumerated().reversed() {
      let offset = input == 0 ? 0 : bounds[input - 1]
      body = .select(.binary(.less, c, .index(bound)), .load(input: input, dtype: .float32, index: (c - offset) * 8 + x), body)
    }
    let kernel = Kernel(
      name: "concat4", inputs: [2, 3, 1, 4].map { .init(dtype: .float32, elementCount: $0 * 8) },
      output: .init(dtype: .float32, elementCount: 10 * 8), shape: [10, 8], body: body, sourceOps: ["concat"])
    guard let invariant = InvariantConditions(body, kernel: kernel, varying: [1], variables: []) else {
      Issue.record("no conditions hoisted")
      return
    }
    #expect(invariant.conditions == bounds.map { .binary(.less, c, .index($0)) })
    #expect(invariant.bodies.count == 4)
    #expect(invariant.bodies.allSatisfy { $0.conditionalCount == 0 })
    // With room for two bodies only, the second one keeps the rest of the chain.
    let limited = InvariantConditions(body, kernel: kernel, varying: [1], variables: [], limit: 2)
    #expect(limited?.bodies.count == 2)
    #expect(limited?.bodies.last?.conditionalCount == 2)
  }

  /// Interval folding decides only what the intervals decide: a condition on a coordinate that
  /// spans both outcomes stays, so a kernel without a border gets no interior body.
  @Test func undecidedConditionsStay() {
    let c = Expr.coordinate(0)
    let kernel = Kernel(
      name: "half", inputs: [.init(dtype: .float32, elementCount: 16)], output: .init(dtype: .float32, elementCount: 16), shape: [16],
      body: .select(.binary(.less, .binary(.remainder, c, .index(4)), .index(2)), .load(input: 0, dtype: .float32, index: c), .literal(.of(1, .float32))),
      sourceOps: [])
    #expect(InteriorSpecialization(kernel) == nil)
  }
}

