import CVulkan
import Foundation
import KilnHAL
import Synchronization

/// One logical VkDevice with one compute queue.
///
/// Owns the queue (guarded by `queueLock`), the pipeline cache, and an internal timeline
/// semaphore that every submission signals so that command buffers know when a replay may start.
///
/// Once lost (a `VK_ERROR_DEVICE_LOST` from a submission or a wait, or an injected fault) the
/// device refuses every further call with `.deviceLost`; releasing its objects stays safe.
public final class VulkanDevice: Device, @unchecked Sendable {
  // @unchecked: handles are immutable after init; the queue is used only under `queueLock`;
  // `submissionCounter` is behind its own lock; `health` is thread-safe.
  public let info: DeviceInfo
  public let options: DeviceOptions
  let faults: FaultInjector
  let resources = ResourceCounter()
  /// Whether (and why) the device was lost.
  let health: DeviceHealth
  let instance: VulkanInstance
  let physical: VulkanPhysicalDevice
  let handle: VkDevice
  let queue: VkQueue
  let queueFamily: UInt32
  let pushDescriptor: PFN_vkCmdPushDescriptorSetKHR?
  let pipelineCache: VulkanPipelineCache
  private let queueLock = NSLock()
  private let timeline: VkSemaphore
  private let submissionCounter = Locked<UInt64>(0)
  private var vulkanAllocator: VulkanAllocator!

  public var allocator: any Allocator { vulkanAllocator }

  init(instance: VulkanInstance, physical: VulkanPhysicalDevice, info: DeviceInfo, options: DeviceOptions) throws {
    guard let family = physical.computeQueueFamily else {
      throw HALError(.unsupported, "\(physical.name) has no compute queue")
    }
    self.instance = instance
    self.physical = physical
    self.info = info
    self.health = DeviceHealth(label: "\(info.shortURI) (\(info.name))")
    self.options = options
    self.faults = FaultInjector(options.faults)
    self.queueFamily = family

    // Enable what Kiln's kernels may use, where supported.
    var f10 = VkPhysicalDeviceFeatures()
    f10.shaderInt64 = physical.supported10.shaderInt64
    f10.shaderInt16 = physical.supported10.shaderInt16
    f10.shaderFloat64 = physical.supported10.shaderFloat64
    // Kernels come from bundles, which come from strangers: with robust buffer access an
    // out-of-bounds load reads zero (or another in-bounds value) and a store is discarded, instead
    // of touching memory outside the bound range.
    f10.robustBufferAccess = physical.supported10.robustBufferAccess
    var f11 = VkPhysicalDeviceVulkan11Features()
    f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
    f11.storageBuffer16BitAccess = physical.supported11.storageBuffer16BitAccess
    f11.uniformAndStorageBuffer16BitAccess = physical.supported11.uniformAndStorageBuffer16BitAccess
    var f12 = VkPhysicalDeviceVulkan12Features()
    f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
    f12.timelineSemaphore = VkBool32(VK_TRUE)
    f12.shaderFloat16 = physical.supported12.shaderFloat16
    f12.shaderInt8 = physical.supported12.shaderInt8
    f12.storageBuffer8BitAccess = physical.supported12.storageBuffer8BitAccess
    f12.uniformAndStorageBuffer8BitAccess = physical.supported12.uniformAndStorageBuffer8BitAccess
    f12.hostQueryReset = physical.supported12.hostQueryReset
    // Cooperative-matrix modules declare the Vulkan memory model.
    f12.vulkanMemoryModel = physical.supported12.vulkanMemoryModel
    var cooperative = VkPhysicalDeviceCooperativeMatrixFeaturesNV()
    cooperative.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV
    cooperative.cooperativeMatrix = VkBool32(info.features.cooperativeMatrix ? VK_TRUE : VK_FALSE)

    var wanted: [String] = []
    if physical.extensions.contains("VK_KHR_push_descriptor") { wanted.append("VK_KHR_push_descriptor") }
    if info.features.cooperativeMatrix { wanted.append("VK_NV_cooperative_matrix") }
    let extensionNames = CStringArray(wanted)

    var priority: Float = 1
    var device: VkDevice?
    let createResult = withUnsafeMutablePointer(to: &f12) { p12 in
      withUnsafeMutablePointer(to: &cooperative) { pCooperative in
        withUnsafeMutablePointer(to: &f11) { p11 in
          withUnsafePointer(to: &f10) { p10 in
            withUnsafePointer(to: &priority) { priorityPointer in
              extensionNames.pointers.withUnsafeBufferPointer { names in
                p11.pointee.pNext = UnsafeMutableRawPointer(p12)
                if info.features.cooperativeMatrix { p12.pointee.pNext = UnsafeMutableRawPointer(pCooperative) }
                var queueInfo = VkDeviceQueueCreateInfo()
                queueInfo.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO
                queueInfo.queueFamilyIndex = family
                queueInfo.queueCount = 1
                queueInfo.pQueuePriorities = priorityPointer
                return withUnsafePointer(to: &queueInfo) { queueInfoPointer in
                  var createInfo = VkDeviceCreateInfo()
                  createInfo.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO
                  createInfo.pNext = UnsafeRawPointer(p11)
                  createInfo.queueCreateInfoCount = 1
                  createInfo.pQueueCreateInfos = queueInfoPointer
                  createInfo.pEnabledFeatures = p10
                  createInfo.enabledExtensionCount = extensionNames.count
                  createInfo.ppEnabledExtensionNames = names.baseAddress
                  return vkCreateDevice(physical.handle, &createInfo, nil, &device)
                }
              }
            }
          }
        }
      }
    }
    try check(createResult, "vkCreateDevice(\(physical.name))")
    guard let device else { throw HALError(.internal, "vkCreateDevice returned no device") }
    handle = device

    var queue: VkQueue?
    vkGetDeviceQueue(device, family, 0, &queue)
    guard let queue else {
      vkDestroyDevice(device, nil)
      throw HALError(.internal, "vkGetDeviceQueue returned no queue")
    }
    self.queue = queue

    if wanted.contains("VK_KHR_push_descriptor"), let raw = vkGetDeviceProcAddr(device, "vkCmdPushDescriptorSetKHR") {
      pushDescriptor = unsafeBitCast(raw, to: PFN_vkCmdPushDescriptorSetKHR.self)
    } else {
      pushDescriptor = nil
    }

    do {
      timeline = try VulkanDevice.makeTimelineSemaphore(device, initialValue: 0)
    } catch {
      vkDestroyDevice(device, nil)
      throw error
    }
    pipelineCache = VulkanPipelineCache(device: device, uuid: physical.uuid)
    vulkanAllocator = VulkanAllocator(device: self)
  }

  deinit {
    // Let every submission finish before anything is destroyed. A device still busy after the
    // time-out (hung) is left to the process: destroying objects under running work is undefined.
    do {
      try drain(timeout: options.waitTimeout)
    } catch let error as HALError where error.code != .deviceLost {
      _ = Unmanaged.passRetained(vulkanAllocator!)
      return
    } catch {}
    _ = vkDeviceWaitIdle(handle)
    vulkanAllocator = nil
    pipelineCache.persistAndDestroy()
    vkDestroySemaphore(handle, timeline, nil)
    vkDestroyDevice(handle, nil)
  }

  static func makeTimelineSemaphore(_ device: VkDevice, initialValue: UInt64) throws -> VkSemaphore {
    var typeInfo = VkSemaphoreTypeCreateInfo()
    typeInfo.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO
    typeInfo.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE
    typeInfo.initialValue = initialValue
    var semaphore: VkSemaphore?
    let result = withUnsafePointer(to: &typeInfo) { typePointer in
      var info = VkSemaphoreCreateInfo()
      info.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO
      info.pNext = UnsafeRawPointer(typePointer)
      return vkCreateSemaphore(device, &info, nil, &semaphore)
    }
    try check(result, "vkCreateSemaphore(timeline)")
    guard let semaphore else { throw HALError(.internal, "vkCreateSemaphore returned no semaphore") }
    return semaphore
  }

  // MARK: Failure

  /// `vulkan:N (name)`, the prefix of device errors.
  var label: String { health.label }

  public var liveResources: LiveResources {
    resources.snapshot(buffers: vulkanAllocator.statistics.liveBuffers)
  }

  /// Throws `.deviceLost` once the device is lost; `what` names the refused call.
  func ensureUsable(_ what: @autoclosure () -> String) throws { try health.ensureUsable(what()) }

  /// Records the loss (the first reason wins) and returns the error to throw.
  @discardableResult
  func markLost(_ reason: String) -> HALError { health.markLost(reason) }

  /// Runs a wait, prefixing time-outs with the device and recording a device loss.
  func noticingLoss<T>(_ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as HALError where error.code == .deviceLost {
      throw markLost(error.message)
    } catch let error as HALError where error.code == .timeout {
      throw HALError(.timeout, "\(label): \(error.message)")
    }
  }

  // MARK: Device

  public func makeExecutable(_ spec: ExecutableSpec) throws -> any Executable {
    try ensureUsable("makeExecutable")
    return try VulkanExecutable(device: self, spec: spec)
  }

  public func makeCommandBuffer() throws -> any CommandBuffer {
    try ensureUsable("makeCommandBuffer")
    return try VulkanCommandBuffer(device: self)
  }

  public func makeSemaphore(initialValue: UInt64) throws -> any KilnHAL.Semaphore {
    try ensureUsable("makeSemaphore")
    return try VulkanSemaphore(device: self, initialValue: initialValue)
  }

  /// Queues the command buffers. Faults: `submit` fails the call as `VK_ERROR_DEVICE_LOST` before
  /// anything is queued; `device-lost` queues it, then loses the device (the wait reports it);
  /// `hang` queues it without signalling `signals` (waits on them time out).
  public func submit(_ commandBuffers: [any CommandBuffer], waits: [SemaphoreValue], signals: [SemaphoreValue]) throws {
    try ensureUsable("submit")
    let buffers = try commandBuffers.map { buffer -> VulkanCommandBuffer in
      guard let vulkanBuffer = buffer as? VulkanCommandBuffer, vulkanBuffer.device === self else {
        throw HALError(.invalidArgument, "submit: command buffer was not recorded on \(info.shortURI)")
      }
      guard vulkanBuffer.isEnded else {
        throw HALError(.invalidArgument, "submit: command buffer is still recording (call end() first)")
      }
      return vulkanBuffer
    }
    let waitSemaphores = try waits.map { try vulkanSemaphore($0.semaphore).handle as VkSemaphore? }
    let signalSemaphores = try signals.map { try vulkanSemaphore($0.semaphore).handle as VkSemaphore? }
    // A replayed command buffer must not still be pending from its previous submission.
    for buffer in buffers {
      try noticingLoss { try waitForSubmission(buffer.lastSubmission, timeout: options.waitTimeout) }
    }
    let failSubmit = faults.fires(.submit)
    let loseWhileRunning = faults.fires(.deviceLost)
    let hang = faults.fires(.hang)

    try queueLock.withLock {
      if failSubmit {
        throw markLost("vkQueueSubmit failed: VK_ERROR_DEVICE_LOST\(faults.note(.submit))")
      }
      let submission = submissionCounter.withLock { counter -> UInt64 in
        counter += 1
        return counter
      }
      let waitValues = waits.map(\.value)
      // A hung submission still signals the internal timeline, so replays and teardown go on.
      let signalValues = (hang ? [] : signals.map(\.value)) + [submission]
      let allSignals = (hang ? [] : signalSemaphores) + [timeline]
      let waitStages = [VkPipelineStageFlags](
        repeating: VK_PIPELINE_STAGE_ALL_COMMANDS_BIT.rawValue, count: waits.count)
      let handles = buffers.map { $0.handle as VkCommandBuffer? }
      let result = waitValues.withUnsafeBufferPointer { waitValuesPointer in
        signalValues.withUnsafeBufferPointer { signalValuesPointer in
          var timelineInfo = VkTimelineSemaphoreSubmitInfo()
          timelineInfo.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO
          timelineInfo.waitSemaphoreValueCount = UInt32(waitValues.count)
          timelineInfo.pWaitSemaphoreValues = waitValuesPointer.baseAddress
          timelineInfo.signalSemaphoreValueCount = UInt32(signalValues.count)
          timelineInfo.pSignalSemaphoreValues = signalValuesPointer.baseAddress
          return withUnsafePointer(to: &timelineInfo) { timelinePointer in
            waitSemaphores.withUnsafeBufferPointer { waitPointer in
              allSignals.withUnsafeBufferPointer { signalPointer in
                waitStages.withUnsafeBufferPointer { stagePointer in
                  handles.withUnsafeBufferPointer { handlePointer in
                    var submitInfo = VkSubmitInfo()
                    submitInfo.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO
                    submitInfo.pNext = UnsafeRawPointer(timelinePointer)
                    submitInfo.waitSemaphoreCount = UInt32(waitSemaphores.count)
                    submitInfo.pWaitSemaphores = waitPointer.baseAddress
                    submitInfo.pWaitDstStageMask = stagePointer.baseAddress
                    submitInfo.commandBufferCount = UInt32(handles.count)
                    submitInfo.pCommandBuffers = handlePointer.baseAddress
                    submitInfo.signalSemaphoreCount = UInt32(allSignals.count)
                    submitInfo.pSignalSemaphores = signalPointer.baseAddress
                    return vkQueueSubmit(queue, 1, &submitInfo, nil)
                  }
                }
              }
            }
          }
        }
      }
      if result == VK_ERROR_DEVICE_LOST { throw markLost("vkQueueSubmit failed: VK_ERROR_DEVICE_LOST") }
      try check(result, "vkQueueSubmit")
      for buffer in buffers { buffer.lastSubmission = submission }
      if loseWhileRunning {
        markLost("VK_ERROR_DEVICE_LOST while running submission \(submission)\(faults.note(.deviceLost))")
      }
    }
  }

  private func vulkanSemaphore(_ semaphore: any KilnHAL.Semaphore) throws -> VulkanSemaphore {
    guard let vulkan = semaphore as? VulkanSemaphore, vulkan.device === self else {
      throw HALError(.invalidArgument, "submit: semaphore was not created on \(info.shortURI)")
    }
    return vulkan
  }

  /// Waits (on the host) until the internal timeline reaches `value`.
  func waitForSubmission(_ value: UInt64, timeout: Duration) throws {
    guard value > 0 else { return }
    try VulkanSemaphore.wait(device: handle, semaphore: timeline, value: value, timeout: timeout)
  }

  public func waitIdle(timeout: Duration) throws {
    try ensureUsable("waitIdle")
    try noticingLoss { try drain(timeout: timeout) }
  }

  /// Waits for every submission without checking for an earlier loss (teardown).
  func drain(timeout: Duration) throws {
    let last = submissionCounter.withLock { $0 }
    try waitForSubmission(last, timeout: timeout)
  }

  // MARK: Host transfers

  public func write(_ bytes: UnsafeRawBufferPointer, to range: BufferRange) throws {
    try ensureUsable("write")
    try range.validate("write")
    guard bytes.count == range.length else {
      throw HALError(.invalidArgument, "write: \(bytes.count) bytes given for a range of \(range.length)")
    }
    if let address = range.buffer.hostAddress {
      if let base = bytes.baseAddress { (address + range.offset).copyMemory(from: base, byteCount: bytes.count) }
      return
    }
    let staging = try allocator.allocate(byteCount: max(range.length, 4), access: .upload)
    guard let stagingAddress = staging.hostAddress else {
      throw HALError(.internal, "upload staging buffer is not host-visible")
    }
    if let base = bytes.baseAddress { stagingAddress.copyMemory(from: base, byteCount: bytes.count) }
    let commands = try VulkanCommandBuffer(device: self)
    try commands.copy(from: BufferRange(staging, offset: 0, length: range.length), to: range)
    try commands.end()
    try submitAndWait(commands, timeout: options.waitTimeout)
  }

  public func read(_ range: BufferRange, into bytes: UnsafeMutableRawBufferPointer) throws {
    try ensureUsable("read")
    try range.validate("read")
    guard bytes.count == range.length else {
      throw HALError(.invalidArgument, "read: \(bytes.count) bytes of room for a range of \(range.length)")
    }
    if let address = range.buffer.hostAddress {
      if let base = bytes.baseAddress { base.copyMemory(from: address + range.offset, byteCount: bytes.count) }
      return
    }
    let staging = try allocator.allocate(byteCount: max(range.length, 4), access: .readback)
    guard let stagingAddress = staging.hostAddress else {
      throw HALError(.internal, "read-back staging buffer is not host-visible")
    }
    let commands = try VulkanCommandBuffer(device: self)
    try commands.copy(from: range, to: BufferRange(staging, offset: 0, length: range.length))
    try commands.end()
    try submitAndWait(commands, timeout: options.waitTimeout)
    if let base = bytes.baseAddress { base.copyMemory(from: stagingAddress, byteCount: bytes.count) }
  }
}
