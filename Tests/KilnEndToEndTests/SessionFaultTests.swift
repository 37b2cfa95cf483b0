import Foundation
import KilnBundle
import KilnHAL
import KilnTestSupport
import Testing

@testable import KilnRuntime

/// A session on a failing device, on every device: each failure (injected through
/// `DeviceOptions.faults`, or a device too small for the bundle) is a thrown error naming what
/// failed, no hang, and every buffer, executable, command buffer and semaphore made so far is gone
/// again once the caller drops the session.
@Suite(.serialized) struct SessionFaultTests {
  static let model = "conv-strided-odd"

  func prepare() throws -> (BundleReader, [HostTensor], [HostTensor]) {
    let testCase = try #require(ModelCases.fixtures[Self.model])
    let entry = try CompiledModels.get(testCase)
    let reader = try BundleReader(bytes: try entry.compiled.writer.serialize(manifest: entry.compiled.manifest))
    let function = try #require(reader.manifest.function(named: "main"))
    return (
      reader, try ModelCases.inputs(for: testCase, signature: function.inputs),
      try ModelCases.expectedOutputs(for: testCase)
    )
  }

  func program(_ reader: BundleReader, on device: any Device) throws -> Manifest.Program {
    let function = try #require(reader.manifest.function(named: "main"))
    return try #require(function.program(for: device.info.driver))
  }

  /// Checks that `body` throws an error of type `E` whose description mentions every text.
  func expectError<E: Error>(
    _ type: E.Type, mentioning texts: [String], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void, where predicate: (E) -> Bool = { _ in true }
  ) {
    do {
      try body()
      Issue.record("expected \(E.self), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as E {
      #expect(predicate(error), "\(error)", sourceLocation: sourceLocation)
      let text = String(describing: error)
      for wanted in texts {
        #expect(text.contains(wanted), "'\(text)' should mention '\(wanted)'", sourceLocation: sourceLocation)
      }
    } catch {
      Issue.record("expected \(E.self), got \(error)", sourceLocation: sourceLocation)
    }
  }

  func expectNoValidationMessages(sourceLocation: SourceLocation = #_sourceLocation) {
    let messages = TestDevices.drainValidationMessages()
    #expect(messages.isEmpty, "validation layer: \(messages.joined(separator: "\n"))", sourceLocation: sourceLocation)
  }

  @Test(arguments: TestDevices.uris)
  func allocationFailureDuringLoadReleasesEverything(uri: String) throws {
    let (reader, _, _) = try prepare()
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.alloc: 2]))
    let baseline = device.liveResources
    expectError(HALError.self, mentioning: [uri, "-byte deviceLocal buffer", "injected fault alloc:2"]) {
      _ = try Session(bundle: reader, device: device)
    } where: {
      $0.code == .outOfMemory
    }
    #expect(device.liveResources == baseline, "leaked: \(device.liveResources) vs \(baseline)")
    #expect(device.allocator.statistics.liveBytes == 0)
    expectNoValidationMessages()
  }

  /// An allocation that fails while the session runs: only devices that stage host transfers
  /// allocate during `run`; on the others (the CPU device, unified-memory Vulkan such as lavapipe)
  /// a run allocates nothing, so the armed fault must not fire and the run must succeed.
  @Test(arguments: TestDevices.uris)
  func allocationFailureDuringRunIsAnErrorAndTheSessionGoesOn(uri: String) throws {
    let (reader, inputs, expected) = try prepare()
    // Count the buffers a load makes on a healthy device, then arm the allocation after them.
    let probe = try TestDevices.openPrivate(uri)
    let (loadAllocations, stages) = try { () throws -> (Int, Bool) in
      let session = try Session(bundle: reader, device: probe)
      return (probe.liveResources.buffers, session.buffers.values.contains { $0.hostAddress == nil })
    }()
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.alloc: loadAllocations + 1]))
    let baseline = device.liveResources
    do {
      let session = try Session(bundle: reader, device: device)
      if stages {
        expectError(HALError.self, mentioning: [uri, "injected fault alloc:"]) {
          _ = try session.run(inputs)
        } where: {
          $0.code == .outOfMemory
        }
      }
      let outputs = try session.run(inputs)
      #expect(Tolerance().compare(outputs[0], expected[0]) == nil)
    }
    #expect(device.liveResources == baseline, "leaked: \(device.liveResources) vs \(baseline)")
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func pipelineCreationFailureDuringLoadReleasesEverything(uri: String) throws {
    let (reader, _, _) = try prepare()
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.pipeline: 1]))
    let baseline = device.liveResources
    expectError(HALError.self, mentioning: [uri, "injected fault pipeline:1"]) {
      _ = try Session(bundle: reader, device: device)
    } where: {
      $0.code == .compilationFailed
    }
    #expect(device.liveResources == baseline, "leaked: \(device.liveResources) vs \(baseline)")
    // The device is fine: the next load works.
    _ = try Session(bundle: reader, device: device)
    #expect(device.liveResources == baseline)
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris, [FaultInjection.Site.submit, .deviceLost])
  func deviceLostDuringARunFailsThatRunAndEveryLaterOne(uri: String, site: FaultInjection.Site) throws {
    let (reader, inputs, expected) = try prepare()
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([site: 2]))
    let baseline = device.liveResources
    do {
      let session = try Session(bundle: reader, device: device)
      let outputs = try session.run(inputs)
      #expect(Tolerance().compare(outputs[0], expected[0]) == nil)
      expectError(HALError.self, mentioning: [uri, "injected fault \(site.rawValue):2", "refuses further work"]) {
        _ = try session.run(inputs)
      } where: {
        $0.code == .deviceLost
      }
      for _ in 0..<2 {
        expectError(HALError.self, mentioning: [uri, "was lost", "open it again"]) {
          _ = try session.run(inputs)
        } where: {
          $0.code == .deviceLost
        }
      }
      // A new session on the lost device is refused too, cleanly.
      expectError(HALError.self, mentioning: [uri, "was lost"]) {
        _ = try Session(bundle: reader, device: device)
      } where: {
        $0.code == .deviceLost
      }
    }
    #expect(device.liveResources == baseline, "leaked: \(device.liveResources) vs \(baseline)")
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func aRunTheDeviceNeverFinishesTimesOut(uri: String) throws {
    let (reader, inputs, expected) = try prepare()
    let device = try TestDevices.openPrivate(uri, faults: FaultInjection([.hang: 1]))
    let baseline = device.liveResources
    do {
      let session = try Session(bundle: reader, device: device)
      session.timeout = .milliseconds(300)
      let start = ContinuousClock.now
      expectError(HALError.self, mentioning: [uri, "0.3 seconds"]) {
        _ = try session.run(inputs)
      } where: {
        $0.code == .timeout
      }
      #expect(ContinuousClock.now - start < .seconds(30))
      // The device is not lost: the next run completes with the right answer.
      session.timeout = .seconds(60)
      let outputs = try session.run(inputs)
      #expect(Tolerance().compare(outputs[0], expected[0]) == nil)
    }
    #expect(device.liveResources == baseline, "leaked: \(device.liveResources) vs \(baseline)")
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func buffersBeyondTheDeviceLimitsAreRefusedBeforeAnyWork(uri: String) throws {
    let (reader, inputs, expected) = try prepare()
    let real = try TestDevices.openPrivate(uri)
    let program = try program(reader, on: real)
    let largestBuffer = program.buffers.map(\.size).max() ?? 0
    let largestBinding =
      program.commands.compactMap { command -> Int? in
        guard case .dispatch(let dispatch) = command else { return nil }
        return dispatch.bindings.map(\.length).max()
      }.max() ?? 0
    let total = MemoryRequirement(program).total
    try #require(largestBuffer > 16 && largestBinding > 16)

    var cases: [(String, (inout DeviceLimits) -> Void, [String])] = [
      (
        "maxMemoryAllocationSize", { $0.maxMemoryAllocationSize = largestBuffer - 1 },
        [
          "needs \(largestBuffer) bytes", "at most \(largestBuffer - 1) bytes in one allocation",
          "maxMemoryAllocationSize",
        ]
      ),
      (
        "maxStorageBufferRange", { $0.maxStorageBufferRange = largestBinding - 1 },
        ["covers \(largestBinding) bytes", "binds at most \(largestBinding - 1) bytes", "maxStorageBufferRange"]
      ),
      (
        "deviceMemoryBytes", { $0.deviceMemoryBytes = total - 1 },
        ["needs \(total) bytes", "\(total - 1) bytes of memory"]
      ),
    ]
    cases.append(("none", { _ in }, []))
    for (limit, shrink, texts) in cases {
      var limits = real.info.limits
      shrink(&limits)
      let device = ShrunkDevice(real, limits: limits)
      if limit == "none" {
        let outputs = try Session(bundle: reader, device: device).run(inputs)
        #expect(Tolerance().compare(outputs[0], expected[0]) == nil)
        continue
      }
      expectError(RuntimeError.self, mentioning: [uri] + texts) {
        _ = try Session(bundle: reader, device: device)
      } where: {
        $0.code == .limitExceeded
      }
      // Refused before any work: nothing was ever created.
      #expect(real.liveResources == LiveResources(), "\(limit)")
    }
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func aBundleOverTheMemoryBudgetIsRefusedWithItsSizes(uri: String) throws {
    let (reader, inputs, expected) = try prepare()
    let device = try TestDevices.openPrivate(uri)
    let need = MemoryRequirement(try program(reader, on: device))
    #expect(need.total == need.arena + need.weights + need.inputs + need.outputs && need.weights > 0)
    expectError(
      RuntimeError.self,
      mentioning: [
        "needs \(need.total) bytes", "arena \(need.arena)", "weights \(need.weights)", "inputs \(need.inputs)",
        "outputs \(need.outputs)", "memory budget of \(need.total - 1) bytes", uri,
      ]
    ) {
      _ = try Session(bundle: reader, device: device, memoryBudget: need.total - 1)
    } where: {
      $0.code == .overBudget
    }
    #expect(device.liveResources == LiveResources())
    let session = try Session(bundle: reader, device: device, memoryBudget: need.total)
    #expect(session.memory == need)
    #expect(Tolerance().compare(try session.run(inputs)[0], expected[0]) == nil)
    expectNoValidationMessages()
  }
}

/// A real device that reports smaller limits: for bundles that do not fit a device.
final class ShrunkDevice: Device, @unchecked Sendable {
  // @unchecked: immutable; the wrapped device synchronises itself.
  let base: any Device
  let info: DeviceInfo

  init(_ base: any Device, limits: DeviceLimits) {
    self.base = base
    var info = base.info
    info.limits = limits
    self.info = info
  }

  var allocator: any Allocator { base.allocator }
  var liveResources: LiveResources { base.liveResources }
  func makeExecutable(_ spec: ExecutableSpec) throws -> any Executable { try base.makeExecutable(spec) }
  func makeCommandBuffer() throws -> any CommandBuffer { try base.makeCommandBuffer() }
  func makeSemaphore(initialValue: UInt64) throws -> any KilnHAL.Semaphore {
    try base.makeSemaphore(initialValue: initialValue)
  }
  func submit(_ commandBuffers: [any CommandBuffer], waits: [SemaphoreValue], signals: [SemaphoreValue]) throws {
    try base.submit(commandBuffers, waits: waits, signals: signals)
  }
  func write(_ bytes: UnsafeRawBufferPointer, to range: BufferRange) throws { try base.write(bytes, to: range) }
  func read(_ range: BufferRange, into bytes: UnsafeMutableRawBufferPointer) throws {
    try base.read(range, into: bytes)
  }
  func waitIdle(timeout: Duration) throws { try base.waitIdle(timeout: timeout) }
}
