import CKilnCPU
import KilnHAL

/// A timeline semaphore in host memory: a counter behind a mutex and a condition variable.
///
/// Thread-safety: every method may be called from any thread.
public final class CPUSemaphore: KilnHAL.Semaphore, @unchecked Sendable {
  // @unchecked: the C timeline synchronises itself with its own mutex; `timeline` never changes.
  private let timeline: OpaquePointer
  private let health: CPUDeviceHealth
  private let resources: ResourceCounter

  init(initialValue: UInt64, health: CPUDeviceHealth, resources: ResourceCounter) throws {
    guard let timeline = kiln_cpu_timeline_create(initialValue) else {
      throw HALError(.outOfMemory, "makeSemaphore: out of host memory")
    }
    self.timeline = timeline
    self.health = health
    self.resources = resources
    resources.add(.semaphore)
  }

  deinit {
    kiln_cpu_timeline_destroy(timeline)
    resources.remove(.semaphore)
  }

  public func currentValue() throws -> UInt64 {
    try health.ensureUsable("semaphore value")
    return kiln_cpu_timeline_value(timeline)
  }

  /// Raises the counter to `value`; signalling the current value again does nothing.
  ///
  /// - Throws: `.invalidArgument` when `value` is below the current value (the counter only increases).
  public func signal(_ value: UInt64) throws {
    try health.ensureUsable("semaphore signal")
    let previous = kiln_cpu_timeline_signal(timeline, value)
    guard value >= previous else {
      throw HALError(.invalidArgument, "semaphore signal: value \(value) is below the current value \(previous)")
    }
  }

  /// - Throws: `.timeout` when the counter does not reach `value` within `timeout`.
  public func wait(for value: UInt64, timeout: Duration) throws {
    try health.ensureUsable("semaphore wait")
    guard reach(value, within: timeout) else {
      throw HALError(
        .timeout,
        "\(health.label): semaphore wait for value \(value) timed out after \(timeout) (the value is \(kiln_cpu_timeline_value(timeline)))"
      )
    }
  }

  /// Waits without throwing; true when the value was reached.
  func reach(_ value: UInt64, within timeout: Duration) -> Bool {
    kiln_cpu_timeline_wait(timeline, value, timeout.clampedNanoseconds)
  }

  /// A device-side signal: raises the counter, never lowers it, never fails.
  func raise(to value: UInt64) {
    _ = kiln_cpu_timeline_signal(timeline, value)
  }
}
