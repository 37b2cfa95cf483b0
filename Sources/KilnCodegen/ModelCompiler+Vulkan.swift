import Dispatch
import Foundation
import KilnBundle
import KilnCompiler
import KilnIR
import KilnSPIRV
import Synchronization

// The Vulkan target's passes: `schedule-vulkan`, `vulkan-sources` (starts the shader builds in
// the background) and `codegen-vulkan` (waits for them and adds the modules to the bundle).
extension ModelCompiler {

  /// One kernel's Vulkan code for one device class: its GLSL and its dispatches (specialization
  /// constants and workgroups; a split-K contraction has two), and the scratch bytes it needs.
  struct VulkanKernelCode: Sendable {
    var source: String
    /// The shader of the kernel under a neutral name: kernels with the same one share a module.
    var key: String
    var dispatches: [(specialization: [UInt32]?, workgroups: [Int], scratch: ProgramBuilder.KernelDispatch.Scratch)]
    var scratchBytes = 0

    init(_ kernel: Kernel, schedule: VulkanSchedule, maximumBindingBytes: Int) {
      let (neutral, renamed) = schedule.neutral(kernel, named: "kernel")
      key = Self.source(renamed, neutral, maximumBindingBytes)
      source = Self.source(kernel, schedule, maximumBindingBytes)
      switch schedule {
      case .cooperativeMatrix(let coop):
        scratchBytes = coop.scratchBytes
        dispatches = Self.phases(coop)
      case .sharedTiles(let shared):
        scratchBytes = shared.scratchBytes
        dispatches = Self.phases(shared)
      case .registerTiles(let template):
        dispatches = [(nil, template.workgroups, .none)]
      case .program(let program):
        scratchBytes = program.scratchBytes
        dispatches = [(nil, GLSLKernel.workgroups(invocations: program.invocations), program.scratch > 0 ? .readsAndWrites : .none)]
      case .perElement:
        let groups = (kernel.output.elementCount + GLSLKernel.workgroupSize - 1) / GLSLKernel.workgroupSize
        let x = min(groups, 65535)
        dispatches = [(nil, [x, (groups + x - 1) / x, 1], .none)]
      }
    }

    static func source(_ kernel: Kernel, _ schedule: VulkanSchedule, _ maximumBindingBytes: Int) -> String {
      switch schedule {
      case .cooperativeMatrix(let coop): coop.source()
      case .sharedTiles(let shared): shared.source()
      case .registerTiles(let template): template.source()
      case .perElement: GLSLKernel.source(for: kernel, maximumBindingBytes: maximumBindingBytes)
      case .program(let program): GLSLKernel.programSource(for: kernel, program: program, maximumBindingBytes: maximumBindingBytes)
      }
    }

    /// A shared-memory contraction's dispatches: its GEMM phase and, with split-K, the reduce
    /// phase that reads the slices the first one wrote to scratch.
    static func phases(
      _ contraction: some TiledContraction
    ) -> [(specialization: [UInt32]?, workgroups: [Int], scratch: ProgramBuilder.KernelDispatch.Scratch)] {
      let phase = { (p: Int) in (contraction.specializationConstants(phase: p), contraction.workgroups(phase: p)) }
      return contraction.split > 1
        ? [(phase(0).0, phase(0).1, .writes), (phase(1).0, phase(1).1, .reads)]
        : [(phase(0).0, phase(0).1, .none)]
    }
  }

  /// The Vulkan target's shaders, being compiled in the background: one SPIR-V module per
  /// distinct kernel source over all device classes (kernels with identical source share one, and
  /// a kernel both classes compile alike is compiled once), each its own work item.
  final class VulkanBuild: Sendable {
    let classes: [VulkanClass]
    /// Per class, per kernel.
    let code: [[VulkanKernelCode]]
    /// Per class, per kernel, the index into `unique` of the module it uses.
    let slotOf: [[Int]]
    /// The (class, kernel) whose source each module compiles.
    let unique: [(deviceClass: Int, kernel: Int)]
    let results = Mutex<[Int: Result<[UInt8], Error>]>([:])
    let group = DispatchGroup()
    init(classes: [VulkanClass], code: [[VulkanKernelCode]], slotOf: [[Int]], unique: [(deviceClass: Int, kernel: Int)]) {
      self.classes = classes
      self.code = code
      self.slotOf = slotOf
      self.unique = unique
    }
  }

  /// `plans`: per device class (they differ only in the operand types of `--precision fp16`);
  /// `schedules`: per class, per kernel.
  func startVulkanBuild(plans: [DispatchPlan], schedules: [[VulkanSchedule]]) -> VulkanBuild {
    let plan = plans[0]
    // Kernel names differ; the shader body does not mention them except in a comment line.
    // Contractions use the hand-written templates (shaders/matmul_tiled.comp on CPU-class devices,
    // shaders/matmul_shared.comp on GPUs, shaders/matmul_coopmat.comp on GPUs with matrix units),
    // the rest the generic one-invocation-per-element form.
    let classes = options.resolvedVulkanClasses
    let bindingBytes = options.vulkanMaximumBindingBytes
    let code = zip(plans, schedules).map { plan, schedules in
      zip(plan.kernels, schedules).map { VulkanKernelCode($0, schedule: $1, maximumBindingBytes: bindingBytes) }
    }
    var slotOfBody: [String: Int] = [:]
    var unique: [(deviceClass: Int, kernel: Int)] = []
    var bodies: [String] = []
    var slotOf: [[Int]] = []
    for (c, kernels) in code.enumerated() {
      var slots: [Int] = []
      for (index, kernel) in kernels.enumerated() {
        let body = kernel.key
        if let slot = slotOfBody[body] {
          slots.append(slot)
        } else {
          slotOfBody[body] = unique.count
          slots.append(unique.count)
          unique.append((c, index))
          bodies.append(body)
        }
      }
      slotOf.append(slots)
    }
    let build = VulkanBuild(classes: classes, code: code, slotOf: slotOf, unique: unique)
    let names = plan.kernels.map(\.name)
    let (cache, distinct, optimizeSPIRV) = (options.cache, bodies, options.optimizeSPIRV)
    for (slot, origin) in unique.enumerated() {
      let source = code[origin.deviceClass][origin.kernel].source
      DispatchQueue.global().async(group: build.group) {
        let compiler = GLSLCompiler(optimization: optimizeSPIRV ? .performance : .size)
        // Keyed by the body: kernels of other models with the same code share the entry.
        let key = KernelCache.key("spirv", [compiler.identity, distinct[slot]])
        let result = Result {
          if let cached = cache?.load(key, verify: compiler.isValid) {
            return cached
          }
          let code = try compiler.compileToBytes(source, name: names[origin.kernel])
          cache?.store(key, code)
          return code
        }
        build.results.withLock { $0[slot] = result }
      }
    }
    return build
  }

  /// Waits for `build`, adds its modules and executables, and returns each device class's dispatches.
  func emitVulkan(
    _ build: VulkanBuild?, plan: DispatchPlan, writer: inout BundleWriter, manifest: inout Manifest
  ) throws -> [VulkanProgramCode] {
    guard let build else { throw CodegenError(.internal, "the Vulkan target was not started") }
    build.group.wait()
    let compiled = build.results.withLock { $0 }
    var sectionOfSlot: [Int] = []
    for (slot, origin) in build.unique.enumerated() {
      guard let result = compiled[slot] else { throw CodegenError(.internal, "kernel \(origin.kernel) was not compiled") }
      let code = try result.get()
      sectionOfSlot.append(writer.addExecutable(code))
      if let directory = options.dumpDirectory, let module = try? SPIRVModule(bytes: code),
        let text = try? SPIRVTools.disassemble(module.words)
      {
        try text.write(to: directory.appendingPathComponent("\(dumpName(origin.deviceClass, origin.kernel)).spvasm"), atomically: true, encoding: .utf8)
      }
    }
    if let directory = options.dumpDirectory {
      for (c, kernels) in build.code.enumerated() {
        for (index, kernel) in kernels.enumerated() {
          try kernel.source.write(to: directory.appendingPathComponent("\(dumpName(c, index)).comp"), atomically: true, encoding: .utf8)
        }
      }
    }
    // Dump files of the first class keep the kernel's name; the others add the class.
    func dumpName(_ c: Int, _ kernel: Int) -> String {
      plan.kernels[kernel].name + (c > 0 ? ".\(build.classes[c].rawValue)" : "")
    }
    // One executable per module and set of specialization constants.
    var executableOf: [String: Int] = [:]
    func executable(slot: Int, specialization: [UInt32]?) -> Int {
      let key = "\(slot):\(specialization ?? [])"
      if let index = executableOf[key] { return index }
      manifest.executables.append(
        Manifest.ExecutableEntry(
          target: "vulkan", format: "spirv", section: sectionOfSlot[slot], entryPoints: ["main"], specializationConstants: specialization))
      executableOf[key] = manifest.executables.count - 1
      return manifest.executables.count - 1
    }
    return build.classes.indices.map { c in
      let code = build.code[c]
      let dispatches = plan.kernels.indices.map { kernel in
        code[kernel].dispatches.map {
          ProgramBuilder.KernelDispatch(
            executable: executable(slot: build.slotOf[c][kernel], specialization: $0.specialization), entryPoint: "main",
            workgroups: $0.workgroups, scratch: $0.scratch)
        }
      }
      return VulkanProgramCode(
        deviceClass: build.classes[c], dispatches: dispatches, scratchBytes: code.map(\.scratchBytes).max() ?? 0)
    }
  }

  /// A Vulkan program's dispatches per kernel, once its modules are in the bundle.
  struct VulkanProgramCode {
    var deviceClass: VulkanClass
    var dispatches: [[ProgramBuilder.KernelDispatch]]
    var scratchBytes: Int
  }
}
