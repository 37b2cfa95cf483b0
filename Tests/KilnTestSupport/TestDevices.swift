import Foundation
import KilnHAL
import KilnRuntime
import KilnVulkan
import Synchronization

/// The devices every conformance suite runs on, opened once per test process.
///
/// Vulkan validation (VK_LAYER_KHRONOS_validation) is on in debug test builds and whenever
/// `KILN_VALIDATION=1`; with `CI=true` the layer and a Vulkan device are mandatory, so a machine
/// that lost lavapipe fails loudly instead of skipping half the suite.
public enum TestDevices {
  public static let isCI: Bool = {
    let value = ProcessInfo.processInfo.environment["CI"]?.lowercased()
    return value == "true" || value == "1"
  }()

  /// Validation is wanted in debug builds and when asked for; it needs the layer installed.
  public static let validationWanted: Bool = {
    #if DEBUG
      return ProcessInfo.processInfo.environment["KILN_VALIDATION"] != "0"
    #else
      return VulkanValidation.requestedByEnvironment
    #endif
  }()

  public static let registry: DeviceRegistry = {
    let registry = DeviceRegistry(validation: validationWanted)
    if registry.vulkan == nil && validationWanted && !isCI {
      // Outside CI a machine without the validation layer still runs the Vulkan suite.
      let plain = DeviceRegistry(validation: false)
      if plain.vulkan != nil { return plain }
    }
    return registry
  }()

  /// Short URIs of every device to test: each Vulkan device, then `cpu`.
  public static let uris: [String] = registry.allDevices.map(\.shortURI)

  /// Short URIs of the Vulkan devices only.
  public static let vulkanURIs: [String] = registry.vulkanDevices.map(\.shortURI)

  private static let opened = Mutex<[String: any Device]>([:])

  /// The device for `uri`, opened once and shared by every test in the process.
  public static func device(_ uri: String) throws -> any Device {
    try opened.withLock { cache in
      if let device = cache[uri] { return device }
      let device = try registry.open(uri)
      cache[uri] = device
      return device
    }
  }

  /// A new device for `uri`, not shared: for tests that inject faults or count live resources.
  public static func openPrivate(_ uri: String, faults: FaultInjection = .none, waitTimeout: Duration = .seconds(60))
    throws -> any Device
  {
    try registry.open(uri, options: DeviceOptions(faults: faults, waitTimeout: waitTimeout))
  }

  /// Validation messages produced since the last call; a test that made any must fail.
  public static func drainValidationMessages() -> [String] {
    VulkanValidation.drainMessages()
  }
}
