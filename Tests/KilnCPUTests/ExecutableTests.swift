import KilnCPU
import KilnCodegen
import KilnHAL
import Testing

@Suite struct ExecutableTests {
  @Test func loadsEveryEntryPoint() throws {
    let device = try device()
    let executable = try device.makeExecutable(kernelSpec())
    #expect(executable.entryPoints == Kernel.allCases.map(\.entryPoint))
  }

  @Test(arguments: [
    ("garbage", [UInt8](repeating: 0x5A, count: 4096)),
    ("empty", []),
    ("truncated ELF", [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 40)),
  ])
  func unloadableBytesFailCleanly(label: String, bytes: [UInt8]) throws {
    let spec = ExecutableSpec(
      format: .sharedObject, code: bytes, entryPoints: [EntryPoint(name: "saxpy", bindingCount: 2)])
    expectHALError(.compilationFailed) { _ = try device().makeExecutable(spec) }
  }

  @Test func truncatedSharedObjectsFailCleanly() throws {
    // The loader maps segments straight from the file: without the driver's ELF checks these
    // would end the process with SIGBUS.
    let code = try compiledKernels.get()
    for length in [4, 64, 64 + 56, 200, code.count / 4, code.count / 2] {
      let spec = ExecutableSpec(format: .sharedObject, code: Array(code.prefix(length)), entryPoints: [])
      expectHALError(.compilationFailed) { _ = try device().makeExecutable(spec) }
    }
  }

  @Test func objectsForAnotherMachineAreRefused() throws {
    var code = try compiledKernels.get()
    code[18] = 0xB7  // e_machine = EM_AARCH64 (or EM_X86_64 below on an arm64 host)
    code[19] = 0
    #if arch(arm64)
      code[18] = 62
    #endif
    let spec = ExecutableSpec(format: .sharedObject, code: code, entryPoints: [])
    do {
      _ = try device().makeExecutable(spec)
      Issue.record("an object for another machine loaded")
    } catch let error as HALError {
      #expect(error.code == .compilationFailed)
      #expect(error.message.contains("machine"))
    }
  }

  @Test func theABIVersionSymbolIsRequired() throws {
    let code = try compileKernels(
      "KILN_CPU_EXPORT void k(const kiln_cpu_dispatch *d) { (void)d; }", name: "no_abi_symbol")
    let spec = ExecutableSpec(format: .sharedObject, code: code, entryPoints: [EntryPoint(name: "k", bindingCount: 0)])
    do {
      _ = try device().makeExecutable(spec)
      Issue.record("a shared object without kiln_cpu_abi_version loaded")
    } catch let error as HALError {
      #expect(error.code == .compilationFailed)
      #expect(error.message.contains("kiln_cpu_abi_version"))
    }
  }

  @Test func anotherABIVersionIsRefused() throws {
    let code = try compileKernels(
      """
      KILN_CPU_EXPORT const uint32_t kiln_cpu_abi_version = 99;
      KILN_CPU_EXPORT void k(const kiln_cpu_dispatch *d) { (void)d; }
      """, name: "abi_99")
    let spec = ExecutableSpec(format: .sharedObject, code: code, entryPoints: [EntryPoint(name: "k", bindingCount: 0)])
    expectHALError(.compilationFailed) { _ = try device().makeExecutable(spec) }
  }

  @Test(arguments: ["missing_kernel", "memcpy", "dlopen", "kiln_hidden"])
  func entryPointsMustBeExportedByTheObject(name: String) throws {
    // `memcpy` and `dlopen` exist in the object's dependencies; `kiln_hidden` has hidden visibility.
    let code = try compileKernels(
      """
      #include <string.h>
      KILN_CPU_DEFINE_ABI_VERSION();
      void kiln_hidden(const kiln_cpu_dispatch *d) { (void)d; }
      KILN_CPU_EXPORT void k(const kiln_cpu_dispatch *d) { memcpy(d->bindings[0], d->bindings[1], 4); kiln_hidden(d); }
      """, name: "exports")
    let spec = ExecutableSpec(
      format: .sharedObject, code: code,
      entryPoints: [EntryPoint(name: "k", bindingCount: 2), EntryPoint(name: name, bindingCount: 0)])
    do {
      _ = try device().makeExecutable(spec)
      Issue.record("entry point '\(name)' resolved")
    } catch let error as HALError {
      #expect(error.code == .compilationFailed)
      #expect(error.message.contains(name))
    }
  }

  @Test func spirvIsUnsupported() throws {
    let spec = ExecutableSpec(format: .spirv, code: [0x03, 0x02, 0x23, 0x07], entryPoints: [])
    expectHALError(.unsupported) { _ = try device().makeExecutable(spec) }
  }

  @Test func entryPointsBeyondTheLimitsAreRefused() throws {
    let code = try compiledKernels.get()
    let device = try device()
    let limits = device.info.limits
    let tooManyBindings = ExecutableSpec(
      format: .sharedObject, code: code,
      entryPoints: [EntryPoint(name: "saxpy", bindingCount: limits.maxStorageBuffersPerDispatch + 1)])
    expectHALError(.limitExceeded) { _ = try device.makeExecutable(tooManyBindings) }
    let tooManyWords = ExecutableSpec(
      format: .sharedObject, code: code,
      entryPoints: [EntryPoint(name: "saxpy", bindingCount: 2, pushConstantWords: 33)])
    expectHALError(.limitExceeded) { _ = try device.makeExecutable(tooManyWords) }
    let negative = ExecutableSpec(
      format: .sharedObject, code: code, entryPoints: [EntryPoint(name: "saxpy", bindingCount: -1)])
    expectHALError(.invalidArgument) { _ = try device.makeExecutable(negative) }
  }

  @Test func manyObjectsLoadAndUnload() throws {
    // Each load gets its own object even though memory-file names are reused after unloading.
    let device = try device()
    let one = try compileKernels(
      "KILN_CPU_DEFINE_ABI_VERSION();\nKILN_CPU_EXPORT void value(const kiln_cpu_dispatch *d) { *(uint32_t *)d->bindings[0] = 1; }",
      name: "value_one")
    let two = try compileKernels(
      "KILN_CPU_DEFINE_ABI_VERSION();\nKILN_CPU_EXPORT void value(const kiln_cpu_dispatch *d) { *(uint32_t *)d->bindings[0] = 2; }",
      name: "value_two")
    let buffer = try device.cpuAllocator.allocateBuffer(byteCount: 16)
    for round in 0..<50 {
      let expected: UInt32 = round % 2 == 0 ? 1 : 2
      let spec = ExecutableSpec(
        format: .sharedObject, code: expected == 1 ? one : two,
        entryPoints: [EntryPoint(name: "value", bindingCount: 1)])
      let executable = try device.makeExecutable(spec)
      let commands = try device.makeCommandBuffer()
      try commands.dispatch(
        executable, entryPoint: 0, bindings: [BufferRange(buffer)], pushConstants: [], workgroups: WorkgroupCount(1))
      try commands.end()
      try device.submitAndWait(commands)
      #expect(try device.words(BufferRange(buffer, offset: 0, length: 4)) == [expected])
    }
  }
}
