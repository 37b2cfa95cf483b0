import KilnCPU
import KilnHAL
import Testing

@Suite struct DispatchTests {
  @Test(arguments: [1, 64, 100, 100_003])
  func saxpyCoversEveryElement(n: Int) throws {
    let device = try device()
    let executable = try device.makeExecutable(kernelSpec())
    let x = (0..<n).map { Float($0 % 97) }
    let y = (0..<n).map { Float($0 % 13) - 6 }
    let xBuffer = try device.buffer(x)
    let yBuffer = try device.buffer(y)
    let a: Float = 0.5
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: Kernel.saxpy.rawValue, bindings: [BufferRange(xBuffer), BufferRange(yBuffer)],
      pushConstants: [UInt32(n), a.bitPattern], workgroups: WorkgroupCount((n + 63) / 64))
    try commands.end()
    try device.submitAndWait(commands)
    let result = try device.floats(yBuffer)
    let expected = (0..<n).map { a * x[$0] + y[$0] }
    #expect(result == expected)
  }

  @Test func kernelsSeePushConstantsSizesAndCounts() throws {
    let device = try device()
    let executable = try device.makeExecutable(kernelSpec())
    let out = try device.cpuAllocator.allocateBuffer(byteCount: 256)
    let marker = try device.cpuAllocator.allocateBuffer(byteCount: 64)
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: Kernel.introspect.rawValue,
      bindings: [BufferRange(out, offset: 0, length: 64), BufferRange(marker, offset: 16, length: 32)],
      pushConstants: [7, 0xFFFF_FFFF, 42, 0, 1, 2, 3, 0x8000_0000], workgroups: WorkgroupCount(1))
    try commands.end()
    try device.submitAndWait(commands)
    let words = try device.words(BufferRange(out, offset: 0, length: 64))
    #expect(Array(words[0..<8]) == [7, 0xFFFF_FFFF, 42, 0, 1, 2, 3, 0x8000_0000])
    #expect(words[8] == 64 && words[9] == 32)
    #expect(Array(words[10..<13]) == [1, 1, 1])
    #expect(try device.words(BufferRange(marker)) == [0, 0, 0, 0, 0x600D_F00D] + [UInt32](repeating: 0, count: 11))
  }

  @Test(arguments: [1, 2, 3])
  func everyWorkgroupRunsExactlyOnce(threads: Int) throws {
    let device = try CPUDriver(threadCount: threads).openDevice()
    let executable = try device.makeExecutable(kernelSpec())
    for (x, y, z) in [(1, 1, 1), (2, 1, 1), (7, 5, 3), (1, 1, 9), (1000, 10, 3)] {
      let count = x * y * z
      let out = try device.cpuAllocator.allocateBuffer(byteCount: count * 16)
      let commands = try device.makeCommandBuffer()
      try commands.dispatch(
        executable, entryPoint: Kernel.coordinates.rawValue, bindings: [BufferRange(out)], pushConstants: [],
        workgroups: WorkgroupCount(x, y, z))
      try commands.end()
      try device.submitAndWait(commands)
      let words = try device.words(BufferRange(out))
      var expected: [UInt32] = []
      for gz in 0..<z {
        for gy in 0..<y {
          for gx in 0..<x { expected += [UInt32(gx), UInt32(gy), UInt32(gz), 1] }
        }
      }
      #expect(words == expected, "workgroups (\(x), \(y), \(z)) on \(threads) threads")
    }
  }

  /// An entry point's optional `name_chunks_per_thread` symbol sets how many ranges each thread
  /// gets: with 1, a 64-workgroup dispatch on 2 threads is at most 2 calls. Without it the chunks
  /// shrink as the range empties (remaining / 4, at least 2): 16, 12, 9, 7, 5, 4, 3, 2, 2, 2, 2,
  /// 11 calls whichever thread claims them. Every workgroup still runs exactly once.
  @Test func chunkHintsSetTheRangesPerThread() throws {
    let body = """
      KILN_CPU_DEFINE_ABI_VERSION();
      static void count(const kiln_cpu_dispatch *d) {
        uint32_t *out = (uint32_t *)d->bindings[0];
        __atomic_fetch_add(&out[0], 1u, __ATOMIC_RELAXED);
        for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g) out[1 + g] += 1;
      }
      KILN_CPU_EXPORT void fine(const kiln_cpu_dispatch *d) { count(d); }
      KILN_CPU_EXPORT void coarse(const kiln_cpu_dispatch *d) { count(d); }
      KILN_CPU_EXPORT const uint32_t coarse_chunks_per_thread = 1;
      """
    let device = try CPUDriver(threadCount: 2).openDevice()
    let executable = try device.makeExecutable(
      ExecutableSpec(
        format: .sharedObject, code: try compileKernels(body, name: "chunk_hints"),
        entryPoints: [EntryPoint(name: "fine", bindingCount: 1), EntryPoint(name: "coarse", bindingCount: 1)]))
    for (entry, calls) in [(0, 11...11), (1, 1...2)] {
      let out = try device.cpuAllocator.allocateBuffer(byteCount: 65 * 4)
      let commands = try device.makeCommandBuffer()
      try commands.dispatch(executable, entryPoint: entry, bindings: [BufferRange(out)], pushConstants: [], workgroups: WorkgroupCount(64))
      try commands.end()
      try device.submitAndWait(commands)
      let words = try device.words(BufferRange(out))
      #expect(calls.contains(Int(words[0])), "entry point \(entry): \(words[0]) calls")
      #expect(Array(words[1...]) == [UInt32](repeating: 1, count: 64))
    }
  }

  @Test func aBarrierSeparatesDependentDispatches() throws {
    let device = try device()
    let executable = try device.makeExecutable(kernelSpec())
    let n = 10_000
    let x = try device.buffer((0..<n).map { UInt32($0) })
    let y = try device.cpuAllocator.allocateBuffer(byteCount: n * 4)
    let commands = try device.makeCommandBuffer()
    let groups = WorkgroupCount((n + 63) / 64)
    try commands.dispatch(
      executable, entryPoint: Kernel.increment.rawValue, bindings: [BufferRange(x)], pushConstants: [UInt32(n)],
      workgroups: groups)
    try commands.barrier()
    try commands.dispatch(
      executable, entryPoint: Kernel.twice.rawValue, bindings: [BufferRange(x), BufferRange(y)],
      pushConstants: [UInt32(n)], workgroups: groups)
    try commands.end()
    #expect(commands.commandCount == 3)
    try device.submitAndWait(commands)
    #expect(try device.words(BufferRange(y)) == (0..<n).map { UInt32(2 * ($0 + 1)) })
    try device.submitAndWait(commands)
    #expect(try device.words(BufferRange(y)) == (0..<n).map { UInt32(2 * ($0 + 2)) })
  }

  @Test(arguments: [1, 2])
  func kernelsRunOnLargeStacks(threads: Int) throws {
    let device = try CPUDriver(threadCount: threads).openDevice()
    let executable = try device.makeExecutable(kernelSpec())
    let groups = 64
    let out = try device.cpuAllocator.allocateBuffer(byteCount: groups * 4)
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: Kernel.stackProbe.rawValue, bindings: [BufferRange(out)], pushConstants: [],
      workgroups: WorkgroupCount(groups))
    try commands.end()
    try device.submitAndWait(commands)
    let kibibytes = try device.words(BufferRange(out))
    #expect(kibibytes.allSatisfy { $0 >= 8192 }, "stack sizes in KiB: \(Set(kibibytes))")
  }

  @Test func dispatchesAreValidatedWhenRecorded() throws {
    let device = try device()
    let executable = try device.makeExecutable(kernelSpec())
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 1024)
    let commands = try device.makeCommandBuffer()
    let whole = BufferRange(buffer)
    let saxpy = Kernel.saxpy.rawValue
    func dispatch(
      entryPoint: Int = saxpy, bindings: [BufferRange]? = nil, pushConstants: [UInt32] = [1, 0],
      workgroups: WorkgroupCount = WorkgroupCount(1)
    ) throws {
      try commands.dispatch(
        executable, entryPoint: entryPoint, bindings: bindings ?? [whole, whole], pushConstants: pushConstants,
        workgroups: workgroups)
    }
    expectHALError(.invalidArgument) { try dispatch(entryPoint: Kernel.allCases.count) }
    expectHALError(.invalidArgument) { try dispatch(entryPoint: -1) }
    expectHALError(.invalidArgument) { try dispatch(bindings: [whole]) }
    expectHALError(.invalidArgument) { try dispatch(bindings: [whole, whole, whole]) }
    expectHALError(.invalidArgument) {
      try dispatch(bindings: [whole, BufferRange(buffer, offset: 512, length: 1024)])
    }
    expectHALError(.invalidArgument) { try dispatch(bindings: [whole, BufferRange(buffer, offset: -16, length: 16)]) }
    expectHALError(.invalidArgument) {
      try dispatch(bindings: [whole, BufferRange(buffer, offset: Int.max - 4, length: 64)])
    }
    expectHALError(.invalidArgument) { try dispatch(bindings: [whole, BufferRange(buffer, offset: 4, length: 16)]) }
    expectHALError(.invalidArgument) { try dispatch(bindings: [whole, BufferRange(buffer, offset: 1024, length: 0)]) }
    expectHALError(.invalidArgument) { try dispatch(pushConstants: [1]) }
    expectHALError(.invalidArgument) { try dispatch(pushConstants: [1, 2, 3]) }
    expectHALError(.invalidArgument) { try dispatch(pushConstants: [UInt32](repeating: 0, count: 33)) }
    expectHALError(.invalidArgument) { try dispatch(workgroups: WorkgroupCount(-1)) }
    expectHALError(.invalidArgument) { try dispatch(workgroups: WorkgroupCount(1, -1, 1)) }
    let maxCount = device.info.limits.maxWorkgroupCount
    expectHALError(.limitExceeded) { try dispatch(workgroups: WorkgroupCount(maxCount[0] + 1)) }
    expectHALError(.limitExceeded) { try dispatch(workgroups: WorkgroupCount(1, maxCount[1] + 1)) }
    expectHALError(.limitExceeded) { try dispatch(workgroups: WorkgroupCount(1, 1, maxCount[2] + 1)) }
    expectHALError(.limitExceeded) { try dispatch(workgroups: WorkgroupCount(1 << 40)) }
    expectHALError(.limitExceeded) { try dispatch(workgroups: WorkgroupCount(1 << 20, 1 << 12, 1)) }

    final class ForeignExecutable: Executable, @unchecked Sendable {
      let entryPoints = [EntryPoint(name: "saxpy", bindingCount: 2)]
    }
    expectHALError(.invalidArgument) {
      try commands.dispatch(
        ForeignExecutable(), entryPoint: 0, bindings: [whole, whole], pushConstants: [], workgroups: WorkgroupCount(1))
    }
    #expect(commands.commandCount == 0)
    // Zero workgroups: validated, then nothing is recorded.
    try dispatch(workgroups: WorkgroupCount(0, 5, 1))
    expectHALError(.invalidArgument) { try dispatch(bindings: [whole], workgroups: WorkgroupCount(0)) }
    #expect(commands.commandCount == 0)
    // The largest valid values are accepted.
    try dispatch(bindings: [
      BufferRange(buffer, offset: 1008, length: 16), BufferRange(buffer, offset: 0, length: 1024),
    ])
    try dispatch(workgroups: WorkgroupCount(maxCount[0]))
    #expect(commands.commandCount == 2)
  }

  @Test func zeroWorkgroupsRunNothing() throws {
    let device = try device()
    let executable = try device.makeExecutable(kernelSpec())
    let out = try device.cpuAllocator.allocateBuffer(byteCount: 64)
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: Kernel.coordinates.rawValue, bindings: [BufferRange(out)], pushConstants: [],
      workgroups: WorkgroupCount(3, 0, 2))
    try commands.end()
    #expect(commands.commandCount == 0)
    try device.submitAndWait(commands)
    #expect(try device.words(BufferRange(out)).allSatisfy { $0 == 0 })
  }

  @Test func bindingsLongerThanTheRangeLimitAreRefused() throws {
    var limits = CPUDriver.hostLimits()
    limits.maxStorageBufferRange = 256
    let device = try CPUDriver(limits: limits).openDevice()
    let executable = try device.makeExecutable(kernelSpec())
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 1024)
    let commands = try device.makeCommandBuffer()
    expectHALError(.limitExceeded) {
      try commands.dispatch(
        executable, entryPoint: Kernel.saxpy.rawValue,
        bindings: [BufferRange(buffer, offset: 0, length: 256), BufferRange(buffer)], pushConstants: [1, 0],
        workgroups: WorkgroupCount(1))
    }
  }
}
