import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnTestSupport
import Testing

/// The GPU class's shared-memory contraction (shaders/matmul_shared.comp): tile and split-K
/// choice, and results on lavapipe (which runs shared memory and barriers, slowly) against a
/// reference, with every tile of the tuning table, tails on every side, and split-K.
@Suite(.serialized)
struct SharedMatMulTemplateTests {
  typealias Conv = MatMulTemplateConvTests.Conv

  @Test func tileAndSplitFollowTheTuningTable() throws {
    for tile in SharedMatMulTemplate.tiles {
      #expect(tile.bm % tile.tm == 0 && tile.bn % tile.tn == 0 && tile.threads == 256, "\(tile)")
      #expect(tile.sharedBytes <= 8_500, "\(tile) stages \(tile.sharedBytes) bytes")
    }
    let tests = MatMulTemplateTests()
    // 1024^3: 64x64 blocks are the largest that give 256 blocks; no split.
    let big = try #require(SharedMatMulTemplate.match(tests.kernel(batch: 1, m: 1024, n: 1024, k: 1024)))
    #expect(big.tile.bm == 64 && big.tile.bn == 64 && big.split == 1 && big.scratchBytes == 0)
    #expect(big.workgroups(phase: 0) == [256, 1, 1])
    // 2048^2 output: 128x128 blocks already make 256.
    let huge = try #require(SharedMatMulTemplate.match(tests.kernel(batch: 1, m: 2048, n: 2048, k: 64)))
    #expect(huge.tile.bm == 128 && huge.split == 1)
    // A ResNet-50 last-stage 3x3 conv at batch 1 (M 512, N 49, K 4608): 32 blocks of 32x32, so
    // split-K by 8 (256 workgroups), and the reduce phase covers every output.
    let late = try #require(SharedMatMulTemplate.match(Conv(channels: 512, height: 7, width: 7, filters: 512, pad: 1).kernel))
    #expect(late.tile.bm == 32 && late.tile.bn == 32 && late.split == 8)
    #expect(late.scratchBytes == 8 * 512 * 49 * 4)
    #expect(late.workgroups(phase: 0) == [256, 1, 1])
    #expect(late.workgroups(phase: 1) == [(512 * 49 + 255) / 256, 1, 1])
    // Too short a reduction to split: each slice keeps at least 128 steps of k.
    let short = try #require(SharedMatMulTemplate.match(tests.kernel(batch: 1, m: 32, n: 32, k: 200)))
    #expect(short.split == 1)
    // Fewer than 16 rows, or no M axis (a depthwise conv): the register-blocked template instead.
    #expect(SharedMatMulTemplate.match(tests.kernel(batch: 1, m: 8, n: 512, k: 512)) == nil)
    #expect(SharedMatMulTemplate.match(Conv(channels: 32, filters: 32, pad: 1, groups: 32).kernel) == nil)
    #expect(MatMulTemplate.match(Conv(channels: 32, filters: 32, pad: 1, groups: 32).kernel) != nil)
  }

  /// Runs `template` (its GEMM phase, then with a split its reduce phase) on `inputs` and
  /// returns its float output.
  static func run(_ template: some TiledContraction, inputs: [[Float]], outputCount: Int, uri: String) throws -> [Float] {
    let (split, specialization, workgroups) = (template.split, template.specializationConstants(phase:), template.workgroups(phase:))
    let device = try TestDevices.device(uri)
    let code = try GLSLCompiler().compileToBytes(template.source(), name: "contraction")
    let bindingCount = inputs.count + (split > 1 ? 2 : 1)
    let phases = split > 1 ? [0, 1] : [0]
    let executables = try phases.map { phase in
      try device.makeExecutable(
        ExecutableSpec(
          format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: bindingCount)],
          specializationConstants: specialization(phase)))
    }
    var (buffers, output) = try MatMulTemplateConvTests.bind(inputs, outputCount: outputCount, on: device)
    if split > 1 {
      buffers.append(BufferRange(try device.allocator.allocate(byteCount: template.scratchBytes, access: .deviceLocal)))
    }
    let commands = try device.makeCommandBuffer()
    for (phase, executable) in zip(phases, executables) {
      if phase > 0 { try commands.barrier() }
      let groups = workgroups(phase)
      try commands.dispatch(
        executable, entryPoint: 0, bindings: buffers, pushConstants: [], workgroups: WorkgroupCount(groups[0], groups[1], groups[2]))
    }
    try commands.end()
    try device.submitAndWait(commands)
    #expect(TestDevices.drainValidationMessages().isEmpty)
    return try device.read(output).asFloats()
  }

  /// `template` with each tile of the table, with and without a split of the reduction.
  static func variants(of template: SharedMatMulTemplate) -> [SharedMatMulTemplate] {
    var result: [SharedMatMulTemplate] = []
    for tile in SharedMatMulTemplate.tiles {
      for split in [1, 3] {
        var variant = template
        variant.tile = tile
        variant.split = split
        result.append(variant)
      }
    }
    return result
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func matmulsMatchAReferenceWithEveryTileAndSplit(uri: String) throws {
    // Odd sizes leave a tail in every block dimension and in the last BK step of every slice.
    let (batch, m, n, k) = (2, 37, 45, 61)
    let template = try #require(SharedMatMulTemplate.match(MatMulTemplateTests().kernel(batch: batch, m: m, n: n, k: k)))
    let a = MatMulTemplateConvTests.random(batch * m * k)
    let bt = MatMulTemplateConvTests.random(n * k)
    let bias = MatMulTemplateConvTests.random(n)
    let expected = MatMulTemplateTests.reference(batch: batch, m: m, n: n, k: k, a: a, bt: bt, bias: bias)
    for variant in Self.variants(of: template) {
      let got = try Self.run(variant, inputs: [a, bt, bias], outputCount: expected.count, uri: uri)
      let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
      #expect(got.count == expected.count && worst < 1e-4, "tile \(variant.tile) split \(variant.split): largest difference \(worst)")
    }
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func convolutionsMatchAReferenceWithEveryTileAndSplit(uri: String) throws {
    let convs = [
      Conv(channels: 5, height: 9, width: 7, filters: 20, stride: 1, pad: 1),
      Conv(batch: 2, channels: 6, height: 11, width: 5, filters: 17, kernelH: 3, kernelW: 3, stride: 2, pad: 1),
      Conv(channels: 8, height: 6, width: 5, filters: 33, kernelH: 1, kernelW: 1),
      Conv(channels: 3, height: 12, width: 10, filters: 16, kernelH: 2, kernelW: 3, stride: 1, pad: 2, dilation: 2),
    ]
    for conv in convs {
      let template = try #require(SharedMatMulTemplate.match(conv.kernel), "\(conv)")
      let x = MatMulTemplateConvTests.random(conv.batch * conv.channels * conv.height * conv.width)
      let w = MatMulTemplateConvTests.random(conv.filters * conv.channels * conv.kernelH * conv.kernelW)
      let bias = MatMulTemplateConvTests.random(conv.filters)
      let expected = conv.reference(x, w, bias)
      for variant in Self.variants(of: template) {
        let got = try Self.run(variant, inputs: [x, w, bias], outputCount: expected.count, uri: uri)
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(got.count == expected.count && worst < 1e-4, "\(conv) tile \(variant.tile) split \(variant.split): largest difference \(worst)")
      }
    }
  }
}
