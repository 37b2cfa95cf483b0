import CKilnCPU
import Foundation
import KilnHAL

/// Allocates zeroed, 64-byte-aligned host memory: every buffer is its own allocation ("block"),
/// mapped from the kernel when large so that untouched pages cost nothing.
///
/// Thread-safety: `allocate` and `statistics` may be called from any thread.
public final class CPUAllocator: Allocator, @unchecked Sendable {
  // @unchecked: `lock` guards `current`; `maxAllocationSize` is immutable.
  private let lock = NSLock()
  private var current = AllocatorStatistics(reservedBytes: 0, liveBytes: 0, liveBuffers: 0, blocks: 0)
  private let maxAllocationSize: Int

  init(limits: DeviceLimits) {
    maxAllocationSize = limits.maxMemoryAllocationSize
  }

  /// - Throws: `.invalidArgument` for a negative size, `.limitExceeded` above the device's
  ///   `maxMemoryAllocationSize`, `.outOfMemory` when the host refuses.
  public func allocate(byteCount: Int, access: MemoryAccess) throws -> any Buffer {
    try allocateBuffer(byteCount: byteCount, access: access)
  }

  /// `allocate` with the concrete result type. A 0-byte buffer is allowed and has a valid address.
  public func allocateBuffer(byteCount: Int, access: MemoryAccess = .deviceLocal) throws -> CPUBuffer {
    guard byteCount >= 0 else {
      throw HALError(.invalidArgument, "allocate: negative byte count \(byteCount)")
    }
    guard byteCount <= maxAllocationSize else {
      throw HALError(
        .limitExceeded,
        "allocate: \(byteCount) bytes exceed the CPU device's maxMemoryAllocationSize of \(maxAllocationSize)")
    }
    var reserved = 0
    guard let address = kiln_cpu_memory_allocate(byteCount, &reserved) else {
      throw HALError(.outOfMemory, "allocate: the host refused \(byteCount) bytes of memory")
    }
    lock.withLock {
      current.reservedBytes += reserved
      current.liveBytes += byteCount
      current.liveBuffers += 1
      current.blocks += 1
    }
    return CPUBuffer(allocator: self, address: address, byteCount: byteCount, reserved: reserved, access: access)
  }

  public var statistics: AllocatorStatistics { lock.withLock { current } }

  /// Called by `CPUBuffer.deinit`.
  func release(_ address: UnsafeMutableRawPointer, byteCount: Int, reserved: Int) {
    kiln_cpu_memory_free(address, reserved)
    lock.withLock {
      current.reservedBytes -= reserved
      current.liveBytes -= byteCount
      current.liveBuffers -= 1
      current.blocks -= 1
    }
  }
}
