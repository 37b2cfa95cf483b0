import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnTestSupport
import Testing

/// The CPU GEMM path (`CMatMulTemplate`): recognition, and results on the CPU device against the
/// generic per-element C loop of the same kernel (and a Swift reference for plain products).
@Suite(.serialized)
struct CMatMulTemplateTests {
  enum Epilogue { case none, biasRelu, residual }

  /// C[b, m, n] = epilogue(sum_k A[b?, m, k] * B[k, n]) with optional transposes of either operand
  /// and A optionally shared across the batch (a broadcast).
  func matmul(
    batch: Int, m: Int, n: Int, k: Int, batchedA: Bool = true, batchedB: Bool = false, transA: Bool = false,
    transB: Bool = false, epilogue: Epilogue = .none
  ) -> Kernel {
    let (b, i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.variable(7))
    let aBase = batchedA ? b * (m * k) : .index(0)
    let bBase = batchedB ? b * (k * n) : .index(0)
    let a = Expr.load(input: 0, dtype: .float32, index: aBase + (transA ? v * m + i : i * k + v))
    let bb = Expr.load(input: 1, dtype: .float32, index: bBase + (transB ? j * k + v : v * n + j))
    let (sum, stated) = Contraction.sum(over: [.init(variable: 7, extent: k)], factors: [a, bb], type: .float32)
    var inputs: [Kernel.Operand] = [
      .init(dtype: .float32, elementCount: (batchedA ? batch : 1) * m * k),
      .init(dtype: .float32, elementCount: (batchedB ? batch : 1) * k * n),
    ]
    var body = sum
    switch epilogue {
    case .none: break
    case .biasRelu:
      let biased = Expr.binary(.add, sum, .load(input: 2, dtype: .float32, index: j))
      body = .select(.binary(.greater, biased, .literal(.of(0, .float32))), biased, .literal(.of(0, .float32)))
      inputs.append(.init(dtype: .float32, elementCount: n))
    case .residual:
      body = .binary(.add, .binary(.multiply, sum, .literal(.of(0.5, .float32))), .load(input: 2, dtype: .float32, index: b * (m * n) + i * n + j))
      inputs.append(.init(dtype: .float32, elementCount: batch * m * n))
    }
    return Kernel(
      name: "mm", inputs: inputs, output: .init(dtype: .float32, elementCount: batch * m * n), shape: [batch, m, n], body: body,
      sourceOps: ["mm"], region: .contraction(stated))
  }

  /// NCHW 2-D convolution with padding `pad` and stride `stride`, bias and Relu; `depthwise` makes
  /// one group per channel (then `filters` must equal `channels`).
  func conv(
    batch: Int, channels: Int, filters: Int, size: Int, kernelSize: Int, stride: Int, pad: Int, depthwise: Bool = false
  ) -> Kernel {
    let out = (size + 2 * pad - kernelSize) / stride + 1
    let (nn, co, oh, ow) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.coordinate(3))
    let (ci, kh, kw) = (Expr.variable(1), Expr.variable(2), Expr.variable(3))
    let ih = oh * stride + kh - pad
    let iw = ow * stride + kw - pad
    func clamp(_ e: Expr) -> Expr { .binary(.maximum, .binary(.minimum, e, .index(size - 1)), .index(0)) }
    let inside = Expr.binary(
      .logicalAnd, .binary(.logicalAnd, .binary(.greaterEqual, ih, .index(0)), .binary(.less, ih, .index(size))),
      .binary(.logicalAnd, .binary(.greaterEqual, iw, .index(0)), .binary(.less, iw, .index(size))))
    let channel = depthwise ? co : ci
    let x = Expr.load(input: 0, dtype: .float32, index: nn * (channels * size * size) + channel * (size * size) + clamp(ih) * size + clamp(iw))
    let taps = kernelSize * kernelSize
    let w = Expr.load(
      input: 1, dtype: .float32, index: depthwise ? co * taps + kh * kernelSize + kw : co * (channels * taps) + ci * taps + kh * kernelSize + kw)
    let loops = (depthwise ? [] : [Contraction.Loop(variable: 1, extent: channels)])
      + [.init(variable: 2, extent: kernelSize), .init(variable: 3, extent: kernelSize)]
    let (sum, stated) = Contraction.sum(over: loops, factors: [x, w], conditions: [inside], type: .float32)
    let biased = Expr.binary(.add, sum, .load(input: 2, dtype: .float32, index: co))
    let body = Expr.binary(.maximum, biased, .literal(.of(0, .float32)))
    return Kernel(
      name: "conv",
      inputs: [
        .init(dtype: .float32, elementCount: batch * channels * size * size),
        .init(dtype: .float32, elementCount: filters * (depthwise ? 1 : channels) * taps),
        .init(dtype: .float32, elementCount: filters),
      ],
      output: .init(dtype: .float32, elementCount: batch * filters * out * out), shape: [batch, filters, out, out], body: body,
      sourceOps: ["conv"], region: .contraction(stated))
  }

  /// Runs `kernel` on the CPU device with the GEMM path on or off (and `prepacked` operands read
  /// pre-packed: their inputs must be given packed).
  func run(
    _ kernel: Kernel, gemm: Bool, inputs: [[Float]], flags: [String] = [], prepacked: Set<CMatMulTemplate.Operand> = []
  ) throws -> [Float] {
    let device = try TestDevices.device("cpu")
    let schedule = gemm ? CPUSchedule.choose(kernel, prepacked: prepacked) : .loops
    let code = try NativeToolchain().compileSharedObject(
      source: CKernel.translationUnit(for: [kernel], schedules: [schedule]), flags: ["-fwrapv"] + flags,
      name: kernel.name)
    let executable = try device.makeExecutable(
      ExecutableSpec(format: .sharedObject, code: code, entryPoints: [EntryPoint(name: kernel.name, bindingCount: inputs.count + 1)]))
    var bindings: [BufferRange] = []
    for values in inputs {
      let buffer = try device.allocator.allocate(byteCount: values.count * 4, access: .deviceLocal)
      try device.write(values.bytes, to: BufferRange(buffer))
      bindings.append(BufferRange(buffer))
    }
    let output = try device.allocator.allocate(byteCount: kernel.output.byteCount, access: .deviceLocal)
    bindings.append(BufferRange(output))
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: 0, bindings: bindings, pushConstants: [], workgroups: WorkgroupCount(schedule.workgroups(for: kernel)))
    try commands.end()
    try device.submitAndWait(commands)
    return try device.read(BufferRange(output)).asFloats()
  }

  #if arch(x86_64)
    static let variants: [[String]] = [["-march=x86-64"], ["-march=native"]]
  #else
    static let variants: [[String]] = [[]]
  #endif

  func random(_ count: Int) -> [Float] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
  }

  /// Checks that `kernel` takes the GEMM path and agrees with the generic loop.
  func expectAgreement(_ kernel: Kernel, tolerance: Float = 1e-4) throws {
    #expect(CMatMulTemplate.match(kernel) != nil, "\(kernel.name) should use the GEMM path")
    try expectTemplatesAgreeWithGenericLoop(kernel, tolerance: tolerance)
  }

  /// Runs `kernel` through its template (GEMM or window) in both objects a bundle carries (the
  /// portable one and the AVX2/FMA one) and through the generic per-element loop, on the same
  /// random inputs, and checks the largest relative difference.
  func expectTemplatesAgreeWithGenericLoop(
    _ kernel: Kernel, tolerance: Float, sourceLocation: SourceLocation = #_sourceLocation
  ) throws {
    let inputs = kernel.inputs.map { random($0.elementCount) }
    let reference = try run(kernel, gemm: false, inputs: inputs)
    for flags in Self.variants {
      let fast = try run(kernel, gemm: true, inputs: inputs, flags: flags)
      var worst: Float = 0
      for (x, y) in zip(fast, reference) { worst = max(worst, abs(x - y) / max(1, abs(y))) }
      #expect(fast.count == reference.count, sourceLocation: sourceLocation)
      #expect(worst < tolerance, "\(flags): largest relative difference \(worst)", sourceLocation: sourceLocation)
    }
  }

  @Test func splitsMatMulAndConvolutionAxes() throws {
    let mm = try #require(CMatMulTemplate.match(matmul(batch: 2, m: 5, n: 7, k: 20, batchedB: true, transB: true)))
    #expect(mm.batch == 2 && mm.m == 5 && mm.n == 7 && mm.k == 20)
    // B batched, A shared: one GEMM per batch.
    let shared = try #require(CMatMulTemplate.match(matmul(batch: 3, m: 5, n: 7, k: 20, batchedA: false, batchedB: true)))
    #expect(shared.batch == 3 && shared.m == 5)
    // B shared across the batch: the batch folds into M.
    let folded = try #require(CMatMulTemplate.match(matmul(batch: 3, m: 5, n: 7, k: 20, batchedA: true, batchedB: false)))
    #expect(folded.batch == 1 && folded.m == 15 && folded.n == 7)
    let c = try #require(CMatMulTemplate.match(conv(batch: 2, channels: 3, filters: 8, size: 9, kernelSize: 3, stride: 2, pad: 1)))
    #expect(c.batch == 2 && c.m == 8 && c.n == 25 && c.k == 27)
    // A max-reduction is not a contraction.
    let maximum = Kernel(
      name: "r", inputs: [.init(dtype: .float32, elementCount: 4096)], output: .init(dtype: .float32, elementCount: 1024), shape: [32, 32],
      body: .reduce(.maximum, variable: 0, extent: 4, body: .load(input: 0, dtype: .float32, index: .coordinate(0) * 128 + .coordinate(1) * 4 + .variable(0))),
      sourceOps: [])
    #expect(CMatMulTemplate.match(maximum) == nil)
  }

  @Test func oddSizesWithEveryTail() throws {
    try expectAgreement(matmul(batch: 3, m: 13, n: 11, k: 17, transB: true, epilogue: .biasRelu))
    // Crosses the MC, NC and KC blocks with ragged ends.
    try expectAgreement(matmul(batch: 1, m: 131, n: 403, k: 301, epilogue: .residual), tolerance: 1e-3)
    // One wide ragged N tile (a 14x14 1x1 convolution): whole panels read in place, the tail packed.
    let wide = matmul(batch: 2, m: 40, n: 196, k: 300, epilogue: .residual)
    #expect(try #require(CMatMulTemplate.match(wide)).source().contains("if (nd < n1) kiln_gemm_block("))
    try expectAgreement(wide, tolerance: 1e-3)
  }

  @Test func degenerateExtents() throws {
    try expectAgreement(matmul(batch: 1, m: 40, n: 37, k: 1))
    try expectAgreement(matmul(batch: 1, m: 100, n: 1, k: 64))
    try expectAgreement(matmul(batch: 1, m: 1, n: 100, k: 64))
    // One row over a short reduction stays with the per-element loops.
    #expect(CMatMulTemplate.match(matmul(batch: 1, m: 1, n: 100, k: 30)) == nil)
  }

  @Test func transposedAndBroadcastOperands() throws {
    try expectAgreement(matmul(batch: 2, m: 19, n: 23, k: 29, transA: true, transB: true))
    try expectAgreement(matmul(batch: 4, m: 7, n: 33, k: 18, batchedA: false, batchedB: true, epilogue: .residual))
    try expectAgreement(matmul(batch: 4, m: 7, n: 33, k: 18, batchedA: true, batchedB: false, transA: true))
  }

  @Test func convolutionsAsImplicitGEMM() throws {
    // A padded window packs with masked AVX2 gathers in the x86-64-v3 object (the "native" run
    // below), with the scalar loop in the baseline one.
    let padded = conv(batch: 2, channels: 3, filters: 8, size: 9, kernelSize: 3, stride: 2, pad: 1)
    #expect(try #require(CMatMulTemplate.match(padded)).source().contains("kiln_f8_gather"))
    try expectAgreement(padded)
    try expectAgreement(conv(batch: 1, channels: 5, filters: 7, size: 20, kernelSize: 7, stride: 2, pad: 3))
    // Rows of 20 at stride 1 and 2: eight lanes in one row read consecutive elements (one load) or
    // every other one (two loads and a shuffle) where the masks hold.
    try expectAgreement(conv(batch: 1, channels: 3, filters: 8, size: 20, kernelSize: 3, stride: 1, pad: 1))
    try expectAgreement(conv(batch: 1, channels: 3, filters: 8, size: 40, kernelSize: 3, stride: 2, pad: 1))
    try expectAgreement(conv(batch: 1, channels: 16, filters: 20, size: 13, kernelSize: 1, stride: 1, pad: 0))
    // A depthwise convolution is one row of weights per channel over 9 taps: no GEMM.
    #expect(CMatMulTemplate.match(conv(batch: 1, channels: 7, filters: 7, size: 12, kernelSize: 3, stride: 1, pad: 1, depthwise: true)) == nil)
  }

  /// Constant operands packed at compile time (`WeightPrepacking`) give the same results as packing
  /// on every call: weights on either side, transposed, flattened over a 3x3 window, shared by
  /// the batch, and both operands of one product at once.
  @Test func prepackedOperandsGiveTheSameResults() throws {
    let cases: [(Kernel, [CMatMulTemplate.Operand])] = [
      (matmul(batch: 1, m: 131, n: 403, k: 301, transB: true, epilogue: .biasRelu), [.init(contraction: 0, a: false)]),
      (matmul(batch: 3, m: 13, n: 11, k: 17, batchedA: true, batchedB: false), [.init(contraction: 0, a: false)]),
      (matmul(batch: 1, m: 19, n: 23, k: 29, transA: true, transB: true), [.init(contraction: 0, a: true), .init(contraction: 0, a: false)]),
      (conv(batch: 2, channels: 5, filters: 13, size: 11, kernelSize: 3, stride: 2, pad: 1), [.init(contraction: 0, a: true)]),
      (conv(batch: 1, channels: 40, filters: 70, size: 7, kernelSize: 1, stride: 1, pad: 0), [.init(contraction: 0, a: true)]),
    ]
    for (kernel, operands) in cases {
      let template = try #require(CMatMulTemplate.match(kernel))
      let candidates = Dictionary(uniqueKeysWithValues: template.prepackCandidates.map { ($0.operand, $0.input) })
      let inputs = kernel.inputs.map { random($0.elementCount) }
      var packedInputs = inputs
      for operand in operands {
        let input = try #require(candidates[operand], "\(kernel.name): \(operand) should be a candidate")
        packedInputs[input] = try #require(template.prepack(operand, values: inputs[input]))
      }
      for flags in Self.variants {
        let reference = try run(kernel, gemm: true, inputs: inputs, flags: flags)
        let got = try run(kernel, gemm: true, inputs: packedInputs, flags: flags, prepacked: Set(operands))
        // The same products summed in the same order: the same bits.
        let differing = zip(got, reference).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(got.count == reference.count && differing == 0, "\(kernel.name) \(operands) \(flags): \(differing) elements differ")
      }
    }
    // The input side of a convolution (a padded window) and a batched operand are not candidates.
    let conv = try #require(CMatMulTemplate.match(conv(batch: 2, channels: 5, filters: 13, size: 11, kernelSize: 3, stride: 2, pad: 1)))
    #expect(conv.prepackCandidates.map(\.operand) == [.init(contraction: 0, a: true)])
    let batched = try #require(CMatMulTemplate.match(matmul(batch: 4, m: 7, n: 33, k: 18, batchedA: false, batchedB: true)))
    #expect(!batched.prepackCandidates.contains { $0.operand.a == false })
  }

  /// A B operand that is row-major along N is read in place (whole micro-panels only: a ragged
  /// tile of at least 128 columns packs its tail, a narrower one all of B); a transposed one is packed. `oddSizesWithEveryTail` and the other
  /// agreement tests run both.
  @Test func rowMajorBIsReadInPlace() throws {
    let inPlace = try #require(CMatMulTemplate.match(matmul(batch: 1, m: 131, n: 403, k: 301))).source()
    #expect(inPlace.contains("const float *direct0 = (n1 - n0) % 16 == 0 ?") || inPlace.contains("if (nd > n0) kiln_gemm_block("))
    // Narrow ragged tiles (49 columns) pack all of B; wide ones (196) read whole panels in place.
    let narrow = try #require(CMatMulTemplate.match(matmul(batch: 1, m: 64, n: 49, k: 64))).source()
    #expect(!narrow.contains("nd > n0") && narrow.contains("direct0"))
    let packed = try #require(CMatMulTemplate.match(matmul(batch: 1, m: 131, n: 403, k: 301, transB: true))).source()
    #expect(!packed.contains("direct0"))
    // One N tile packed on every call (a padded 7x7 window, or 49 row-major columns) splits M
    // finely and asks the pool for one range per thread; 64 row-major columns are read in place
    // and do not; a pre-packed B is not packed at all.
    let ragged = try #require(CMatMulTemplate.match(conv(batch: 1, channels: 512, filters: 512, size: 7, kernelSize: 1, stride: 1, pad: 0)))
    #expect(ragged.prefersCoarseChunks && ragged.workgroups >= 16)
    #expect(try !#require(CMatMulTemplate.match(matmul(batch: 1, m: 512, n: 64, k: 512))).prefersCoarseChunks)
    let weights = matmul(batch: 1, m: 512, n: 49, k: 512)
    #expect(try #require(CMatMulTemplate.match(weights)).prefersCoarseChunks)
    #expect(try !#require(CMatMulTemplate.match(weights, prepacked: [.init(contraction: 0, a: false)])).prefersCoarseChunks)
  }

  /// A product whose B is a concatenation along the reduction (a 1x1 convolution after a Concat):
  /// the packing decides the input once per reduction step.
  @Test func concatenatedOperandsChooseTheirInputPerStep() throws {
    let (m, n, k1, k2) = (22, 37, 9, 14)
    let (i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.variable(3))
    let b = Expr.select(.binary(.less, v, .index(k1)), .load(input: 1, dtype: .float32, index: v * n + j), .load(input: 2, dtype: .float32, index: (v - k1) * n + j))
    let (sum, stated) = Contraction.sum(
      over: [.init(variable: 3, extent: k1 + k2)], factors: [.load(input: 0, dtype: .float32, index: i * (k1 + k2) + v), b], type: .float32)
    let kernel = Kernel(
      name: "concatmm",
      inputs: [.init(dtype: .float32, elementCount: m * (k1 + k2)), .init(dtype: .float32, elementCount: k1 * n), .init(dtype: .float32, elementCount: k2 * n)],
      output: .init(dtype: .float32, elementCount: m * n), shape: [m, n],
      body: sum, sourceOps: ["concatmm"], region: .contraction(stated))
    #expect(try #require(CMatMulTemplate.match(kernel)).source().contains("bool t1 = (v3 < INT64_C(9));"))
    try expectAgreement(kernel)
  }

  /// relu(A1 B1 + A2 B2): a residual block's main and shortcut convolutions in one kernel.
  @Test func twoContractionsShareTheTiling() throws {
    let first = matmul(batch: 1, m: 21, n: 35, k: 13)
    let (i, j, v) = (Expr.coordinate(1), Expr.coordinate(2), Expr.variable(8))
    let (second, stated) = Contraction.sum(
      over: [.init(variable: 8, extent: 9)],
      factors: [.load(input: 2, dtype: .float32, index: i * 9 + v), .load(input: 3, dtype: .float32, index: v * 35 + j)], type: .float32)
    let body = Expr.binary(.maximum, .binary(.add, first.body, second), .literal(.of(0, .float32)))
    let kernel = Kernel(
      name: "mm2", inputs: first.inputs + [.init(dtype: .float32, elementCount: 21 * 9), .init(dtype: .float32, elementCount: 9 * 35)],
      output: first.output, shape: first.shape, body: body, sourceOps: ["mm2"],
      region: .contraction(first.region.contractions[0], stated))
    #expect(CMatMulTemplate.match(kernel)?.contractions.count == 2)
    try expectAgreement(kernel)
  }

  @Test func plainProductMatchesASwiftReference() throws {
    let (m, n, k) = (37, 45, 70)
    let kernel = matmul(batch: 1, m: m, n: n, k: k)
    let a = random(m * k)
    let b = random(k * n)
    let got = try run(kernel, gemm: true, inputs: [a, b])
    var worst: Float = 0
    for i in 0..<m {
      for j in 0..<n {
        var sum: Float = 0
        for v in 0..<k { sum += a[i * k + v] * b[v * n + j] }
        worst = max(worst, abs(got[i * n + j] - sum))
      }
    }
    #expect(worst < 1e-4, "largest difference \(worst)")
  }
}
