/// Where a buffer's memory lives, chosen by the allocator from the device's memory types.
public enum MemoryAccess: String, Sendable, Hashable {
  /// Fastest for the device; the host reaches it only through staging (unless it is also host-visible).
  case deviceLocal
  /// Host-written, device-read (staging for upload).
  case upload
  /// Device-written, host-read (staging for read-back), cached on the host where possible.
  case readback
}

/// A range of device memory.
///
/// Thread-safety: a buffer may be used from any thread; the contents are synchronised only by
/// command-buffer barriers and semaphores, as on a real GPU.
public protocol Buffer: AnyObject, Sendable {
  var byteCount: Int { get }
  var access: MemoryAccess { get }
  /// The host address of the buffer's first byte when its memory is host-visible and mapped
  /// (always on the CPU driver and on unified-memory Vulkan devices such as lavapipe); otherwise nil.
  var hostAddress: UnsafeMutableRawPointer? { get }
}

/// A window of a buffer bound to a dispatch, copied or filled.
public struct BufferRange: @unchecked Sendable {
  // @unchecked: `Buffer` is Sendable; the existential box is immutable.
  public var buffer: any Buffer
  public var offset: Int
  public var length: Int

  public init(_ buffer: any Buffer, offset: Int = 0, length: Int? = nil) {
    self.buffer = buffer
    self.offset = offset
    self.length = length ?? (buffer.byteCount - offset)
  }

  /// Throws unless `offset..<offset+length` lies inside the buffer (overflow-checked).
  public func validate(_ what: @autoclosure () -> String) throws {
    let (end, overflow) = offset.addingReportingOverflow(length)
    guard offset >= 0, length >= 0, !overflow, end <= buffer.byteCount else {
      throw HALError(
        .invalidArgument, "\(what()): range \(offset)+\(length) is outside the buffer of \(buffer.byteCount) bytes")
    }
  }
}
