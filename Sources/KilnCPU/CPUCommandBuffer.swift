import CKilnCPU
import Foundation
import KilnHAL

/// A recorded list of host commands, validated when recorded and replayed on every submission.
///
/// Commands run one after another on the device's queue thread, and each dispatch finishes (on
/// every thread of the pool) before the next command starts, so `barrier()` has nothing to do:
/// every command already sees every write before it.
///
/// Thread-safety: recording is meant to happen on one thread, but a lock makes misuse safe; after
/// `end()` the command list is frozen and submissions take an immutable copy of it.
public final class CPUCommandBuffer: CommandBuffer, @unchecked Sendable {
  // @unchecked: `lock` guards `commands`, `retained` and `ended`; the other properties are immutable.
  private let lock = NSLock()
  private var commands: [Command] = []
  /// Buffers and executables the commands point into, kept alive with the command buffer.
  private var retained: [ObjectIdentifier: AnyObject] = [:]
  private var ended = false
  /// Timestamp slots (`enableTimestamps`) and how many timestamp commands are recorded.
  private var timestamps: TimestampSlots?
  private var timestampCount = 0
  /// The device the command buffer was made on; only its buffers may be used.
  let device: CPUDevice
  private let limits: DeviceLimits
  private let allocator: CPUAllocator

  init(device: CPUDevice) {
    self.device = device
    self.limits = device.info.limits
    self.allocator = device.cpuAllocator
    device.resources.add(.commandBuffer)
  }

  deinit {
    device.resources.remove(.commandBuffer)
  }

  /// The largest inline update, as on Vulkan (`vkCmdUpdateBuffer`).
  public static let maxUpdateBytes = 65536

  /// Zero-length ranges are validated and then ignored (they are not counted).
  public func fill(_ range: BufferRange, pattern: UInt32) throws {
    let (buffer, address) = try range.cpuAddress("fill", on: allocator)
    guard range.offset % 4 == 0, range.length % 4 == 0 else {
      throw HALError(
        .invalidArgument, "fill: offset \(range.offset) and length \(range.length) must be multiples of 4")
    }
    guard range.length > 0 else { return try checkRecording("fill") }
    try record(.fill(address, words: range.length / 4, pattern: pattern), keeping: [buffer])
  }

  /// Copies between ranges of equal length that do not overlap.
  public func copy(from source: BufferRange, to destination: BufferRange) throws {
    let (sourceBuffer, sourceAddress) = try source.cpuAddress("copy source", on: allocator)
    let (destinationBuffer, destinationAddress) = try destination.cpuAddress("copy destination", on: allocator)
    guard source.length == destination.length else {
      throw HALError(
        .invalidArgument, "copy: source length \(source.length) != destination length \(destination.length)")
    }
    if sourceBuffer === destinationBuffer && source.offset < destination.offset + destination.length
      && destination.offset < source.offset + source.length
    {
      throw HALError(
        .invalidArgument,
        "copy: ranges \(source.offset)+\(source.length) and \(destination.offset)+\(destination.length) overlap in the same buffer"
      )
    }
    guard source.length > 0 else { return try checkRecording("copy") }
    try record(
      .copy(from: UnsafeRawPointer(sourceAddress), to: destinationAddress, byteCount: source.length),
      keeping: [sourceBuffer, destinationBuffer])
  }

  /// Writes `bytes`, exactly `range.length` of them, recorded inline.
  public func update(_ range: BufferRange, bytes: [UInt8]) throws {
    let (buffer, address) = try range.cpuAddress("update", on: allocator)
    guard bytes.count == range.length else {
      throw HALError(.invalidArgument, "update: \(bytes.count) bytes given for a range of \(range.length)")
    }
    guard range.offset % 4 == 0, bytes.count % 4 == 0, bytes.count <= Self.maxUpdateBytes else {
      throw HALError(
        .invalidArgument,
        "update: offset \(range.offset) and size \(bytes.count) must be multiples of 4, size at most \(Self.maxUpdateBytes)"
      )
    }
    guard !bytes.isEmpty else { return try checkRecording("update") }
    try record(.update(address, bytes), keeping: [buffer])
  }

  /// Records a dispatch; one with a zero workgroup count is validated and then ignored.
  ///
  /// - Throws: `.invalidArgument` for an executable from another driver, an unknown entry point, a
  ///   binding or push-constant count different from the entry point's, a negative workgroup
  ///   count, or a binding that is empty, outside its buffer, from another device or at an offset
  ///   not aligned to `minStorageBufferOffsetAlignment`; `.limitExceeded` for a binding longer
  ///   than `maxStorageBufferRange` or workgroup counts above `maxWorkgroupCount` (or more than
  ///   2^32 - 1 workgroups in all).
  public func dispatch(
    _ executable: any Executable, entryPoint: Int, bindings: [BufferRange], pushConstants: [UInt32],
    workgroups: WorkgroupCount
  ) throws {
    guard let executable = executable as? CPUExecutable else {
      throw HALError(.invalidArgument, "dispatch: the executable was not made by the CPU driver")
    }
    guard executable.entryPoints.indices.contains(entryPoint) else {
      throw HALError(
        .invalidArgument,
        "dispatch: entry point \(entryPoint) out of range 0..<\(executable.entryPoints.count)")
    }
    let declared = executable.entryPoints[entryPoint]
    guard bindings.count == declared.bindingCount else {
      throw HALError(
        .invalidArgument,
        "dispatch '\(declared.name)': \(bindings.count) bindings given, the kernel declares \(declared.bindingCount)")
    }
    guard pushConstants.count == declared.pushConstantWords else {
      throw HALError(
        .invalidArgument,
        "dispatch '\(declared.name)': \(pushConstants.count) push-constant words given, the kernel declares \(declared.pushConstantWords)"
      )
    }
    let counts = [workgroups.x, workgroups.y, workgroups.z]
    for (axis, count) in counts.enumerated() {
      guard count >= 0 else {
        throw HALError(.invalidArgument, "dispatch '\(declared.name)': negative workgroup count \(counts)")
      }
      guard count <= limits.maxWorkgroupCount[axis] else {
        throw HALError(
          .limitExceeded,
          "dispatch '\(declared.name)': \(count) workgroups on axis \(axis) exceeds the device limit \(limits.maxWorkgroupCount[axis])"
        )
      }
    }
    let (xy, overflowXY) = workgroups.x.multipliedReportingOverflow(by: workgroups.y)
    let (total, overflow) = xy.multipliedReportingOverflow(by: workgroups.z)
    guard !overflowXY, !overflow, total <= Int(UInt32.max) else {
      throw HALError(
        .limitExceeded, "dispatch '\(declared.name)': \(counts) is more than \(UInt32.max) workgroups in all")
    }
    var buffers: [AnyObject] = [executable]
    var addresses: [UnsafeMutableRawPointer] = []
    for (slot, range) in bindings.enumerated() {
      let (buffer, address) = try range.cpuAddress("dispatch '\(declared.name)' binding \(slot)", on: allocator)
      guard range.length <= limits.maxStorageBufferRange else {
        throw HALError(
          .limitExceeded,
          "dispatch '\(declared.name)' binding \(slot): \(range.length) bytes exceed maxStorageBufferRange \(limits.maxStorageBufferRange); split the binding"
        )
      }
      guard range.offset % limits.minStorageBufferOffsetAlignment == 0 else {
        throw HALError(
          .invalidArgument,
          "dispatch '\(declared.name)' binding \(slot): offset \(range.offset) is not a multiple of minStorageBufferOffsetAlignment \(limits.minStorageBufferOffsetAlignment)"
        )
      }
      guard range.length > 0 else {
        throw HALError(.invalidArgument, "dispatch '\(declared.name)' binding \(slot): empty range")
      }
      buffers.append(buffer)
      addresses.append(address)
    }
    guard total > 0 else { return try checkRecording("dispatch") }
    let prepared = PreparedDispatch(
      kernel: executable.kernels[entryPoint], chunksPerThread: executable.chunksPerThread[entryPoint], bindings: addresses, sizes: bindings.map { UInt64($0.length) },
      pushConstants: pushConstants,
      workgroups: (UInt32(workgroups.x), UInt32(workgroups.y), UInt32(workgroups.z)))
    try record(.dispatch(prepared), keeping: buffers)
  }

  public func barrier() throws {
    try record(.barrier, keeping: [])
  }

  public func end() throws {
    try lock.withLock {
      guard !ended else { throw HALError(.invalidArgument, "end: the command buffer has already ended") }
      ended = true
    }
  }

  public var commandCount: Int { lock.withLock { commands.count - timestampCount } }

  // MARK: Timestamps

  public func enableTimestamps(capacity: Int) throws {
    try lock.withLock {
      guard !ended else { throw HALError(.invalidArgument, "enableTimestamps: the command buffer has already ended") }
      guard timestamps == nil, commands.isEmpty else {
        throw HALError(.invalidArgument, "enableTimestamps: must be called once, before anything is recorded")
      }
      guard capacity > 0 else {
        throw HALError(.invalidArgument, "enableTimestamps: capacity \(capacity) must be positive")
      }
      timestamps = TimestampSlots(capacity: capacity)
    }
  }

  /// Commands run one after another, so the clock is read once every earlier command is done.
  public func writeTimestamp() throws -> Int {
    try lock.withLock {
      guard !ended else { throw HALError(.invalidArgument, "writeTimestamp: the command buffer has already ended") }
      guard let timestamps else { throw HALError(.invalidArgument, "writeTimestamp: call enableTimestamps first") }
      guard timestampCount < timestamps.capacity else {
        throw HALError(.invalidArgument, "writeTimestamp: all \(timestamps.capacity) timestamps are already recorded")
      }
      let index = timestampCount
      commands.append(.timestamp(timestamps, index))
      timestampCount += 1
      return index
    }
  }

  public func timestampNanoseconds() throws -> [UInt64] {
    let (slots, count) = lock.withLock { (timestamps, timestampCount) }
    guard let slots else { throw HALError(.invalidArgument, "timestampNanoseconds: timestamps were not enabled") }
    return Array(slots.values().prefix(count))
  }

  /// The frozen commands for a submission (the array shares storage; nothing is copied).
  ///
  /// - Throws: `.invalidArgument` when recording has not ended.
  func recordedCommands() throws -> [Command] {
    try lock.withLock {
      guard ended else {
        throw HALError(.invalidArgument, "submit: the command buffer is still recording (call end() first)")
      }
      return commands
    }
  }

  /// Throws unless recording (for commands that turn out to record nothing).
  private func checkRecording(_ what: String) throws {
    try lock.withLock {
      guard !ended else { throw HALError(.invalidArgument, "\(what): the command buffer has already ended") }
    }
  }

  private func record(_ command: Command, keeping objects: [AnyObject]) throws {
    try lock.withLock {
      guard !ended else {
        throw HALError(.invalidArgument, "the command buffer has already ended; nothing more can be recorded")
      }
      commands.append(command)
      for object in objects {
        retained[ObjectIdentifier(object)] = object
      }
    }
  }
}

/// One recorded command, with addresses resolved at record time.
enum Command: @unchecked Sendable {
  // @unchecked: the pointers address memory that the command buffer keeps alive; commands are
  // immutable and read only while a submission runs.
  case fill(UnsafeMutableRawPointer, words: Int, pattern: UInt32)
  case copy(from: UnsafeRawPointer, to: UnsafeMutableRawPointer, byteCount: Int)
  case update(UnsafeMutableRawPointer, [UInt8])
  case dispatch(PreparedDispatch)
  case barrier
  /// Reads CLOCK_MONOTONIC into a timestamp slot.
  case timestamp(TimestampSlots, Int)

  /// Runs the command on the calling thread (and on `pool`'s workers for a dispatch).
  func execute(pool: OpaquePointer?) {
    switch self {
    case .fill(let address, let words, let pattern):
      kiln_cpu_memory_fill32(address, pattern, words)
    case .copy(let source, let destination, let byteCount):
      if byteCount > 0 { memcpy(destination, source, byteCount) }
    case .update(let address, let bytes):
      bytes.withUnsafeBytes { source in
        if let base = source.baseAddress, !source.isEmpty { memcpy(address, base, source.count) }
      }
    case .dispatch(let prepared):
      kiln_cpu_pool_dispatch(pool, prepared.kernel, prepared.record, prepared.chunksPerThread)
    case .barrier:
      break  // Commands already run strictly one after another.
    case .timestamp(let slots, let index):
      var now = timespec()
      clock_gettime(CLOCK_MONOTONIC, &now)
      slots.set(index, UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec))
    }
  }
}

/// A dispatch record built once at record time, with its arrays, replayed as is.
final class PreparedDispatch: @unchecked Sendable {
  // @unchecked: immutable after init; the kernels only read the record and its arrays.
  let kernel: kiln_cpu_kernel
  let chunksPerThread: UInt32
  let record: UnsafeMutablePointer<kiln_cpu_dispatch>
  private let bindings: UnsafeMutablePointer<UnsafeMutableRawPointer?>
  private let sizes: UnsafeMutablePointer<UInt64>
  private let pushConstants: UnsafeMutablePointer<UInt32>

  init(
    kernel: @escaping kiln_cpu_kernel, chunksPerThread: UInt32, bindings: [UnsafeMutableRawPointer], sizes: [UInt64],
    pushConstants: [UInt32], workgroups: (UInt32, UInt32, UInt32)
  ) {
    self.kernel = kernel
    self.chunksPerThread = chunksPerThread
    self.bindings = .allocate(capacity: max(1, bindings.count))
    self.bindings.initialize(repeating: nil, count: max(1, bindings.count))
    for (slot, address) in bindings.enumerated() { self.bindings[slot] = address }
    self.sizes = .allocate(capacity: max(1, sizes.count))
    self.sizes.initialize(repeating: 0, count: max(1, sizes.count))
    for (slot, size) in sizes.enumerated() { self.sizes[slot] = size }
    let words = max(1, pushConstants.count)
    self.pushConstants = .allocate(capacity: words)
    self.pushConstants.initialize(repeating: 0, count: words)
    for (index, word) in pushConstants.enumerated() { self.pushConstants[index] = word }
    record = .allocate(capacity: 1)
    record.initialize(
      to: kiln_cpu_dispatch(
        bindings: UnsafePointer(self.bindings), binding_sizes: UnsafePointer(self.sizes),
        push_constants: UnsafePointer(self.pushConstants), workgroup_count: workgroups, workgroup_begin: 0,
        workgroup_end: workgroups.0 * workgroups.1 * workgroups.2))
  }

  deinit {
    record.deallocate()
    bindings.deallocate()
    sizes.deallocate()
    pushConstants.deallocate()
  }
}

/// The timestamps of a command buffer, written by the queue thread and read by the host.
final class TimestampSlots: @unchecked Sendable {
  // @unchecked: `lock` guards `slots`; `capacity` is immutable.
  let capacity: Int
  private let lock = NSLock()
  private var slots: [UInt64]

  init(capacity: Int) {
    self.capacity = capacity
    slots = [UInt64](repeating: 0, count: capacity)
  }

  func set(_ index: Int, _ nanoseconds: UInt64) {
    lock.withLock { slots[index] = nanoseconds }
  }

  func values() -> [UInt64] {
    lock.withLock { slots }
  }
}
