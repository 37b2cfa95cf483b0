import KilnHAL

/// Host memory from `CPUAllocator`; released when the last reference goes away (commands recorded
/// against a buffer keep it alive).
public final class CPUBuffer: Buffer, @unchecked Sendable {
  // @unchecked: every stored property is immutable; the bytes behind `address` are synchronised
  // by command-buffer order and semaphores, as the `Buffer` contract says.
  public let byteCount: Int
  public let access: MemoryAccess
  /// The first byte, aligned to 64 bytes; valid for `byteCount` bytes for the buffer's lifetime.
  public let address: UnsafeMutableRawPointer
  /// The allocator (and so the device) the buffer belongs to.
  let allocator: CPUAllocator
  let placement: Placement

  /// Where the memory came from, for `CPUAllocator.release`.
  enum Placement {
    case dedicated(reserved: Int)
    case pooled(CPUAllocator.Block, slot: Int)
  }

  init(
    allocator: CPUAllocator, address: UnsafeMutableRawPointer, byteCount: Int, access: MemoryAccess,
    placement: Placement
  ) {
    self.allocator = allocator
    self.address = address
    self.byteCount = byteCount
    self.access = access
    self.placement = placement
  }

  deinit {
    allocator.release(address, byteCount: byteCount, placement: placement)
  }

  public var hostAddress: UnsafeMutableRawPointer? { address }
}

extension BufferRange {
  /// The CPU buffer and the address of the range's first byte, after `validate`.
  ///
  /// - Throws: `.invalidArgument` when the buffer does not belong to `allocator`'s device or the
  ///   range lies outside it.
  func cpuAddress(_ what: @autoclosure () -> String, on allocator: CPUAllocator) throws -> (
    buffer: CPUBuffer, address: UnsafeMutableRawPointer
  ) {
    try validate(what())
    guard let cpuBuffer = buffer as? CPUBuffer, cpuBuffer.allocator === allocator else {
      throw HALError(.invalidArgument, "\(what()): the buffer does not belong to this CPU device")
    }
    return (cpuBuffer, cpuBuffer.address + offset)
  }
}
