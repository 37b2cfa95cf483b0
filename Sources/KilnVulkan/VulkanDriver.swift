import CVulkan
import Foundation
import KilnHAL

/// The Vulkan driver: one VkInstance, the usable physical devices in preference order
/// (discrete > integrated > virtual > CPU), each opened as a `VulkanDevice` on request.
public final class VulkanDriver: Driver, @unchecked Sendable {
  // @unchecked: immutable after init.
  public let name = "vulkan"
  let instance: VulkanInstance
  let physicalDevices: [VulkanPhysicalDevice]
  /// Devices the loader reported that Kiln cannot use, with the reason (for `kiln devices`).
  public let skippedDevices: [String]

  /// - Parameter validation: enable VK_LAYER_KHRONOS_validation; defaults to `KILN_VALIDATION`.
  public init(validation: Bool = VulkanValidation.requestedByEnvironment) throws {
    instance = try VulkanInstance(validation: validation)
    var usable: [VulkanPhysicalDevice] = []
    var skipped: [String] = []
    for handle in try instance.physicalDevices() {
      let device = try VulkanPhysicalDevice(handle, instance: instance.handle)
      if device.isUsable {
        usable.append(device)
      } else {
        skipped.append("\(device.name): needs Vulkan 1.2 with timeline semaphores and a compute queue")
      }
    }
    // Stable sort: by device class, then in the loader's order.
    physicalDevices = usable.enumerated().sorted { a, b in
      (a.element.typeRank, a.offset) < (b.element.typeRank, b.offset)
    }.map(\.element)
    skippedDevices = skipped
  }

  public var validationEnabled: Bool { instance.validationEnabled }

  public func enumerate() throws -> [DeviceInfo] {
    physicalDevices.enumerated().map { $0.element.info(index: $0.offset) }
  }

  public func open(_ info: DeviceInfo, options: DeviceOptions) throws -> any Device {
    try openVulkan(info, options: options)
  }

  /// Opens the device `info` names; `options` nil reads `KILN_FAULTS`.
  public func openVulkan(_ info: DeviceInfo, options: DeviceOptions? = nil) throws -> VulkanDevice {
    guard let index = physicalDevices.firstIndex(where: { $0.uuid == info.uuid }) else {
      throw HALError(.unavailable, "no Vulkan device with UUID \(info.uuid)")
    }
    return try VulkanDevice(
      instance: instance, physical: physicalDevices[index], info: physicalDevices[index].info(index: index),
      options: options ?? .fromEnvironment())
  }
}
