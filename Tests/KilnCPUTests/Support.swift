import Foundation
import KilnCPU
import KilnCodegen
import KilnHAL
import Testing

/// Kernels the tests dispatch, compiled once per process into one shared object.
let kernelSource = """
  #include <pthread.h>
  #include <string.h>

  KILN_CPU_DEFINE_ABI_VERSION();

  /* y[i] = a * x[i] + y[i] for i < n, 64 elements per workgroup; push constants (n, a). */
  KILN_CPU_EXPORT void saxpy(const kiln_cpu_dispatch *d) {
    const float *x = (const float *)d->bindings[0];
    float *y = (float *)d->bindings[1];
    uint32_t n = d->push_constants[0];
    float a;
    memcpy(&a, &d->push_constants[1], 4);
    for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g)
      for (uint32_t i = g * 64u; i < g * 64u + 64u && i < n; ++i) y[i] = a * x[i] + y[i];
  }

  /* One workgroup: out[0..7] = push constants 0..7, out[8..9] = binding sizes, out[10..12] = counts;
     writes 0x600DF00D to the first word of binding 1. */
  KILN_CPU_EXPORT void introspect(const kiln_cpu_dispatch *d) {
    uint32_t *out = (uint32_t *)d->bindings[0];
    for (int i = 0; i < 8; ++i) out[i] = d->push_constants[i];
    out[8] = (uint32_t)d->binding_sizes[0];
    out[9] = (uint32_t)d->binding_sizes[1];
    for (int i = 0; i < 3; ++i) out[10 + i] = d->workgroup_count[i];
    *(uint32_t *)d->bindings[1] = 0x600DF00Du;
  }

  /* Each workgroup g writes its (x, y, z) to out[4g..4g+2] and adds 1 to out[4g+3]. */
  KILN_CPU_EXPORT void coordinates(const kiln_cpu_dispatch *d) {
    uint32_t *out = (uint32_t *)d->bindings[0];
    uint32_t cx = d->workgroup_count[0], cy = d->workgroup_count[1];
    for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g) {
      out[4 * g + 0] = g % cx;
      out[4 * g + 1] = (g / cx) % cy;
      out[4 * g + 2] = g / (cx * cy);
      out[4 * g + 3] += 1;
    }
  }

  /* x[i] += 1 for i < n; push constant (n). */
  KILN_CPU_EXPORT void increment(const kiln_cpu_dispatch *d) {
    uint32_t *x = (uint32_t *)d->bindings[0];
    uint32_t n = d->push_constants[0];
    for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g)
      for (uint32_t i = g * 64u; i < g * 64u + 64u && i < n; ++i) x[i] += 1;
  }

  /* y[i] = 2 * x[i] for i < n; push constant (n). */
  KILN_CPU_EXPORT void twice(const kiln_cpu_dispatch *d) {
    const uint32_t *x = (const uint32_t *)d->bindings[0];
    uint32_t *y = (uint32_t *)d->bindings[1];
    uint32_t n = d->push_constants[0];
    for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g)
      for (uint32_t i = g * 64u; i < g * 64u + 64u && i < n; ++i) y[i] = 2 * x[i];
  }

  /* out[g] = the stack size of the thread running workgroup g, in KiB, after touching 64 KiB of it. */
  KILN_CPU_EXPORT void stack_probe(const kiln_cpu_dispatch *d) {
    uint32_t *out = (uint32_t *)d->bindings[0];
    for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g) {
      volatile unsigned char scratch[65536];
      memset((void *)scratch, (int)g, sizeof scratch);
      pthread_attr_t attributes;
      size_t size = 0;
      if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
        pthread_attr_getstacksize(&attributes, &size);
        pthread_attr_destroy(&attributes);
      }
      out[g] = (uint32_t)(size / 1024) + (scratch[100] == (unsigned char)g ? 0 : 1);
    }
  }
  """

/// The entry points of `kernelSource`, in `Kernel` order.
enum Kernel: Int, CaseIterable {
  case saxpy, introspect, coordinates, increment, twice, stackProbe

  var entryPoint: EntryPoint {
    switch self {
    case .saxpy: EntryPoint(name: "saxpy", bindingCount: 2, pushConstantWords: 2)
    case .introspect: EntryPoint(name: "introspect", bindingCount: 2, pushConstantWords: 8)
    case .coordinates: EntryPoint(name: "coordinates", bindingCount: 1)
    case .increment: EntryPoint(name: "increment", bindingCount: 1, pushConstantWords: 1)
    case .twice: EntryPoint(name: "twice", bindingCount: 2, pushConstantWords: 1)
    case .stackProbe: EntryPoint(name: "stack_probe", bindingCount: 1)
    }
  }
}

/// Prepends the ABI declarations and compiles.
func compileKernels(_ body: String, flags: [String] = [], name: String) throws -> [UInt8] {
  try NativeToolchain().compileSharedObject(
    source: NativeToolchain.kilnCPUABIHeader + "\n" + body, flags: flags, name: name)
}

/// `kernelSource`, compiled once (pthread_getattr_np needs _GNU_SOURCE).
let compiledKernels: Result<[UInt8], any Error> = Result {
  try compileKernels(kernelSource, flags: ["-D_GNU_SOURCE"], name: "cpu_test_kernels")
}

/// The test kernels' executable spec.
func kernelSpec() throws -> ExecutableSpec {
  ExecutableSpec(format: .sharedObject, code: try compiledKernels.get(), entryPoints: Kernel.allCases.map(\.entryPoint))
}

/// One device shared by the tests that need no special configuration.
let sharedDevice: Result<CPUDevice, any Error> = Result { try CPUDriver().openDevice() }

func device() throws -> CPUDevice { try sharedDevice.get() }

/// Runs `body` and checks that it throws a `HALError` with `code`.
func expectHALError(
  _ code: HALError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("expected HALError .\(code.rawValue), nothing was thrown", sourceLocation: sourceLocation)
  } catch let error as HALError {
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
  } catch {
    Issue.record("expected HALError .\(code.rawValue), got \(error)", sourceLocation: sourceLocation)
  }
}

extension CPUDevice {
  func buffer(_ values: [UInt32]) throws -> CPUBuffer {
    let buffer = try cpuAllocator.allocateBuffer(byteCount: values.count * 4)
    try values.withUnsafeBytes { try write($0, to: BufferRange(buffer)) }
    return buffer
  }

  func buffer(_ values: [Float]) throws -> CPUBuffer {
    let buffer = try cpuAllocator.allocateBuffer(byteCount: values.count * 4)
    try values.withUnsafeBytes { try write($0, to: BufferRange(buffer)) }
    return buffer
  }

  func words(_ range: BufferRange) throws -> [UInt32] {
    var out = [UInt32](repeating: 0, count: range.length / 4)
    try out.withUnsafeMutableBytes { try read(range, into: $0) }
    return out
  }

  func floats(_ buffer: CPUBuffer) throws -> [Float] {
    var out = [Float](repeating: 0, count: buffer.byteCount / 4)
    try out.withUnsafeMutableBytes { try read(BufferRange(buffer), into: $0) }
    return out
  }
}

/// Whether /proc/cpuinfo lists every flag (x86 only).
func hostCPUHasFlags(_ flags: [String]) -> Bool {
  guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
    let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
  else { return false }
  let present = Set(line.split(separator: " ").map(String.init))
  return flags.allSatisfy(present.contains)
}
