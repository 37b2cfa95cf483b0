import CVulkan
import KilnHAL

/// A VkBuffer bound to a suballocated or dedicated range of device memory.
public final class VulkanBuffer: Buffer, @unchecked Sendable {
  // @unchecked: immutable after init; contents are synchronised by barriers and semaphores.
  let device: VulkanDevice
  let allocator: VulkanAllocator
  let handle: VkBuffer
  public let byteCount: Int
  public let access: MemoryAccess
  let placement: VulkanAllocator.Placement

  init(
    allocator: VulkanAllocator, handle: VkBuffer, byteCount: Int, access: MemoryAccess,
    placement: VulkanAllocator.Placement
  ) {
    self.device = allocator.device
    self.allocator = allocator
    self.handle = handle
    self.byteCount = byteCount
    self.access = access
    self.placement = placement
  }

  deinit {
    allocator.free(handle, byteCount: byteCount, placement: placement)
  }

  public var hostAddress: UnsafeMutableRawPointer? { placement.mapped }
}
