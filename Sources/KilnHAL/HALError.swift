/// The one error type of the HAL and its drivers.
///
/// `code` is canonical (as in IREE's status codes); `message` names the failing call or value.
public struct HALError: Error, CustomStringConvertible, Sendable, Equatable {
  public enum Code: String, Sendable {
    /// No device matches, or a driver cannot start (no loader, no ICD).
    case unavailable
    /// The caller passed something the HAL cannot accept (bad URI, out-of-range binding, ...).
    case invalidArgument
    /// A device or host allocation failed.
    case outOfMemory
    /// A request exceeds a device limit (buffer range, workgroup count, push constants).
    case limitExceeded
    /// The device was lost; every object made from it is now unusable.
    case deviceLost
    /// A wait did not complete in time.
    case timeout
    /// An executable could not be created (invalid SPIR-V, unloadable shared object).
    case compilationFailed
    /// The device lacks a capability the request needs.
    case unsupported
    /// The driver reported an error Kiln does not classify further.
    case `internal`
  }

  public var code: Code
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.rawValue): \(message)" }
}
