// The rules a manifest must satisfy against the sections of its bundle. The writer checks them
// before writing and the reader before returning, so a runtime never sees a dangling reference.

extension Manifest {
  /// Checks every cross-reference and size in the manifest against the bundle's sections.
  ///
  /// - Parameter sections: kind and length of every section, in section table order.
  /// - Throws: `BundleError` with code `.invalidManifest` naming the first offending item, e.g.
  ///   `function 'main' program 'vulkan' command 12: binding 1 offset 4096+512 exceeds buffer 3
  ///   size 4096`. All arithmetic is overflow-checked.
  public func validate(sections: [SectionInfo]) throws {
    guard formatVersion == Manifest.currentFormatVersion else {
      throw invalid(
        "manifest formatVersion \(formatVersion) is not supported (expected "
          + "\(Manifest.currentFormatVersion))")
    }
    try validateExecutables(sections: sections)
    try validateWeights(sections: sections)
    var functionNames = Set<String>()
    for function in functions {
      guard !function.name.isEmpty else { throw invalid("function with an empty name") }
      guard functionNames.insert(function.name).inserted else {
        throw invalid("function '\(function.name)' is declared twice")
      }
      try validate(function: function)
    }
  }

  private func validateExecutables(sections: [SectionInfo]) throws {
    for (index, executable) in executables.enumerated() {
      let context = "executable \(index) (\(executable.target) \(executable.format))"
      guard !executable.target.isEmpty else { throw invalid("\(context): empty target") }
      try checkSection(executable.section, kind: .executable, in: sections, context: context)
      guard !executable.entryPoints.isEmpty else { throw invalid("\(context): no entry points") }
      var seen = Set<String>()
      for entryPoint in executable.entryPoints where !seen.insert(entryPoint).inserted {
        throw invalid("\(context): entry point '\(entryPoint)' listed twice")
      }
    }
  }

  private func validateWeights(sections: [SectionInfo]) throws {
    var names: [String: Int] = [:]
    for (index, weight) in weights.enumerated() {
      let context = "weight \(index) '\(weight.name)'"
      if let other = names[weight.name] {
        throw invalid("\(context): name already used by weight \(other)")
      }
      names[weight.name] = index
      try checkSection(weight.section, kind: .weights, in: sections, context: context)
      guard weight.offset >= 0, weight.length >= 0 else {
        throw invalid("\(context): negative offset \(weight.offset) or length \(weight.length)")
      }
      guard weight.offset % BundleFormat.weightAlignment == 0 else {
        throw invalid(
          "\(context): offset \(weight.offset) is not a multiple of \(BundleFormat.weightAlignment)")
      }
      let sectionLength = sections[weight.section].length
      let (end, overflow) = weight.offset.addingReportingOverflow(weight.length)
      guard !overflow, end <= sectionLength else {
        throw invalid(
          "\(context): offset \(weight.offset)+\(weight.length) exceeds section \(weight.section) "
            + "length \(sectionLength)")
      }
    }
  }

  private func checkSection(
    _ section: Int, kind: SectionKind, in sections: [SectionInfo], context: String
  ) throws {
    guard section >= 0, section < sections.count else {
      throw invalid(
        "\(context): section \(section) out of range (bundle has \(sections.count) sections)")
    }
    guard sections[section].kind == kind else {
      throw invalid(
        "\(context): section \(section) has kind \(sections[section].kind), expected \(kind)")
    }
  }

  /// Extents: an output's dynamic axis is one of its axes, its extent output an int64 scalar
  /// output marked as an extent, and extent outputs come after every other output.
  private func validateExtents(of function: Function, context: String) throws {
    for (index, output) in function.outputs.enumerated() {
      let label = "\(context) output \(index) '\(output.name)'"
      guard (output.dynamicAxis == nil) == (output.extentOutput == nil) else {
        throw invalid("\(label): a dynamic axis needs an extent output and an extent output a dynamic axis")
      }
      if let axis = output.dynamicAxis, let extent = output.extentOutput {
        guard axis >= 0, axis < output.shape.count else { throw invalid("\(label): dynamic axis \(axis) of rank \(output.shape.count)") }
        guard function.outputs.indices.contains(extent), function.outputs[extent].isExtent == true,
          function.outputs[extent].dtype == "int64", function.outputs[extent].shape.isEmpty
        else { throw invalid("\(label): extent output \(extent) is not an int64 scalar extent output") }
      }
      if output.isExtent == true, output.dynamicAxis != nil { throw invalid("\(label): an extent output has a dynamic axis") }
    }
    if let first = function.outputs.firstIndex(where: { $0.isExtent == true }),
      function.outputs[first...].contains(where: { $0.isExtent != true })
    {
      throw invalid("\(context): extent outputs must come after every other output")
    }
  }

  private func validate(function: Function) throws {
    let context = "function '\(function.name)'"
    let inputSizes = try function.inputs.enumerated().map { index, signature in
      try signature.byteCount(context: "\(context) input \(index) '\(signature.name)'")
    }
    let outputSizes = try function.outputs.enumerated().map { index, signature in
      try signature.byteCount(context: "\(context) output \(index) '\(signature.name)'")
    }
    try validateExtents(of: function, context: context)
    var targets = Set<String>()
    for program in function.programs {
      guard !program.target.isEmpty else { throw invalid("\(context): program with empty target") }
      guard program.deviceClass?.isEmpty != true else { throw invalid("\(context): program '\(program.target)' with empty device class") }
      guard targets.insert(program.label).inserted else {
        throw invalid("\(context): two programs for '\(program.label)'")
      }
      try validate(
        program: program, of: function, inputSizes: inputSizes, outputSizes: outputSizes,
        context: "\(context) program '\(program.label)'")
    }
  }

  private func validate(
    program: Program, of function: Function, inputSizes: [Int], outputSizes: [Int],
    context: String
  ) throws {
    var buffers: [Int: BufferDecl] = [:]
    var inputBuffers: [Int: Int] = [:]
    var outputBuffers: [Int: Int] = [:]
    for (position, buffer) in program.buffers.enumerated() {
      guard buffer.id >= 0 else {
        throw invalid("\(context) buffer declaration \(position): negative id \(buffer.id)")
      }
      let bufferContext = "\(context) buffer \(buffer.id)"
      guard buffers[buffer.id] == nil else {
        throw invalid("\(context): buffer id \(buffer.id) declared twice")
      }
      buffers[buffer.id] = buffer
      guard buffer.size >= 0 else { throw invalid("\(bufferContext): negative size \(buffer.size)") }
      switch buffer.role {
      case .input(let index):
        try checkTensorRole(
          "input", index: index, buffer: buffer, signatures: function.inputs, sizes: inputSizes,
          owners: &inputBuffers, context: bufferContext)
      case .output(let index):
        try checkTensorRole(
          "output", index: index, buffer: buffer, signatures: function.outputs,
          sizes: outputSizes, owners: &outputBuffers, context: bufferContext)
      case .constant(let weight):
        guard weight >= 0, weight < weights.count else {
          throw invalid(
            "\(bufferContext): constant weight \(weight) out of range (manifest has "
              + "\(weights.count) weights)")
        }
        guard buffer.size == weights[weight].length else {
          throw invalid(
            "\(bufferContext): size \(buffer.size) does not match weight \(weight) "
              + "'\(weights[weight].name)' length \(weights[weight].length)")
        }
      case .transient:
        break
      }
    }
    for (index, signature) in function.inputs.enumerated() where inputBuffers[index] == nil {
      throw invalid("\(context): input \(index) '\(signature.name)' has no buffer")
    }
    for (index, signature) in function.outputs.enumerated() where outputBuffers[index] == nil {
      throw invalid("\(context): output \(index) '\(signature.name)' has no buffer")
    }
    for (index, command) in program.commands.enumerated() {
      try validate(
        command: command, program: program, buffers: buffers, context: "\(context) command \(index)")
    }
  }

  private func checkTensorRole(
    _ role: String, index: Int, buffer: BufferDecl, signatures: [TensorSignature], sizes: [Int],
    owners: inout [Int: Int], context: String
  ) throws {
    guard index >= 0, index < signatures.count else {
      throw invalid(
        "\(context): \(role) index \(index) out of range (function has \(signatures.count) "
          + "\(role)s)")
    }
    if let other = owners[index] {
      throw invalid("\(context): \(role) \(index) is already bound by buffer \(other)")
    }
    owners[index] = buffer.id
    guard buffer.size == sizes[index] else {
      let signature = signatures[index]
      throw invalid(
        "\(context): size \(buffer.size) does not match \(role) \(index) '\(signature.name)' "
          + "\(signature.dtype)\(signature.shape) = \(sizes[index]) bytes")
    }
  }

  private func validate(
    command: Command, program: Program, buffers: [Int: BufferDecl], context: String
  ) throws {
    switch command {
    case .barrier:
      break
    case .dispatch(let dispatch):
      guard dispatch.executable >= 0, dispatch.executable < executables.count else {
        throw invalid(
          "\(context): executable \(dispatch.executable) out of range (manifest has "
            + "\(executables.count) executables)")
      }
      let executable = executables[dispatch.executable]
      guard executable.target == program.target else {
        throw invalid(
          "\(context): executable \(dispatch.executable) is for target '\(executable.target)', "
            + "not '\(program.target)'")
      }
      guard executable.entryPoints.contains(dispatch.entryPoint) else {
        throw invalid(
          "\(context): entry point '\(dispatch.entryPoint)' is not exported by executable "
            + "\(dispatch.executable)")
      }
      guard dispatch.workgroups.count == 3 else {
        throw invalid(
          "\(context): workgroups has \(dispatch.workgroups.count) counts, expected 3")
      }
      for (axis, count) in zip(["x", "y", "z"], dispatch.workgroups) where !(1...65535 ~= count) {
        throw invalid("\(context): workgroup count \(axis)=\(count) is outside 1...65535")
      }
      guard dispatch.pushConstants.count <= 32 else {
        throw invalid(
          "\(context): \(dispatch.pushConstants.count) push constant words exceed the limit of 32")
      }
      for (index, binding) in dispatch.bindings.enumerated() {
        _ = try check(binding, "binding \(index)", buffers: buffers, context: context)
      }
    case .copy(let copy):
      _ = try check(copy.source, "source", buffers: buffers, context: context)
      let destination = try check(copy.destination, "destination", buffers: buffers, context: context)
      guard copy.source.length == copy.destination.length else {
        throw invalid(
          "\(context): copy source length \(copy.source.length) differs from destination "
            + "length \(copy.destination.length)")
      }
      if copy.source.buffer == copy.destination.buffer,
        copy.source.offset < copy.destination.offset + copy.destination.length,
        copy.destination.offset < copy.source.offset + copy.source.length
      {
        throw invalid(
          "\(context): copy source and destination overlap in buffer \(copy.source.buffer)")
      }
      try checkWritable(destination, "destination", context: context)
    case .fill(let fill):
      let target = try check(fill.target, "target", buffers: buffers, context: context)
      guard fill.target.offset % 4 == 0, fill.target.length % 4 == 0 else {
        throw invalid(
          "\(context): fill offset \(fill.target.offset) and length \(fill.target.length) must "
            + "be multiples of 4")
      }
      try checkWritable(target, "target", context: context)
    }
  }

  /// Checks that `binding` names a declared buffer and lies inside it; returns the buffer.
  private func check(
    _ binding: Binding, _ name: String, buffers: [Int: BufferDecl], context: String
  ) throws -> BufferDecl {
    guard let buffer = buffers[binding.buffer] else {
      throw invalid("\(context): \(name) buffer \(binding.buffer) is not declared")
    }
    guard binding.offset >= 0, binding.length >= 0 else {
      throw invalid(
        "\(context): \(name) has negative offset \(binding.offset) or length \(binding.length)")
    }
    let (end, overflow) = binding.offset.addingReportingOverflow(binding.length)
    guard !overflow, end <= buffer.size else {
      throw invalid(
        "\(context): \(name) offset \(binding.offset)+\(binding.length) exceeds buffer "
          + "\(buffer.id) size \(buffer.size)")
    }
    return buffer
  }

  private func checkWritable(_ buffer: BufferDecl, _ name: String, context: String) throws {
    if case .constant = buffer.role {
      throw invalid("\(context): \(name) buffer \(buffer.id) is a read-only constant")
    }
  }

  private func invalid(_ message: String) -> BundleError {
    BundleError(.invalidManifest, message)
  }
}

extension Manifest.TensorSignature {
  /// Bytes of a dense tensor with this dtype and shape: product(shape) * element size.
  ///
  /// - Throws: `BundleError` (`.invalidManifest`) for an unknown dtype, a negative dimension or a
  ///   size that overflows `Int`.
  public func byteCount() throws -> Int {
    try byteCount(context: "tensor '\(name)'")
  }

  func byteCount(context: String) throws -> Int {
    guard let elementSize = Manifest.elementSize(of: dtype) else {
      throw BundleError(.invalidManifest, "\(context): unknown dtype '\(dtype)'")
    }
    var total = elementSize
    for dimension in shape {
      guard dimension >= 0 else {
        throw BundleError(.invalidManifest, "\(context): negative dimension in shape \(shape)")
      }
      let (product, overflow) = total.multipliedReportingOverflow(by: dimension)
      guard !overflow else {
        throw BundleError(.invalidManifest, "\(context): byte size of \(dtype)\(shape) overflows")
      }
      total = product
    }
    return total
  }
}
