/// Allocates buffers on one device.
///
/// Drivers suballocate small buffers from large blocks; large ones get dedicated memory. Every
/// allocation is checked against the device's `maxMemoryAllocationSize` and fails with
/// `HALError.Code.outOfMemory` or `.limitExceeded` rather than crashing.
public protocol Allocator: AnyObject, Sendable {
  func allocate(byteCount: Int, access: MemoryAccess) throws -> any Buffer
  var statistics: AllocatorStatistics { get }
}

public struct AllocatorStatistics: Sendable, Hashable {
  /// Bytes reserved from the device in blocks and dedicated allocations.
  public var reservedBytes: Int
  /// Bytes handed out to live buffers.
  public var liveBytes: Int
  public var liveBuffers: Int
  public var blocks: Int

  public init(reservedBytes: Int, liveBytes: Int, liveBuffers: Int, blocks: Int) {
    self.reservedBytes = reservedBytes
    self.liveBytes = liveBytes
    self.liveBuffers = liveBuffers
    self.blocks = blocks
  }
}
