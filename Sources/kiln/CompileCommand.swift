import ArgumentParser
import Foundation
import KilnBundle
import KilnCodegen
import KilnONNX

/// `kiln compile MODEL.onnx -o OUT.kiln`: import, compile for each target, write one bundle.
struct CompileCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "compile",
    abstract: "Compile an ONNX model into a .kiln bundle.",
    discussion: """
      Writes the bundle atomically and prints a one-line summary to standard error. Passes, in \
      order: \(ModelCompiler.passNames.joined(separator: ", ")).
      """)

  @Argument(help: "The ONNX model (.onnx).")
  var model: String

  @Option(name: [.short, .customLong("output")], help: "The bundle to write (default: the model's path with .kiln).")
  var output: String?

  @Option(
    name: .customLong("target"),
    help: ArgumentHelp("A target to compile for; repeat for several (default: all).", valueName: "vulkan|cpu"))
  var targets: [String] = []

  @Option(
    name: .customLong("print-ir-after"),
    help: ArgumentHelp("Print the IR to standard error after a pass (repeatable).", valueName: "PASS|all"))
  var printIRAfter: [String] = []

  @Option(
    name: .customLong("dump-dir"),
    help: ArgumentHelp("Write each pass's IR, every kernel's source and SPIR-V disassembly here.", valueName: "DIR"))
  var dumpDirectory: String?

  func validate() throws {
    for target in targets where Target(rawValue: target) == nil {
      throw ValidationError(
        "unknown target '\(target)' (choose from \(Target.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    for pass in printIRAfter where pass != "all" && !ModelCompiler.passNames.contains(pass) {
      throw ValidationError(
        "unknown pass '\(pass)' for --print-ir-after (choose from all, \(ModelCompiler.passNames.joined(separator: ", ")))"
      )
    }
  }

  /// The default bundle path: the model's with its extension replaced by `.kiln`.
  static func defaultOutput(for model: URL) -> URL {
    model.deletingPathExtension().appendingPathExtension("kiln")
  }

  func run() throws {
    try reportingErrors {
      let modelURL = URL(fileURLWithPath: model)
      let outputURL = output.map { URL(fileURLWithPath: $0) } ?? Self.defaultOutput(for: modelURL)
      guard FileManager.default.fileExists(atPath: modelURL.path) else {
        throw CLIError("'\(model)': no such file")
      }
      // Refuse early, before spending time compiling (the writer refuses again).
      if FileSafety.sameFile(modelURL, outputURL) {
        throw CLIError("refusing to overwrite the model '\(model)' with the bundle (choose another -o)")
      }
      try FileSafety.checkFolderExists(for: outputURL, what: "bundle")

      var seen = Set<String>()
      let chosen = (targets.isEmpty ? Target.allCases.map(\.rawValue) : targets).filter { seen.insert($0).inserted }
      let targetList = chosen.compactMap(Target.init(rawValue:))
      var options = CompileOptions(
        targets: targetList, printIRAfter: Set(printIRAfter),
        dumpDirectory: dumpDirectory.map { URL(fileURLWithPath: $0, isDirectory: true) },
        modelName: Self.modelName(for: modelURL))
      if let directory = options.dumpDirectory {
        do {
          try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
          throw CLIError("cannot create the dump folder '\(directory.path)': \(describe(error))")
        }
      }
      options.printer = { printError($0) }

      let clock = ContinuousClock()
      let start = clock.now
      let graph = try ONNXImporter().importModel(at: modelURL)
      let imported = clock.now
      var compiled = try ModelCompiler(options: options).compile(graph)
      compiled.writer.protect(modelURL)
      let compiledAt = clock.now
      try compiled.writer.write(manifest: compiled.manifest, to: outputURL)
      let end = clock.now

      let size = (try? FileManager.default.attributesOfItem(atPath: outputURL.path)[.size] as? Int) ?? 0
      printError(
        "compiled \(model) -> \(outputURL.relativePath): \(compiled.kernelCount) kernels, "
          + "targets \(chosen.joined(separator: "+")), \(Self.formatBytes(size)), "
          + "compile time \(String(format: "%.3f", (end - start).seconds)) s "
          + "(import \(String(format: "%.3f", (imported - start).seconds)) s, "
          + "codegen \(String(format: "%.3f", (compiledAt - imported).seconds)) s, "
          + "write \(String(format: "%.3f", (end - compiledAt).seconds)) s)")
    }
  }

  /// The bundle's model name: the file's stem, or its folder's name for the usual `model.onnx`.
  static func modelName(for model: URL) -> String {
    let stem = model.deletingPathExtension().lastPathComponent
    let folder = model.standardizedFileURL.deletingLastPathComponent().lastPathComponent
    return stem == "model" && !folder.isEmpty && folder != "/" ? folder : stem
  }

  static func formatBytes(_ count: Int) -> String {
    if count >= 1 << 20 { return String(format: "%.1f MiB", Double(count) / Double(1 << 20)) }
    if count >= 1 << 10 { return String(format: "%.1f KiB", Double(count) / Double(1 << 10)) }
    return "\(count) B"
  }
}
