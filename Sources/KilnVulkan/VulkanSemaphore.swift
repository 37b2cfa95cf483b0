import CVulkan
import KilnHAL

/// A Vulkan timeline semaphore.
public final class VulkanSemaphore: KilnHAL.Semaphore, @unchecked Sendable {
  // @unchecked: the handle is immutable; timeline semaphore calls are thread-safe in Vulkan.
  let device: VulkanDevice
  let handle: VkSemaphore

  init(device: VulkanDevice, initialValue: UInt64) throws {
    self.device = device
    self.handle = try VulkanDevice.makeTimelineSemaphore(device.handle, initialValue: initialValue)
    device.resources.add(.semaphore)
  }

  deinit {
    // The semaphore may still be referenced by a pending submission: wait for the queue first.
    try? device.drain(timeout: device.options.waitTimeout)
    vkDestroySemaphore(device.handle, handle, nil)
    device.resources.remove(.semaphore)
  }

  public func currentValue() throws -> UInt64 {
    try device.ensureUsable("semaphore value")
    var value: UInt64 = 0
    try check(vkGetSemaphoreCounterValue(device.handle, handle, &value), "vkGetSemaphoreCounterValue")
    return value
  }

  public func signal(_ value: UInt64) throws {
    try device.ensureUsable("semaphore signal")
    var info = VkSemaphoreSignalInfo()
    info.sType = VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO
    info.semaphore = handle
    info.value = value
    try check(vkSignalSemaphore(device.handle, &info), "vkSignalSemaphore(\(value))")
  }

  public func wait(for value: UInt64, timeout: Duration) throws {
    try device.ensureUsable("semaphore wait")
    try device.noticingLoss {
      try VulkanSemaphore.wait(device: device.handle, semaphore: handle, value: value, timeout: timeout)
    }
  }

  static func wait(device: VkDevice, semaphore: VkSemaphore, value: UInt64, timeout: Duration) throws {
    var semaphores: [VkSemaphore?] = [semaphore]
    var values: [UInt64] = [value]
    let nanoseconds = timeout.nanosecondsClamped
    let result = semaphores.withUnsafeMutableBufferPointer { semaphorePointer in
      values.withUnsafeMutableBufferPointer { valuePointer in
        var info = VkSemaphoreWaitInfo()
        info.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO
        info.semaphoreCount = 1
        info.pSemaphores = UnsafePointer(semaphorePointer.baseAddress)
        info.pValues = UnsafePointer(valuePointer.baseAddress)
        return vkWaitSemaphores(device, &info, nanoseconds)
      }
    }
    if result == VK_TIMEOUT {
      throw HALError(.timeout, "waiting for timeline value \(value) took longer than \(timeout)")
    }
    try check(result, "vkWaitSemaphores(\(value))")
  }
}

extension Duration {
  /// Whole nanoseconds, clamped to UInt64 (negative durations become 0).
  var nanosecondsClamped: UInt64 {
    let (seconds, attoseconds) = components
    if seconds < 0 { return 0 }
    let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return UInt64.max }
    let (total, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
    return overflow2 ? UInt64.max : total
  }
}
