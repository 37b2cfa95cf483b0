import Foundation
import KilnCPU
import KilnHAL
import Testing

@Suite struct SubmitTests {
  /// A command buffer that adds 1 to each of `n` words of `buffer`.
  func incrementCommands(_ device: CPUDevice, _ buffer: CPUBuffer, n: Int) throws -> any CommandBuffer {
    let executable = try device.makeExecutable(kernelSpec())
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: Kernel.increment.rawValue, bindings: [BufferRange(buffer)], pushConstants: [UInt32(n)],
      workgroups: WorkgroupCount((n + 63) / 64))
    try commands.end()
    return commands
  }

  @Test func replaysThousandsOfTimes() throws {
    let device = try CPUDriver().openDevice()
    let n = 256
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: n * 4)
    let commands = try incrementCommands(device, buffer, n: n)
    let semaphore = try device.makeSemaphore(initialValue: 0)
    let replays = 5000
    let start = ContinuousClock.now
    for index in 1...replays {
      try device.submit([commands], waits: [], signals: [SemaphoreValue(semaphore, UInt64(index))])
    }
    try semaphore.wait(for: UInt64(replays), timeout: .seconds(60))
    let queued = ContinuousClock.now - start
    #expect(try device.words(BufferRange(buffer)) == [UInt32](repeating: UInt32(replays), count: n))

    // Round trips: submit, then wait, one at a time.
    let roundTrips = 1000
    let roundTripStart = ContinuousClock.now
    for _ in 0..<roundTrips {
      try device.submitAndWait(commands)
    }
    let roundTrip = (ContinuousClock.now - roundTripStart) / roundTrips
    #expect(try device.words(BufferRange(buffer)) == [UInt32](repeating: UInt32(replays + roundTrips), count: n))
    print("cpu replay: \(replays) queued submissions of 4 workgroups in \(queued); submit+wait round trip \(roundTrip)")
    try device.waitIdle(timeout: .seconds(10))
  }

  @Test func submissionsWaitForTheirSemaphores() throws {
    let device = try device()
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 64 * 4)
    let commands = try incrementCommands(device, buffer, n: 64)
    let gate = try device.makeSemaphore(initialValue: 0)
    let done = try device.makeSemaphore(initialValue: 0)
    try device.submit([commands], waits: [SemaphoreValue(gate, 2)], signals: [SemaphoreValue(done, 1)])
    try gate.signal(1)
    expectHALError(.timeout) { try done.wait(for: 1, timeout: .milliseconds(50)) }
    #expect(try device.words(BufferRange(buffer, offset: 0, length: 4)) == [0])
    try gate.signal(2)
    try done.wait(for: 1, timeout: .seconds(30))
    #expect(try device.words(BufferRange(buffer)) == [UInt32](repeating: 1, count: 64))
    try device.waitIdle(timeout: .seconds(10))
  }

  @Test func submissionsRunInOrderAndSignalAll() throws {
    let device = try device()
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 16)
    let write = try device.makeCommandBuffer()
    try write.fill(BufferRange(buffer), pattern: 5)
    try write.end()
    let copy = try device.makeCommandBuffer()
    try copy.copy(from: BufferRange(buffer, offset: 0, length: 8), to: BufferRange(buffer, offset: 8, length: 8))
    try copy.end()
    let a = try device.makeSemaphore(initialValue: 0)
    let b = try device.makeSemaphore(initialValue: 10)
    try device.submit([write, copy], waits: [], signals: [SemaphoreValue(a, 3), SemaphoreValue(b, 11)])
    try device.submit([], waits: [SemaphoreValue(a, 3)], signals: [SemaphoreValue(a, 4)])
    try a.wait(for: 4, timeout: .seconds(30))
    try b.wait(for: 11, timeout: .seconds(30))
    #expect(try device.words(BufferRange(buffer)) == [5, 5, 5, 5])
  }

  @Test func aTimedOutWaitFailsTheSubmissionAndIsReportedOnce() throws {
    let device = try CPUDriver(submissionWaitTimeout: .milliseconds(100)).openDevice()
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 64 * 4)
    let commands = try incrementCommands(device, buffer, n: 64)
    let never = try device.makeSemaphore(initialValue: 0)
    let done = try device.makeSemaphore(initialValue: 0)
    try device.submit([commands], waits: [SemaphoreValue(never, 1)], signals: [SemaphoreValue(done, 1)])
    expectHALError(.timeout) { try device.waitIdle(timeout: .seconds(30)) }
    #expect(try done.currentValue() == 0, "a failed submission signals nothing")
    #expect(try device.words(BufferRange(buffer, offset: 0, length: 4)) == [0], "and runs nothing")
    try device.waitIdle(timeout: .seconds(30))

    // The next submit reports a failure recorded after the previous call.
    try device.submit([commands], waits: [SemaphoreValue(never, 1)], signals: [])
    try device.submit([], waits: [], signals: [SemaphoreValue(done, 1)])
    try done.wait(for: 1, timeout: .seconds(30))
    expectHALError(.timeout) { try device.submit([commands], waits: [], signals: []) }
    try device.submitAndWait(commands)
    #expect(try device.words(BufferRange(buffer, offset: 0, length: 4)) == [1])
  }

  @Test func waitIdleTimesOut() throws {
    let device = try CPUDriver().openDevice()
    let gate = try device.makeSemaphore(initialValue: 0)
    try device.submit([], waits: [SemaphoreValue(gate, 1)], signals: [])
    expectHALError(.timeout) { try device.waitIdle(timeout: .milliseconds(50)) }
    try gate.signal(1)
    try device.waitIdle(timeout: .seconds(30))
  }

  @Test func submitChecksItsArguments() throws {
    final class ForeignSemaphore: KilnHAL.Semaphore, @unchecked Sendable {
      func currentValue() throws -> UInt64 { 0 }
      func signal(_ value: UInt64) throws {}
      func wait(for value: UInt64, timeout: Duration) throws {}
    }
    let device = try device()
    let recording = try device.makeCommandBuffer()
    expectHALError(.invalidArgument) { try device.submit([recording], waits: [], signals: []) }
    try recording.end()
    expectHALError(.invalidArgument) {
      try device.submit([recording], waits: [SemaphoreValue(ForeignSemaphore(), 1)], signals: [])
    }
    expectHALError(.invalidArgument) {
      try device.submit([recording], waits: [], signals: [SemaphoreValue(ForeignSemaphore(), 1)])
    }
    try device.submitAndWait(recording)
  }

  @Test func queuedWorkOutlivesTheDevice() throws {
    let buffer: CPUBuffer
    let gate: any KilnHAL.Semaphore
    let done: any KilnHAL.Semaphore
    do {
      let device = try CPUDriver().openDevice()
      buffer = try device.cpuAllocator.allocateBuffer(byteCount: 64 * 4)
      gate = try device.makeSemaphore(initialValue: 0)
      done = try device.makeSemaphore(initialValue: 0)
      let commands = try incrementCommands(device, buffer, n: 64)
      try device.submit([commands], waits: [SemaphoreValue(gate, 1)], signals: [SemaphoreValue(done, 1)])
    }
    try gate.signal(1)
    try done.wait(for: 1, timeout: .seconds(30))
    #expect(buffer.address.load(as: UInt32.self) == 1)
  }
}
