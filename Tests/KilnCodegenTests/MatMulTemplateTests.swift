import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnTestSupport
import Testing

/// The hand-written tiled matmul template (shaders/matmul_tiled.comp): recognition and results.
@Suite(.serialized)
struct MatMulTemplateTests {
  /// C[b, m, n] = relu(sum_k A[b, m, k] * B^T[n, k] + bias[n]); B is shared across the batch and
  /// stored transposed, so both operand maps have non-trivial strides.
  func kernel(batch: Int, m: Int, n: Int, k: Int) -> Kernel {
    let (b, i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.coordinate(2), Expr.variable(0))
    let a = Expr.load(input: 0, index: b * (m * k) + i * k + v)
    let bt = Expr.load(input: 1, index: j * k + v)
    let sum = Expr.reduce(.sum, variable: 0, extent: k, body: .binary(.multiply, a, bt))
    let biased = Expr.binary(.add, sum, .load(input: 2, index: j))
    let body = Expr.select(.binary(.greater, biased, .literal(.of(0, .float32))), biased, .literal(.of(0, .float32)))
    return Kernel(
      name: "mm", inputs: [.init(dtype: .float32, elementCount: batch * m * k), .init(dtype: .float32, elementCount: n * k), .init(dtype: .float32, elementCount: n)],
      output: .init(dtype: .float32, elementCount: batch * m * n), shape: [batch, m, n], body: body, sourceOps: ["mm"])
  }

  @Test func embeddedTemplateMatchesShadersFolder() throws {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("shaders/matmul_tiled.comp")
    let text = try String(contentsOf: file, encoding: .utf8)
    #expect(EmbeddedShaders.matmulTiled + "\n" == text, "shaders/ changed: run tools/embed-shaders")
  }

  @Test func recognisesContractionsAndNothingElse() {
    let match = MatMulTemplate.match(kernel(batch: 2, m: 5, n: 7, k: 9))
    #expect(match?.m == 5 && match?.n == 7 && match?.k == 9 && match?.batchShape == [2])
    // An elementwise kernel and a max-reduction are left to the generic emitter.
    let elementwise = Kernel(
      name: "e", inputs: [.init(dtype: .float32, elementCount: 4)], output: .init(dtype: .float32, elementCount: 4), shape: [2, 2],
      body: .load(input: 0, index: .coordinate(0) * 2 + .coordinate(1)), sourceOps: [])
    #expect(MatMulTemplate.match(elementwise) == nil)
    let maximum = Kernel(
      name: "r", inputs: [.init(dtype: .float32, elementCount: 64)], output: .init(dtype: .float32, elementCount: 16), shape: [4, 4],
      body: .reduce(.maximum, variable: 0, extent: 4, body: .load(input: 0, index: .coordinate(0) * 16 + .coordinate(1) * 4 + .variable(0))),
      sourceOps: [])
    #expect(MatMulTemplate.match(maximum) == nil)
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func tiledResultsMatchAReferenceIncludingTails(uri: String) throws {
    let device = try TestDevices.device(uri)
    // Odd sizes exercise every tail of the 4x4 tiles.
    let (batch, m, n, k) = (3, 13, 11, 17)
    let spec = kernel(batch: batch, m: m, n: n, k: k)
    let template = try #require(MatMulTemplate.match(spec))
    let code = try GLSLCompiler().compileToBytes(template.source(), name: "mm")
    let executable = try device.makeExecutable(
      ExecutableSpec(format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: 4)]))
    var generator = SystemRandomNumberGenerator()
    let a = (0..<(batch * m * k)).map { _ in Float.random(in: -1...1, using: &generator) }
    let bt = (0..<(n * k)).map { _ in Float.random(in: -1...1, using: &generator) }
    let bias = (0..<n).map { _ in Float.random(in: -0.5...0.5, using: &generator) }
    var buffers: [BufferRange] = []
    for values in [a, bt, bias] {
      let buffer = try device.allocator.allocate(byteCount: values.count * 4, access: .deviceLocal)
      try device.write(values.bytes, to: BufferRange(buffer))
      buffers.append(BufferRange(buffer))
    }
    let output = try device.allocator.allocate(byteCount: batch * m * n * 4, access: .deviceLocal)
    buffers.append(BufferRange(output))
    let commands = try device.makeCommandBuffer()
    let groups = template.workgroups
    try commands.dispatch(executable, entryPoint: 0, bindings: buffers, pushConstants: [], workgroups: WorkgroupCount(groups[0], groups[1], groups[2]))
    try commands.end()
    try device.submitAndWait(commands)
    let got = try device.read(BufferRange(output)).asFloats()
    var worst: Float = 0
    for b in 0..<batch {
      for i in 0..<m {
        for j in 0..<n {
          var sum: Float = 0
          for v in 0..<k { sum += a[b * m * k + i * k + v] * bt[j * k + v] }
          let expected = max(sum + bias[j], 0)
          worst = max(worst, abs(got[(b * m + i) * n + j] - expected))
        }
      }
    }
    #expect(worst < 1e-4, "largest difference \(worst)")
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }
}
