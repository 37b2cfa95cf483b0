// The text `kiln inspect` prints for a bundle.

extension BundleReader {
  /// A human-readable summary: format version, model, functions with their signatures, per-target
  /// command counts, buffers and arena size, executables, weights and the section table.
  /// Deterministic: the same bundle always gives the same text.
  public func describe() -> String {
    var lines: [String] = []
    lines.append(
      "Kiln bundle, format \(version), \(fileBytes.count) bytes, header checksum "
        + "\(hex(headerChecksum))")
    lines.append("model: \(manifest.modelName)")
    lines.append("producer: \(manifest.producer)")
    lines.append("created by: \(manifest.createdBy)")

    lines.append("functions: \(manifest.functions.count)")
    for function in manifest.functions {
      lines.append("  \(function.name)")
      lines.append("    inputs:  \(Self.describe(function.inputs))")
      lines.append("    outputs: \(Self.describe(function.outputs))")
      for program in function.programs {
        lines.append("    program \(program.label): \(Self.describe(program))")
      }
    }

    lines.append("executables: \(manifest.executables.count)")
    for (index, executable) in manifest.executables.enumerated() {
      let variant = executable.variant.map { " (\($0))" } ?? ""
      let size =
        sections.indices.contains(executable.section)
        ? Self.byteSize(Int(sections[executable.section].length)) : "?"
      var line =
        "  \(index): \(executable.target) \(executable.format)\(variant), section "
        + "\(executable.section), \(size), entry points: "
        + executable.entryPoints.joined(separator: ", ")
      if let constants = executable.specializationConstants {
        line += "; \(constants.count) specialization constants"
      }
      lines.append(line)
    }

    let weightBytes = manifest.weights.reduce(0) { $0 &+ $1.length }
    let weightSections = Set(manifest.weights.map(\.section)).count
    lines.append(
      "weights: \(manifest.weights.count) tensors, \(Self.byteSize(weightBytes)) in "
        + "\(weightSections) section\(weightSections == 1 ? "" : "s")")

    lines.append("sections: \(sections.count)")
    let header = ["index", "kind", "offset", "length", "align", "checksum"]
    var rows = [header]
    for (index, section) in sections.enumerated() {
      rows.append([
        "\(index)", "\(section.kind)", "\(section.offset)", "\(section.length)",
        "\(section.alignment)", hex(section.checksum),
      ])
    }
    let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    let rightAligned: Set<Int> = [0, 2, 3, 4]
    for row in rows {
      let cells = row.enumerated().map { column, cell in
        let padding = String(repeating: " ", count: widths[column] - cell.count)
        if rightAligned.contains(column) { return padding + cell }
        return column == row.count - 1 ? cell : cell + padding
      }
      lines.append("  " + cells.joined(separator: "  "))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  static func describe(_ signatures: [Manifest.TensorSignature]) -> String {
    guard !signatures.isEmpty else { return "(none)" }
    return signatures.map { signature in
      // A data-dependent extent prints as its maximum: <=N.
      let shape = signature.shape.enumerated().map { axis, extent in axis == signature.dynamicAxis ? "<=\(extent)" : "\(extent)" }
        .joined(separator: ", ")
      return "\(signature.name): \(signature.dtype)[\(shape)]" + (signature.isExtent == true ? " (extent)" : "")
    }.joined(separator: ", ")
  }

  static func describe(_ program: Manifest.Program) -> String {
    var dispatches = 0
    var barriers = 0
    var copies = 0
    var fills = 0
    for command in program.commands {
      switch command {
      case .dispatch: dispatches += 1
      case .barrier: barriers += 1
      case .copy: copies += 1
      case .fill: fills += 1
      }
    }
    var inputs = 0
    var outputs = 0
    var constants = 0
    var transients = 0
    var arena = 0
    for buffer in program.buffers {
      switch buffer.role {
      case .input: inputs += 1
      case .output: outputs += 1
      case .constant: constants += 1
      case .transient:
        transients += 1
        arena = arena &+ buffer.size
      }
    }
    return
      "\(counted(dispatches, "dispatch", "dispatches")), \(counted(barriers, "barrier", "barriers")), "
      + "\(counted(copies, "copy", "copies")), \(counted(fills, "fill", "fills")); "
      + "\(counted(program.buffers.count, "buffer", "buffers")) (\(inputs) input, \(outputs) output, "
      + "\(constants) constant, \(transients) transient); arena \(byteSize(arena))"
  }

  static func counted(_ count: Int, _ singular: String, _ plural: String) -> String {
    "\(count) \(count == 1 ? singular : plural)"
  }

  /// `1234 bytes`, or `12345 bytes (12.1 KiB)` when a larger unit helps.
  static func byteSize(_ count: Int) -> String {
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var unit = -1
    var scaled = count
    while scaled >= 1024 * 1024, unit < units.count - 2 {
      scaled /= 1024
      unit += 1
    }
    guard count >= 1024 else { return "\(count) bytes" }
    let tenths = (scaled * 10 + 512) / 1024
    return "\(count) bytes (\(tenths / 10).\(tenths % 10) \(units[unit + 1]))"
  }
}
