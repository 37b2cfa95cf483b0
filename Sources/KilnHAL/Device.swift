/// One device: the root of every object made on it.
///
/// Thread-safety: all methods may be called from any thread; drivers serialise queue access
/// internally.
///
/// Failure: every call throws `HALError` rather than crashing or hanging. Once the device is lost
/// (`.deviceLost`, real or injected through `DeviceOptions.faults`) every later call that would
/// touch it throws `.deviceLost` naming the device; objects made from it can still be released.
public protocol Device: AnyObject, Sendable {
  var info: DeviceInfo { get }
  var allocator: any Allocator { get }

  func makeExecutable(_ spec: ExecutableSpec) throws -> any Executable
  func makeCommandBuffer() throws -> any CommandBuffer
  func makeSemaphore(initialValue: UInt64) throws -> any Semaphore

  /// Queues `commandBuffers` to run after every wait is reached; each signal is set when they finish.
  func submit(_ commandBuffers: [any CommandBuffer], waits: [SemaphoreValue], signals: [SemaphoreValue]) throws

  /// Copies host bytes into a buffer, through staging where the buffer is not host-visible; returns when done.
  func write(_ bytes: UnsafeRawBufferPointer, to range: BufferRange) throws
  /// Copies a buffer range to host memory, through staging where needed; returns when done.
  func read(_ range: BufferRange, into bytes: UnsafeMutableRawBufferPointer) throws
  /// Waits until every submitted command buffer has finished.
  func waitIdle(timeout: Duration) throws

  /// Live buffers, executables, command buffers and semaphores made on this device (leak checks).
  var liveResources: LiveResources { get }
}

extension Device {
  /// Submits one command buffer and waits for it (with a time-out), using a private semaphore.
  public func submitAndWait(_ commandBuffer: any CommandBuffer, timeout: Duration = .seconds(60)) throws {
    let semaphore = try makeSemaphore(initialValue: 0)
    try submit([commandBuffer], waits: [], signals: [SemaphoreValue(semaphore, 1)])
    try semaphore.wait(for: 1, timeout: timeout)
  }

  public func write(_ bytes: [UInt8], to range: BufferRange) throws {
    try bytes.withUnsafeBytes { try write($0, to: range) }
  }

  public func read(_ range: BufferRange) throws -> [UInt8] {
    try range.validate("read")
    var out = [UInt8](repeating: 0, count: range.length)
    try out.withUnsafeMutableBytes { try read(range, into: $0) }
    return out
  }
}
