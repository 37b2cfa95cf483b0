import KilnCodegen
import KilnCompiler
import KilnIR
import KilnHAL
import KilnSPIRV
import Testing

@testable import KilnVulkan

/// A kernel that needs an optional device feature is refused with an error naming the feature and
/// the device, before any driver sees it.
@Suite struct CapabilityTests {
  static let doubleKernel = """
    #version 450
    layout(local_size_x = 1) in;
    layout(std430, set = 0, binding = 0) buffer Out { double values[]; };
    void main() { values[0] = values[0] * 2.0lf; }
    """

  func info(float64: Bool, cooperativeMatrix: Bool = false, type: DeviceType = .discreteGPU) -> DeviceInfo {
    let features = DeviceFeatures(
      float16: true, float64: float64, int8: true, int16: true, int64: true, storage8Bit: true, storage16Bit: true,
      subgroupSize: 32, subgroupArithmetic: true, cooperativeMatrix: cooperativeMatrix, pushDescriptors: true,
      timelineSemaphores: true, concurrency: 0, vulkanMemoryModel: cooperativeMatrix)
    return DeviceInfo(
      uri: "vulkan://test", shortURI: "vulkan:7", driver: "vulkan", name: "Test GPU", type: type,
      driverName: "test", driverVersion: "1", apiVersion: "1.3", uuid: "test",
      limits: DeviceLimits(
        maxWorkgroupSize: [1024, 1024, 64], maxWorkgroupInvocations: 1024, maxWorkgroupCount: [65535, 65535, 65535],
        maxSharedMemoryBytes: 49152, maxPushConstantBytes: 128, maxStorageBufferRange: 1 << 30,
        maxMemoryAllocationSize: 1 << 32, minStorageBufferOffsetAlignment: 16, maxStorageBuffersPerDispatch: 16),
      features: features)
  }

  @Test func float64KernelNeedsTheFeature() throws {
    let module = try SPIRVModule(bytes: try GLSLCompiler().compileToBytes(Self.doubleKernel, name: "doubles"))
    #expect(module.capabilities.contains(10))
    try VulkanExecutable.checkCapabilities(module, device: info(float64: true), entryPoints: ["main"])
    #expect {
      try VulkanExecutable.checkCapabilities(module, device: info(float64: false), entryPoints: ["main"])
    } throws: { error in
      "\(error)".contains("Float64 arithmetic") && "\(error)".contains("Test GPU")
    }
  }

  /// The coopmat class's modules run only where the device has cooperative matrices (and the
  /// memory model they declare), and only such GPUs list the class first.
  @Test func cooperativeMatrixKernelsNeedTheFeature() throws {
    let template = try #require(CoopMatTemplate.match(MatMulTemplateShape.kernel(m: 64, n: 64, k: 64)))
    let module = try SPIRVModule(bytes: try GLSLCompiler().compileToBytes(template.source(), name: "coopmat"))
    try VulkanExecutable.checkCapabilities(module, device: info(float64: true, cooperativeMatrix: true), entryPoints: ["main"])
    #expect {
      try VulkanExecutable.checkCapabilities(module, device: info(float64: true), entryPoints: ["main"])
    } throws: { error in
      "\(error)".contains("cooperative matrices") && "\(error)".contains("Vulkan memory model")
    }
    #expect(info(float64: true, cooperativeMatrix: true).kernelClasses == ["coopmat", "gpu", "cpu"])
    #expect(info(float64: true).kernelClasses == ["gpu", "cpu"])
    #expect(info(float64: true, type: .cpu).kernelClasses == ["cpu", "gpu"])
  }
}

/// A plain MatMul kernel C[m, n] = sum_k A[m, k] * B[k, n].
enum MatMulTemplateShape {
  static func kernel(m: Int, n: Int, k: Int) -> Kernel {
    let (i, j, v) = (Expr.coordinate(0), Expr.coordinate(1), Expr.variable(0))
    let (sum, stated) = Contraction.sum(
      over: [.init(variable: 0, extent: k)],
      factors: [.load(input: 0, dtype: .float32, index: i * k + v), .load(input: 1, dtype: .float32, index: v * n + j)], type: .float32)
    return Kernel(
      name: "mm", inputs: [.init(dtype: .float32, elementCount: m * k), .init(dtype: .float32, elementCount: k * n)],
      output: .init(dtype: .float32, elementCount: m * n), shape: [m, n], body: sum, sourceOps: ["mm"], region: .contraction(stated))
  }
}
