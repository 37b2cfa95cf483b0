import CKilnCPU
import Foundation
import KilnHAL
import Synchronization

/// The CPU device: host memory, native kernels, and one submission queue served by its own thread.
///
/// Thread-safety: every method may be called from any thread (the queue serialises submissions).
///
/// The CPU cannot be lost, but injected faults (`DeviceOptions.faults`) lose it as a GPU would:
/// from then on every call throws `.deviceLost`.
public final class CPUDevice: Device {
  public let info: DeviceInfo
  public let options: DeviceOptions
  let faults: FaultInjector
  let resources = ResourceCounter()
  let health: CPUDeviceHealth
  public let allocator: any Allocator
  /// The allocator with its concrete type.
  public let cpuAllocator: CPUAllocator
  /// Threads that run one dispatch (the queue thread and the pool's workers).
  public let threadCount: Int
  private let queue: CPUQueue

  init(info: DeviceInfo, threadCount: Int, submissionWaitTimeout: Duration, options: DeviceOptions) throws {
    self.info = info
    self.options = options
    let faults = FaultInjector(options.faults)
    let health = CPUDeviceHealth(label: "\(info.shortURI) (\(info.name))")
    self.faults = faults
    self.health = health
    self.cpuAllocator = CPUAllocator(limits: info.limits, faults: faults, health: health)
    self.allocator = cpuAllocator
    self.threadCount = threadCount
    self.queue = try CPUQueue(threadCount: threadCount, waitTimeout: submissionWaitTimeout)
  }

  deinit {
    // The queue thread finishes what is queued, then exits and releases the thread pool.
    queue.shutdown()
  }

  /// Loads a shared object (`spec.format == .sharedObject`); see `CPUExecutable.init` for errors.
  public func makeExecutable(_ spec: ExecutableSpec) throws -> any Executable {
    try health.ensureUsable("makeExecutable")
    let injected = faults.fires(.pipeline)
    do {
      return try CPUExecutable(spec, limits: info.limits, resources: resources, injectFailure: injected)
    } catch let error as HALError {
      throw HALError(error.code, "\(health.label): \(error.message)" + (injected ? faults.note(.pipeline) : ""))
    }
  }

  public func makeCommandBuffer() throws -> any CommandBuffer {
    try health.ensureUsable("makeCommandBuffer")
    return CPUCommandBuffer(device: self)
  }

  public func makeSemaphore(initialValue: UInt64) throws -> any KilnHAL.Semaphore {
    try health.ensureUsable("makeSemaphore")
    return try CPUSemaphore(initialValue: initialValue, health: health, resources: resources)
  }

  /// Counts what callers hold: it first waits (a few seconds at most) for the queue thread to let
  /// go of finished submissions, which it does just after signalling them.
  public var liveResources: LiveResources {
    _ = queue.waitReleased(timeout: min(options.waitTimeout, .seconds(5)))
    return resources.snapshot(buffers: cpuAllocator.statistics.liveBuffers)
  }

  /// Queues the command buffers; the queue thread waits for `waits` (at most the driver's
  /// `submissionWaitTimeout`), runs the command buffers in order, then signals `signals`.
  ///
  /// A submission whose waits time out runs nothing and signals nothing; the error it records
  /// is thrown by the next `submit` or `waitIdle`.
  ///
  /// - Throws: the recorded error of an earlier submission; `.invalidArgument` for a command buffer
  ///   still recording or from another device, or a semaphore from another driver.
  ///
  /// Faults: `submit` fails the call with `.deviceLost` and queues nothing; `device-lost` loses the
  /// device instead of running it (the wait reports it); `hang` runs it but signals nothing.
  public func submit(_ commandBuffers: [any CommandBuffer], waits: [SemaphoreValue], signals: [SemaphoreValue]) throws {
    try health.ensureUsable("submit")
    var commands: [[Command]] = []
    var owners: [CPUCommandBuffer] = []
    for (index, commandBuffer) in commandBuffers.enumerated() {
      guard let cpuCommandBuffer = commandBuffer as? CPUCommandBuffer, cpuCommandBuffer.device === self else {
        throw HALError(.invalidArgument, "submit: command buffer \(index) was not recorded on this CPU device")
      }
      commands.append(try cpuCommandBuffer.recordedCommands())
      owners.append(cpuCommandBuffer)
    }
    let waitList = try waits.enumerated().map { index, wait in
      guard let semaphore = wait.semaphore as? CPUSemaphore else {
        throw HALError(.invalidArgument, "submit: wait semaphore \(index) was not made by the CPU driver")
      }
      return (semaphore, wait.value)
    }
    var signalList = try signals.enumerated().map { index, signal in
      guard let semaphore = signal.semaphore as? CPUSemaphore else {
        throw HALError(.invalidArgument, "submit: signal semaphore \(index) was not made by the CPU driver")
      }
      return (semaphore, signal.value)
    }
    if faults.fires(.submit) {
      throw health.markLost("submit failed: the device was lost\(faults.note(.submit))")
    }
    if faults.fires(.deviceLost) {
      health.markLost("the device was lost while running a submission\(faults.note(.deviceLost))")
      return
    }
    if faults.fires(.hang) { signalList = [] }
    try queue.enqueue(
      CPUQueue.Submission(commands: commands, owners: owners, waits: waitList, signals: signalList))
  }

  /// Copies `bytes` (exactly `range.length` of them) into the buffer right away; it is not
  /// ordered with queued work, so wait for submissions that use the range first.
  public func write(_ bytes: UnsafeRawBufferPointer, to range: BufferRange) throws {
    try health.ensureUsable("write")
    let (_, address) = try range.cpuAddress("write", on: cpuAllocator)
    guard bytes.count == range.length else {
      throw HALError(.invalidArgument, "write: \(bytes.count) bytes given for a range of \(range.length)")
    }
    if let base = bytes.baseAddress, !bytes.isEmpty { memcpy(address, base, bytes.count) }
  }

  /// Copies `range` into `bytes` (exactly `range.length` of them) right away; it is not ordered
  /// with queued work, so wait for submissions that write the range first.
  public func read(_ range: BufferRange, into bytes: UnsafeMutableRawBufferPointer) throws {
    try health.ensureUsable("read")
    let (_, address) = try range.cpuAddress("read", on: cpuAllocator)
    guard bytes.count == range.length else {
      throw HALError(.invalidArgument, "read: \(bytes.count) bytes of room for a range of \(range.length)")
    }
    if let base = bytes.baseAddress, !bytes.isEmpty { memcpy(base, address, bytes.count) }
  }

  /// - Throws: `.timeout` when queued work is still running after `timeout`; otherwise the error
  ///   an earlier submission recorded, if any.
  public func waitIdle(timeout: Duration) throws {
    try health.ensureUsable("waitIdle")
    try queue.waitIdle(timeout: timeout)
  }
}

/// A CPU device is only ever lost by an injected fault.
typealias CPUDeviceHealth = DeviceHealth
