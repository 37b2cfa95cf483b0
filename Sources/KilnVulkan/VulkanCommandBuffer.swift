import CVulkan
import KilnHAL

/// A primary VkCommandBuffer from its own pool, recorded once and replayable.
///
/// Descriptors are pushed (VK_KHR_push_descriptor) or allocated from pools this command buffer
/// owns, so they live exactly as long as the recording. Every buffer and executable it
/// references is retained until the command buffer is released.
public final class VulkanCommandBuffer: CommandBuffer, @unchecked Sendable {
  // @unchecked: recording is single-threaded by contract; after `end()` the object is immutable
  // except `lastSubmission`, which the device writes under its queue lock.
  let device: VulkanDevice
  let pool: VkCommandPool
  let handle: VkCommandBuffer
  private var descriptorPools: [VkDescriptorPool] = []
  private var descriptorPoolRemaining = 0
  private var retained: [AnyObject] = []
  private(set) var isEnded = false
  public private(set) var commandCount = 0
  /// Whether anything recorded writes memory the host may read afterwards.
  private var writesMemory = false
  /// The device's internal timeline value of the last submission (0: never submitted).
  var lastSubmission: UInt64 = 0
  /// Timestamp queries (`enableTimestamps`), reset at the start of the buffer so replays reuse them.
  private var queryPool: VkQueryPool?
  private var timestampCapacity = 0
  private var timestampCount = 0

  init(device: VulkanDevice) throws {
    self.device = device
    var poolInfo = VkCommandPoolCreateInfo()
    poolInfo.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO
    poolInfo.queueFamilyIndex = device.queueFamily
    var pool: VkCommandPool?
    try check(vkCreateCommandPool(device.handle, &poolInfo, nil, &pool), "vkCreateCommandPool")
    guard let pool else { throw HALError(.internal, "vkCreateCommandPool returned nothing") }
    var allocateInfo = VkCommandBufferAllocateInfo()
    allocateInfo.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO
    allocateInfo.commandPool = pool
    allocateInfo.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY
    allocateInfo.commandBufferCount = 1
    var buffer: VkCommandBuffer?
    let result = vkAllocateCommandBuffers(device.handle, &allocateInfo, &buffer)
    guard result == VK_SUCCESS, let buffer else {
      vkDestroyCommandPool(device.handle, pool, nil)
      try check(result, "vkAllocateCommandBuffers")
      throw HALError(.internal, "vkAllocateCommandBuffers returned nothing")
    }
    self.pool = pool
    self.handle = buffer
    // Fully initialised from here: a throw runs `deinit`, which destroys the pool.
    device.resources.add(.commandBuffer)
    var beginInfo = VkCommandBufferBeginInfo()
    beginInfo.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO
    try check(vkBeginCommandBuffer(buffer, &beginInfo), "vkBeginCommandBuffer")
  }

  deinit {
    device.resources.remove(.commandBuffer)
    // A pending submission may still execute this buffer; one still running after the time-out
    // (a hung device) keeps its pool, which is leaked rather than destroyed under the device.
    do {
      try device.waitForSubmission(lastSubmission, timeout: device.options.waitTimeout)
    } catch let error as HALError where error.code != .deviceLost {
      return
    } catch {}
    for descriptorPool in descriptorPools { vkDestroyDescriptorPool(device.handle, descriptorPool, nil) }
    if let queryPool { vkDestroyQueryPool(device.handle, queryPool, nil) }
    vkDestroyCommandPool(device.handle, pool, nil)
  }

  private func ensureRecording(_ what: String) throws {
    guard !isEnded else { throw HALError(.invalidArgument, "\(what): the command buffer has already ended") }
  }

  private func vulkanBuffer(_ range: BufferRange, _ what: String) throws -> VulkanBuffer {
    try range.validate(what)
    guard let buffer = range.buffer as? VulkanBuffer, buffer.device === device else {
      throw HALError(.invalidArgument, "\(what): buffer does not belong to \(device.info.shortURI)")
    }
    retained.append(buffer)
    return buffer
  }

  public func fill(_ range: BufferRange, pattern: UInt32) throws {
    try ensureRecording("fill")
    let buffer = try vulkanBuffer(range, "fill")
    guard range.offset % 4 == 0, range.length % 4 == 0 else {
      throw HALError(.invalidArgument, "fill: offset \(range.offset) and length \(range.length) must be multiples of 4")
    }
    guard range.length > 0 else { return }
    vkCmdFillBuffer(handle, buffer.handle, VkDeviceSize(range.offset), VkDeviceSize(range.length), pattern)
    commandCount += 1
    writesMemory = true
  }

  public func copy(from source: BufferRange, to destination: BufferRange) throws {
    try ensureRecording("copy")
    let src = try vulkanBuffer(source, "copy source")
    let dst = try vulkanBuffer(destination, "copy destination")
    guard source.length == destination.length else {
      throw HALError(.invalidArgument, "copy: source length \(source.length) != destination length \(destination.length)")
    }
    if src === dst && source.offset < destination.offset + destination.length
      && destination.offset < source.offset + source.length
    {
      throw HALError(.invalidArgument, "copy: source and destination ranges overlap in the same buffer")
    }
    guard source.length > 0 else { return }
    var region = VkBufferCopy(
      srcOffset: VkDeviceSize(source.offset), dstOffset: VkDeviceSize(destination.offset),
      size: VkDeviceSize(source.length))
    vkCmdCopyBuffer(handle, src.handle, dst.handle, 1, &region)
    commandCount += 1
    writesMemory = true
  }

  public func update(_ range: BufferRange, bytes: [UInt8]) throws {
    try ensureRecording("update")
    let buffer = try vulkanBuffer(range, "update")
    guard bytes.count == range.length else {
      throw HALError(.invalidArgument, "update: \(bytes.count) bytes given for a range of \(range.length)")
    }
    guard range.offset % 4 == 0, bytes.count % 4 == 0, bytes.count <= 65536 else {
      throw HALError(
        .invalidArgument,
        "update: offset \(range.offset) and size \(bytes.count) must be multiples of 4, size at most 65536")
    }
    guard !bytes.isEmpty else { return }
    bytes.withUnsafeBytes { raw in
      vkCmdUpdateBuffer(handle, buffer.handle, VkDeviceSize(range.offset), VkDeviceSize(raw.count), raw.baseAddress)
    }
    commandCount += 1
    writesMemory = true
  }

  public func dispatch(
    _ executable: any Executable, entryPoint: Int, bindings: [BufferRange], pushConstants: [UInt32],
    workgroups: WorkgroupCount
  ) throws {
    try ensureRecording("dispatch")
    guard let vulkan = executable as? VulkanExecutable, vulkan.device === device else {
      throw HALError(.invalidArgument, "dispatch: executable was not created on \(device.info.shortURI)")
    }
    guard vulkan.entryPoints.indices.contains(entryPoint) else {
      throw HALError(.invalidArgument, "dispatch: entry point \(entryPoint) out of range 0..<\(vulkan.entryPoints.count)")
    }
    let entry = vulkan.entryPoints[entryPoint]
    guard bindings.count == entry.bindingCount else {
      throw HALError(
        .invalidArgument, "dispatch '\(entry.name)': \(bindings.count) bindings given, the kernel declares \(entry.bindingCount)")
    }
    guard pushConstants.count == entry.pushConstantWords else {
      throw HALError(
        .invalidArgument,
        "dispatch '\(entry.name)': \(pushConstants.count) push-constant words given, the kernel declares \(entry.pushConstantWords)")
    }
    let limits = device.info.limits
    for (axis, count) in [workgroups.x, workgroups.y, workgroups.z].enumerated() {
      guard count >= 0 else { throw HALError(.invalidArgument, "dispatch '\(entry.name)': negative workgroup count") }
      guard count <= limits.maxWorkgroupCount[axis] else {
        throw HALError(
          .limitExceeded,
          "dispatch '\(entry.name)': \(count) workgroups on axis \(axis) exceeds the device limit \(limits.maxWorkgroupCount[axis])")
      }
    }
    var infos: [VkDescriptorBufferInfo] = []
    for (index, range) in bindings.enumerated() {
      let buffer = try vulkanBuffer(range, "dispatch '\(entry.name)' binding \(index)")
      guard range.length <= limits.maxStorageBufferRange else {
        throw HALError(
          .limitExceeded,
          "dispatch '\(entry.name)' binding \(index): \(range.length) bytes exceeds maxStorageBufferRange \(limits.maxStorageBufferRange); split the binding")
      }
      guard range.offset % limits.minStorageBufferOffsetAlignment == 0 else {
        throw HALError(
          .invalidArgument,
          "dispatch '\(entry.name)' binding \(index): offset \(range.offset) is not a multiple of minStorageBufferOffsetAlignment \(limits.minStorageBufferOffsetAlignment)")
      }
      guard range.length > 0 else {
        throw HALError(.invalidArgument, "dispatch '\(entry.name)' binding \(index): empty range")
      }
      infos.append(
        VkDescriptorBufferInfo(buffer: buffer.handle, offset: VkDeviceSize(range.offset), range: VkDeviceSize(range.length)))
    }
    retained.append(vulkan)
    guard workgroups.total > 0 else { return }

    let pipeline = vulkan.pipelines[entryPoint]
    vkCmdBindPipeline(handle, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.pipeline)
    if !infos.isEmpty {
      if pipeline.usesPushDescriptors, let push = device.pushDescriptor {
        infos.withUnsafeBufferPointer { infoPointer in
          var writes = (0..<infos.count).map { index in
            descriptorWrite(set: nil, binding: index, info: infoPointer.baseAddress! + index)
          }
          push(handle, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, UInt32(writes.count), &writes)
        }
      } else {
        let set = try allocateDescriptorSet(layout: pipeline.setLayout, bindings: infos.count)
        infos.withUnsafeBufferPointer { infoPointer in
          var writes = (0..<infos.count).map { index in
            descriptorWrite(set: set, binding: index, info: infoPointer.baseAddress! + index)
          }
          vkUpdateDescriptorSets(device.handle, UInt32(writes.count), &writes, 0, nil)
        }
        var sets: [VkDescriptorSet?] = [set]
        vkCmdBindDescriptorSets(handle, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, 1, &sets, 0, nil)
      }
    }
    if !pushConstants.isEmpty {
      pushConstants.withUnsafeBytes { raw in
        vkCmdPushConstants(
          handle, pipeline.layout, VK_SHADER_STAGE_COMPUTE_BIT.rawValue, 0, UInt32(raw.count), raw.baseAddress)
      }
    }
    vkCmdDispatch(handle, UInt32(workgroups.x), UInt32(workgroups.y), UInt32(workgroups.z))
    commandCount += 1
    writesMemory = true
  }

  private func descriptorWrite(set: VkDescriptorSet?, binding: Int, info: UnsafePointer<VkDescriptorBufferInfo>)
    -> VkWriteDescriptorSet
  {
    var write = VkWriteDescriptorSet()
    write.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET
    write.dstSet = set
    write.dstBinding = UInt32(binding)
    write.descriptorCount = 1
    write.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
    write.pBufferInfo = info
    return write
  }

  private func allocateDescriptorSet(layout: VkDescriptorSetLayout, bindings: Int) throws -> VkDescriptorSet {
    let setsPerPool = 256
    if descriptorPoolRemaining == 0 || descriptorPools.isEmpty {
      var size = VkDescriptorPoolSize(type: VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, descriptorCount: UInt32(setsPerPool * 32))
      var info = VkDescriptorPoolCreateInfo()
      info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO
      info.maxSets = UInt32(setsPerPool)
      info.poolSizeCount = 1
      var pool: VkDescriptorPool?
      let result = withUnsafePointer(to: &size) { sizePointer -> VkResult in
        info.pPoolSizes = sizePointer
        return vkCreateDescriptorPool(device.handle, &info, nil, &pool)
      }
      try check(result, "vkCreateDescriptorPool")
      guard let pool else { throw HALError(.internal, "vkCreateDescriptorPool returned nothing") }
      descriptorPools.append(pool)
      descriptorPoolRemaining = setsPerPool
    }
    var layouts: [VkDescriptorSetLayout?] = [layout]
    var set: VkDescriptorSet?
    let result = layouts.withUnsafeMutableBufferPointer { layoutPointer in
      var info = VkDescriptorSetAllocateInfo()
      info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO
      info.descriptorPool = descriptorPools.last
      info.descriptorSetCount = 1
      info.pSetLayouts = UnsafePointer(layoutPointer.baseAddress)
      return vkAllocateDescriptorSets(device.handle, &info, &set)
    }
    if result == VK_ERROR_OUT_OF_POOL_MEMORY || result == VK_ERROR_FRAGMENTED_POOL {
      descriptorPoolRemaining = 0
      return try allocateDescriptorSet(layout: layout, bindings: bindings)
    }
    try check(result, "vkAllocateDescriptorSets")
    guard let set else { throw HALError(.internal, "vkAllocateDescriptorSets returned nothing") }
    descriptorPoolRemaining -= 1
    return set
  }

  public func barrier() throws {
    try ensureRecording("barrier")
    let stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue
    memoryBarrier(
      sourceStages: stages, destinationStages: stages,
      sourceAccess: VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue,
      destinationAccess: VK_ACCESS_SHADER_READ_BIT.rawValue | VK_ACCESS_SHADER_WRITE_BIT.rawValue
        | VK_ACCESS_TRANSFER_READ_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue)
    commandCount += 1
  }

  private func memoryBarrier(
    sourceStages: UInt32, destinationStages: UInt32, sourceAccess: UInt32, destinationAccess: UInt32
  ) {
    var barrier = VkMemoryBarrier()
    barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER
    barrier.srcAccessMask = sourceAccess
    barrier.dstAccessMask = destinationAccess
    vkCmdPipelineBarrier(handle, sourceStages, destinationStages, 0, 1, &barrier, 0, nil, 0, nil)
  }

  // MARK: Timestamps

  public func enableTimestamps(capacity: Int) throws {
    try ensureRecording("enableTimestamps")
    guard queryPool == nil, commandCount == 0 else {
      throw HALError(.invalidArgument, "enableTimestamps: must be called once, before anything is recorded")
    }
    guard capacity > 0, capacity <= Int(UInt32.max) else {
      throw HALError(.invalidArgument, "enableTimestamps: capacity \(capacity) must be positive")
    }
    guard device.physical.timestampValidBits > 0 else {
      throw HALError(
        .unsupported, "enableTimestamps: the compute queue of \(device.info.shortURI) has no timestamp bits")
    }
    var info = VkQueryPoolCreateInfo()
    info.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO
    info.queryType = VK_QUERY_TYPE_TIMESTAMP
    info.queryCount = UInt32(capacity)
    var pool: VkQueryPool?
    try check(vkCreateQueryPool(device.handle, &info, nil, &pool), "vkCreateQueryPool")
    guard let pool else { throw HALError(.internal, "vkCreateQueryPool returned nothing") }
    queryPool = pool
    timestampCapacity = capacity
    // Recorded first, so that every replay starts from unavailable queries.
    vkCmdResetQueryPool(handle, pool, 0, UInt32(capacity))
  }

  public func writeTimestamp() throws -> Int {
    try ensureRecording("writeTimestamp")
    guard let queryPool else { throw HALError(.invalidArgument, "writeTimestamp: call enableTimestamps first") }
    guard timestampCount < timestampCapacity else {
      throw HALError(.invalidArgument, "writeTimestamp: all \(timestampCapacity) timestamps are already recorded")
    }
    let index = timestampCount
    vkCmdWriteTimestamp(handle, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queryPool, UInt32(index))
    timestampCount += 1
    return index
  }

  public func timestampNanoseconds() throws -> [UInt64] {
    guard let queryPool else { throw HALError(.invalidArgument, "timestampNanoseconds: timestamps were not enabled") }
    guard isEnded, lastSubmission > 0 else {
      throw HALError(.invalidArgument, "timestampNanoseconds: the command buffer has not been submitted")
    }
    guard timestampCount > 0 else { return [] }
    try device.noticingLoss { try device.waitForSubmission(lastSubmission, timeout: device.options.waitTimeout) }
    var raw = [UInt64](repeating: 0, count: timestampCount)
    let result = raw.withUnsafeMutableBytes { bytes in
      vkGetQueryPoolResults(
        device.handle, queryPool, 0, UInt32(timestampCount), bytes.count, bytes.baseAddress, 8,
        VK_QUERY_RESULT_64_BIT.rawValue | VK_QUERY_RESULT_WAIT_BIT.rawValue)
    }
    try check(result, "vkGetQueryPoolResults")
    let bits = device.physical.timestampValidBits
    let mask = bits >= 64 ? UInt64.max : (UInt64(1) << UInt64(bits)) - 1
    let period = Double(device.physical.timestampPeriodNanoseconds)
    return raw.map { UInt64((Double($0 & mask) * period).rounded()) }
  }

  public func end() throws {
    try ensureRecording("end")
    if writesMemory {
      // Fences and semaphores make device writes available to the device only; the host needs
      // an explicit dependency to read them (Vulkan spec, "Host Access to Device Memory Objects").
      memoryBarrier(
        sourceStages: VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT.rawValue | VK_PIPELINE_STAGE_TRANSFER_BIT.rawValue,
        destinationStages: VK_PIPELINE_STAGE_HOST_BIT.rawValue,
        sourceAccess: VK_ACCESS_SHADER_WRITE_BIT.rawValue | VK_ACCESS_TRANSFER_WRITE_BIT.rawValue,
        destinationAccess: VK_ACCESS_HOST_READ_BIT.rawValue)
    }
    try check(vkEndCommandBuffer(handle), "vkEndCommandBuffer")
    isEnded = true
  }
}
