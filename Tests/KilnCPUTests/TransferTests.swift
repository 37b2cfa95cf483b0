import KilnCPU
import KilnHAL
import Testing

@Suite struct TransferTests {
  @Test func writeAndReadRoundTrip() throws {
    let device = try device()
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 64)
    try device.write([1, 2, 3, 4, 5, 6, 7, 8], to: BufferRange(buffer, offset: 8, length: 8))
    let back = try device.read(BufferRange(buffer, offset: 4, length: 16))
    #expect(back == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0])
    try device.write([9], to: BufferRange(buffer, offset: 63))
    #expect(try device.read(BufferRange(buffer, offset: 63, length: 1)) == [9])
    try device.write([], to: BufferRange(buffer, offset: 64))
  }

  @Test func writeAndReadCheckRanges() throws {
    let device = try device()
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 16)
    expectHALError(.invalidArgument) { try device.write([1], to: BufferRange(buffer, offset: 16, length: 1)) }
    expectHALError(.invalidArgument) { try device.write([1, 2], to: BufferRange(buffer, offset: 14, length: 1)) }
    expectHALError(.invalidArgument) { try device.write([1], to: BufferRange(buffer, offset: 0, length: 2)) }
    expectHALError(.invalidArgument) { try device.write([1], to: BufferRange(buffer, offset: -1, length: 1)) }
    expectHALError(.invalidArgument) { _ = try device.read(BufferRange(buffer, offset: 8, length: 9)) }
    var small = [UInt8](repeating: 0, count: 2)
    // (`Device.read(_:) -> [UInt8]` would allocate `length` bytes before the driver sees the range.)
    expectHALError(.invalidArgument) {
      try small.withUnsafeMutableBytes {
        try device.read(BufferRange(buffer, offset: Int.max, length: Int.max), into: $0)
      }
    }
    expectHALError(.invalidArgument) {
      try small.withUnsafeMutableBytes { try device.read(BufferRange(buffer, offset: 0, length: 4), into: $0) }
    }
    expectHALError(.invalidArgument) {
      try small.withUnsafeMutableBytes { try device.read(BufferRange(buffer, offset: 0, length: 1), into: $0) }
    }
  }

  @Test func fillCopyAndUpdateRunInOrder() throws {
    let device = try device()
    let a = try device.cpuAllocator.allocateBuffer(byteCount: 64)
    let b = try device.cpuAllocator.allocateBuffer(byteCount: 64)
    let commands = try device.makeCommandBuffer()
    try commands.fill(BufferRange(a), pattern: 0x0102_0304)
    try commands.update(BufferRange(a, offset: 8, length: 8), bytes: [0xAA, 0xAA, 0xAA, 0xAA, 0xBB, 0xBB, 0xBB, 0xBB])
    try commands.barrier()
    try commands.copy(from: BufferRange(a, offset: 0, length: 32), to: BufferRange(b, offset: 32))
    try commands.copy(from: BufferRange(a, offset: 4, length: 8), to: BufferRange(a, offset: 40, length: 8))
    // Empty transfers are accepted and record nothing.
    try commands.fill(BufferRange(b, offset: 0, length: 0), pattern: 7)
    try commands.copy(from: BufferRange(a, offset: 0, length: 0), to: BufferRange(a, offset: 0, length: 0))
    try commands.update(BufferRange(b, offset: 64), bytes: [])
    try commands.end()
    #expect(commands.commandCount == 5)
    try device.submitAndWait(commands)
    let aWords = try device.words(BufferRange(a))
    #expect(aWords[0] == 0x0102_0304)
    #expect(aWords[2] == 0xAAAA_AAAA && aWords[3] == 0xBBBB_BBBB)
    #expect(aWords[10] == 0x0102_0304 && aWords[11] == 0xAAAA_AAAA)
    let bWords = try device.words(BufferRange(b))
    #expect(bWords[0..<8].allSatisfy { $0 == 0 })
    #expect(Array(bWords[8..<16]) == Array(aWords[0..<8]))
  }

  @Test func transfersAreValidatedWhenRecorded() throws {
    let device = try device()
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 256)
    let other = try device.cpuAllocator.allocateBuffer(byteCount: 16)
    let commands = try device.makeCommandBuffer()
    expectHALError(.invalidArgument) { try commands.fill(BufferRange(buffer, offset: 2, length: 8), pattern: 0) }
    expectHALError(.invalidArgument) { try commands.fill(BufferRange(buffer, offset: 0, length: 6), pattern: 0) }
    expectHALError(.invalidArgument) { try commands.fill(BufferRange(buffer, offset: 252, length: 8), pattern: 0) }
    expectHALError(.invalidArgument) { try commands.update(BufferRange(buffer, offset: 2), bytes: [0, 0, 0, 0]) }
    expectHALError(.invalidArgument) {
      try commands.update(BufferRange(buffer, offset: 0, length: 3), bytes: [0, 0, 0])
    }
    expectHALError(.invalidArgument) {
      try commands.update(BufferRange(buffer, offset: 0, length: 4), bytes: [UInt8](repeating: 0, count: 8))
    }
    expectHALError(.invalidArgument) {
      try commands.update(BufferRange(buffer, offset: 0, length: 8), bytes: [0, 0, 0, 0])
    }
    let big = try device.cpuAllocator.allocateBuffer(byteCount: 1 << 17)
    try commands.update(BufferRange(big, offset: 0, length: 65536), bytes: [UInt8](repeating: 1, count: 65536))
    expectHALError(.invalidArgument) {
      try commands.update(BufferRange(big, offset: 0, length: 65540), bytes: [UInt8](repeating: 1, count: 65540))
    }
    expectHALError(.invalidArgument) {
      try commands.copy(
        from: BufferRange(buffer, offset: 0, length: 64), to: BufferRange(buffer, offset: 32, length: 64))
    }
    expectHALError(.invalidArgument) {
      try commands.copy(
        from: BufferRange(buffer, offset: 32, length: 64), to: BufferRange(buffer, offset: 0, length: 64))
    }
    expectHALError(.invalidArgument) {
      try commands.copy(from: BufferRange(buffer, offset: 0, length: 32), to: BufferRange(other))
    }
    expectHALError(.invalidArgument) {
      try commands.copy(from: BufferRange(buffer, offset: 0, length: 8), to: BufferRange(other))
    }
    expectHALError(.invalidArgument) {
      try commands.copy(from: BufferRange(buffer, offset: 250, length: 8), to: BufferRange(other))
    }
    // Adjacent ranges of one buffer do not overlap.
    try commands.copy(from: BufferRange(buffer, offset: 0, length: 32), to: BufferRange(buffer, offset: 32, length: 32))
    #expect(commands.commandCount == 2, "failed commands are not recorded")
    try commands.end()
    expectHALError(.invalidArgument) { try commands.fill(BufferRange(buffer), pattern: 0) }
    expectHALError(.invalidArgument) { try commands.barrier() }
    expectHALError(.invalidArgument) { try commands.end() }
    #expect(commands.commandCount == 2)
  }

  @Test func buffersOfOtherDriversAreRefused() throws {
    final class ForeignBuffer: Buffer, @unchecked Sendable {
      let byteCount = 64
      let access = MemoryAccess.deviceLocal
      var hostAddress: UnsafeMutableRawPointer? { nil }
    }
    let device = try device()
    let commands = try device.makeCommandBuffer()
    expectHALError(.invalidArgument) { try commands.fill(BufferRange(ForeignBuffer()), pattern: 0) }
    expectHALError(.invalidArgument) { try device.write([0], to: BufferRange(ForeignBuffer(), offset: 0, length: 1)) }
    // Buffers of another CPU device are refused too, as on Vulkan.
    let otherDevice = try CPUDriver().openDevice()
    let foreign = try otherDevice.cpuAllocator.allocateBuffer(byteCount: 64)
    expectHALError(.invalidArgument) { try commands.fill(BufferRange(foreign), pattern: 0) }
    expectHALError(.invalidArgument) { try device.write([0], to: BufferRange(foreign, offset: 0, length: 1)) }
    try commands.end()
    expectHALError(.invalidArgument) { try otherDevice.submit([commands], waits: [], signals: []) }
  }
}
