import Foundation
@testable import KilnCodegen
import KilnCompiler
import KilnHAL
import KilnIR
import KilnSPIRV
import KilnTestSupport
import Testing

/// The coopmat class's contraction (shaders/matmul_coopmat.comp). Its cooperative-matrix form
/// needs a GPU with VK_NV_cooperative_matrix, which CI does not have: here it must compile to valid
/// SPIR-V that declares what it needs, and devices without the feature must refuse it by name. Its
/// emulated form (the same staging, warp tiling, split-K and epilogue, with fragments computed
/// by ordinary arithmetic) runs on lavapipe against a reference with float16-rounded operands.
@Suite(.serialized)
struct CoopMatTemplateTests {
  typealias Conv = MatMulTemplateConvTests.Conv

  @Test func tilesFitTheFragmentRulesAndTheTable() throws {
    for tile in CoopMatTemplate.tiles {
      // Fragment loads need 16-byte aligned rows: padded strides of whole 8-half groups.
      #expect(tile.bk % 16 == 0 && (tile.bk + 8) % 8 == 0 && (tile.bn + 8) % 8 == 0, "\(tile)")
      #expect(tile.threads % 32 == 0 && tile.threads <= 256, "\(tile)")
      // Under lavapipe's 32 KiB (so the emulated form runs in CI) and NVIDIA's 48 KiB.
      #expect(tile.sharedBytes <= 28 * 1024, "\(tile) takes \(tile.sharedBytes) bytes of shared memory")
    }
    let tests = MatMulTemplateTests()
    let big = try #require(CoopMatTemplate.match(tests.kernel(batch: 1, m: 2048, n: 2048, k: 2048)))
    #expect(big.tile.bm == 128 && big.tile.bn == 128 && big.split == 1)
    #expect(big.specializationConstants(phase: 0) == [256, 2, 4, 4, 2, 32, 1, 0])
    #expect(big.workgroups(phase: 0) == [256, 1, 1])
    // A ResNet-50 last-stage 3x3 conv (M 512, N 49, K 4608): 32 blocks of 32x32, split by 8.
    let late = try #require(CoopMatTemplate.match(Conv(channels: 512, height: 7, width: 7, filters: 512, pad: 1).kernel))
    #expect(late.tile.bm == 32 && late.split == 8 && late.scratchBytes == 8 * 512 * 49 * 4)
    #expect(late.workgroups(phase: 1) == [(512 * 49 + 127) / 128, 1, 1])
    // Too few rows or reduction steps for a fragment: the shared-memory template serves.
    #expect(CoopMatTemplate.match(tests.kernel(batch: 1, m: 8, n: 512, k: 512)) == nil)
    #expect(CoopMatTemplate.match(tests.kernel(batch: 1, m: 64, n: 64, k: 8)) == nil)
  }

  @Test func nativeModulesUseCooperativeMatricesAndValidate() throws {
    let template = try #require(CoopMatTemplate.match(MatMulTemplateTests().kernel(batch: 1, m: 256, n: 256, k: 256)))
    let module = try SPIRVModule(bytes: try GLSLCompiler().compileToBytes(template.source(), name: "coopmat"))
    try SPIRVTools.validate(module.words, environment: .vulkan1_2)
    // CooperativeMatrixNV and VulkanMemoryModel.
    #expect(module.capabilities.contains(5357) && module.capabilities.contains(5345))
    var emulated = template
    emulated.emulated = true
    let plain = try SPIRVModule(bytes: try GLSLCompiler().compileToBytes(emulated.source(), name: "emulated"))
    #expect(!plain.capabilities.contains(5357) && !plain.capabilities.contains(5345))
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func devicesWithoutCooperativeMatricesRefuseTheModuleByName(uri: String) throws {
    let device = try TestDevices.device(uri)
    try #require(!device.info.features.cooperativeMatrix, "\(uri) has cooperative matrices")
    #expect(!device.info.kernelClasses.contains("coopmat"))
    let template = try #require(CoopMatTemplate.match(MatMulTemplateTests().kernel(batch: 1, m: 64, n: 64, k: 64)))
    let code = try GLSLCompiler().compileToBytes(template.source(), name: "coopmat")
    do {
      _ = try device.makeExecutable(
        ExecutableSpec(
          format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: 4)],
          specializationConstants: template.specializationConstants(phase: 0)))
      Issue.record("\(uri) accepted a cooperative-matrix module")
    } catch let error as HALError {
      #expect(error.code == .unsupported && "\(error)".contains("cooperative matrices"), "\(error)")
    }
  }

  /// `template` emulated, with each tile of the table, with and without a split of the reduction.
  static func variants(of template: CoopMatTemplate) -> [CoopMatTemplate] {
    CoopMatTemplate.tiles.flatMap { tile in
      [1, 3].map { split in
        var variant = template
        variant.tile = tile
        variant.split = split
        variant.emulated = true
        return variant
      }
    }
  }

  static func half(_ values: [Float]) -> [Float] { values.map { Float(Float16($0)) } }

  @Test(arguments: TestDevices.vulkanURIs)
  func emulatedMatmulsMatchAFloat16Reference(uri: String) throws {
    // Odd sizes leave a tail in every block dimension, in the last fragment step and in every slice.
    let (batch, m, n, k) = (2, 37, 45, 61)
    let template = try #require(CoopMatTemplate.match(MatMulTemplateTests().kernel(batch: batch, m: m, n: n, k: k)))
    // Values float16 cannot hold exactly, so a kernel that skipped the rounding would differ.
    let a = MatMulTemplateConvTests.random(batch * m * k)
    let bt = MatMulTemplateConvTests.random(n * k)
    let bias = MatMulTemplateConvTests.random(n)
    let (ha, hb) = (Self.half(a), Self.half(bt))
    let expected = MatMulTemplateTests.reference(batch: batch, m: m, n: n, k: k, a: ha, bt: hb, bias: bias)
    for variant in Self.variants(of: template) {
      let got = try SharedMatMulTemplateTests.run(variant, inputs: [a, bt, bias], outputCount: expected.count, uri: uri)
      let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
      #expect(got.count == expected.count && worst < 1e-4, "tile \(variant.tile) split \(variant.split): largest difference \(worst)")
    }
  }

  @Test(arguments: TestDevices.vulkanURIs)
  func emulatedConvolutionsMatchAFloat16Reference(uri: String) throws {
    let convs = [
      Conv(channels: 5, height: 9, width: 7, filters: 20, stride: 1, pad: 1),
      Conv(batch: 2, channels: 6, height: 11, width: 5, filters: 17, kernelH: 3, kernelW: 3, stride: 2, pad: 1),
      Conv(channels: 20, height: 6, width: 5, filters: 33, kernelH: 1, kernelW: 1),
    ]
    for conv in convs {
      let template = try #require(CoopMatTemplate.match(conv.kernel), "\(conv)")
      let x = MatMulTemplateConvTests.random(conv.batch * conv.channels * conv.height * conv.width)
      let w = MatMulTemplateConvTests.random(conv.filters * conv.channels * conv.kernelH * conv.kernelW)
      let bias = MatMulTemplateConvTests.random(conv.filters)
      let expected = conv.reference(Self.half(x), Self.half(w), bias)
      for variant in Self.variants(of: template) {
        let got = try SharedMatMulTemplateTests.run(variant, inputs: [x, w, bias], outputCount: expected.count, uri: uri)
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(got.count == expected.count && worst < 1e-4, "\(conv) tile \(variant.tile) split \(variant.split): largest difference \(worst)")
      }
    }
  }
}
