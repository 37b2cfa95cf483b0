import Foundation
import KilnHAL
import KilnTestSupport
import Testing

/// One HAL conformance suite, written once and run on every device this machine has.
///
/// Serialized so that validation-layer messages are attributed to the test that caused them.
@Suite(.serialized)
struct HALConformanceTests {
  /// Every test ends here: any validation-layer message fails it.
  private func expectNoValidationMessages(sourceLocation: SourceLocation = #_sourceLocation) {
    let messages = TestDevices.drainValidationMessages()
    #expect(messages.isEmpty, "validation layer: \(messages.joined(separator: "\n"))", sourceLocation: sourceLocation)
  }

  @Test func ciHasAVulkanDeviceAndTheValidationLayer() throws {
    guard TestDevices.isCI else { return }
    #expect(!TestDevices.vulkanURIs.isEmpty, "CI=true but no Vulkan device: \(String(describing: TestDevices.registry.vulkanError))")
    #expect(TestDevices.registry.vulkan?.validationEnabled == true, "CI=true but the validation layer is not enabled")
  }

  @Test func everyMachineHasTheCPUDevice() {
    #expect(TestDevices.uris.contains("cpu"))
  }

  @Test(arguments: TestDevices.uris)
  func deviceInfoIsComplete(uri: String) throws {
    let device = try TestDevices.device(uri)
    let info = device.info
    #expect(info.shortURI == uri)
    #expect(!info.name.isEmpty)
    #expect(info.limits.maxStorageBufferRange > 0)
    #expect(info.limits.maxMemoryAllocationSize >= info.limits.maxStorageBufferRange || info.driver == "cpu")
    #expect(info.limits.maxWorkgroupCount.count == 3 && info.limits.maxWorkgroupCount.allSatisfy { $0 >= 65535 })
    #expect(info.limits.maxPushConstantBytes >= 128)
    #expect(info.features.subgroupSize >= 1)
    #expect(info.features.timelineSemaphores)
    // The canonical URI resolves back to this device.
    #expect(try TestDevices.registry.resolve(info.uri).uuid == info.uuid)
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func fillUpdateCopyAndReadBack(uri: String) throws {
    let device = try TestDevices.device(uri)
    let a = try device.allocator.allocate(byteCount: 4096, access: .deviceLocal)
    let b = try device.allocator.allocate(byteCount: 4096, access: .deviceLocal)
    let commands = try device.makeCommandBuffer()
    try commands.fill(BufferRange(a), pattern: 0xDEAD_BEEF)
    try commands.barrier()
    let words: [UInt32] = (0..<64).map { UInt32($0) * 7 }
    try commands.update(BufferRange(a, offset: 256, length: 256), bytes: words.bytes)
    try commands.barrier()
    try commands.copy(from: BufferRange(a, offset: 0, length: 2048), to: BufferRange(b, offset: 1024, length: 2048))
    try commands.fill(BufferRange(b, offset: 0, length: 1024), pattern: 0x0101_0101)
    try commands.end()
    try device.submitAndWait(commands)

    let out = try device.read(BufferRange(b)).asUInt32s()
    #expect(out[0..<256].allSatisfy { $0 == 0x0101_0101 })
    #expect(out[256..<320].allSatisfy { $0 == 0xDEAD_BEEF })
    #expect(Array(out[320..<384]) == words)
    #expect(out[384..<768].allSatisfy { $0 == 0xDEAD_BEEF })
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func hostWriteAndReadRoundTripOnEveryMemoryKind(uri: String) throws {
    let device = try TestDevices.device(uri)
    for access in [MemoryAccess.deviceLocal, .upload, .readback] {
      let buffer = try device.allocator.allocate(byteCount: 1000, access: access)
      let bytes = (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 31) }
      try device.write(bytes, to: BufferRange(buffer, offset: 400, length: 600))
      #expect(try device.read(BufferRange(buffer, offset: 400, length: 600)) == bytes)
    }
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func dispatchRunsARealKernelWithPushConstants(uri: String) throws {
    let device = try TestDevices.device(uri)
    let kernel = try TestKernels.executable(.scaleAdd, on: device)
    let n = 1000  // not a multiple of the workgroup size
    let x = (0..<n).map { Float($0) * 0.5 - 17 }
    let input = try device.allocator.allocate(byteCount: n * 4, access: .deviceLocal)
    let output = try device.allocator.allocate(byteCount: n * 4 + 64, access: .deviceLocal)
    try device.write(x.bytes, to: BufferRange(input))
    let commands = try device.makeCommandBuffer()
    try commands.fill(BufferRange(output), pattern: 0)
    try commands.barrier()
    try commands.dispatch(
      kernel, entryPoint: 0, bindings: [BufferRange(input), BufferRange(output, offset: 0, length: n * 4)],
      pushConstants: [UInt32(n), Float(2.5).bitPattern, Float(-1).bitPattern], workgroups: TestKernels.workgroups(for: n))
    try commands.end()
    try device.submitAndWait(commands)
    let y = try device.read(BufferRange(output)).asFloats()
    #expect(Array(y.prefix(n)) == x.map { $0 * 2.5 - 1 })
    #expect(y.suffix(16).allSatisfy { $0 == 0 }, "the kernel wrote past n")
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func barriersOrderAChainOfDependentDispatches(uri: String) throws {
    let device = try TestDevices.device(uri)
    let step = try TestKernels.executable(.step, on: device)
    let n = 4096
    let buffer = try device.allocator.allocate(byteCount: n * 4, access: .deviceLocal)
    let start: [UInt32] = (0..<n).map { UInt32($0) }
    try device.write(start.bytes, to: BufferRange(buffer))
    let commands = try device.makeCommandBuffer()
    let rounds = 40
    for _ in 0..<rounds {
      try commands.dispatch(
        step, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [UInt32(n)],
        workgroups: TestKernels.workgroups(for: n))
      try commands.barrier()
    }
    try commands.end()
    try device.submitAndWait(commands)
    // x -> 3x + 1 is not commutative with itself out of order only if reads race; the exact value
    // after `rounds` ordered applications is checkable.
    var expected = start
    for _ in 0..<rounds { expected = expected.map { $0 &* 3 &+ 1 } }
    #expect(try device.read(BufferRange(buffer)).asUInt32s() == expected)
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func thousandsOfDispatchesInOneReplayedCommandBuffer(uri: String) throws {
    let device = try TestDevices.device(uri)
    let increment = try TestKernels.executable(.increment, on: device)
    let n = 256
    let buffer = try device.allocator.allocate(byteCount: n * 4, access: .deviceLocal)
    try device.write([UInt32](repeating: 0, count: n).bytes, to: BufferRange(buffer))
    let commands = try device.makeCommandBuffer()
    let dispatches = 2000
    for _ in 0..<dispatches {
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [UInt32(n)],
        workgroups: TestKernels.workgroups(for: n))
      try commands.barrier()
    }
    try commands.end()
    #expect(commands.commandCount == dispatches * 2)
    let replays = 3
    for _ in 0..<replays { try device.submitAndWait(commands) }
    let out = try device.read(BufferRange(buffer)).asUInt32s()
    #expect(out.allSatisfy { $0 == UInt32(dispatches * replays) }, "got \(out.prefix(4))")
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func bufferLargerThanMaxStorageBufferRangeIsBoundInWindows(uri: String) throws {
    let device = try TestDevices.device(uri)
    let limits = device.info.limits
    // A window is the largest binding the device allows, capped so the test stays small on
    // devices whose range is effectively unlimited (the CPU device).
    let alignment = max(limits.minStorageBufferOffsetAlignment, 256)
    let window = min(limits.maxStorageBufferRange, 64 << 20) / alignment * alignment
    let size = limits.maxStorageBufferRange <= (256 << 20) ? limits.maxStorageBufferRange + window / 2 : window * 2
    try #require(size <= limits.maxMemoryAllocationSize, "device cannot allocate \(size) bytes")
    let buffer = try device.allocator.allocate(byteCount: size, access: .deviceLocal)
    #expect(buffer.byteCount == size)
    let increment = try TestKernels.executable(.increment, on: device)

    if size > limits.maxStorageBufferRange {
      // Binding the whole buffer must be refused, not crash.
      let commands = try device.makeCommandBuffer()
      #expect(throws: HALError.self) {
        try commands.dispatch(
          increment, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [1], workgroups: WorkgroupCount(1))
      }
    }

    let commands = try device.makeCommandBuffer()
    try commands.fill(BufferRange(buffer), pattern: 41)
    try commands.barrier()
    var offset = 0
    while offset < size {
      let length = min(window, size - offset)
      let elements = length / 4
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer, offset: offset, length: length)],
        pushConstants: [UInt32(elements)], workgroups: TestKernels.workgroups(for: elements))
      offset += length
    }
    try commands.end()
    try device.submitAndWait(commands, timeout: .seconds(300))
    // Check the first, last and every window boundary.
    for probe in [0, window - 4, window, size - 4] where probe >= 0 && probe + 4 <= size {
      let value = try device.read(BufferRange(buffer, offset: probe, length: 4)).asUInt32s()
      #expect(value == [42], "offset \(probe)")
    }
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func semaphoresOrderSubmissionsAndTimeOut(uri: String) throws {
    let device = try TestDevices.device(uri)
    let gate = try device.makeSemaphore(initialValue: 0)
    let done = try device.makeSemaphore(initialValue: 0)
    #expect(try gate.currentValue() == 0)
    // Waiting for a value nobody signals times out instead of hanging.
    #expect {
      try gate.wait(for: 1, timeout: .milliseconds(50))
    } throws: { ($0 as? HALError)?.code == .timeout }

    let increment = try TestKernels.executable(.increment, on: device)
    let buffer = try device.allocator.allocate(byteCount: 64 * 4, access: .deviceLocal)
    try device.write([UInt32](repeating: 5, count: 64).bytes, to: BufferRange(buffer))
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      increment, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [64], workgroups: WorkgroupCount(1))
    try commands.end()
    // The submission waits for the host to open the gate.
    try device.submit([commands], waits: [SemaphoreValue(gate, 1)], signals: [SemaphoreValue(done, 7)])
    #expect(try done.currentValue() == 0)
    try gate.signal(1)
    try done.wait(for: 7, timeout: .seconds(30))
    #expect(try done.currentValue() == 7)
    #expect(try device.read(BufferRange(buffer)).asUInt32s().allSatisfy { $0 == 6 })
    try device.waitIdle(timeout: .seconds(30))
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func allocatorSuballocatesAndReportsLimits(uri: String) throws {
    // A device of its own: it counts live buffers, which other suites' work on the shared device
    // (running at the same time) would change.
    let device = try TestDevices.openPrivate(uri)
    let before = device.allocator.statistics
    var buffers: [any Buffer] = []
    for index in 0..<100 { buffers.append(try device.allocator.allocate(byteCount: 1000 + index, access: .deviceLocal)) }
    let during = device.allocator.statistics
    #expect(during.liveBuffers == before.liveBuffers + 100)
    #expect(during.blocks - before.blocks < 100, "small buffers are suballocated from shared blocks")
    buffers.removeAll()
    #expect(device.allocator.statistics.liveBuffers == before.liveBuffers)
    // Beyond the device's largest allocation: a thrown error, not a crash.
    let tooBig = device.info.limits.maxMemoryAllocationSize &+ 1
    #expect(throws: HALError.self) { _ = try device.allocator.allocate(byteCount: tooBig > 0 ? tooBig : Int.max, access: .deviceLocal) }
    #expect(throws: HALError.self) { _ = try device.allocator.allocate(byteCount: -1, access: .deviceLocal) }
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func invalidCodeIsAThrownError(uri: String) throws {
    let device = try TestDevices.device(uri)
    let format: ExecutableFormat = device.info.driver == "vulkan" ? .spirv : .sharedObject
    var generator = SystemRandomNumberGenerator()
    let garbage = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
    // SPIR-V magic followed by garbage: passes a naive header check, fails validation.
    let fakeSPIRV: [UInt8] = [0x03, 0x02, 0x23, 0x07, 0x00, 0x05, 0x01, 0x00] + garbage
    for code in [garbage, fakeSPIRV, [], [0x7f, 0x45, 0x4c, 0x46]] {
      let spec = ExecutableSpec(format: format, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: 1)])
      #expect(throws: HALError.self) { _ = try device.makeExecutable(spec) }
    }
    // A valid module asked for an entry point it does not have.
    var spec = try TestKernels.spec(.increment, for: device)
    spec.entryPoints = [EntryPoint(name: "no_such_kernel", bindingCount: 1, pushConstantWords: 1)]
    #expect(throws: HALError.self) { _ = try device.makeExecutable(spec) }
    // The other driver's format is refused.
    let foreign = ExecutableSpec(
      format: format == .spirv ? .sharedObject : .spirv, code: garbage, entryPoints: [EntryPoint(name: "main", bindingCount: 1)])
    #expect(throws: HALError.self) { _ = try device.makeExecutable(foreign) }
    expectNoValidationMessages()
  }

  @Test(arguments: TestDevices.uris)
  func outOfRangeBindingsAndBadCommandsAreThrownErrors(uri: String) throws {
    let device = try TestDevices.device(uri)
    let increment = try TestKernels.executable(.increment, on: device)
    let buffer = try device.allocator.allocate(byteCount: 1024, access: .deviceLocal)
    let commands = try device.makeCommandBuffer()
    func expectInvalid(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
      #expect(throws: HALError.self, sourceLocation: sourceLocation) { try body() }
    }
    // Binding ranges outside the buffer, including offset + length overflowing Int.
    expectInvalid {
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer, offset: 512, length: 1024)], pushConstants: [1],
        workgroups: WorkgroupCount(1))
    }
    expectInvalid {
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer, offset: Int.max - 4, length: 64)], pushConstants: [1],
        workgroups: WorkgroupCount(1))
    }
    expectInvalid {
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer, offset: -64, length: 64)], pushConstants: [1],
        workgroups: WorkgroupCount(1))
    }
    // Wrong binding count, wrong push-constant count, missing entry point, absurd workgroup counts.
    expectInvalid {
      try commands.dispatch(increment, entryPoint: 0, bindings: [], pushConstants: [1], workgroups: WorkgroupCount(1))
    }
    expectInvalid {
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [], workgroups: WorkgroupCount(1))
    }
    expectInvalid {
      try commands.dispatch(
        increment, entryPoint: 3, bindings: [BufferRange(buffer)], pushConstants: [1], workgroups: WorkgroupCount(1))
    }
    expectInvalid {
      try commands.dispatch(
        increment, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [1], workgroups: WorkgroupCount(1 << 40))
    }
    // Transfers: misaligned fill, oversized update, overlapping copy, length mismatch.
    expectInvalid { try commands.fill(BufferRange(buffer, offset: 2, length: 8), pattern: 0) }
    expectInvalid { try commands.update(BufferRange(buffer, offset: 0, length: 2048), bytes: [UInt8](repeating: 0, count: 2048)) }
    expectInvalid { try commands.copy(from: BufferRange(buffer, offset: 0, length: 512), to: BufferRange(buffer, offset: 256, length: 512)) }
    expectInvalid { try commands.copy(from: BufferRange(buffer, offset: 0, length: 16), to: BufferRange(buffer, offset: 512, length: 32)) }
    // Host transfers outside the buffer.
    expectInvalid { try device.write([UInt8](repeating: 1, count: 16), to: BufferRange(buffer, offset: 1020, length: 16)) }
    expectInvalid { _ = try device.read(BufferRange(buffer, offset: 2000, length: 4)) }
    // Submitting while still recording; recording after end.
    expectInvalid { try device.submit([commands], waits: [], signals: []) }
    try commands.end()
    expectInvalid { try commands.barrier() }
    // The command buffer is still usable after all the refused commands: it recorded nothing.
    #expect(commands.commandCount == 0)
    try device.submitAndWait(commands)
    expectNoValidationMessages()
  }

  @Test func unknownDeviceURIsAreThrownErrors() throws {
    for bad in ["gpu", "vulkan:", "vulkan:-1", "vulkan://xyz", "vulkan:999", "cuda:0", "", "vulkan://" + String(repeating: "0", count: 32)] {
      #expect(throws: HALError.self, "'\(bad)'") { _ = try TestDevices.registry.resolve(bad) }
    }
    #expect(try TestDevices.registry.resolve("auto").shortURI == TestDevices.uris.first)
    #expect(try TestDevices.registry.resolve("cpu").driver == "cpu")
  }
}
