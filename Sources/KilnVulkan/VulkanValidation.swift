import CVulkan
import Foundation
import KilnHAL

/// Messages from VK_LAYER_KHRONOS_validation, collected process-wide.
///
/// Tests read and clear them: any message (warning or error) fails the test that caused it.
public enum VulkanValidation {
  private static let store = Locked<[String]>([])

  /// True when `KILN_VALIDATION=1` (or `true`) is set in the environment.
  public static var requestedByEnvironment: Bool {
    let value = ProcessInfo.processInfo.environment["KILN_VALIDATION"]?.lowercased()
    return value == "1" || value == "true" || value == "yes"
  }

  /// Every message recorded since the last `drainMessages()`.
  public static func drainMessages() -> [String] {
    store.withLock { messages in
      defer { messages.removeAll() }
      return messages
    }
  }

  static func record(_ message: String) {
    store.withLock { $0.append(message) }
  }

  /// The C callback handed to vkCreateDebugUtilsMessengerEXT; it captures nothing.
  static let callback: PFN_vkDebugUtilsMessengerCallbackEXT = { severity, _, data, _ in
    let text = data.map { String(cString: $0.pointee.pMessage) } ?? "(no message)"
    let level =
      (severity.rawValue & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT.rawValue) != 0 ? "error" : "warning"
    VulkanValidation.record("validation \(level): \(text)")
    return VkBool32(VK_FALSE)
  }
}
