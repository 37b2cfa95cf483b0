import CKilnCPU
import Foundation
import KilnHAL

/// Allocates zeroed, 64-byte-aligned host memory.
///
/// Buffers up to `maxPooledSize` bytes are suballocated from shared 1 MiB blocks, one power-of-two
/// size class per block; larger buffers get a dedicated allocation (mapped from the kernel, so
/// untouched pages cost nothing). Freed slots are zeroed before reuse. A block is returned to the
/// system when its last buffer goes, except the last block of each size class.
///
/// Thread-safety: `allocate` and `statistics` may be called from any thread.
public final class CPUAllocator: Allocator, @unchecked Sendable {
  // @unchecked: `lock` guards `current`, `classes` and every `Block`'s mutable state;
  // `maxAllocationSize` is immutable.
  private let lock = NSLock()
  private var current = AllocatorStatistics(reservedBytes: 0, liveBytes: 0, liveBuffers: 0, blocks: 0)
  private let maxAllocationSize: Int
  private let faults: FaultInjector
  private let health: CPUDeviceHealth
  /// Blocks of each size class (64 bytes << index).
  private var classes: [[Block]] = Array(repeating: [], count: CPUAllocator.sizeClassCount)

  /// The largest buffer that shares a block.
  public static let maxPooledSize = 64 << 10
  /// Bytes in one shared block.
  public static let blockSize = 1 << 20
  private static let minimumSlot = 64
  private static let sizeClassCount = 11  // 64 B ... 64 KiB

  init(limits: DeviceLimits, faults: FaultInjector, health: CPUDeviceHealth) {
    maxAllocationSize = limits.maxMemoryAllocationSize
    self.faults = faults
    self.health = health
  }

  deinit {
    // Live buffers hold the allocator, so every block is empty here.
    for blocks in classes {
      for block in blocks { kiln_cpu_memory_free(block.base, block.reserved) }
    }
  }

  /// - Throws: `.invalidArgument` for a negative size, `.limitExceeded` above the device's
  ///   `maxMemoryAllocationSize`, `.outOfMemory` when the host refuses.
  public func allocate(byteCount: Int, access: MemoryAccess) throws -> any Buffer {
    try allocateBuffer(byteCount: byteCount, access: access)
  }

  /// `allocate` with the concrete result type. A 0-byte buffer is allowed and has a valid address.
  ///
  /// Fault `alloc`: the N-th buffer's host memory is refused as a failing `malloc`/`mmap` would
  /// (a pooled buffer then needs a fresh block, which is refused).
  public func allocateBuffer(byteCount: Int, access: MemoryAccess = .deviceLocal) throws -> CPUBuffer {
    try health.ensureUsable("allocate")
    guard byteCount >= 0 else {
      throw HALError(.invalidArgument, "allocate: negative byte count \(byteCount)")
    }
    guard byteCount <= maxAllocationSize else {
      throw HALError(
        .limitExceeded,
        "\(health.label): allocating \(byteCount) bytes exceeds the CPU device's maxMemoryAllocationSize of \(maxAllocationSize) bytes"
      )
    }
    let injected = faults.fires(.alloc)
    let note = injected ? faults.note(.alloc) : ""
    if byteCount <= Self.maxPooledSize {
      let (block, slot) = try lock.withLock {
        try takeSlot(byteCount: byteCount, access: access, injectFailure: injected, note: note)
      }
      return CPUBuffer(
        allocator: self, address: block.base + slot * block.slotSize, byteCount: byteCount, access: access,
        placement: .pooled(block, slot: slot))
    }
    var reserved = 0
    guard let address = injected ? nil : kiln_cpu_memory_allocate(byteCount, &reserved) else {
      throw HALError(
        .outOfMemory,
        "\(health.label): allocating a \(byteCount)-byte \(access.rawValue) buffer: the host refused \(byteCount) bytes of memory\(note)"
      )
    }
    lock.withLock {
      current.reservedBytes += reserved
      current.liveBytes += byteCount
      current.liveBuffers += 1
      current.blocks += 1
    }
    return CPUBuffer(
      allocator: self, address: address, byteCount: byteCount, access: access, placement: .dedicated(reserved: reserved)
    )
  }

  public var statistics: AllocatorStatistics { lock.withLock { current } }

  /// Called by `CPUBuffer.deinit`.
  func release(_ address: UnsafeMutableRawPointer, byteCount: Int, placement: CPUBuffer.Placement) {
    switch placement {
    case .dedicated(let reserved):
      kiln_cpu_memory_free(address, reserved)
      lock.withLock {
        current.reservedBytes -= reserved
        current.liveBytes -= byteCount
        current.liveBuffers -= 1
        current.blocks -= 1
      }
    case .pooled(let block, let slot):
      // Zero the whole slot (not just `byteCount`): host code may have written anywhere in it.
      memset(address, 0, block.slotSize)
      lock.withLock { returnSlot(block, slot: slot, byteCount: byteCount) }
    }
  }

  /// A free slot for `byteCount` bytes, from a block of its size class (a new one if all are full).
  /// Call with `lock` held.
  private func takeSlot(byteCount: Int, access: MemoryAccess, injectFailure: Bool, note: String) throws
    -> (Block, Int)
  {
    var slotSize = Self.minimumSlot
    var sizeClass = 0
    while slotSize < byteCount {
      slotSize *= 2
      sizeClass += 1
    }
    let block: Block
    if !injectFailure, let open = classes[sizeClass].last(where: { !$0.freeSlots.isEmpty }) {
      block = open
    } else {
      var reserved = 0
      guard let base = injectFailure ? nil : kiln_cpu_memory_allocate(Self.blockSize, &reserved) else {
        throw HALError(
          .outOfMemory,
          "\(health.label): allocating a \(byteCount)-byte \(access.rawValue) buffer: the host refused a \(Self.blockSize)-byte block\(note)")
      }
      block = Block(base: base, reserved: reserved, slotSize: slotSize, sizeClass: sizeClass)
      classes[sizeClass].append(block)
      current.reservedBytes += reserved
      current.blocks += 1
    }
    let slot = block.freeSlots.removeLast()
    block.liveSlots += 1
    current.liveBytes += byteCount
    current.liveBuffers += 1
    return (block, slot)
  }

  /// Call with `lock` held.
  private func returnSlot(_ block: Block, slot: Int, byteCount: Int) {
    block.freeSlots.append(slot)
    block.liveSlots -= 1
    current.liveBytes -= byteCount
    current.liveBuffers -= 1
    guard block.liveSlots == 0, classes[block.sizeClass].count > 1 else { return }
    classes[block.sizeClass].removeAll { $0 === block }
    kiln_cpu_memory_free(block.base, block.reserved)
    current.reservedBytes -= block.reserved
    current.blocks -= 1
  }

  /// One shared block cut into equal slots. Mutable state is guarded by the allocator's lock.
  final class Block {
    let base: UnsafeMutableRawPointer
    let reserved: Int
    let slotSize: Int
    let sizeClass: Int
    /// Free slot indices; the lowest index is handed out first.
    var freeSlots: [Int]
    var liveSlots = 0

    init(base: UnsafeMutableRawPointer, reserved: Int, slotSize: Int, sizeClass: Int) {
      self.base = base
      self.reserved = reserved
      self.slotSize = slotSize
      self.sizeClass = sizeClass
      self.freeSlots = Array((0..<(CPUAllocator.blockSize / slotSize)).reversed())
    }
  }
}
