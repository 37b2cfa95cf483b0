import CVulkan
import KilnHAL

/// Turns a `VkResult` into a thrown `HALError` naming the call; every Vulkan call goes through here.
func check(_ result: VkResult, _ call: @autoclosure () -> String) throws {
  if result == VK_SUCCESS { return }
  throw vulkanError(result, call())
}

func vulkanError(_ result: VkResult, _ call: String) -> HALError {
  let name = resultName(result)
  switch result {
  case VK_ERROR_OUT_OF_HOST_MEMORY, VK_ERROR_OUT_OF_DEVICE_MEMORY, VK_ERROR_OUT_OF_POOL_MEMORY,
    VK_ERROR_FRAGMENTED_POOL, VK_ERROR_FRAGMENTATION:
    return HALError(.outOfMemory, "\(call) failed: \(name)")
  case VK_ERROR_DEVICE_LOST:
    return HALError(.deviceLost, "\(call) failed: \(name) (the device was lost; recreate the session)")
  case VK_TIMEOUT:
    return HALError(.timeout, "\(call) timed out")
  case VK_ERROR_INITIALIZATION_FAILED, VK_ERROR_INCOMPATIBLE_DRIVER, VK_ERROR_LAYER_NOT_PRESENT,
    VK_ERROR_EXTENSION_NOT_PRESENT:
    return HALError(.unavailable, "\(call) failed: \(name)")
  case VK_ERROR_FEATURE_NOT_PRESENT, VK_ERROR_FORMAT_NOT_SUPPORTED:
    return HALError(.unsupported, "\(call) failed: \(name)")
  case VK_ERROR_INVALID_SHADER_NV:
    return HALError(.compilationFailed, "\(call) failed: \(name)")
  default:
    return HALError(.internal, "\(call) failed: \(name)")
  }
}

func resultName(_ result: VkResult) -> String {
  switch result {
  case VK_SUCCESS: "VK_SUCCESS"
  case VK_NOT_READY: "VK_NOT_READY"
  case VK_TIMEOUT: "VK_TIMEOUT"
  case VK_INCOMPLETE: "VK_INCOMPLETE"
  case VK_ERROR_OUT_OF_HOST_MEMORY: "VK_ERROR_OUT_OF_HOST_MEMORY"
  case VK_ERROR_OUT_OF_DEVICE_MEMORY: "VK_ERROR_OUT_OF_DEVICE_MEMORY"
  case VK_ERROR_INITIALIZATION_FAILED: "VK_ERROR_INITIALIZATION_FAILED"
  case VK_ERROR_DEVICE_LOST: "VK_ERROR_DEVICE_LOST"
  case VK_ERROR_MEMORY_MAP_FAILED: "VK_ERROR_MEMORY_MAP_FAILED"
  case VK_ERROR_LAYER_NOT_PRESENT: "VK_ERROR_LAYER_NOT_PRESENT"
  case VK_ERROR_EXTENSION_NOT_PRESENT: "VK_ERROR_EXTENSION_NOT_PRESENT"
  case VK_ERROR_FEATURE_NOT_PRESENT: "VK_ERROR_FEATURE_NOT_PRESENT"
  case VK_ERROR_INCOMPATIBLE_DRIVER: "VK_ERROR_INCOMPATIBLE_DRIVER"
  case VK_ERROR_TOO_MANY_OBJECTS: "VK_ERROR_TOO_MANY_OBJECTS"
  case VK_ERROR_FORMAT_NOT_SUPPORTED: "VK_ERROR_FORMAT_NOT_SUPPORTED"
  case VK_ERROR_FRAGMENTED_POOL: "VK_ERROR_FRAGMENTED_POOL"
  case VK_ERROR_OUT_OF_POOL_MEMORY: "VK_ERROR_OUT_OF_POOL_MEMORY"
  case VK_ERROR_FRAGMENTATION: "VK_ERROR_FRAGMENTATION"
  case VK_ERROR_INVALID_SHADER_NV: "VK_ERROR_INVALID_SHADER_NV"
  default: "VkResult(\(result.rawValue))"
  }
}

/// `VK_MAKE_API_VERSION(0, major, minor, patch)`; the C macro is not imported into Swift.
func makeAPIVersion(_ major: UInt32, _ minor: UInt32, _ patch: UInt32) -> UInt32 {
  (major << 22) | (minor << 12) | patch
}

func apiVersionString(_ version: UInt32) -> String {
  "\(version >> 22 & 0x7f).\(version >> 12 & 0x3ff).\(version & 0xfff)"
}

/// Reads a fixed-size C `char[N]` (imported as a tuple) as a String.
func string<T>(fromCharTuple tuple: T) -> String {
  withUnsafeBytes(of: tuple) { raw in
    let bytes = raw.prefix { $0 != 0 }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// Reads a fixed-size C `uint8_t[N]` (imported as a tuple) as lowercase hex.
func hex<T>(fromByteTuple tuple: T) -> String {
  withUnsafeBytes(of: tuple) { raw in raw.map { byte in String(format2: byte) }.joined() }
}

extension String {
  fileprivate init(format2 byte: UInt8) {
    let digits = Array("0123456789abcdef")
    self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
  }
}

/// NUL-terminated copies of strings that live as long as this object (for `ppEnabled...Names`).
final class CStringArray {
  private(set) var pointers: [UnsafePointer<CChar>?]

  init(_ strings: [String]) {
    pointers = strings.map { UnsafePointer(strdup($0)) }
  }

  deinit {
    for pointer in pointers { free(UnsafeMutablePointer(mutating: pointer)) }
  }

  var count: UInt32 { UInt32(pointers.count) }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
