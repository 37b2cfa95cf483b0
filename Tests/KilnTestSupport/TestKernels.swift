import Foundation
import KilnCodegen
import KilnHAL
import Synchronization

/// Small real kernels, written once in GLSL (Vulkan) and once in C (CPU device), with the same
/// interface, so one conformance suite can run them on every device.
public enum TestKernel: String, Sendable, CaseIterable {
  /// `y[i] = x[i] * scale + bias` for `i < n`; bindings (x, y); push constants (n, scale, bias).
  case scaleAdd = "scale_add"
  /// `x[i] = x[i] * 3 + 1` (uint32, wrapping) for `i < n`; binding (x); push constant (n).
  case step = "step"
  /// `x[i] += 1` (uint32) for `i < n`; binding (x); push constant (n).
  case increment = "increment"

  public var bindingCount: Int { self == .scaleAdd ? 2 : 1 }
  public var pushConstantWords: Int { self == .scaleAdd ? 3 : 1 }
  /// Elements per workgroup.
  public static let workgroupSize = 64

  var glsl: String {
    switch self {
    case .scaleAdd:
      return """
        #version 450
        layout(local_size_x = 64) in;
        layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
        layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };
        layout(push_constant) uniform Push { uint n; float scale; float bias; } pc;
        void main() {
          for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += gl_NumWorkGroups.x * 64u) y[i] = x[i] * pc.scale + pc.bias;
        }
        """
    case .step, .increment:
      let body = self == .step ? "x[i] = x[i] * 3u + 1u;" : "x[i] += 1u;"
      return """
        #version 450
        layout(local_size_x = 64) in;
        layout(std430, set = 0, binding = 0) buffer X { uint x[]; };
        layout(push_constant) uniform Push { uint n; } pc;
        void main() {
          for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += gl_NumWorkGroups.x * 64u) { \(body) }
        }
        """
    }
  }

  var c: String {
    // Grid-stride, like the GLSL: workgroup g covers elements g*64 + k*64*count + (0..<64).
    let loop = "for (uint64_t g = d->workgroup_begin; g < d->workgroup_end; ++g) for (uint64_t base = g * 64u; base < n; base += 64u * (uint64_t)d->workgroup_count[0]) for (uint64_t i = base; i < base + 64u && i < n; ++i)"
    switch self {
    case .scaleAdd:
      return """
        KILN_CPU_EXPORT void scale_add(const kiln_cpu_dispatch *d) {
          const float *x = (const float *)d->bindings[0];
          float *y = (float *)d->bindings[1];
          uint32_t n = d->push_constants[0];
          float scale, bias;
          memcpy(&scale, &d->push_constants[1], 4);
          memcpy(&bias, &d->push_constants[2], 4);
          \(loop) y[i] = x[i] * scale + bias;
        }
        """
    case .step, .increment:
      let body = self == .step ? "x[i] = x[i] * 3u + 1u;" : "x[i] += 1u;"
      return """
        KILN_CPU_EXPORT void \(rawValue)(const kiln_cpu_dispatch *d) {
          uint32_t *x = (uint32_t *)d->bindings[0];
          uint32_t n = d->push_constants[0];
          \(loop) { \(body) }
        }
        """
    }
  }

  /// GLSL names its entry point `main`; the C kernel is named after the case.
  func entryPointName(for format: ExecutableFormat) -> String {
    format == .spirv ? "main" : rawValue
  }
}

/// Builds test kernels for a device (SPIR-V via glslang, shared objects via clang), cached.
public enum TestKernels {
  private static let cache = Mutex<[String: ExecutableSpec]>([:])

  public static func spec(_ kernel: TestKernel, for device: any Device) throws -> ExecutableSpec {
    let format: ExecutableFormat = device.info.driver == "vulkan" ? .spirv : .sharedObject
    let key = "\(kernel.rawValue)-\(format.rawValue)"
    if let cached = cache.withLock({ $0[key] }) { return cached }
    let code: [UInt8]
    switch format {
    case .spirv:
      code = try GLSLCompiler().compileToBytes(kernel.glsl, name: kernel.rawValue)
    case .sharedObject:
      let source = NativeToolchain.kilnCPUABIHeader + "\n#include <string.h>\nKILN_CPU_DEFINE_ABI_VERSION();\n" + kernel.c
      code = try NativeToolchain().compileSharedObject(source: source, flags: [], name: kernel.rawValue)
    }
    let spec = ExecutableSpec(
      format: format, code: code,
      entryPoints: [
        EntryPoint(
          name: kernel.entryPointName(for: format), bindingCount: kernel.bindingCount,
          pushConstantWords: kernel.pushConstantWords)
      ])
    cache.withLock { $0[key] = spec }
    return spec
  }

  public static func executable(_ kernel: TestKernel, on device: any Device) throws -> any Executable {
    try device.makeExecutable(spec(kernel, for: device))
  }

  /// Workgroups for `n` elements: one per 64 elements, at most 65535 (the kernels stride over the rest).
  public static func workgroups(for n: Int) -> WorkgroupCount {
    WorkgroupCount(min((n + TestKernel.workgroupSize - 1) / TestKernel.workgroupSize, 65535))
  }
}

extension Array where Element == Float {
  /// Little-endian bytes.
  public var bytes: [UInt8] { withUnsafeBytes { [UInt8]($0) } }
}

extension Array where Element == UInt32 {
  public var bytes: [UInt8] { withUnsafeBytes { [UInt8]($0) } }
}

extension Array where Element == UInt8 {
  public func asFloats() -> [Float] {
    withUnsafeBytes { raw in (0..<count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
  }

  public func asUInt32s() -> [UInt32] {
    withUnsafeBytes { raw in (0..<count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) } }
  }
}
