import KilnBundle
import KilnHAL

/// How long one dispatch of a program took on the device.
public struct DispatchTiming: Sendable, Hashable {
  /// The dispatch's position among the program's dispatches (0-based).
  public var index: Int
  /// Its position among all the program's commands (`Manifest.Program.commands`).
  public var commandIndex: Int
  /// The bundle's executable index (`Manifest.Dispatch.executable`) and the entry point in it.
  public var executable: Int
  public var entryPoint: String
  /// The graph ops the kernel computes (`Manifest.Dispatch.sourceOps`).
  public var sourceOps: [String]
  public var workgroups: [Int]
  public var milliseconds: Double

  public init(
    index: Int, commandIndex: Int, executable: Int, entryPoint: String, sourceOps: [String], workgroups: [Int],
    milliseconds: Double
  ) {
    self.index = index
    self.commandIndex = commandIndex
    self.executable = executable
    self.entryPoint = entryPoint
    self.sourceOps = sourceOps
    self.workgroups = workgroups
    self.milliseconds = milliseconds
  }
}

/// The program recorded a second time with a timestamp after every command.
final class ProfileRecording: @unchecked Sendable {
  // @unchecked: immutable after init; submitted only under the session's `runLock`.
  struct Interval {
    var start: Int
    var end: Int
    var timing: DispatchTiming
  }

  let commands: any CommandBuffer
  let intervals: [Interval]

  init(commands: any CommandBuffer, intervals: [Interval]) {
    self.commands = commands
    self.intervals = intervals
  }
}

extension Session {
  /// Runs the function once on `inputs` with a device timestamp around every dispatch and returns
  /// each dispatch's time, in program order.
  ///
  /// The first call records a second command buffer from the same program: a timestamp at the
  /// start, and after every command a barrier then a timestamp, so each interval holds exactly one
  /// command (the program's own barriers are subsumed). The serialisation makes the sum of the
  /// intervals an upper bound of a `run`; use it for the breakdown, `run` for the latency.
  /// Vulkan devices time with GPU timestamp queries, the CPU device with its monotonic clock.
  ///
  /// - Throws: `RuntimeError(.invalidInput)` for inputs that do not match the signature;
  ///   `HALError(.unsupported)` when the device cannot write timestamps.
  public func profile(_ inputs: [HostTensor]) throws -> [DispatchTiming] {
    try checkProfileInputs(inputs)
    return try runLock.withLock {
      let recording = try profileRecording.withLock { cached in
        if let cached { return cached }
        let made = try recordProfile()
        cached = made
        return made
      }
      for declaration in program.buffers {
        guard case .input(let index) = declaration.role, let buffer = buffers[declaration.id] else { continue }
        let bytes = inputs[index].bytes
        if !bytes.isEmpty { try device.write(bytes, to: BufferRange(buffer, offset: 0, length: bytes.count)) }
      }
      try device.submitAndWait(recording.commands, timeout: timeout)
      let stamps = try recording.commands.timestampNanoseconds()
      return recording.intervals.map { interval in
        var timing = interval.timing
        let (start, end) = (stamps[interval.start], stamps[interval.end])
        timing.milliseconds = end >= start ? Double(end - start) / 1e6 : 0
        return timing
      }
    }
  }

  private func checkProfileInputs(_ inputs: [HostTensor]) throws {
    guard inputs.count == function.inputs.count else {
      throw RuntimeError(.invalidInput, "expected \(function.inputs.count) inputs, got \(inputs.count)")
    }
    for (index, (tensor, signature)) in zip(inputs, function.inputs).enumerated() {
      let expected = signature.shape.reduce(1, *) * (HostTensor.elementSize(signature.dtype) ?? 0)
      guard tensor.dtype == signature.dtype, tensor.shape == signature.shape, tensor.bytes.count == expected else {
        throw RuntimeError(
          .invalidInput,
          "input \(index) '\(signature.name)': expected \(signature.dtype) \(signature.shape), got \(tensor.dtype) \(tensor.shape)"
        )
      }
    }
  }

  private func recordProfile() throws -> ProfileRecording {
    let recorder = try device.makeCommandBuffer()
    let timed = program.commands.filter { if case .barrier = $0 { false } else { true } }.count
    try recorder.enableTimestamps(capacity: timed + 1)
    func range(_ binding: Manifest.Binding) throws -> BufferRange {
      guard let buffer = buffers[binding.buffer] else {
        throw RuntimeError(.invalidInput, "bundle: binding refers to missing buffer \(binding.buffer)")
      }
      return BufferRange(buffer, offset: binding.offset, length: binding.length)
    }
    var intervals: [ProfileRecording.Interval] = []
    var last = try recorder.writeTimestamp()
    var dispatchIndex = 0
    for (commandIndex, command) in program.commands.enumerated() {
      switch command {
      case .barrier:
        continue  // Every command below is followed by a barrier already.
      case .dispatch(let dispatch):
        let index = substitute[dispatch.executable] ?? dispatch.executable
        guard let executable = executables[index], let entry = entryIndex[index]?[dispatch.entryPoint] else {
          throw RuntimeError(.invalidInput, "bundle: dispatch of unknown executable \(dispatch.executable)")
        }
        let groups = dispatch.workgroups + [1, 1, 1]
        try recorder.dispatch(
          executable, entryPoint: entry, bindings: try dispatch.bindings.map(range),
          pushConstants: dispatch.pushConstants,
          workgroups: WorkgroupCount(groups[0], groups[1], groups[2]))
        try recorder.barrier()
        let stamp = try recorder.writeTimestamp()
        intervals.append(
          ProfileRecording.Interval(
            start: last, end: stamp,
            timing: DispatchTiming(
              index: dispatchIndex, commandIndex: commandIndex, executable: dispatch.executable,
              entryPoint: dispatch.entryPoint,
              sourceOps: dispatch.sourceOps, workgroups: dispatch.workgroups, milliseconds: 0)))
        dispatchIndex += 1
        last = stamp
      case .copy(let copy):
        try recorder.copy(from: try range(copy.source), to: try range(copy.destination))
        try recorder.barrier()
        last = try recorder.writeTimestamp()
      case .fill(let fill):
        try recorder.fill(try range(fill.target), pattern: fill.pattern)
        try recorder.barrier()
        last = try recorder.writeTimestamp()
      }
    }
    try recorder.end()
    return ProfileRecording(commands: recorder, intervals: intervals)
  }
}
