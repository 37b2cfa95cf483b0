import KilnCPU
import KilnHAL
import Testing

@Suite struct AllocatorTests {
  @Test(arguments: [0, 1, 3, 100, 4096, 300_000, 5 << 20])
  func buffersAreAlignedAndZeroed(byteCount: Int) throws {
    let device = try CPUDriver().openDevice()
    let buffer = try device.allocator.allocate(byteCount: byteCount, access: .upload)
    #expect(buffer.byteCount == byteCount)
    #expect(buffer.access == .upload)
    let address = try #require(buffer.hostAddress)
    #expect(Int(bitPattern: address) % 64 == 0)
    let bytes = UnsafeRawBufferPointer(start: address, count: byteCount)
    #expect(bytes.allSatisfy { $0 == 0 })
    if byteCount > 0 {
      // The whole range is writable.
      address.storeBytes(of: 0xAB, toByteOffset: byteCount - 1, as: UInt8.self)
    }
  }

  @Test func statisticsTrackLiveBuffers() throws {
    let device = try CPUDriver().openDevice()
    let allocator = device.allocator
    #expect(allocator.statistics == AllocatorStatistics(reservedBytes: 0, liveBytes: 0, liveBuffers: 0, blocks: 0))
    var first: (any Buffer)? = try allocator.allocate(byteCount: 100, access: .deviceLocal)
    let second = try allocator.allocate(byteCount: 1 << 20, access: .readback)
    var statistics = allocator.statistics
    #expect(statistics.liveBuffers == 2)
    #expect(statistics.blocks == 2, "one shared block and one dedicated allocation")
    #expect(statistics.liveBytes == 100 + (1 << 20))
    #expect(statistics.reservedBytes >= CPUAllocator.blockSize + (1 << 20))
    _ = first?.byteCount
    first = nil
    statistics = allocator.statistics
    #expect(statistics.liveBuffers == 1)
    #expect(statistics.liveBytes == 1 << 20)
    _ = second.byteCount
  }

  @Test func smallBuffersShareBlocksAndComeBackZeroed() throws {
    let device = try CPUDriver().openDevice()
    let allocator = device.cpuAllocator
    var buffers = try (0..<1000).map { try allocator.allocateBuffer(byteCount: 1000 + $0 % 24) }
    var statistics = allocator.statistics
    #expect(statistics.liveBuffers == 1000)
    #expect(statistics.blocks == 1, "1000 buffers of about 1 KiB fit one 1 MiB block")
    // Distinct, aligned, non-overlapping slots.
    let addresses = buffers.map { Int(bitPattern: $0.address) }.sorted()
    #expect(addresses.allSatisfy { $0 % 64 == 0 })
    #expect(zip(addresses, addresses.dropFirst()).allSatisfy { $1 - $0 >= 1024 })
    // Scribble over every buffer, free them, and get zeroed memory back.
    for buffer in buffers { buffer.address.initializeMemory(as: UInt8.self, repeating: 0xEE, count: buffer.byteCount) }
    buffers.removeAll()
    statistics = allocator.statistics
    #expect(statistics.liveBuffers == 0 && statistics.liveBytes == 0)
    #expect(statistics.blocks <= 1, "the last block of a size class is kept")
    buffers = try (0..<1000).map { _ in try allocator.allocateBuffer(byteCount: 1024) }
    #expect(buffers.allSatisfy { UnsafeRawBufferPointer(start: $0.address, count: 1024).allSatisfy { $0 == 0 } })
    // Every size class up to the pooled limit, plus one byte more (dedicated).
    let sizes = [0, 1, 64, 65, 4096, CPUAllocator.maxPooledSize, CPUAllocator.maxPooledSize + 1]
    let mixed = try sizes.map { try allocator.allocateBuffer(byteCount: $0) }
    #expect(mixed.allSatisfy { Int(bitPattern: $0.address) % 64 == 0 })
    #expect(allocator.statistics.liveBuffers == 1000 + sizes.count)
  }

  @Test func sizesAboveTheLimitAreRefused() throws {
    var limits = CPUDriver.hostLimits()
    limits.maxMemoryAllocationSize = 1 << 20
    let device = try CPUDriver(limits: limits).openDevice()
    _ = try device.allocator.allocate(byteCount: 1 << 20, access: .deviceLocal)
    expectHALError(.limitExceeded) { _ = try device.allocator.allocate(byteCount: (1 << 20) + 1, access: .deviceLocal) }
    #expect(device.allocator.statistics.liveBuffers == 0)
  }

  @Test func absurdSizesFailWithoutCrashing() throws {
    let device = try CPUDriver().openDevice()
    expectHALError(.invalidArgument) { _ = try device.allocator.allocate(byteCount: -1, access: .deviceLocal) }
    expectHALError(.limitExceeded) { _ = try device.allocator.allocate(byteCount: Int.max, access: .deviceLocal) }

    // With the limit lifted, the host itself refuses.
    var limits = CPUDriver.hostLimits()
    limits.maxMemoryAllocationSize = Int.max
    let unlimited = try CPUDriver(limits: limits).openDevice()
    expectHALError(.outOfMemory) { _ = try unlimited.allocator.allocate(byteCount: Int.max, access: .deviceLocal) }
    expectHALError(.outOfMemory) {
      _ = try unlimited.allocator.allocate(byteCount: Int.max - 100, access: .deviceLocal)
    }
    expectHALError(.outOfMemory) { _ = try unlimited.allocator.allocate(byteCount: 1 << 56, access: .deviceLocal) }
    #expect(unlimited.allocator.statistics.liveBuffers == 0)
  }
}
