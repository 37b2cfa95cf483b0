import Foundation
import KilnHAL
import KilnTestSupport
import Testing

/// The command-buffer profiling API (`enableTimestamps`, `writeTimestamp`, `timestampNanoseconds`)
/// on every device: GPU timestamp queries on Vulkan, the monotonic clock on the CPU device.
@Suite(.serialized)
struct TimestampTests {
  private func expectNoValidationMessages(sourceLocation: SourceLocation = #_sourceLocation) {
    let messages = TestDevices.drainValidationMessages()
    #expect(messages.isEmpty, "validation layer: \(messages.joined(separator: "\n"))", sourceLocation: sourceLocation)
  }

  /// Records `increment` over `n` elements `times` times, each followed by a barrier.
  private func recordIncrements(
    _ commands: any CommandBuffer, _ kernel: any Executable, _ buffer: any Buffer, n: Int, times: Int
  ) throws {
    for _ in 0..<times {
      try commands.dispatch(
        kernel, entryPoint: 0, bindings: [BufferRange(buffer, offset: 0, length: n * 4)], pushConstants: [UInt32(n)],
        workgroups: TestKernels.workgroups(for: n))
      try commands.barrier()
    }
  }

  @Test(arguments: TestDevices.uris)
  func timestampsAreMonotonicAndMeasureWork(uri: String) throws {
    let device = try TestDevices.device(uri)
    let kernel = try TestKernels.executable(.increment, on: device)
    // 32 MiB, four times: milliseconds on lavapipe and the CPU device, ~100 us on a real GPU.
    let big = 8 << 20
    let buffer = try device.allocator.allocate(byteCount: big * 4, access: .deviceLocal)
    try device.write([UInt8](repeating: 0, count: 512), to: BufferRange(buffer, offset: 0, length: 512))
    let commands = try device.makeCommandBuffer()
    try commands.enableTimestamps(capacity: 3)
    #expect(try commands.writeTimestamp() == 0)
    try recordIncrements(commands, kernel, buffer, n: 64, times: 1)
    #expect(try commands.writeTimestamp() == 1)
    try recordIncrements(commands, kernel, buffer, n: big, times: 4)
    #expect(try commands.writeTimestamp() == 2)
    #expect(commands.commandCount == 10, "timestamps are not commands")
    try commands.end()

    try device.submitAndWait(commands)
    let first = try commands.timestampNanoseconds()
    try #require(first.count == 3)
    #expect(first[0] <= first[1] && first[1] <= first[2], "not monotonic: \(first)")
    let tiny = first[1] - first[0]
    let large = first[2] - first[1]
    #expect(large > 2 * tiny && large > 10_000, "\(uri): 4 x \(big) elements took \(large) ns, 64 elements \(tiny) ns")

    // A replay resets the queries and measures again, later.
    try device.submitAndWait(commands)
    let second = try commands.timestampNanoseconds()
    try #require(second.count == 3)
    #expect(second[0] >= first[2], "the replay's timestamps \(second) start before the first run's \(first)")
    #expect(second[0] <= second[1] && second[1] <= second[2])
    // Every element was incremented 1 + 4 times per run (the first 64 once more).
    let words = try device.read(BufferRange(buffer, offset: 0, length: 128 * 4)).asUInt32s()
    #expect(words[0] == 10 && words[64] == 8, "\(words[0]) \(words[64])")
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func misuseIsAnInvalidArgument(uri: String) throws {
    let device = try TestDevices.device(uri)
    let buffer = try device.allocator.allocate(byteCount: 256, access: .deviceLocal)

    let late = try device.makeCommandBuffer()
    try late.fill(BufferRange(buffer), pattern: 0)
    #expect(throws: HALError.self) { try late.enableTimestamps(capacity: 2) }
    #expect(throws: HALError.self) { _ = try late.writeTimestamp() }
    try late.end()

    let full = try device.makeCommandBuffer()
    #expect(throws: HALError.self) { try full.enableTimestamps(capacity: 0) }
    try full.enableTimestamps(capacity: 1)
    #expect(throws: HALError.self) { try full.enableTimestamps(capacity: 1) }
    _ = try full.writeTimestamp()
    do {
      _ = try full.writeTimestamp()
      Issue.record("a second timestamp fit into capacity 1")
    } catch let error as HALError {
      #expect(error.code == .invalidArgument)
    }
    try full.end()
    #expect(throws: HALError.self) { _ = try full.writeTimestamp() }
    try device.submitAndWait(full)
    #expect(try full.timestampNanoseconds().count == 1)
    expectNoValidationMessages()
  }
}
