import Foundation
import KilnBundle
import KilnHAL

/// A loaded bundle on one device: executables created, weights uploaded once, the dispatch
/// program recorded once into a command buffer that every `run` replays.
///
/// Thread-safety: `run` may be called from any thread; calls on one session are serialised (they
/// share the session's buffers). Use several sessions for parallel inference.
public final class Session: @unchecked Sendable {
  // @unchecked: immutable after init, except what `runLock` guards.
  public let device: any Device
  public let function: Manifest.Function
  public let program: Manifest.Program
  public let bundle: BundleReader
  // Internal, not private: Session+Profile.swift records a second, timestamped program from them.
  let buffers: [Int: any Buffer]
  let executables: [Int: any Executable]
  /// The CPU variant substituted for an executable index, and each executable's entry-point indices.
  let substitute: [Int: Int]
  let entryIndex: [Int: [String: Int]]
  private let commands: any CommandBuffer
  let runLock = NSLock()
  /// The timestamped recording `profile` makes on first use.
  let profileRecording = Locked<ProfileRecording?>(nil)
  /// Time to wait for one run before reporting the device as hung.
  public var timeout: Duration = .seconds(600)
  /// The executable variant chosen for the CPU device (nil on Vulkan).
  public let cpuVariant: String?
  /// The device memory the session's buffers take.
  public let memory: MemoryRequirement
  /// The outputs `run` returns: every output of the function but those holding another's extent.
  public let outputs: [Manifest.TensorSignature]
  /// For each of the function's outputs that `run` returns, its position in `outputs`.
  private let outputSlot: [Int: Int]

  /// Loads `function` of `bundle` on `device`.
  ///
  /// Before any device work, every buffer is checked against the device's
  /// `maxMemoryAllocationSize`, every binding against `maxStorageBufferRange`, and the total against
  /// the device's memory and `memoryBudget`. A failure part-way (an allocation, an executable)
  /// releases everything made so far.
  ///
  /// - Parameter memoryBudget: the most bytes the session's buffers (arena, weights, inputs and
  ///   outputs) may take; nil for no budget beyond the device's memory.
  /// - Throws: `RuntimeError(.overBudget)` or `(.limitExceeded)` naming the sizes; `HALError` from the device.
  /// - Parameter deviceClass: the Vulkan program class to run (`cpu`, `gpu`, `coopmat`) where the bundle
  ///   has programs per device class; nil for the device's own (`DeviceInfo.kernelClasses`).
  ///   Ignored on the CPU device.
  public init(
    bundle: BundleReader, device: any Device, function name: String = "main", memoryBudget: Int? = nil, deviceClass: String? = nil
  ) throws {
    guard let function = bundle.manifest.function(named: name) else {
      throw RuntimeError(.noProgram, "the bundle has no function '\(name)'")
    }
    let target = device.info.driver
    // Device classes name Vulkan programs; the CPU device has one program.
    let deviceClass = target == "vulkan" ? deviceClass : nil
    if let deviceClass, !function.programs.contains(where: { $0.target == target && $0.deviceClass == deviceClass }) {
      let available = function.programs.filter { $0.target == target }.map(\.label).joined(separator: ", ")
      throw RuntimeError(.noProgram, "the bundle has no \(target) program for device class '\(deviceClass)' (it has: \(available))")
    }
    guard let program = function.program(for: target, deviceClasses: deviceClass.map { [$0] } ?? device.info.kernelClasses) else {
      let available = function.programs.map(\.label).joined(separator: ", ")
      throw RuntimeError(.noProgram, "the bundle has no \(target) program (it has: \(available)); recompile with --target \(target)")
    }
    self.bundle = bundle
    self.device = device
    self.function = function
    self.program = program
    outputs = function.visibleOutputs
    var outputSlot: [Int: Int] = [:]
    for (index, signature) in function.outputs.enumerated() where signature.isExtent != true {
      outputSlot[index] = outputSlot.count
    }
    self.outputSlot = outputSlot
    memory = try Session.checkLimits(program, function: function, device: device.info, memoryBudget: memoryBudget)

    // Executables: pick variants, derive each entry point's interface from its dispatches.
    let manifest = bundle.manifest
    var substitute: [Int: Int] = [:]
    var variant: String?
    if target == "cpu" {
      (substitute, variant) = Session.chooseCPUVariants(manifest)
    }
    cpuVariant = variant
    var interfaces: [Int: [String: EntryPoint]] = [:]
    for command in program.commands {
      guard case .dispatch(let dispatch) = command else { continue }
      let index = substitute[dispatch.executable] ?? dispatch.executable
      let entry = EntryPoint(name: dispatch.entryPoint, bindingCount: dispatch.bindings.count, pushConstantWords: dispatch.pushConstants.count)
      if let existing = interfaces[index]?[dispatch.entryPoint], existing != entry {
        throw RuntimeError(.invalidInput, "bundle: entry point '\(dispatch.entryPoint)' is dispatched with inconsistent bindings")
      }
      interfaces[index, default: [:]][dispatch.entryPoint] = entry
    }
    var executables: [Int: any Executable] = [:]
    var entryIndex: [Int: [String: Int]] = [:]
    for (index, entries) in interfaces.sorted(by: { $0.key < $1.key }) {
      let record = manifest.executables[index]
      let names = entries.keys.sorted()
      let code = Array(try bundle.executableBytes(index))
      let format: ExecutableFormat = record.format == "spirv" ? .spirv : .sharedObject
      executables[index] = try device.makeExecutable(
        ExecutableSpec(
          format: format, code: code, entryPoints: names.compactMap { entries[$0] },
          specializationConstants: record.specializationConstants ?? []))
      entryIndex[index] = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
    }

    // Buffers: weights uploaded now; inputs, outputs and the arena allocated once.
    var buffers: [Int: any Buffer] = [:]
    for declaration in program.buffers {
      let buffer = try device.allocator.allocate(byteCount: max(declaration.size, 4), access: .deviceLocal)
      if case .constant(let weight) = declaration.role {
        let bytes = try bundle.weightBytes(weight)
        guard bytes.count <= buffer.byteCount else {
          throw RuntimeError(.invalidInput, "bundle: weight \(weight) is larger than its buffer")
        }
        try device.write(bytes, to: BufferRange(buffer, offset: 0, length: bytes.count))
      }
      buffers[declaration.id] = buffer
    }
    self.buffers = buffers
    self.executables = executables
    self.substitute = substitute
    self.entryIndex = entryIndex

    // Record the program once.
    let commands = try device.makeCommandBuffer()
    // An empty tensor (a dimension of 0) is never read; devices refuse empty bindings, so it is
    // bound to a small placeholder instead.
    var placeholder: (any Buffer)?
    func range(_ binding: Manifest.Binding) throws -> BufferRange {
      guard let buffer = buffers[binding.buffer] else {
        throw RuntimeError(.invalidInput, "bundle: binding refers to missing buffer \(binding.buffer)")
      }
      if binding.length == 0 {
        let empty = try placeholder ?? device.allocator.allocate(byteCount: 256, access: .deviceLocal)
        placeholder = empty
        return BufferRange(empty, offset: 0, length: 256)
      }
      return BufferRange(buffer, offset: binding.offset, length: binding.length)
    }
    for command in program.commands {
      switch command {
      case .dispatch(let dispatch):
        let index = substitute[dispatch.executable] ?? dispatch.executable
        guard let executable = executables[index], let entry = entryIndex[index]?[dispatch.entryPoint] else {
          throw RuntimeError(.invalidInput, "bundle: dispatch of unknown executable \(dispatch.executable)")
        }
        let groups = dispatch.workgroups + [1, 1, 1]
        try commands.dispatch(
          executable, entryPoint: entry, bindings: try dispatch.bindings.map(range), pushConstants: dispatch.pushConstants,
          workgroups: WorkgroupCount(groups[0], groups[1], groups[2]))
      case .barrier:
        try commands.barrier()
      case .copy(let copy):
        try commands.copy(from: try range(copy.source), to: try range(copy.destination))
      case .fill(let fill):
        try commands.fill(try range(fill.target), pattern: fill.pattern)
      }
    }
    try commands.end()
    self.commands = commands
  }

  /// Chooses, for every CPU executable, the best variant this host can run.
  static func chooseCPUVariants(_ manifest: Manifest) -> ([Int: Int], String?) {
    let hostHasV3 = CPUFeatures.supportsX86_64_v3
    var substitute: [Int: Int] = [:]
    var chosen: String?
    for (index, record) in manifest.executables.enumerated() where record.target == "cpu" {
      let variant = record.variant ?? "baseline"
      if variant == "x86-64-v3" && !hostHasV3 {
        if let fallback = manifest.executables.firstIndex(where: {
          $0.target == "cpu" && $0.entryPoints == record.entryPoints && ($0.variant ?? "baseline") == "baseline"
        }) {
          substitute[index] = fallback
          chosen = "baseline"
        }
      } else if chosen == nil {
        chosen = variant
      }
    }
    return (substitute, chosen)
  }

  /// Runs the function on `inputs` (in the function's input order) and returns its outputs (those
  /// of `outputs`: an output whose extent the data decides comes trimmed to it).
  public func run(_ inputs: [HostTensor]) throws -> [HostTensor] {
    let visible = outputs
    var shapes: [[Int]] = []
    let storage = try withRawBuffers(inputs.map(\.bytes)) { sources in
      try makeByteArrays(visible.map(Session.byteCount)) { destinations in
        shapes = try run(
          inputs: zip(inputs, sources).map { BorrowedTensor(dtype: $0.dtype, shape: $0.shape, bytes: $1) },
          into: destinations)
      }
    }
    return zip(visible, zip(storage, shapes)).map { signature, output in
      var (bytes, shape) = output
      // A trimmed output is written densely at its start: drop the rest in place.
      bytes.removeLast(bytes.count - Session.byteCount(dtype: signature.dtype, shape: shape))
      return HostTensor(dtype: signature.dtype, shape: shape, bytes: bytes)
    }
  }

  /// Runs the function on caller-owned memory, copying nothing but to and from the device.
  ///
  /// - Parameters:
  ///   - inputs: every input, in the function's order, checked against its signature.
  ///   - outputs: one buffer per output of `outputs`, each at least `Session.byteCount` of it.
  /// - Returns: each output's shape; an output whose extent the data decides is written trimmed
  ///   (densely packed at its returned shape).
  /// - Throws: `RuntimeError(.invalidInput)` naming the input or output; `HALError` from the device.
  public func run(inputs: [BorrowedTensor], into outputs: [UnsafeMutableRawBufferPointer]) throws -> [[Int]] {
    try check(inputs.map { ($0.dtype, $0.shape, $0.bytes.count) })
    let visible = self.outputs
    guard outputs.count == visible.count else {
      throw RuntimeError(.invalidInput, "expected \(visible.count) output buffers (\(visible.map(\.name).joined(separator: ", "))), got \(outputs.count)")
    }
    for (index, (buffer, signature)) in zip(outputs, visible).enumerated() where buffer.count < Session.byteCount(signature) {
      throw RuntimeError(
        .invalidInput, "output \(index) '\(signature.name)': the buffer holds \(buffer.count) bytes, the output needs \(Session.byteCount(signature))")
    }
    return try runLock.withLock {
      for declaration in program.buffers {
        guard case .input(let index) = declaration.role, let buffer = buffers[declaration.id] else { continue }
        let bytes = inputs[index].bytes
        if !bytes.isEmpty { try device.write(bytes, to: BufferRange(buffer, offset: 0, length: bytes.count)) }
      }
      try device.submitAndWait(commands, timeout: timeout)
      var extents: [Int: [UInt8]] = [:]
      var untrimmed: [Int: [UInt8]] = [:]
      for declaration in program.buffers {
        guard case .output(let index) = declaration.role, let buffer = buffers[declaration.id] else { continue }
        let signature = function.outputs[index]
        let count = Session.byteCount(signature)
        guard count > 0 else { continue }
        let range = BufferRange(buffer, offset: 0, length: count)
        if signature.isExtent == true {
          extents[index] = try device.read(range)
        } else if signature.dynamicAxis != nil {
          untrimmed[index] = try device.read(range)
        } else if let slot = outputSlot[index] {
          try device.read(range, into: UnsafeMutableRawBufferPointer(rebasing: outputs[slot][..<count]))
        }
      }
      var shapes = visible.map(\.shape)
      for (index, bytes) in untrimmed {
        guard let slot = outputSlot[index] else { continue }
        let extent = try Session.extent(of: function.outputs[index], in: extents)
        shapes[slot] = Session.copyTrimmed(bytes, signature: function.outputs[index], extent: extent, into: outputs[slot])
      }
      return shapes
    }
  }

  /// Throws unless `inputs` (dtype, shape, byte count) match the function's inputs.
  private func check(_ inputs: [(dtype: String, shape: [Int], byteCount: Int)]) throws {
    guard inputs.count == function.inputs.count else {
      throw RuntimeError(.invalidInput, "expected \(function.inputs.count) inputs (\(function.inputs.map(\.name).joined(separator: ", "))), got \(inputs.count)")
    }
    for (index, (tensor, signature)) in zip(inputs, function.inputs).enumerated() {
      guard tensor.dtype == signature.dtype else {
        throw RuntimeError(.invalidInput, "input \(index) '\(signature.name)': expected \(signature.dtype), got \(tensor.dtype)")
      }
      guard tensor.shape == signature.shape else {
        throw RuntimeError(.invalidInput, "input \(index) '\(signature.name)': expected shape \(signature.shape), got \(tensor.shape)")
      }
      let expected = Session.byteCount(signature)
      guard tensor.byteCount == expected else {
        throw RuntimeError(.invalidInput, "input \(index) '\(signature.name)': expected \(expected) bytes, got \(tensor.byteCount)")
      }
    }
  }

  /// The bytes a tensor of `signature`'s dtype and (maximum) shape takes.
  public static func byteCount(_ signature: Manifest.TensorSignature) -> Int {
    byteCount(dtype: signature.dtype, shape: signature.shape)
  }

  static func byteCount(dtype: String, shape: [Int]) -> Int {
    shape.reduce(1, *) * (HostTensor.elementSize(dtype) ?? 0)
  }

  /// The extent the int64 scalar output `signature.extentOutput` holds, clamped to the output's
  /// maximum so a kernel cannot make the runtime read past it.
  static func extent(of signature: Manifest.TensorSignature, in extents: [Int: [UInt8]]) throws -> Int {
    guard let axis = signature.dynamicAxis, let output = signature.extentOutput, let bytes = extents[output], bytes.count == 8 else {
      throw RuntimeError(.invalidInput, "bundle: extent of output '\(signature.name)' is not an int64 scalar")
    }
    let stored = bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
    return Int(max(0, min(stored, Int64(signature.shape[axis]))))
  }

  /// Copies the first `extent` entries along the dynamic axis of `bytes` (laid out at the
  /// signature's maximum shape) densely into `destination`; returns the trimmed shape.
  static func copyTrimmed(
    _ bytes: [UInt8], signature: Manifest.TensorSignature, extent: Int, into destination: UnsafeMutableRawBufferPointer
  ) -> [Int] {
    guard let axis = signature.dynamicAxis else { return signature.shape }
    let shape = signature.shape
    let element = HostTensor.elementSize(signature.dtype) ?? 1
    let (outer, maximum) = (shape[..<axis].reduce(1, *), shape[axis])
    let inner = shape[(axis + 1)...].reduce(1, *) * element
    bytes.withUnsafeBytes { source in
      for o in 0..<outer where extent * inner > 0 {
        let from = UnsafeRawBufferPointer(rebasing: source[(o * maximum * inner)..<(o * maximum * inner + extent * inner)])
        UnsafeMutableRawBufferPointer(rebasing: destination[(o * extent * inner)...]).copyMemory(from: from)
      }
    }
    var trimmed = shape
    trimmed[axis] = extent
    return trimmed
  }
}

/// A tensor in memory the caller owns, for `Session.run(inputs:into:)`.
public struct BorrowedTensor {
  public var dtype: String
  public var shape: [Int]
  public var bytes: UnsafeRawBufferPointer

  public init(dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer) {
    self.dtype = dtype
    self.shape = shape
    self.bytes = bytes
  }
}

/// Calls `body` with a buffer pointer to each array, all valid at once.
func withRawBuffers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
  func step(_ index: Int, _ done: [UnsafeRawBufferPointer]) throws -> R {
    if index == arrays.count { return try body(done) }
    return try arrays[index].withUnsafeBytes { try step(index + 1, done + [$0]) }
  }
  return try step(0, [])
}

/// Byte arrays of `counts`, filled by `body` through a pointer to each, all valid at once (no
/// copy: `body` writes the arrays' own storage). Bytes `body` leaves unwritten are unspecified.
func makeByteArrays(_ counts: [Int], _ body: ([UnsafeMutableRawBufferPointer]) throws -> Void) throws -> [[UInt8]] {
  func step(_ index: Int, _ done: [UnsafeMutableRawBufferPointer]) throws -> [[UInt8]] {
    if index == counts.count {
      try body(done)
      return []
    }
    var rest: [[UInt8]] = []
    let array = try [UInt8](unsafeUninitializedCapacity: counts[index]) { buffer, initialized in
      rest = try step(index + 1, done + [UnsafeMutableRawBufferPointer(buffer)])
      initialized = counts[index]
    }
    return [array] + rest
  }
  return try step(0, [])
}

/// What the host CPU supports, read once from /proc/cpuinfo (Linux) or assumed baseline.
public enum CPUFeatures {
  public static let supportsX86_64_v3: Bool = {
    #if arch(x86_64)
      guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
        let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
      else { return false }
      let flags = Set(flagsLine.split(separator: " ").map(String.init))
      return ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"].allSatisfy(flags.contains)
    #else
      return false
    #endif
  }()
}

/// The device memory a session's buffers take, by role.
public struct MemoryRequirement: Sendable, Hashable, CustomStringConvertible {
  /// Scratch memory (the arena, transient buffers).
  public var arena: Int
  public var weights: Int
  public var inputs: Int
  public var outputs: Int

  public init(arena: Int = 0, weights: Int = 0, inputs: Int = 0, outputs: Int = 0) {
    self.arena = arena
    self.weights = weights
    self.inputs = inputs
    self.outputs = outputs
  }

  /// The sum, saturating at `Int.max` (sizes come from the bundle).
  public var total: Int {
    [arena, weights, inputs, outputs].reduce(0) { sum, part in
      let (value, overflow) = sum.addingReportingOverflow(part)
      return overflow ? Int.max : value
    }
  }

  public var description: String {
    "\(total) bytes (arena \(arena), weights \(weights), inputs \(inputs), outputs \(outputs))"
  }

  /// What `program`'s buffers take (each at least 4 bytes, as the session allocates them).
  public init(_ program: Manifest.Program) {
    self.init()
    for declaration in program.buffers {
      let size = max(declaration.size, 4)
      func add(_ part: inout Int) {
        let (value, overflow) = part.addingReportingOverflow(size)
        part = overflow ? Int.max : value
      }
      switch declaration.role {
      case .transient: add(&arena)
      case .constant: add(&weights)
      case .input: add(&inputs)
      case .output: add(&outputs)
      }
    }
  }
}

extension Session {
  /// Refuses a program the device cannot hold before anything is allocated, naming the sizes.
  static func checkLimits(
    _ program: Manifest.Program, function: Manifest.Function, device: DeviceInfo, memoryBudget: Int?
  ) throws -> MemoryRequirement {
    let limits = device.limits
    let label = "\(device.shortURI) (\(device.name))"
    func describe(_ declaration: Manifest.BufferDecl) -> String {
      switch declaration.role {
      case .transient: return "buffer \(declaration.id) (arena)"
      case .constant(let weight): return "buffer \(declaration.id) (weight \(weight))"
      case .input(let index):
        let name = function.inputs.indices.contains(index) ? " '\(function.inputs[index].name)'" : ""
        return "buffer \(declaration.id) (input \(index)\(name))"
      case .output(let index):
        let name = function.outputs.indices.contains(index) ? " '\(function.outputs[index].name)'" : ""
        return "buffer \(declaration.id) (output \(index)\(name))"
      }
    }
    for declaration in program.buffers where declaration.size > limits.maxMemoryAllocationSize {
      throw RuntimeError(
        .limitExceeded,
        "\(describe(declaration)) needs \(declaration.size) bytes; device \(label) allows at most \(limits.maxMemoryAllocationSize) bytes in one allocation (maxMemoryAllocationSize)"
      )
    }
    for (index, command) in program.commands.enumerated() {
      guard case .dispatch(let dispatch) = command else { continue }
      for (slot, binding) in dispatch.bindings.enumerated() where binding.length > limits.maxStorageBufferRange {
        throw RuntimeError(
          .limitExceeded,
          "command \(index) (dispatch '\(dispatch.entryPoint)') binding \(slot) covers \(binding.length) bytes of buffer \(binding.buffer); device \(label) binds at most \(limits.maxStorageBufferRange) bytes (maxStorageBufferRange); recompile the bundle with smaller tensors"
        )
      }
    }
    let requirement = MemoryRequirement(program)
    if let memoryBudget, requirement.total > memoryBudget {
      throw RuntimeError(
        .overBudget,
        "the bundle needs \(requirement) on \(label), more than the memory budget of \(memoryBudget) bytes")
    }
    if limits.deviceMemoryBytes > 0, requirement.total > limits.deviceMemoryBytes {
      throw RuntimeError(
        .limitExceeded,
        "the bundle needs \(requirement), more than the \(limits.deviceMemoryBytes) bytes of memory device \(label) has")
    }
    return requirement
  }
}
