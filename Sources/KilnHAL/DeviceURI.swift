import Foundation

/// A device selector as users write it: `auto`, `cpu`, `vulkan`, `vulkan:N`, `vulkan://<uuid>`.
public enum DeviceURI: Sendable, Hashable, CustomStringConvertible {
  /// The best Vulkan device, else the CPU device.
  case auto
  case cpu
  /// The best Vulkan device.
  case vulkan
  /// The N-th Vulkan device in preference order (as `kiln devices` lists them).
  case vulkanIndex(Int)
  /// The Vulkan device with this UUID (32 lowercase hex digits, dashes allowed on input).
  case vulkanUUID(String)

  public init(parsing text: String) throws {
    let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
    switch trimmed {
    case "auto": self = .auto
    case "cpu", "cpu:0", "local-task": self = .cpu
    case "vulkan": self = .vulkan
    default:
      if trimmed.hasPrefix("vulkan://") {
        let hex = trimmed.dropFirst("vulkan://".count).filter { $0 != "-" }
        guard hex.count == 32, hex.allSatisfy(\.isHexDigit) else {
          throw HALError(.invalidArgument, "device URI '\(text)': expected vulkan://<32 hex digits of the device UUID>")
        }
        self = .vulkanUUID(String(hex))
      } else if trimmed.hasPrefix("vulkan:") {
        guard let index = Int(trimmed.dropFirst("vulkan:".count)), index >= 0 else {
          throw HALError(.invalidArgument, "device URI '\(text)': expected vulkan:N with N a device index")
        }
        self = .vulkanIndex(index)
      } else {
        throw HALError(
          .invalidArgument, "unknown device URI '\(text)' (expected auto, cpu, vulkan, vulkan:N or vulkan://<uuid>)")
      }
    }
  }

  public var description: String {
    switch self {
    case .auto: "auto"
    case .cpu: "cpu"
    case .vulkan: "vulkan"
    case .vulkanIndex(let n): "vulkan:\(n)"
    case .vulkanUUID(let uuid): "vulkan://\(uuid)"
    }
  }
}
