import KilnHAL

/// Host memory from `CPUAllocator`; freed when the last reference goes away (commands recorded
/// against a buffer keep it alive).
public final class CPUBuffer: Buffer, @unchecked Sendable {
  // @unchecked: every stored property is immutable; the bytes behind `address` are synchronised
  // by command-buffer order and semaphores, as the `Buffer` contract says.
  public let byteCount: Int
  public let access: MemoryAccess
  /// The first byte, aligned to 64 bytes; valid for `byteCount` bytes for the buffer's lifetime.
  public let address: UnsafeMutableRawPointer
  private let reserved: Int
  private let allocator: CPUAllocator

  init(allocator: CPUAllocator, address: UnsafeMutableRawPointer, byteCount: Int, reserved: Int, access: MemoryAccess)
  {
    self.allocator = allocator
    self.address = address
    self.byteCount = byteCount
    self.reserved = reserved
    self.access = access
  }

  deinit {
    allocator.release(address, byteCount: byteCount, reserved: reserved)
  }

  public var hostAddress: UnsafeMutableRawPointer? { address }
}

extension BufferRange {
  /// The CPU buffer and the address of the range's first byte, after `validate`.
  ///
  /// - Throws: `.invalidArgument` when the buffer does not come from the CPU driver or the range
  ///   lies outside it.
  func cpuAddress(_ what: @autoclosure () -> String) throws -> (buffer: CPUBuffer, address: UnsafeMutableRawPointer) {
    guard let cpuBuffer = buffer as? CPUBuffer else {
      throw HALError(.invalidArgument, "\(what()): the buffer was not allocated by the CPU driver")
    }
    try validate(what())
    return (cpuBuffer, cpuBuffer.address + offset)
  }
}
