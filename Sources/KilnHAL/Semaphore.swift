/// A timeline semaphore: a 64-bit counter that only increases, which the device and the host
/// signal and wait on. It doubles as a fence (wait for the value a submission signals).
///
/// Every wait has a time-out: a device that never signals yields `HALError.Code.timeout`, never a hang.
public protocol Semaphore: AnyObject, Sendable {
  func currentValue() throws -> UInt64
  /// Signals `value` from the host.
  func signal(_ value: UInt64) throws
  /// Blocks until the counter reaches `value` or `timeout` elapses.
  func wait(for value: UInt64, timeout: Duration) throws
}

/// A semaphore and the value a submission waits for or signals.
public struct SemaphoreValue: @unchecked Sendable {
  // @unchecked: `Semaphore` is Sendable; the existential box is immutable.
  public var semaphore: any Semaphore
  public var value: UInt64

  public init(_ semaphore: any Semaphore, _ value: UInt64) {
    self.semaphore = semaphore
    self.value = value
  }
}
