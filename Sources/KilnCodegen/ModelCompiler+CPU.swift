import Dispatch
import Foundation
import KilnBundle
import KilnCompiler
import KilnIR
import Synchronization

// The CPU target's build: `cpu-source` starts the C compiler for each variant in the background
// and `codegen-cpu` waits for them and adds the shared objects to the bundle.
extension ModelCompiler {
  /// The CPU target's shared objects, being built in the background (while the Vulkan target's
  /// shaders compile and the weights are packed); `emitCPU` waits for them.
  final class CPUBuild: Sendable {
    let entryPoints: [String]
    let variants: [String]
    let results = Mutex<[Int: Result<[UInt8], Error>]>([:])
    let group = DispatchGroup()
    init(entryPoints: [String], variants: [String]) {
      self.entryPoints = entryPoints
      self.variants = variants
    }
  }

  /// Starts building one C translation unit as an x86-64-v3 variant (preferred) and a baseline
  /// variant, each in its own C compiler process; nil for a model without kernels.
  func startCPUBuild(plan: DispatchPlan, schedules: [CPUSchedule]) throws -> CPUBuild? {
    // A model whose outputs are all copies (or constants) needs no code at all.
    if plan.kernels.isEmpty { return nil }
    let source = CKernel.translationUnit(for: plan.kernels, schedules: schedules)
    if let directory = options.dumpDirectory {
      try source.write(to: directory.appendingPathComponent("cpu-kernels.c"), atomically: true, encoding: .utf8)
    }
    let toolchain = try NativeToolchain()
    #if arch(x86_64)
      let known = [("x86-64-v3", ["-march=x86-64-v3"]), ("baseline", ["-march=x86-64"])]
    #else
      let known = [("baseline", [String]())]
    #endif
    let variants = known.filter { options.cpuVariants.contains($0.0) }
    guard !variants.isEmpty else {
      throw CodegenError(.invalidInput, "no buildable CPU variant among \(options.cpuVariants)")
    }
    let common = ["-fwrapv", "-fno-math-errno", "-ffp-contract=off"] + options.cpuFlags
    let build = CPUBuild(entryPoints: plan.kernels.map(\.name), variants: variants.map(\.0))
    let modelName = options.modelName
    // A thread of its own per variant, not a work item: the shaders queued before would otherwise
    // hold the C compiler, the longest job, back until they are all done.
    for (index, variant) in variants.enumerated() {
      build.group.enter()
      let cache = options.cache
      let thread = Thread {
        let flags = common + variant.1
        let key = KernelCache.key("cpu-\(variant.0)", [toolchain.identity, flags.joined(separator: " "), source])
        let result = Result {
          if let cached = cache?.load(key, verify: { $0.starts(with: [0x7f, 0x45, 0x4c, 0x46]) }) { return cached }
          let code = try toolchain.compileSharedObject(source: source, flags: flags, name: "\(modelName)-\(variant.0)")
          cache?.store(key, code)
          return code
        }
        build.results.withLock { $0[index] = result }
        build.group.leave()
      }
      thread.start()
    }
    return build
  }

  /// Waits for `build` and adds its objects; returns the preferred variant's executable index.
  func emitCPU(_ build: CPUBuild?, writer: inout BundleWriter, manifest: inout Manifest) throws -> Int {
    guard let build else { return -1 }
    build.group.wait()
    let compiled = build.results.withLock { $0 }
    var first = -1
    for (index, variant) in build.variants.enumerated() {
      guard let result = compiled[index] else { throw CodegenError(.internal, "CPU variant \(variant) was not built") }
      let section = writer.addExecutable(try result.get())
      manifest.executables.append(
        Manifest.ExecutableEntry(target: "cpu", format: "elf-x86_64", section: section, entryPoints: build.entryPoints, variant: variant))
      if first < 0 { first = manifest.executables.count - 1 }
    }
    return first
  }
}
