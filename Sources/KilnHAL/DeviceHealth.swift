/// Whether a device has been lost, and why: once lost (a real `VK_ERROR_DEVICE_LOST` or an
/// injected fault), a device refuses every further call with an error naming the call.
///
/// Thread-safety: every method may be called from any thread (the reason is behind a lock).
public final class DeviceHealth: Sendable {
  /// `vulkan:0 (llvmpipe ...)`, `cpu (model name)`: the prefix of device errors.
  public let label: String
  private let lostReason = Locked<String?>(nil)

  public init(label: String) {
    self.label = label
  }

  /// Throws `.deviceLost` once the device is lost; `what` names the refused call.
  public func ensureUsable(_ what: @autoclosure () -> String) throws {
    if let reason = lostReason.withLock({ $0 }) {
      throw HALError(
        .deviceLost, "\(what()): device \(label) was lost (\(reason)) and refuses further work; open it again")
    }
  }

  /// Records the loss (the first reason wins) and returns the error to throw.
  @discardableResult
  public func markLost(_ reason: String) -> HALError {
    lostReason.withLock { if $0 == nil { $0 = reason } }
    return HALError(.deviceLost, "\(label): \(reason); the device is lost and refuses further work (open it again)")
  }
}
