import CVulkan
import Foundation
import KilnHAL

/// Owns the VkInstance (and the validation messenger). Devices hold it strongly.
final class VulkanInstance: @unchecked Sendable {
  // @unchecked: the handles are immutable after init; Vulkan instances are thread-safe for the
  // calls made here (enumeration and proc-address queries).
  let handle: VkInstance
  let validationEnabled: Bool
  private var messenger: VkDebugUtilsMessengerEXT?

  init(validation: Bool) throws {
    var available = Set<String>()
    var layerCount: UInt32 = 0
    try check(vkEnumerateInstanceLayerProperties(&layerCount, nil), "vkEnumerateInstanceLayerProperties")
    var layers = [VkLayerProperties](repeating: VkLayerProperties(), count: Int(layerCount))
    try check(vkEnumerateInstanceLayerProperties(&layerCount, &layers), "vkEnumerateInstanceLayerProperties")
    for layer in layers.prefix(Int(layerCount)) { available.insert(string(fromCharTuple: layer.layerName)) }

    let validationLayer = "VK_LAYER_KHRONOS_validation"
    if validation && !available.contains(validationLayer) {
      throw HALError(
        .unavailable,
        "Vulkan validation was requested but \(validationLayer) is not installed (apt-get install vulkan-validationlayers)"
      )
    }
    let layerNames = CStringArray(validation ? [validationLayer] : [])
    let extensionNames = CStringArray(validation ? ["VK_EXT_debug_utils"] : [])

    var appInfo = VkApplicationInfo()
    appInfo.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO
    appInfo.apiVersion = makeAPIVersion(1, 3, 0)
    appInfo.applicationVersion = 1
    appInfo.engineVersion = 1

    var instance: VkInstance?
    let result = "kiln".withCString { appName in
      appInfo.pApplicationName = appName
      appInfo.pEngineName = appName
      return withUnsafePointer(to: &appInfo) { appInfoPointer in
        layerNames.pointers.withUnsafeBufferPointer { layerPointers in
          extensionNames.pointers.withUnsafeBufferPointer { extensionPointers in
            var createInfo = VkInstanceCreateInfo()
            createInfo.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
            createInfo.pApplicationInfo = appInfoPointer
            createInfo.enabledLayerCount = layerNames.count
            createInfo.ppEnabledLayerNames = layerPointers.baseAddress
            createInfo.enabledExtensionCount = extensionNames.count
            createInfo.ppEnabledExtensionNames = extensionPointers.baseAddress
            return vkCreateInstance(&createInfo, nil, &instance)
          }
        }
      }
    }
    try check(result, "vkCreateInstance")
    guard let instance else { throw HALError(.unavailable, "vkCreateInstance returned no instance") }
    self.handle = instance
    self.validationEnabled = validation
    if validation { try installMessenger() }
  }

  private func installMessenger() throws {
    guard let raw = vkGetInstanceProcAddr(handle, "vkCreateDebugUtilsMessengerEXT") else {
      throw HALError(.unavailable, "vkCreateDebugUtilsMessengerEXT is missing although VK_EXT_debug_utils is enabled")
    }
    let create = unsafeBitCast(raw, to: PFN_vkCreateDebugUtilsMessengerEXT.self)
    var info = VkDebugUtilsMessengerCreateInfoEXT()
    info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT
    info.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue
    info.messageType =
      VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT.rawValue | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT.rawValue
      | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT.rawValue
    info.pfnUserCallback = VulkanValidation.callback
    var messenger: VkDebugUtilsMessengerEXT?
    try check(create(handle, &info, nil, &messenger), "vkCreateDebugUtilsMessengerEXT")
    self.messenger = messenger
  }

  deinit {
    if let messenger, let raw = vkGetInstanceProcAddr(handle, "vkDestroyDebugUtilsMessengerEXT") {
      let destroy = unsafeBitCast(raw, to: PFN_vkDestroyDebugUtilsMessengerEXT.self)
      destroy(handle, messenger, nil)
    }
    vkDestroyInstance(handle, nil)
  }

  func physicalDevices() throws -> [VkPhysicalDevice] {
    var count: UInt32 = 0
    try check(vkEnumeratePhysicalDevices(handle, &count, nil), "vkEnumeratePhysicalDevices")
    var devices = [VkPhysicalDevice?](repeating: nil, count: Int(count))
    try check(vkEnumeratePhysicalDevices(handle, &count, &devices), "vkEnumeratePhysicalDevices")
    return devices.prefix(Int(count)).compactMap { $0 }
  }
}
