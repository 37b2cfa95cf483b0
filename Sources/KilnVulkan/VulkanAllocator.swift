import CVulkan
import KilnHAL
import Synchronization

/// Chooses memory types and suballocates buffers from large blocks.
///
/// Buffers up to a quarter of the block size share 64 MiB blocks (first-fit with coalescing);
/// larger ones get a dedicated allocation. Host-visible memory is mapped once per block.
final class VulkanAllocator: Allocator, @unchecked Sendable {
  // @unchecked: `state` (blocks and statistics) is guarded by a Mutex; the rest is immutable.
  let deviceHandle: VkDevice
  let deviceType: DeviceType
  let maxAllocation: Int
  let memoryProperties: VkPhysicalDeviceMemoryProperties
  let blockSize: Int

  struct State {
    var blocks: [MemoryBlock] = []
    var liveBytes = 0
    var liveBuffers = 0
    var dedicatedBytes = 0
    var dedicatedCount = 0
  }
  private let state = Mutex(State())
  /// Strong reference set by each buffer; the device outlives its buffers.
  unowned(unsafe) let device: VulkanDevice

  init(device: VulkanDevice) {
    self.device = device
    self.deviceHandle = device.handle
    self.deviceType = device.info.type
    self.maxAllocation = device.info.limits.maxMemoryAllocationSize
    var properties = VkPhysicalDeviceMemoryProperties()
    vkGetPhysicalDeviceMemoryProperties(device.physical.handle, &properties)
    self.memoryProperties = properties
    self.blockSize = min(64 << 20, max(device.info.limits.maxMemoryAllocationSize, 1 << 20))
  }

  deinit {
    state.withLock { state in
      for block in state.blocks { block.release(deviceHandle) }
      state.blocks.removeAll()
    }
  }

  var statistics: AllocatorStatistics {
    state.withLock { s in
      AllocatorStatistics(
        reservedBytes: s.blocks.reduce(0) { $0 + $1.size } + s.dedicatedBytes, liveBytes: s.liveBytes,
        liveBuffers: s.liveBuffers, blocks: s.blocks.count + s.dedicatedCount)
    }
  }

  /// Fault `alloc`: the device memory behind the N-th buffer fails as `VK_ERROR_OUT_OF_DEVICE_MEMORY`
  /// (after `vkCreateBuffer`, so the buffer is destroyed by the real error path).
  func allocate(byteCount: Int, access: MemoryAccess) throws -> any Buffer {
    try device.ensureUsable("allocate")
    guard byteCount >= 0 else { throw HALError(.invalidArgument, "allocate: negative size \(byteCount)") }
    guard byteCount <= maxAllocation else {
      throw HALError(
        .limitExceeded,
        "\(device.label): allocating \(byteCount) bytes exceeds the device's maxMemoryAllocationSize of \(maxAllocation) bytes")
    }
    let injected = device.faults.fires(.alloc)
    do {
      return try allocate(byteCount: byteCount, access: access, injectFailure: injected)
    } catch let error as HALError {
      throw HALError(
        error.code,
        "\(device.label): allocating a \(byteCount)-byte \(access.rawValue) buffer: \(error.message)"
          + (injected ? device.faults.note(.alloc) : ""))
    }
  }

  private func allocate(byteCount: Int, access: MemoryAccess, injectFailure: Bool) throws -> any Buffer {
    let size = max(byteCount, 16)
    var info = VkBufferCreateInfo()
    info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO
    info.size = VkDeviceSize(size)
    info.usage =
      VK_BUFFER_USAGE_STORAGE_BUFFER_BIT.rawValue | VK_BUFFER_USAGE_TRANSFER_SRC_BIT.rawValue
      | VK_BUFFER_USAGE_TRANSFER_DST_BIT.rawValue
    info.sharingMode = VK_SHARING_MODE_EXCLUSIVE
    var buffer: VkBuffer?
    try check(vkCreateBuffer(deviceHandle, &info, nil, &buffer), "vkCreateBuffer(\(size) bytes)")
    guard let buffer else { throw HALError(.internal, "vkCreateBuffer returned no buffer") }
    do {
      var requirements = VkMemoryRequirements()
      vkGetBufferMemoryRequirements(deviceHandle, buffer, &requirements)
      let typeIndex = try chooseMemoryType(bits: requirements.memoryTypeBits, access: access)
      let flags = memoryProperties.memoryType(typeIndex).propertyFlags
      let hostVisible = flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue != 0
      let placement = try place(
        size: Int(requirements.size), alignment: Int(requirements.alignment), typeIndex: typeIndex,
        hostVisible: hostVisible, injectFailure: injectFailure)
      let bound = vkBindBufferMemory(deviceHandle, buffer, placement.memory, VkDeviceSize(placement.offset))
      if bound != VK_SUCCESS {
        release(placement)
        try check(bound, "vkBindBufferMemory")
      }
      state.withLock {
        $0.liveBytes += byteCount
        $0.liveBuffers += 1
      }
      return VulkanBuffer(
        allocator: self, handle: buffer, byteCount: byteCount, access: access, placement: placement)
    } catch {
      vkDestroyBuffer(deviceHandle, buffer, nil)
      throw error
    }
  }

  /// Called by `VulkanBuffer.deinit`.
  func free(_ buffer: VkBuffer, byteCount: Int, placement: Placement) {
    vkDestroyBuffer(deviceHandle, buffer, nil)
    release(placement)
    state.withLock {
      $0.liveBytes -= byteCount
      $0.liveBuffers -= 1
    }
  }

  // MARK: Memory types

  private func chooseMemoryType(bits: UInt32, access: MemoryAccess) throws -> UInt32 {
    let local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT.rawValue
    let visible = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT.rawValue
    let coherent = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT.rawValue
    let cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT.rawValue
    let unified = deviceType == .cpu || deviceType == .integratedGPU
    // Preference lists: the first flag set that some allowed type has wins.
    let preferences: [UInt32]
    switch access {
    case .deviceLocal:
      // Unified memory: device-local and mapped, so uploads and read-backs skip staging.
      preferences = unified ? [local | visible | coherent, local] : [local]
    case .upload:
      preferences = [visible | coherent]
    case .readback:
      preferences = [visible | coherent | cached, visible | coherent]
    }
    for wanted in preferences {
      for index in 0..<memoryProperties.memoryTypeCount where bits & (1 << index) != 0 {
        if memoryProperties.memoryType(index).propertyFlags & wanted == wanted { return index }
      }
    }
    if access == .deviceLocal {
      for index in 0..<memoryProperties.memoryTypeCount where bits & (1 << index) != 0 { return index }
    }
    throw HALError(.unsupported, "no memory type fits a \(access.rawValue) buffer (type bits 0x\(String(bits, radix: 16)))")
  }

  // MARK: Suballocation

  struct Placement: @unchecked Sendable {
    // @unchecked: plain handles and numbers.
    let memory: VkDeviceMemory
    let offset: Int
    let size: Int
    let mapped: UnsafeMutableRawPointer?
    /// nil for a dedicated allocation.
    let block: MemoryBlock?
  }

  private func place(size: Int, alignment: Int, typeIndex: UInt32, hostVisible: Bool, injectFailure: Bool) throws
    -> Placement
  {
    if size > blockSize / 4 {
      let memory = try allocateMemory(size: size, typeIndex: typeIndex, injectFailure: injectFailure)
      let mapped = hostVisible ? try map(memory, size: size) : nil
      state.withLock {
        $0.dedicatedBytes += size
        $0.dedicatedCount += 1
      }
      return Placement(memory: memory, offset: 0, size: size, mapped: mapped, block: nil)
    }
    return try state.withLock { state -> Placement in
      for block in state.blocks where block.typeIndex == typeIndex && !injectFailure {
        if let offset = block.reserve(size: size, alignment: alignment) {
          return Placement(
            memory: block.memory, offset: offset, size: size, mapped: block.mapped.map { $0 + offset }, block: block)
        }
      }
      let memory = try allocateMemory(size: blockSize, typeIndex: typeIndex, injectFailure: injectFailure)
      let mapped: UnsafeMutableRawPointer?
      do {
        mapped = hostVisible ? try map(memory, size: blockSize) : nil
      } catch {
        vkFreeMemory(deviceHandle, memory, nil)
        throw error
      }
      let block = MemoryBlock(memory: memory, size: blockSize, typeIndex: typeIndex, mapped: mapped)
      state.blocks.append(block)
      guard let offset = block.reserve(size: size, alignment: alignment) else {
        throw HALError(.internal, "a fresh \(blockSize)-byte block cannot hold \(size) bytes")
      }
      return Placement(memory: memory, offset: offset, size: size, mapped: mapped.map { $0 + offset }, block: block)
    }
  }

  private func release(_ placement: Placement) {
    if let block = placement.block {
      state.withLock { _ in block.unreserve(offset: placement.offset, size: placement.size) }
    } else {
      if placement.mapped != nil { vkUnmapMemory(deviceHandle, placement.memory) }
      vkFreeMemory(deviceHandle, placement.memory, nil)
      state.withLock {
        $0.dedicatedBytes -= placement.size
        $0.dedicatedCount -= 1
      }
    }
  }

  private func allocateMemory(size: Int, typeIndex: UInt32, injectFailure: Bool) throws -> VkDeviceMemory {
    var info = VkMemoryAllocateInfo()
    info.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO
    info.allocationSize = VkDeviceSize(size)
    info.memoryTypeIndex = typeIndex
    var memory: VkDeviceMemory?
    let result = injectFailure ? VK_ERROR_OUT_OF_DEVICE_MEMORY : vkAllocateMemory(deviceHandle, &info, nil, &memory)
    try check(result, "vkAllocateMemory(\(size) bytes)")
    guard let memory else { throw HALError(.outOfMemory, "vkAllocateMemory returned no memory") }
    return memory
  }

  private func map(_ memory: VkDeviceMemory, size: Int) throws -> UnsafeMutableRawPointer {
    var pointer: UnsafeMutableRawPointer?
    let result = vkMapMemory(deviceHandle, memory, 0, VkDeviceSize(VK_WHOLE_SIZE), 0, &pointer)
    if result != VK_SUCCESS {
      vkFreeMemory(deviceHandle, memory, nil)
      try check(result, "vkMapMemory")
    }
    guard let pointer else {
      vkFreeMemory(deviceHandle, memory, nil)
      throw HALError(.internal, "vkMapMemory returned no address")
    }
    return pointer
  }
}

/// One VkDeviceMemory block with a sorted free list. Guarded by the allocator's Mutex.
final class MemoryBlock: @unchecked Sendable {
  // @unchecked: only touched inside `VulkanAllocator.state.withLock`.
  let memory: VkDeviceMemory
  let size: Int
  let typeIndex: UInt32
  let mapped: UnsafeMutableRawPointer?
  /// Free ranges sorted by offset, never adjacent (they are merged).
  private var free: [(offset: Int, size: Int)]

  init(memory: VkDeviceMemory, size: Int, typeIndex: UInt32, mapped: UnsafeMutableRawPointer?) {
    self.memory = memory
    self.size = size
    self.typeIndex = typeIndex
    self.mapped = mapped
    self.free = [(0, size)]
  }

  func reserve(size wanted: Int, alignment: Int) -> Int? {
    let alignment = max(alignment, 1)
    for (index, range) in free.enumerated() {
      let aligned = (range.offset + alignment - 1) / alignment * alignment
      let padding = aligned - range.offset
      guard range.size >= padding + wanted else { continue }
      var replacement: [(offset: Int, size: Int)] = []
      if padding > 0 { replacement.append((range.offset, padding)) }
      let tail = range.size - padding - wanted
      if tail > 0 { replacement.append((aligned + wanted, tail)) }
      free.replaceSubrange(index...index, with: replacement)
      return aligned
    }
    return nil
  }

  func unreserve(offset: Int, size released: Int) {
    let insertAt = free.firstIndex { $0.offset > offset } ?? free.count
    free.insert((offset, released), at: insertAt)
    // Merge with the next and the previous range.
    if insertAt + 1 < free.count, free[insertAt].offset + free[insertAt].size == free[insertAt + 1].offset {
      free[insertAt].size += free[insertAt + 1].size
      free.remove(at: insertAt + 1)
    }
    if insertAt > 0, free[insertAt - 1].offset + free[insertAt - 1].size == free[insertAt].offset {
      free[insertAt - 1].size += free[insertAt].size
      free.remove(at: insertAt)
    }
  }

  func release(_ device: VkDevice) {
    if mapped != nil { vkUnmapMemory(device, memory) }
    vkFreeMemory(device, memory, nil)
  }
}

extension VkPhysicalDeviceMemoryProperties {
  /// `memoryTypes[index]` (a 32-element C array imported as a tuple).
  func memoryType(_ index: UInt32) -> VkMemoryType {
    withUnsafeBytes(of: memoryTypes) { raw in
      raw.bindMemory(to: VkMemoryType.self)[Int(index)]
    }
  }
}
