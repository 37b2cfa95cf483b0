import ArgumentParser
import Foundation
import KilnCodegen
import KilnHAL

/// `kiln devices --check`: compiles a small kernel for each device (GLSL -> SPIR-V in-process for
/// Vulkan, C -> shared object for the CPU device), runs it on 1M elements, and checks every value.
enum DeviceCheck {
  static let glsl = """
    #version 450
    layout(local_size_x = 64) in;
    layout(std430, set = 0, binding = 0) readonly buffer X { float x[]; };
    layout(std430, set = 0, binding = 1) writeonly buffer Y { float y[]; };
    layout(push_constant) uniform Push { uint n; float a; } pc;
    void main() {
      uint i = gl_GlobalInvocationID.x;
      if (i < pc.n) y[i] = pc.a * x[i] + x[i] * x[i];
    }
    """

  static let c = """
    #include <string.h>
    KILN_CPU_DEFINE_ABI_VERSION();
    KILN_CPU_EXPORT void check_kernel(const kiln_cpu_dispatch *d) {
      const float *x = (const float *)d->bindings[0];
      float *y = (float *)d->bindings[1];
      uint32_t n = d->push_constants[0];
      float a;
      memcpy(&a, &d->push_constants[1], 4);
      for (uint32_t g = d->workgroup_begin; g < d->workgroup_end; ++g)
        for (uint32_t i = g * 64u; i < g * 64u + 64u && i < n; ++i) y[i] = a * x[i] + x[i] * x[i];
    }
    """

  struct Result {
    var compileMilliseconds: Double
    var firstRunMilliseconds: Double
    var runMilliseconds: Double
    var elements: Int
  }

  static func run(on device: any Device, elements n: Int = 1 << 20) throws -> Result {
    let clock = ContinuousClock()
    let compileStart = clock.now
    let spec: ExecutableSpec
    if device.info.driver == "vulkan" {
      let code = try GLSLCompiler().compileToBytes(glsl, name: "check_kernel")
      spec = ExecutableSpec(
        format: .spirv, code: code, entryPoints: [EntryPoint(name: "main", bindingCount: 2, pushConstantWords: 2)])
    } else {
      let code = try NativeToolchain().compileSharedObject(
        source: NativeToolchain.kilnCPUABIHeader + c, flags: [], name: "check_kernel")
      spec = ExecutableSpec(
        format: .sharedObject, code: code,
        entryPoints: [EntryPoint(name: "check_kernel", bindingCount: 2, pushConstantWords: 2)])
    }
    let executable = try device.makeExecutable(spec)
    let compileTime = clock.now - compileStart

    let x = (0..<n).map { Float($0 % 1000) * 0.01 - 3 }
    let a: Float = 1.5
    let input = try device.allocator.allocate(byteCount: n * 4, access: .deviceLocal)
    let output = try device.allocator.allocate(byteCount: n * 4, access: .deviceLocal)
    try x.withUnsafeBytes { try device.write($0, to: BufferRange(input)) }
    let commands = try device.makeCommandBuffer()
    try commands.dispatch(
      executable, entryPoint: 0, bindings: [BufferRange(input), BufferRange(output)],
      pushConstants: [UInt32(n), a.bitPattern], workgroups: WorkgroupCount((n + 63) / 64))
    try commands.end()
    let firstStart = clock.now
    try device.submitAndWait(commands)
    let firstTime = clock.now - firstStart
    var best = Duration.seconds(1000)
    for _ in 0..<5 {
      let start = clock.now
      try device.submitAndWait(commands)
      best = min(best, clock.now - start)
    }
    var y = [Float](repeating: 0, count: n)
    try y.withUnsafeMutableBytes { try device.read(BufferRange(output), into: $0) }
    for index in 0..<n {
      let expected = a * x[index] + x[index] * x[index]
      guard abs(y[index] - expected) <= 1e-5 * max(1, abs(expected)) else {
        throw HALError(
          .internal, "\(device.info.shortURI): element \(index) is \(y[index]), expected \(expected)")
      }
    }
    return Result(
      compileMilliseconds: compileTime.milliseconds, firstRunMilliseconds: firstTime.milliseconds,
      runMilliseconds: best.milliseconds, elements: n)
  }
}

extension Duration {
  var milliseconds: Double {
    let (seconds, attoseconds) = components
    return Double(seconds) * 1000 + Double(attoseconds) / 1e15
  }
}

/// `--device-class`, shared by run, bench and conformance.
struct DeviceClassOption: ParsableArguments {
  @Option(
    name: .customLong("device-class"),
    help: ArgumentHelp(
      "Run the bundle's Vulkan program for this device class instead of each device's own (cpu: lavapipe-style, gpu: shared-memory tiles).",
      valueName: "cpu|gpu"))
  var deviceClass: String?

  func validate() throws {
    if let deviceClass, VulkanClass(rawValue: deviceClass) == nil {
      throw ValidationError("--device-class must be one of \(VulkanClass.allCases.map(\.rawValue).joined(separator: ", "))")
    }
  }
}
