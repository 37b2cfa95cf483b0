import Dispatch
import Foundation
import KilnBundle
import KilnCompiler
import KilnIR
import KilnSPIRV
import Synchronization

/// The targets a bundle can carry code for.
public enum Target: String, Sendable, CaseIterable {
  case vulkan
  case cpu
}

/// The storage precision of the Vulkan programs' contraction weights; arithmetic is float32.
public enum Precision: String, Sendable, CaseIterable {
  case fp32
  case fp16
}

public struct CompileOptions: Sendable {
  public var targets: [Target]
  /// Passes after which to print the IR (`all` for every pass).
  public var printIRAfter: Set<String>
  /// Where to write per-pass IR, each kernel's GLSL, SPIR-V disassembly and the CPU source.
  public var dumpDirectory: URL?
  public var modelName: String
  /// Receives `--print-ir-after` output (default: standard error).
  public var printer: @Sendable (String) -> Void
  /// CPU variants to build, best first (`x86-64-v3`, `baseline`); the runtime picks the best one
  /// the host runs. Test runs that only need correctness build `baseline` alone.
  public var cpuVariants: [String] = CompileOptions.knownCPUVariants
  public static let knownCPUVariants = ["x86-64-v3", "baseline"]
  /// Extra flags for the C compiler (e.g. `-O1` to compile faster).
  public var cpuFlags: [String] = []
  /// Whether CPU contractions use the blocked GEMM (`CMatMulTemplate`); `KILN_CPU_GEMM=0` in the
  /// environment turns it off, to compare with the generic per-element loops.
  public var cpuGEMM = ProcessInfo.processInfo.environment["KILN_CPU_GEMM"] != "0"
  /// Compiled kernels to reuse, and to add to (nil: compile everything).
  public var cache: KernelCache?
  /// The Vulkan device classes to build a program for; the runtime runs the program of the
  /// device's class. With one class only, that program serves every Vulkan device. nil: `cpu`
  /// and `gpu`, and `coopmat` too with `--precision fp16`.
  public var vulkanClasses: [VulkanClass]?
  /// `fp16`: the Vulkan gpu and coopmat classes read contraction weights as float16
  /// (`HalfPrecisionWeights`); the coopmat class rounds every contraction operand to float16.
  public var precision: Precision = .fp32
  /// The coopmat class's contractions emulate their fragments with ordinary arithmetic, so that
  /// devices without cooperative matrices can test the class (`CoopMatTemplate.emulated`).
  public var emulateCooperativeMatrix = false
  /// The Vulkan programs bind an operand larger than this in parts of at most this many bytes
  /// (`VulkanBindingLayout`): Vulkan guarantees a `maxStorageBufferRange` of 2^27 only. Tests set
  /// it lower to run the split paths on small tensors; a multiple of 256 (offset alignment).
  public var vulkanMaximumBindingBytes = 1 << 27

  /// `vulkanClasses`, or the default for `precision`.
  public var resolvedVulkanClasses: [VulkanClass] {
    vulkanClasses ?? (precision == .fp16 ? [.cpu, .gpu, .coopmat] : [.cpu, .gpu])
  }

  public init(
    targets: [Target] = Target.allCases, printIRAfter: Set<String> = [], dumpDirectory: URL? = nil,
    modelName: String = "model", printer: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
  ) {
    self.targets = targets
    self.printIRAfter = printIRAfter
    self.dumpDirectory = dumpDirectory
    self.modelName = modelName
    self.printer = printer
  }
}

/// A compiled model: the manifest and the sections a `BundleWriter` writes.
public struct CompiledModel: Sendable {
  public var manifest: Manifest
  public var writer: BundleWriter
  public var kernelCount: Int
  public var timings: [(pass: String, seconds: Double)]
}

/// The compile pipeline, as an ordered list of named passes:
///
/// 1. `decompose` — ops whose per-element form would nest reductions (Softmax, LayerNorm, ...)
///    become primitive ops.
/// 2. `fold-batchnorm` — inference BatchNormalization after a constant-weight Conv folds into it.
/// 3. `form-dispatch-regions` — every materialised tensor gets one kernel; elementwise and
///    movement ops fuse into the root (MatMul, Conv, reduction) they feed or follow.
/// 4. `plan-memory` — intermediates packed into one transient arena by liveness.
/// 5. `codegen-vulkan`, `codegen-cpu` — GLSL -> SPIR-V (validated, optimised) per kernel; one C
///    translation unit per model built into x86-64-v3 and baseline shared objects.
/// 6. `program` — the dispatch program per target, with a barrier only before a real hazard.
public struct ModelCompiler: Sendable {
  public static let passNames = [
    "decompose", "fold-batchnorm", "form-dispatch-regions", "plan-memory", "fp16-weights", "schedule-vulkan", "schedule-cpu",
    "codegen-vulkan", "codegen-cpu", "program",
  ]

  public var options: CompileOptions

  public init(options: CompileOptions = CompileOptions()) {
    self.options = options
  }

  public func compile(_ input: Graph) throws -> CompiledModel {
    var timings: [(String, Double)] = []
    let clock = ContinuousClock()
    var passIndex = 0
    // A step's wall time, for --time-passes.
    func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
      let start = clock.now
      let result = try body()
      let elapsed = clock.now - start
      timings.append((name, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
      return result
    }
    // A pass: timed, and its IR printed or dumped when asked for.
    func run<T>(_ name: String, _ body: () throws -> T, describe: (T) -> String) throws -> T {
      let result = try measure(name, body)
      passIndex += 1
      if options.printIRAfter.contains("all") || options.printIRAfter.contains(name) {
        options.printer("// ----- IR after \(name) -----\n" + describe(result))
      }
      if let directory = options.dumpDirectory {
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(String(format: "%02d-%@.ir", passIndex, name))
        try describe(result).write(to: file, atomically: true, encoding: .utf8)
      }
      return result
    }

    let vulkanClasses = options.resolvedVulkanClasses
    if options.targets.contains(.vulkan), vulkanClasses.isEmpty {
      throw CodegenError(.invalidInput, "the Vulkan target needs at least one device class")
    }
    if options.targets.contains(.vulkan), vulkanClasses.contains(.coopmat), options.precision != .fp16 {
      throw CodegenError(
        .invalidInput, "the Vulkan coopmat class rounds contraction operands to float16: it needs --precision fp16")
    }
    let decomposed = try run("decompose", { try Decompose.run(input) }, describe: { $0.description })
    let folded = try run("fold-batchnorm", { FoldBatchNorm.run(decomposed) }, describe: { $0.description })
    let plan = try run("form-dispatch-regions", { try FormDispatchRegions.run(folded) }, describe: describePlan)
    let memory = try run("plan-memory", { try PlanMemory.run(plan) }, describe: { describeMemory($0, plan: plan) })
    // With --precision fp16 the gpu and coopmat classes' programs bind float16 copies of their
    // contraction weights (their own plan and memory plan; the cpu class keeps float32: scalar
    // float16 loads made lavapipe's SqueezeNet 2x slower). The CPU plan shares the graph the
    // copies were added to, so the plans' new constants never share a value id.
    var vulkan = [(plan: DispatchPlan, memory: MemoryPlan)](repeating: (plan, memory), count: vulkanClasses.count)
    var cpuBase = plan
    let halfClasses = vulkanClasses.indices.filter { vulkanClasses[$0] != .cpu }
    if options.precision == .fp16, !(options.targets.contains(.vulkan) && !halfClasses.isEmpty) {
      options.printer("note: --precision fp16 applies to the Vulkan gpu and coopmat classes' programs only; this bundle has neither, so it is all fp32")
    }
    if options.targets.contains(.vulkan), options.precision == .fp16, !halfClasses.isEmpty {
      let half = try run("fp16-weights", { try Self.verified(HalfPrecisionWeights.run(plan)) }, describe: { "\($0.count) constants stored as float16 for Vulkan GPUs, \($0.bytesSaved) bytes saved" })
      if half.count > 0 {
        let halfMemory = try PlanMemory.run(half.plan)
        for c in halfClasses { vulkan[c] = (half.plan, halfMemory) }
        cpuBase.graph = half.plan.graph
      }
    }
    // The shaders compile in the background from here on, and the C compiler from when its source
    // is ready: on a 2-core machine the weight pre-packing and packing run meanwhile.
    let vulkanSchedules = options.targets.contains(.vulkan) ? try run("schedule-vulkan", { scheduleVulkan(plans: vulkan.map(\.plan)) }, describe: { schedules in zip(vulkanClasses, zip(vulkan, schedules)).map { c, pair in "class \(c.rawValue):\n" + describeSchedules(pair.0.plan, pair.1.map(\.summary)) }.joined(separator: "\n") }) : []
    let vulkanBuild = options.targets.contains(.vulkan) ? measure("vulkan-sources") { startVulkanBuild(plans: vulkan.map(\.plan), schedules: vulkanSchedules) } : nil
    defer { vulkanBuild?.group.wait() }

    // The CPU program binds its GEMM kernels' constant operands pre-packed (its own plan and
    // memory plan); the bundle ships the constants some program binds, each once.
    var cpu = (plan: cpuBase, memory: memory, schedules: [CPUSchedule]())
    if options.targets.contains(.cpu) {
      let scheduled = try run("schedule-cpu", { try Self.verified(WeightPrepacking.run(cpuBase, gemm: options.cpuGEMM)) }, describe: { describeSchedules($0.plan, $0.schedules.map(\.summary), note: "\($0.count) constants pre-packed for the CPU, \($0.bytes) bytes") })
      cpu = (scheduled.plan, scheduled.count > 0 ? try PlanMemory.run(scheduled.plan) : memory, scheduled.schedules)
    }
    var weights: [ValueID] = []
    if options.targets.contains(.vulkan) {
      for (_, memory) in vulkan { weights += memory.weights.filter { !weights.contains($0) } }
    }
    if options.targets.contains(.cpu) { weights += cpu.memory.weights.filter { !weights.contains($0) } }
    let weightIndex = Dictionary(uniqueKeysWithValues: weights.enumerated().map { ($1, $0) })

    let cpuBuild = options.targets.contains(.cpu) ? try measure("cpu-source") { try startCPUBuild(plan: cpu.plan, schedules: cpu.schedules) } : nil
    defer { cpuBuild?.group.wait() }
    var writer = BundleWriter()
    var manifest = Manifest(
      modelName: options.modelName, producer: "kiln", createdBy: "kiln \(KilnCodegenVersion.string)")
    var packer = WeightPacker()
    measure("pack-weights") {
      for id in weights {
        guard let data = cpu.plan.graph.constants[id] else { continue }
        packer.append(name: "\(cpu.plan.graph[id].name)#\(id.index)", bytes: data.bytes.isEmpty ? [0, 0, 0, 0] : data.bytes)
      }
    }
    var programs: [Manifest.Program] = []
    for target in options.targets {
      switch target {
      case .vulkan:
        let classes = try run("codegen-vulkan", { try emitVulkan(vulkanBuild, plan: plan, writer: &writer, manifest: &manifest) }, describe: { "\($0.count) device classes, \(manifest.executables.count) SPIR-V executables" })
        // One class alone serves every Vulkan device, so its program names none.
        for (code, own) in zip(classes, vulkan) {
          programs.append(try run("program", { try ProgramBuilder.program(target: "vulkan", deviceClass: classes.count > 1 ? code.deviceClass.rawValue : nil, plan: own.plan, memory: own.memory, weightIndex: { weightIndex[$0] }, scratchBytes: code.scratchBytes, maximumBindingBytes: options.vulkanMaximumBindingBytes, dispatches: { code.dispatches[$0] }) }, describe: describeProgram))
        }
      case .cpu:
        let index = try run("codegen-cpu", { try emitCPU(cpuBuild, writer: &writer, manifest: &manifest) }, describe: { "CPU executable \($0)" })
        let scratchBytes = cpu.schedules.map(\.scratchBytes).max() ?? 0
        programs.append(try run("program", { try ProgramBuilder.program(target: "cpu", plan: cpu.plan, memory: cpu.memory, weightIndex: { weightIndex[$0] }, scratchBytes: scratchBytes, dispatches: { [ProgramBuilder.KernelDispatch(executable: index, entryPoint: cpu.plan.kernels[$0].name, workgroups: [cpu.schedules[$0].workgroups(for: cpu.plan.kernels[$0]), 1, 1], scratch: cpu.schedules[$0].scratchBytes > 0 ? .readsAndWrites : .none)] }) }, describe: describeProgram))
      }
    }
    if packer.count > 0 {
      let section = writer.addWeights(packer)
      manifest.weights = packer.entries(section: section)
    }
    let graph = plan.graph
    func signature(_ id: ValueID) -> Manifest.TensorSignature {
      Manifest.TensorSignature(name: graph[id].name, dtype: graph.type(of: id).dtype.rawValue, shape: graph.type(of: id).shape)
    }
    // Outputs whose extent the data decides name the output that holds it.
    let counts = Set(graph.extents.values.map(\.count))
    let outputs = graph.outputs.map { id in
      var output = signature(id)
      if let extent = graph.extents[id] {
        output.dynamicAxis = extent.axis
        output.extentOutput = graph.outputs.firstIndex(of: extent.count)
      }
      if counts.contains(id) { output.isExtent = true }
      return output
    }
    manifest.functions = [Manifest.Function(name: "main", inputs: graph.inputs.map(signature), outputs: outputs, programs: programs)]
    options.cache?.prune()
    return CompiledModel(manifest: manifest, writer: writer, kernelCount: plan.kernels.count, timings: timings)
  }

  /// `result` after checking every kernel of its plan (`KernelVerifier`): the weight passes
  /// rebind operands, and a kernel must still read them as they are bound.
  static func verified<R: PlanRewrite>(_ result: R) throws -> R {
    for kernel in result.plan.kernels { try KernelVerifier().verify(kernel) }
    return result
  }

  // MARK: Targets

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

  /// The `schedule-vulkan` pass: each kernel's schedule in each device class's program (`plans`:
  /// per class, as for `startVulkanBuild`).
  private func scheduleVulkan(plans: [DispatchPlan]) -> [[VulkanSchedule]] {
    zip(options.resolvedVulkanClasses, plans).map { deviceClass, plan in
      plan.kernels.map {
        VulkanSchedule.choose(
          $0, deviceClass: deviceClass, emulateCooperativeMatrix: options.emulateCooperativeMatrix,
          maximumBindingBytes: options.vulkanMaximumBindingBytes)
      }
    }
  }

  /// `plans`: per device class (they differ only in the operand types of `--precision fp16`);
  /// `schedules`: per class, per kernel.
  private func startVulkanBuild(plans: [DispatchPlan], schedules: [[VulkanSchedule]]) -> VulkanBuild {
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
    let (cache, distinct) = (options.cache, bodies)
    for (slot, origin) in unique.enumerated() {
      let source = code[origin.deviceClass][origin.kernel].source
      DispatchQueue.global().async(group: build.group) {
        let compiler = GLSLCompiler()
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
  private func emitVulkan(
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
  private func startCPUBuild(plan: DispatchPlan, schedules: [CPUSchedule]) throws -> CPUBuild? {
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
  private func emitCPU(_ build: CPUBuild?, writer: inout BundleWriter, manifest: inout Manifest) throws -> Int {
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

  // MARK: Descriptions (for --print-ir-after and --dump-dir)

  private func describePlan(_ plan: DispatchPlan) -> String {
    var lines: [String] = []
    for (index, step) in plan.steps.enumerated() {
      let kernel = plan.kernels[step.kernel]
      let inputs = step.inputs.map { plan.graph[$0].name }.joined(separator: ", ")
      lines.append("dispatch \(index): \(kernel.name) -> '\(plan.graph[step.output].name)' \(kernel.output.dtype.rawValue)\(kernel.shape) <- [\(inputs)]  fuses \(kernel.sourceOps.joined(separator: ", "))")
      lines.append(KernelPrinter().print(kernel).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    }
    for copy in plan.copies { lines.append("copy '\(plan.graph[copy.source].name)' -> output \(copy.destination)") }
    return lines.joined(separator: "\n")
  }

  /// One line per kernel: its name, region kind and schedule.
  private func describeSchedules(_ plan: DispatchPlan, _ summaries: [String], note: String? = nil) -> String {
    let lines = zip(plan.kernels, summaries).map { kernel, summary in "\(kernel.name) [\(kernel.region.kind.rawValue)]: \(summary)" }
    return (lines + (note.map { [$0] } ?? [])).joined(separator: "\n")
  }

  private func describeMemory(_ memory: MemoryPlan, plan: DispatchPlan) -> String {
    var lines = ["arena \(memory.arenaSize) bytes, \(memory.weights.count) weights"]
    for id in memory.locations.keys.sorted() {
      guard let location = memory.locations[id] else { continue }
      lines.append("'\(plan.graph[id].name)' \(plan.graph.type(of: id).byteCount ?? 0) B at \(location)")
    }
    return lines.joined(separator: "\n")
  }

  private func describeProgram(_ program: Manifest.Program) -> String {
    var lines = ["program \(program.label): \(program.buffers.count) buffers, \(program.commands.count) commands"]
    for command in program.commands {
      switch command {
      case .dispatch(let d):
        lines.append("  dispatch exe \(d.executable) '\(d.entryPoint)' groups \(d.workgroups) bindings \(d.bindings.map { "\($0.buffer)@\($0.offset)+\($0.length)" })")
      case .barrier: lines.append("  barrier")
      case .copy(let c): lines.append("  copy \(c.source.buffer)@\(c.source.offset) -> \(c.destination.buffer)@\(c.destination.offset) (\(c.source.length) B)")
      case .fill(let f): lines.append("  fill \(f.target.buffer)@\(f.target.offset)+\(f.target.length)")
      }
    }
    return lines.joined(separator: "\n")
  }
}

/// A pass result that carries a rewritten dispatch plan.
protocol PlanRewrite {
  var plan: DispatchPlan { get }
}

extension HalfPrecisionWeights.Result: PlanRewrite {}
extension WeightPrepacking.Result: PlanRewrite {}

public enum KilnCodegenVersion {
  public static let string = "0.1.0"
}
