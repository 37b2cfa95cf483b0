/// Three-dimensional workgroup counts of a dispatch.
public struct WorkgroupCount: Sendable, Hashable {
  public var x: Int
  public var y: Int
  public var z: Int

  public init(_ x: Int, _ y: Int = 1, _ z: Int = 1) {
    self.x = x
    self.y = y
    self.z = z
  }

  public var total: Int { x * y * z }
}

/// A recorded sequence of transfers and dispatches.
///
/// Contract: record, then `end()`, then submit any number of times (replay). Commands run in
/// order of submission but may overlap unless separated by `barrier()`: a barrier makes every
/// write before it visible to every read and write after it (an execution and memory
/// dependency, compute and transfer stages). Recording is single-threaded; a finished command
/// buffer may be submitted from any thread, but not while a previous submission of it is still
/// running (wait on its semaphore first).
public protocol CommandBuffer: AnyObject, Sendable {
  /// Fills `range` with a repeated 32-bit pattern; offset and length must be multiples of 4.
  func fill(_ range: BufferRange, pattern: UInt32) throws
  /// Copies `length` bytes; the ranges must not overlap when in the same buffer.
  func copy(from source: BufferRange, to destination: BufferRange) throws
  /// Writes up to 65536 bytes recorded inline in the command buffer (a multiple of 4).
  func update(_ range: BufferRange, bytes: [UInt8]) throws
  /// Runs `entryPoint` of `executable` over `workgroups`, with buffer bindings in slot order.
  func dispatch(
    _ executable: any Executable, entryPoint: Int, bindings: [BufferRange], pushConstants: [UInt32],
    workgroups: WorkgroupCount) throws
  /// An execution + memory dependency between everything before and everything after.
  func barrier() throws
  /// Finishes recording; nothing may be recorded after it.
  func end() throws
  /// Number of commands recorded (dispatches, transfers and barriers; timestamps not counted).
  var commandCount: Int { get }

  // MARK: Profiling

  /// Makes room for `capacity` timestamps; must be called before anything is recorded.
  ///
  /// - Throws: `.invalidArgument` once something has been recorded (or twice); `.unsupported`
  ///   when the device's queue cannot write timestamps.
  func enableTimestamps(capacity: Int) throws
  /// Records a timestamp taken once every previously recorded command has completed, and
  /// returns its index. It orders nothing: commands after it may start before it is written.
  ///
  /// - Throws: `.invalidArgument` without `enableTimestamps` or beyond its capacity.
  func writeTimestamp() throws -> Int
  /// The timestamps of the last completed submission, in nanoseconds on one monotonic clock
  /// (differences are meaningful, the origin is not), in index order.
  ///
  /// Valid only after a submission of this command buffer has completed (waited on).
  func timestampNanoseconds() throws -> [UInt64]
}

extension CommandBuffer {
  /// Drivers without timestamps: every profiling call throws `.unsupported`.
  public func enableTimestamps(capacity: Int) throws {
    throw HALError(.unsupported, "enableTimestamps: this driver cannot write timestamps")
  }

  public func writeTimestamp() throws -> Int {
    throw HALError(.unsupported, "writeTimestamp: this driver cannot write timestamps")
  }

  public func timestampNanoseconds() throws -> [UInt64] {
    throw HALError(.unsupported, "timestampNanoseconds: this driver cannot write timestamps")
  }
}
