import Foundation
import KilnCPU
import KilnHAL
import KilnVulkan

/// Every device Kiln can run on, across drivers, and the resolution of device URIs.
///
/// Vulkan is optional at run time: without a loader or ICD the registry still offers the CPU
/// device, and `vulkanError` says why Vulkan is missing.
public final class DeviceRegistry: @unchecked Sendable {
  // @unchecked: all stored properties are immutable after init.
  public let vulkan: VulkanDriver?
  /// Why the Vulkan driver could not start, when it could not.
  public let vulkanError: Error?
  public let cpu: CPUDriver
  public let vulkanDevices: [DeviceInfo]
  public let cpuDevices: [DeviceInfo]

  /// - Parameter validation: enable Vulkan validation layers (default: `KILN_VALIDATION`).
  public init(validation: Bool = VulkanValidation.requestedByEnvironment, cpu: CPUDriver = CPUDriver()) {
    self.cpu = cpu
    var driver: VulkanDriver?
    var failure: Error?
    var devices: [DeviceInfo] = []
    do {
      let created = try VulkanDriver(validation: validation)
      devices = try created.enumerate()
      driver = created
    } catch {
      failure = error
    }
    vulkan = driver
    vulkanError = failure
    vulkanDevices = devices
    cpuDevices = (try? cpu.enumerate()) ?? []
  }

  /// Every device, Vulkan devices first in preference order, then the CPU device.
  public var allDevices: [DeviceInfo] { vulkanDevices + cpuDevices }

  /// The device a URI names.
  public func resolve(_ uri: DeviceURI) throws -> DeviceInfo {
    switch uri {
    case .auto:
      if let best = vulkanDevices.first { return best }
      guard let cpuDevice = cpuDevices.first else { throw HALError(.unavailable, "no device at all") }
      return cpuDevice
    case .cpu:
      guard let cpuDevice = cpuDevices.first else { throw HALError(.unavailable, "the CPU device is unavailable") }
      return cpuDevice
    case .vulkan:
      guard let best = vulkanDevices.first else { throw noVulkan("vulkan") }
      return best
    case .vulkanIndex(let index):
      guard !vulkanDevices.isEmpty else { throw noVulkan(uri.description) }
      guard vulkanDevices.indices.contains(index) else {
        throw HALError(
          .unavailable, "no device vulkan:\(index): there are \(vulkanDevices.count) Vulkan devices (vulkan:0...vulkan:\(vulkanDevices.count - 1))")
      }
      return vulkanDevices[index]
    case .vulkanUUID(let uuid):
      guard let device = vulkanDevices.first(where: { $0.uuid == uuid }) else {
        throw HALError(.unavailable, "no Vulkan device has UUID \(uuid) (see `kiln devices`)")
      }
      return device
    }
  }

  public func resolve(_ text: String) throws -> DeviceInfo {
    try resolve(DeviceURI(parsing: text))
  }

  /// Opens the device a URI names; `options` nil means the defaults with `KILN_FAULTS`.
  public func open(_ uri: DeviceURI, options: DeviceOptions? = nil) throws -> any Device {
    try open(resolve(uri), options: options)
  }

  public func open(_ text: String, options: DeviceOptions? = nil) throws -> any Device {
    try open(DeviceURI(parsing: text), options: options)
  }

  public func open(_ info: DeviceInfo, options: DeviceOptions? = nil) throws -> any Device {
    let options = try options ?? .fromEnvironment()
    if info.driver == "vulkan" {
      guard let vulkan else { throw noVulkan(info.uri) }
      return try vulkan.open(info, options: options)
    }
    return try cpu.open(info, options: options)
  }

  private func noVulkan(_ uri: String) -> HALError {
    let reason = vulkanError.map { " (\($0))" } ?? ""
    return HALError(.unavailable, "device '\(uri)': no Vulkan device is available\(reason)")
  }
}
