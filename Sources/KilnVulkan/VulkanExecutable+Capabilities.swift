import KilnHAL
import KilnSPIRV

extension VulkanExecutable {
  /// SPIR-V capabilities that depend on optional device features, with the feature that grants
  /// each and how users read it.
  static let optionalCapabilities: [(capability: UInt32, name: String, has: @Sendable (DeviceFeatures) -> Bool)] = [
    (9, "Float16 arithmetic", { $0.float16 }),
    (10, "Float64 arithmetic", { $0.float64 }),
    (11, "Int64 arithmetic", { $0.int64 }),
    (22, "Int16 arithmetic", { $0.int16 }),
    (39, "Int8 arithmetic", { $0.int8 }),
    (4433, "16-bit storage buffers", { $0.storage16Bit }),
    (4448, "8-bit storage buffers", { $0.storage8Bit }),
    (5345, "the Vulkan memory model", { $0.vulkanMemoryModel }),
    (5357, "cooperative matrices (VK_NV_cooperative_matrix, 16x16x16 float16 fragments, 32-wide subgroups)", { $0.cooperativeMatrix }),
  ]

  /// Refuses a module that needs a feature `device` lacks, naming both, before the driver sees it
  /// (a driver given such a module has undefined behaviour).
  static func checkCapabilities(_ module: SPIRVModule, device info: DeviceInfo, entryPoints: [String]) throws {
    let missing = optionalCapabilities.filter { module.capabilities.contains($0.capability) && !$0.has(info.features) }
    guard !missing.isEmpty else { return }
    throw HALError(
      .unsupported,
      "kernel \(entryPoints.joined(separator: ", ")) needs \(missing.map(\.name).joined(separator: " and ")), "
        + "which \(info.name) lacks; run this bundle on a device that has it (or on the cpu device)")
  }
}
