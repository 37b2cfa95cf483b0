import Foundation

/// A value behind a pthread-backed lock, with `Synchronization.Mutex`'s `withLock` shape.
///
/// Kiln's runtime paths use this (and a plain `NSLock` where there is no value) rather than
/// `Mutex`: the thread sanitizer (`tools/tsan`, run in CI) sees pthread locks but does not model
/// `Mutex`'s futex, so it reports the accesses a `Mutex` guards as races (it did, for the Vulkan
/// queue's submission counter and the live-resource counts, depending on timing).
public final class Locked<Value>: @unchecked Sendable {
  // @unchecked: `value` is only touched inside `lock`.
  private let lock = NSLock()
  private var value: Value

  public init(_ value: Value) {
    self.value = value
  }

  /// Runs `body` with exclusive access to the value.
  public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
    lock.lock()
    defer { lock.unlock() }
    return try body(&value)
  }
}
