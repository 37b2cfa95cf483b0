import CVulkan
import Foundation

/// A VkPipelineCache loaded from and saved to `$KILN_CACHE_DIR` (default `~/.cache/kiln`), one file
/// per device UUID. A missing, unreadable or foreign file simply starts an empty cache: the driver
/// validates the header itself, so a bad file costs only compile time.
final class VulkanPipelineCache: @unchecked Sendable {
  // @unchecked: VkPipelineCache is internally synchronised (Vulkan spec: pipeline creation may
  // use one cache from several threads); `handle` is immutable.
  let device: VkDevice
  let handle: VkPipelineCache?
  private let path: URL?

  init(device: VkDevice, uuid: String) {
    self.device = device
    let directory = VulkanPipelineCache.directory()
    path = directory?.appendingPathComponent("pipelines-\(uuid).bin")
    let initial = path.flatMap { try? Data(contentsOf: $0) } ?? Data()
    var cache: VkPipelineCache?
    let result = initial.withUnsafeBytes { bytes in
      var info = VkPipelineCacheCreateInfo()
      info.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
      info.initialDataSize = bytes.count
      info.pInitialData = bytes.baseAddress
      return vkCreatePipelineCache(device, &info, nil, &cache)
    }
    if result == VK_SUCCESS {
      handle = cache
    } else {
      // Retry empty: the driver rejected the stored data.
      var info = VkPipelineCacheCreateInfo()
      info.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO
      var empty: VkPipelineCache?
      handle = vkCreatePipelineCache(device, &info, nil, &empty) == VK_SUCCESS ? empty : nil
    }
  }

  static func directory() -> URL? {
    let environment = ProcessInfo.processInfo.environment
    if let explicit = environment["KILN_CACHE_DIR"], !explicit.isEmpty {
      return URL(fileURLWithPath: explicit, isDirectory: true)
    }
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
      return URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("kiln")
    }
    guard let home = environment["HOME"], !home.isEmpty else { return nil }
    return URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache/kiln")
  }

  /// Writes the cache atomically (temp file + rename) and destroys it. Failures are ignored: the
  /// cache is an optimisation only.
  func persistAndDestroy() {
    guard let handle else { return }
    defer { vkDestroyPipelineCache(device, handle, nil) }
    guard let path else { return }
    var size = 0
    guard vkGetPipelineCacheData(device, handle, &size, nil) == VK_SUCCESS, size > 0 else { return }
    var data = Data(count: size)
    let result = data.withUnsafeMutableBytes { vkGetPipelineCacheData(device, handle, &size, $0.baseAddress) }
    guard result == VK_SUCCESS else { return }
    do {
      try FileManager.default.createDirectory(
        at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
      try data.prefix(size).write(to: path, options: .atomic)
    } catch {
      return
    }
  }
}
