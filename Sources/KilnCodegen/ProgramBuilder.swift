import KilnBundle
import KilnCompiler
import KilnIR

/// Builds a target's dispatch program: buffers, one dispatch per plan step, copies for outputs
/// nothing computes, and a barrier only before a command that touches bytes an earlier,
/// not-yet-fenced command wrote (read-after-write, write-after-write) or read (write-after-read).
enum ProgramBuilder {
  struct Range: Hashable {
    var buffer: Int
    var start: Int
    var end: Int
    func overlaps(_ other: Range) -> Bool { buffer == other.buffer && start < other.end && other.start < end }
  }

  /// One dispatch of a kernel's step. Most kernels dispatch once; a split-K contraction dispatches
  /// twice, the first writing partial sums to the program's scratch buffer and the second reading
  /// them. Either binds the step's inputs, its output and then the scratch buffer.
  struct KernelDispatch {
    enum Scratch { case none, writes, reads, readsAndWrites }
    var executable: Int
    var entryPoint: String
    var workgroups: [Int]
    var scratch: Scratch = .none
  }

  static func program(
    target: String, deviceClass: String? = nil, plan: DispatchPlan, memory: MemoryPlan, weightIndex: (ValueID) -> Int?,
    scratchBytes: Int = 0, maximumBindingBytes: Int? = nil, dispatches: (Int) -> [KernelDispatch]
  ) throws -> Manifest.Program {
    let graph = plan.graph
    var buffers: [Manifest.BufferDecl] = []
    func add(_ size: Int, _ role: Manifest.BufferRole) -> Int {
      buffers.append(Manifest.BufferDecl(id: buffers.count, size: max(size, 0), role: role))
      return buffers.count - 1
    }
    func bytes(_ id: ValueID) throws -> Int {
      guard let count = graph.type(of: id).byteCount else {
        throw CodegenError(.invalidInput, "value '\(graph[id].name)' has an unrepresentable size")
      }
      return count
    }
    var inputBuffers: [Int] = []
    for id in graph.inputs { inputBuffers.append(add(try bytes(id), .input(inputBuffers.count))) }
    var outputBuffers: [Int] = []
    for id in graph.outputs { outputBuffers.append(add(try bytes(id), .output(outputBuffers.count))) }
    var weightBuffers: [Int] = []
    for id in memory.weights {
      // The bundle's weight list may be shared with other targets' programs.
      guard let index = weightIndex(id) else {
        throw CodegenError(.internal, "constant '\(graph[id].name)' is not among the bundle's weights")
      }
      // The bundle packs an empty constant as 4 zero bytes; the buffer matches the packed length.
      weightBuffers.append(add(max(try bytes(id), 0) == 0 ? 4 : try bytes(id), .constant(weight: index)))
    }
    let arena = memory.arenaSize > 0 ? add(memory.arenaSize, .transient) : -1
    let scratch = scratchBytes > 0 ? add(scratchBytes, .transient) : -1

    func binding(_ id: ValueID) throws -> Manifest.Binding {
      guard let location = memory.locations[id] else {
        throw CodegenError(.internal, "value '\(graph[id].name)' has no memory location")
      }
      let length = try bytes(id)
      switch location {
      case .input(let n): return Manifest.Binding(buffer: inputBuffers[n], offset: 0, length: length)
      case .output(let n): return Manifest.Binding(buffer: outputBuffers[n], offset: 0, length: length)
      case .weight(let n): return Manifest.Binding(buffer: weightBuffers[n], offset: 0, length: length == 0 ? 4 : length)
      case .arena(let offset): return Manifest.Binding(buffer: arena, offset: offset, length: length)
      }
    }

    var commands: [Manifest.Command] = []
    var written: [Range] = []
    var read: [Range] = []
    func hazardBarrier(reads: [Range], writes: [Range]) {
      let hazard =
        reads.contains { r in written.contains { $0.overlaps(r) } }
        || writes.contains { w in written.contains { $0.overlaps(w) } || read.contains { $0.overlaps(w) } }
      if hazard {
        commands.append(.barrier)
        written.removeAll()
        read.removeAll()
      }
      read += reads
      written += writes
    }
    func range(_ b: Manifest.Binding) -> Range { Range(buffer: b.buffer, start: b.offset, end: b.offset + b.length) }

    for step in plan.steps {
      let kernel = plan.kernels[step.kernel]
      let inputs = try step.inputs.map(binding)
      let output = try binding(step.output)
      // A Vulkan kernel binds an operand larger than the limit in parts (`VulkanBindingLayout`).
      let operandBindings = (inputs + [output]).flatMap { binding in
        maximumBindingBytes.map { VulkanBindingLayout.parts(of: binding, maximumBytes: $0) } ?? [binding]
      }
      for dispatch in dispatches(step.kernel) {
        var bindings = operandBindings
        var reads = inputs.map(range)
        var writes = [range(output)]
        if dispatch.scratch != .none {
          guard scratch >= 0 else { throw CodegenError(.internal, "kernel \(kernel.name) uses scratch memory the program lacks") }
          let region = Manifest.Binding(buffer: scratch, offset: 0, length: scratchBytes)
          bindings.append(region)
          switch dispatch.scratch {
          case .writes: writes = [range(region)]
          case .reads: reads.append(range(region))
          case .readsAndWrites:
            reads.append(range(region))
            writes.append(range(region))
          case .none: break
          }
        }
        hazardBarrier(reads: reads, writes: writes)
        commands.append(
          .dispatch(
            Manifest.Dispatch(
              executable: dispatch.executable, entryPoint: dispatch.entryPoint, bindings: bindings,
              workgroups: dispatch.workgroups, sourceOps: kernel.sourceOps)))
      }
    }
    for copy in plan.copies {
      let source = try binding(copy.source)
      guard source.length > 0, try bytes(graph.outputs[copy.destination]) > 0 else { continue }
      let destination = Manifest.Binding(buffer: outputBuffers[copy.destination], offset: 0, length: source.length)
      hazardBarrier(reads: [range(source)], writes: [range(destination)])
      commands.append(.copy(Manifest.Copy(source: source, destination: destination)))
    }
    return Manifest.Program(target: target, deviceClass: deviceClass, buffers: buffers, commands: commands)
  }
}
