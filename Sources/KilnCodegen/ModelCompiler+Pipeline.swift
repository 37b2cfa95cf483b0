import Foundation
import KilnBundle
import KilnCompiler
import KilnIR

/// What the compile pipeline works on: the target-independent state, then each target's plans,
/// schedules and code, then the bundle's parts. Each field is set by the pass named in its
/// comment; a pass that reads a field an earlier pass did not set throws an internal error.
struct CompileState {
  var lowering: LoweringState
  /// `schedule-vulkan`: per Vulkan device class, its plan (float16 weights for the GPU classes
  /// after `fp16-weights`) and memory plan, and each kernel's schedule.
  var vulkan: [(plan: DispatchPlan, memory: MemoryPlan)] = []
  var vulkanSchedules: [[VulkanSchedule]] = []
  /// `vulkan-sources`: the shaders compiling in the background.
  var vulkanBuild: ModelCompiler.VulkanBuild?
  /// `codegen-vulkan`: per class, each kernel's dispatches of the modules added to the bundle.
  var vulkanCode: [ModelCompiler.VulkanProgramCode] = []
  /// `schedule-cpu`: the CPU program's plan (pre-packed constants bound), memory plan and
  /// schedules, and what was packed.
  var cpu: (plan: DispatchPlan, memory: MemoryPlan, schedules: [CPUSchedule], packed: Int, bytes: Int)?
  /// `cpu-source`: the C compiler's runs in the background (nil for a model without kernels).
  var cpuBuild: ModelCompiler.CPUBuild?
  /// `codegen-cpu`: the preferred variant's executable index.
  var cpuExecutable = -1
  /// `pack-weights`: the constants some program binds, each once, in weight order.
  var weights: [ValueID] = []
  var packer = WeightPacker()
  /// `program`: one per target (and Vulkan device class).
  var programs: [Manifest.Program] = []
  var writer = BundleWriter()
  var manifest: Manifest

  init(lowering: LoweringState, manifest: Manifest) {
    self.lowering = lowering
    self.manifest = manifest
  }

  /// The graph every plan's values belong to (the float16 copies' graph holds all the others).
  var graph: Graph { lowering.halfPrecision?.plan.graph ?? lowering.plan?.graph ?? lowering.graph }
}

extension ModelCompiler {
  /// The pass list for these options, in the order it runs:
  ///
  /// 1. `MiddleEnd`'s passes: `decompose`, `fold-batchnorm`, `form-dispatch-regions`,
  ///    `plan-memory`, and `fp16-weights` for the Vulkan GPU classes at `--precision fp16`.
  /// 2. Vulkan: `schedule-vulkan` (each kernel's schedule per device class, chosen once) and
  ///    `vulkan-sources` (GLSL from each schedule, compiled to SPIR-V in the background).
  /// 3. CPU: `schedule-cpu` (each kernel's CPU schedule, packing the constants it reads packed)
  ///    and `cpu-source` (one C translation unit, built per variant in the background).
  /// 4. `pack-weights`: the constants some program binds, each once.
  /// 5. `codegen-vulkan`, `codegen-cpu` (in target order): the compiled code into the bundle.
  /// 6. `program`: the dispatch program per target, with a barrier only before a real hazard.
  /// 7. `manifest`: the weights section and the function's signature.
  ///
  /// In debug builds every pass is followed by `verify` (graph and kernels of every plan).
  func pipeline() -> Pipeline<CompileState> {
    var passes = MiddleEnd.passes(halfPrecisionWeights: usesHalfPrecisionWeights).map { $0.lifted(\CompileState.lowering) }
    if options.targets.contains(.vulkan) {
      passes += [
        Pass("schedule-vulkan", run: scheduleVulkan, describe: describeVulkanSchedules),
        Pass(
          "vulkan-sources", run: { $0.vulkanBuild = startVulkanBuild(plans: $0.vulkan.map(\.plan), schedules: $0.vulkanSchedules) },
          describe: { "\($0.vulkanBuild?.unique.count ?? 0) distinct shaders compiling" }),
      ]
    }
    if options.targets.contains(.cpu) {
      passes += [
        Pass("schedule-cpu", run: scheduleCPU, describe: describeCPUSchedules),
        Pass(
          "cpu-source", run: { state in state.cpuBuild = try startCPUBuild(plan: try Self.require(state.cpu).plan, schedules: state.cpu?.schedules ?? []) },
          describe: { "C translation unit of \($0.cpu?.plan.kernels.count ?? 0) kernels building as \($0.cpuBuild?.variants ?? [])" }),
      ]
    }
    passes.append(Pass("pack-weights", run: packWeights, describe: { "\($0.weights.count) weights, \($0.packer.count) packed" }))
    for target in options.targets {
      switch target {
      case .vulkan:
        passes.append(
          Pass(
            "codegen-vulkan",
            run: { state in
              let plan = try Self.require(state.vulkan.first).plan
              state.vulkanCode = try emitVulkan(state.vulkanBuild, plan: plan, writer: &state.writer, manifest: &state.manifest)
            },
            describe: { "\($0.vulkanCode.count) device classes, \($0.manifest.executables.filter { $0.target == "vulkan" }.count) SPIR-V executables" }))
      case .cpu:
        passes.append(
          Pass(
            "codegen-cpu", run: { $0.cpuExecutable = try emitCPU($0.cpuBuild, writer: &$0.writer, manifest: &$0.manifest) },
            describe: { "CPU executable \($0.cpuExecutable)" }))
      }
    }
    passes.append(Pass("program", run: buildPrograms, describe: { $0.programs.map(Self.describe).joined(separator: "\n") }))
    passes.append(Pass("manifest", run: finishManifest, describe: { Self.describeManifest($0.manifest) }))
    return Pipeline(passes, verify: Self.verify)
  }

  /// The lowering state's invariants and every kernel of every target's plan.
  static func verify(_ state: CompileState) throws {
    // The Vulkan classes' plans are the lowering state's (float32 or float16 weights).
    try MiddleEnd.verify(state.lowering)
    if let cpu = state.cpu { try MiddleEnd.verify(cpu.plan) }
  }

  /// `value`, or an internal error: a pass ran before the one that sets it.
  static func require<T>(_ value: T?, _ what: String = "an earlier pass's result") throws -> T {
    guard let value else { throw CodegenError(.internal, "the pipeline needs \(what) before this pass") }
    return value
  }

  // MARK: Passes

  /// `schedule-vulkan`: each kernel's schedule in each device class's program, chosen once.
  private func scheduleVulkan(_ state: inout CompileState) throws {
    let base = try state.lowering.requirePlanAndMemory()
    state.vulkan = options.resolvedVulkanClasses.map { deviceClass in
      guard deviceClass != .cpu, let half = state.lowering.halfPrecision else { return base }
      return (half.plan, half.memory)
    }
    state.vulkanSchedules = zip(options.resolvedVulkanClasses, state.vulkan).map { deviceClass, own in
      own.plan.kernels.map {
        VulkanSchedule.choose(
          $0, deviceClass: deviceClass, emulateCooperativeMatrix: options.emulateCooperativeMatrix,
          maximumBindingBytes: options.vulkanMaximumBindingBytes)
      }
    }
  }

  /// `schedule-cpu`: each kernel's CPU schedule, with the constants it reads packed
  /// (`WeightPrepacking`). The CPU plan shares the graph the float16 copies were added to, so the
  /// plans' new constants never share a value id.
  private func scheduleCPU(_ state: inout CompileState) throws {
    var (plan, memory) = try state.lowering.requirePlanAndMemory()
    plan.graph = state.graph
    let scheduled = WeightPrepacking.run(plan, gemm: options.cpuGEMM)
    try MiddleEnd.verify(scheduled.plan)
    if scheduled.count > 0 { memory = try PlanMemory.run(scheduled.plan) }
    state.cpu = (scheduled.plan, memory, scheduled.schedules, scheduled.count, scheduled.bytes)
  }

  /// `pack-weights`: the constants the programs bind, each once (Vulkan classes first), copied
  /// into the weights section's packer.
  private func packWeights(_ state: inout CompileState) throws {
    var weights: [ValueID] = []
    for (_, memory) in state.vulkan { weights += memory.weights.filter { !weights.contains($0) } }
    if let cpu = state.cpu { weights += cpu.memory.weights.filter { !weights.contains($0) } }
    let graph = state.cpu?.plan.graph ?? state.graph
    for id in weights {
      guard let data = graph.constants[id] else { continue }
      state.packer.append(name: "\(graph[id].name)#\(id.index)", bytes: data.bytes.isEmpty ? [0, 0, 0, 0] : data.bytes)
    }
    state.weights = weights
  }

  /// `program`: each target's dispatch program, in target order (one per Vulkan device class;
  /// one class alone serves every Vulkan device, so its program names none).
  private func buildPrograms(_ state: inout CompileState) throws {
    let weightIndex = Dictionary(uniqueKeysWithValues: state.weights.enumerated().map { ($1, $0) })
    for target in options.targets {
      switch target {
      case .vulkan:
        let classes = state.vulkanCode
        for (code, own) in zip(classes, state.vulkan) {
          state.programs.append(
            try ProgramBuilder.program(
              target: "vulkan", deviceClass: classes.count > 1 ? code.deviceClass.rawValue : nil, plan: own.plan, memory: own.memory,
              weightIndex: { weightIndex[$0] }, scratchBytes: code.scratchBytes, maximumBindingBytes: options.vulkanMaximumBindingBytes,
              dispatches: { code.dispatches[$0] }))
        }
      case .cpu:
        let cpu = try Self.require(state.cpu)
        let index = state.cpuExecutable
        state.programs.append(
          try ProgramBuilder.program(
            target: "cpu", plan: cpu.plan, memory: cpu.memory, weightIndex: { weightIndex[$0] },
            scratchBytes: cpu.schedules.map(\.scratchBytes).max() ?? 0,
            dispatches: { k in
              let (kernel, schedule) = (cpu.plan.kernels[k], cpu.schedules[k])
              return [
                ProgramBuilder.KernelDispatch(
                  executable: index, entryPoint: kernel.name, workgroups: [schedule.workgroups(for: kernel), 1, 1],
                  scratch: schedule.scratchBytes > 0 ? .readsAndWrites : .none)
              ]
            }))
      }
    }
  }

  /// `manifest`: the weights section and the function: its inputs, and its outputs with the
  /// output holding the extent of each one whose size the data decides.
  private func finishManifest(_ state: inout CompileState) throws {
    if state.packer.count > 0 {
      let section = state.writer.addWeights(state.packer)
      state.manifest.weights = state.packer.entries(section: section)
    }
    let graph = try state.lowering.requirePlan().graph
    func signature(_ id: ValueID) -> Manifest.TensorSignature {
      Manifest.TensorSignature(name: graph[id].name, dtype: graph.type(of: id).dtype.rawValue, shape: graph.type(of: id).shape)
    }
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
    state.manifest.functions = [
      Manifest.Function(name: "main", inputs: graph.inputs.map(signature), outputs: outputs, programs: state.programs)
    ]
  }

  // MARK: Descriptions (for --print-ir-after and --dump-dir)

  private func describeVulkanSchedules(_ state: CompileState) -> String {
    zip(options.resolvedVulkanClasses, zip(state.vulkan, state.vulkanSchedules)).map { c, pair in
      "class \(c.rawValue):\n" + MiddleEnd.describeSchedules(pair.0.plan, pair.1.map(\.summary))
    }.joined(separator: "\n")
  }

  private func describeCPUSchedules(_ state: CompileState) -> String {
    guard let cpu = state.cpu else { return "" }
    return MiddleEnd.describeSchedules(
      cpu.plan, cpu.schedules.map(\.summary), note: "\(cpu.packed) constants pre-packed for the CPU, \(cpu.bytes) bytes")
  }

  static func describe(_ program: Manifest.Program) -> String {
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

  static func describeManifest(_ manifest: Manifest) -> String {
    let functions = manifest.functions.map { f in
      "function \(f.name)(\(f.inputs.map { "\($0.name): \($0.dtype)\($0.shape)" }.joined(separator: ", "))) -> (\(f.outputs.map { "\($0.name): \($0.dtype)\($0.shape)" }.joined(separator: ", ")))"
    }
    return (["\(manifest.executables.count) executables, \(manifest.weights.count) weights"] + functions).joined(separator: "\n")
  }
}
