import Foundation
import KilnHAL
import KilnTestSupport
import Testing

/// Failing devices, on every device: injected faults run the drivers' real error paths, which must
/// end in a thrown `HALError` naming the device and the failure, never a crash or a hang, and must
/// leave no live object behind.
///
/// Every test opens its own device (faults are per device, and the live-resource counts must not
/// see other tests' objects).
@Suite(.serialized)
struct FaultInjectionTests {
  private func expectNoValidationMessages(sourceLocation: SourceLocation = #_sourceLocation) {
    let messages = TestDevices.drainValidationMessages()
    #expect(messages.isEmpty, "validation layer: \(messages.joined(separator: "\n"))", sourceLocation: sourceLocation)
  }

  /// Runs `body` and checks that it throws a `HALError` with `code` whose message mentions every text.
  private func expectHALError(
    _ code: HALError.Code, mentioning texts: [String], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
  ) {
    do {
      try body()
      Issue.record("expected HALError .\(code.rawValue), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as HALError {
      #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
      for text in texts {
        #expect(
          error.message.contains(text), "'\(error.message)' should mention '\(text)'", sourceLocation: sourceLocation)
      }
    } catch {
      Issue.record("expected HALError .\(code.rawValue), got \(error)", sourceLocation: sourceLocation)
    }
  }

  /// A filled buffer and a command buffer that increments it: something real to submit.
  private func incrementProgram(on device: any Device) throws -> (any Buffer, any CommandBuffer) {
    let increment = try TestKernels.executable(.increment, on: device)
    let buffer = try device.allocator.allocate(byteCount: 64 * 4, access: .deviceLocal)
    try device.write([UInt32](repeating: 5, count: 64).bytes, to: BufferRange(buffer))
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      increment, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [64], workgroups: WorkgroupCount(1))
    try commands.end()
    return (buffer, commands)
  }

  @Test func faultSpecificationsParseAndRefuseNonsense() throws {
    let faults = try FaultInjection(parsing: "alloc:3, submit:1,pipeline:1,device-lost:2,hang:4")
    #expect(faults.triggers == [.alloc: 3, .submit: 1, .pipeline: 1, .deviceLost: 2, .hang: 4])
    #expect(faults.description == "alloc:3,pipeline:1,submit:1,device-lost:2,hang:4")
    #expect(try FaultInjection(parsing: faults.description) == faults)
    #expect(try FaultInjection(parsing: "").isEmpty)
    for bad in ["alloc", "alloc:0", "alloc:-1", "alloc:x", "oom:1", "alloc:1,alloc:2", "alloc:1:2"] {
      #expect(throws: HALError.self, "'\(bad)'") { _ = try FaultInjection(parsing: bad) }
    }
  }

  @Test(arguments: TestDevices.uris)
  func allocationFailureIsOutOfMemoryAndReleasesEverything(uri: String) throws {
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.alloc: 2]))
    let baseline = device.liveResources
    let bytesBefore = device.allocator.statistics.liveBytes
    do {
      let first = try device.allocator.allocate(byteCount: 4096, access: .deviceLocal)
      expectHALError(.outOfMemory, mentioning: [uri, "4096-byte", "injected fault alloc:2"]) {
        _ = try device.allocator.allocate(byteCount: 4096, access: .deviceLocal)
      }
      #expect(device.liveResources.buffers == baseline.buffers + 1, "the failed allocation left a buffer behind")
      // Only the N-th call fails; the device goes on.
      let third = try device.allocator.allocate(byteCount: 1 << 20, access: .deviceLocal)
      try device.write([UInt8](repeating: 7, count: 16), to: BufferRange(third, offset: 0, length: 16))
      #expect(try device.read(BufferRange(third, offset: 0, length: 16)) == [UInt8](repeating: 7, count: 16))
      _ = first
    }
    #expect(device.liveResources == baseline)
    #expect(device.allocator.statistics.liveBytes == bytesBefore)
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func allocationsBeyondTheDeviceLimitsAreRefusedWithTheSizes(uri: String) throws {
    let device = try TestDevices.openPrivate(uri)
    let limit = device.info.limits.maxMemoryAllocationSize
    let tooBig = limit < Int.max ? limit + 1 : Int.max
    expectHALError(.limitExceeded, mentioning: [uri, "\(tooBig) bytes", "maxMemoryAllocationSize of \(limit)"]) {
      _ = try device.allocator.allocate(byteCount: tooBig, access: .deviceLocal)
    }
    #expect(device.liveResources == LiveResources())
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func pipelineCreationFailureIsCompilationFailedAndReleasesEverything(uri: String) throws {
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.pipeline: 1]))
    let baseline = device.liveResources
    expectHALError(.compilationFailed, mentioning: [uri, "injected fault pipeline:1"]) {
      _ = try TestKernels.executable(.increment, on: device)
    }
    #expect(device.liveResources == baseline)
    // The next creation succeeds and runs.
    let (buffer, commands) = try incrementProgram(on: device)
    try device.submitAndWait(commands)
    #expect(try device.read(BufferRange(buffer)).asUInt32s().allSatisfy { $0 == 6 })
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func deviceLostAtSubmitRefusesAllFurtherWork(uri: String) throws {
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.submit: 1]))
    let baseline = device.liveResources
    do {
      let (buffer, commands) = try incrementProgram(on: device)
      expectHALError(.deviceLost, mentioning: [uri, "submit", "injected fault submit:1", "refuses further work"]) {
        try device.submitAndWait(commands)
      }
      // Every later call is refused with the same clear error, never a crash.
      let refused = [uri, "was lost", "injected fault submit:1"]
      expectHALError(.deviceLost, mentioning: ["submit:"] + refused) {
        try device.submit([commands], waits: [], signals: [])
      }
      expectHALError(.deviceLost, mentioning: ["allocate"] + refused) {
        _ = try device.allocator.allocate(byteCount: 64, access: .deviceLocal)
      }
      expectHALError(.deviceLost, mentioning: ["makeCommandBuffer"] + refused) { _ = try device.makeCommandBuffer() }
      expectHALError(.deviceLost, mentioning: ["makeExecutable"] + refused) {
        _ = try TestKernels.executable(.increment, on: device)
      }
      expectHALError(.deviceLost, mentioning: ["makeSemaphore"] + refused) {
        _ = try device.makeSemaphore(initialValue: 0)
      }
      expectHALError(.deviceLost, mentioning: ["write"] + refused) {
        try device.write([UInt8](repeating: 0, count: 4), to: BufferRange(buffer, offset: 0, length: 4))
      }
      expectHALError(.deviceLost, mentioning: ["read"] + refused) { _ = try device.read(BufferRange(buffer)) }
      expectHALError(.deviceLost, mentioning: ["waitIdle"] + refused) { try device.waitIdle(timeout: .seconds(1)) }
    }
    // What was made before the loss is still released.
    #expect(device.liveResources == baseline)
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func deviceLostWhileRunningIsReportedByTheWait(uri: String) throws {
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.deviceLost: 2]))
    let baseline = device.liveResources
    do {
      let (buffer, commands) = try incrementProgram(on: device)
      try device.submitAndWait(commands)  // submission 1 runs
      #expect(try device.read(BufferRange(buffer)).asUInt32s().allSatisfy { $0 == 6 })
      let done = try device.makeSemaphore(initialValue: 0)
      try device.submit([commands], waits: [], signals: [SemaphoreValue(done, 1)])  // submission 2 is lost
      expectHALError(.deviceLost, mentioning: [uri, "injected fault device-lost:2"]) {
        try done.wait(for: 1, timeout: .seconds(30))
      }
      expectHALError(.deviceLost, mentioning: ["submit:", uri, "was lost"]) {
        try device.submit([commands], waits: [], signals: [])
      }
    }
    #expect(device.liveResources == baseline)
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func aSubmissionThatNeverSignalsTimesOutAndTheDeviceGoesOn(uri: String) throws {
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.hang: 1]))
    let baseline = device.liveResources
    do {
      let (buffer, commands) = try incrementProgram(on: device)
      let start = ContinuousClock.now
      expectHALError(.timeout, mentioning: [uri]) { try device.submitAndWait(commands, timeout: .milliseconds(200)) }
      #expect(ContinuousClock.now - start < .seconds(20), "the time-out took far too long")
      // Not lost: the next submission is signalled (the first one ran, only its signal was dropped).
      try device.submitAndWait(commands)
      #expect(try device.read(BufferRange(buffer)).asUInt32s().allSatisfy { $0 == 7 })
      try device.waitIdle(timeout: .seconds(30))
    }
    #expect(device.liveResources == baseline)
    expectNoValidationMessages()
  }
}
