import KilnCodegen
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

  func info(float64: Bool) -> DeviceInfo {
    let features = DeviceFeatures(
      float16: true, float64: float64, int8: true, int16: true, int64: true, storage8Bit: true, storage16Bit: true,
      subgroupSize: 8, subgroupArithmetic: true, cooperativeMatrix: false, pushDescriptors: true,
      timelineSemaphores: true, concurrency: 0)
    return DeviceInfo(
      uri: "vulkan://test", shortURI: "vulkan:7", driver: "vulkan", name: "Test GPU", type: .discreteGPU,
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
}
