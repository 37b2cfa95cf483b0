import ArgumentParser
import Foundation
import KilnBundle
import KilnCodegen
import KilnONNX
import KilnRuntime

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
    name: .customLong("vulkan-class"),
    help: ArgumentHelp(
      "A Vulkan device class to tune kernels for; repeat for several (default: cpu and gpu, and coopmat with --precision fp16). Each gets its own program; the runtime picks the device's.",
      valueName: "cpu|gpu|coopmat"))
  var vulkanClasses: [String] = []

  @Option(
    name: .customLong("cpu-variant"),
    help: ArgumentHelp(
      "A CPU feature level to build the CPU target for; repeat for several (default: both). The runtime runs the best one the host supports.",
      valueName: "x86-64-v3|baseline"))
  var cpuVariants: [String] = []

  @Option(
    help: ArgumentHelp(
      "fp16: the Vulkan gpu class's program stores convolution and matmul weights as float16, with float32 arithmetic (about 1e-3 relative error), and a coopmat class runs contractions on float16 cooperative matrices (NVIDIA); the CPU program and lavapipe's stay fp32.",
      valueName: "fp32|fp16"))
  var precision: String = "fp32"

  @Option(
    name: .customLong("print-ir-after"),
    help: ArgumentHelp("Print the IR to standard error after a pass (repeatable).", valueName: "PASS|all"))
  var printIRAfter: [String] = []

  @Option(
    name: .customLong("dump-dir"),
    help: ArgumentHelp("Write each pass's IR, every kernel's source and SPIR-V disassembly here.", valueName: "DIR"))
  var dumpDirectory: String?

  @Option(
    name: .customLong("bind"),
    help: ArgumentHelp(
      "Fix a graph input to a value at compile time (it leaves the runtime signature); repeatable.",
      valueName: "NAME=FILE.npy|FILE.pb"))
  var bindings: [String] = []

  @Option(
    name: .customLong("input-shape"),
    help: ArgumentHelp("The full shape of a graph input (replacing symbolic dimensions); repeatable.", valueName: "NAME=D0,D1,..."))
  var inputShapes: [String] = []

  @Option(
    name: .customLong("memory-budget"),
    help: ArgumentHelp("Most bytes of constant data, and of any one tensor, the importer accepts (default 4 GiB).", valueName: "BYTES"))
  var memoryBudget: Int?

  @Flag(name: .customLong("time-passes"), help: "Print each pass's wall time to standard error.")
  var timePasses = false

  @Option(
    name: .customLong("cache-dir"),
    help: ArgumentHelp(
      "The compiled-kernel cache (default: kernels in $KILN_CACHE_DIR, else in $XDG_CACHE_HOME/kiln, else in ~/.cache/kiln).",
      valueName: "DIR"))
  var cacheDirectory: String?

  @Flag(
    name: .customLong("spirv-opt"),
    help: "Optimise every SPIR-V module for speed (inlining, constant propagation, unrolling) rather than only for size; drivers optimise again, so this only costs compile time on the drivers measured.")
  var optimizeSPIRV = false

  @Flag(name: .customLong("no-cache"), help: "Compile every kernel; neither read nor write the kernel cache.")
  var noCache = false

  func validate() throws {
    for variant in cpuVariants where !CompileOptions.knownCPUVariants.contains(variant) {
      throw ValidationError("unknown CPU variant '\(variant)' (choose from \(CompileOptions.knownCPUVariants.joined(separator: ", ")))")
    }
    guard Precision(rawValue: precision) != nil else {
      throw ValidationError("unknown precision '\(precision)' (choose from \(Precision.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    for name in vulkanClasses where VulkanClass(rawValue: name) == nil {
      throw ValidationError("unknown Vulkan class '\(name)' (choose from \(VulkanClass.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    if vulkanClasses.contains(VulkanClass.coopmat.rawValue), precision != Precision.fp16.rawValue {
      throw ValidationError("--vulkan-class coopmat rounds contraction operands to float16: add --precision fp16")
    }
    for entry in bindings + inputShapes where Self.splitAssignment(entry) == nil {
      throw ValidationError("expected NAME=VALUE, got '\(entry)'")
    }
    for entry in inputShapes {
      guard let (_, text) = Self.splitAssignment(entry), ImportOptions.parseShape(text) != nil else {
        throw ValidationError("--input-shape '\(entry)': the shape must be comma-separated non-negative integers")
      }
    }
    if let memoryBudget, memoryBudget <= 0 {
      throw ValidationError("--memory-budget must be positive")
    }

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

      let chosen = Self.firstOfEach(targets.isEmpty ? Target.allCases.map(\.rawValue) : targets)
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
      options.precision = Precision(rawValue: precision) ?? .fp32
      options.optimizeSPIRV = optimizeSPIRV
      if !cpuVariants.isEmpty {
        options.cpuVariants = Self.firstOfEach(cpuVariants)
      }
      if !vulkanClasses.isEmpty {
        options.vulkanClasses = Self.firstOfEach(vulkanClasses).compactMap(VulkanClass.init(rawValue:))
      }
      if !noCache, let directory = cacheDirectory.map({ URL(fileURLWithPath: $0, isDirectory: true) }) ?? KernelCache.defaultDirectory() {
        options.cache = KernelCache(directory: directory)
      }

      let clock = ContinuousClock()
      let start = clock.now
      let graph = try ONNXImporter(options: try importOptions()).importModel(at: modelURL)
      let imported = clock.now
      var compiled = try ModelCompiler(options: options).compile(graph)
      compiled.writer.protect(modelURL)
      let compiledAt = clock.now
      try compiled.writer.write(manifest: compiled.manifest, to: outputURL)
      let end = clock.now
      if timePasses {
        var lines = ["pass timings (wall, seconds):", Self.timingLine("import", (imported - start).seconds)]
        for (pass, seconds) in compiled.timings { lines.append(Self.timingLine(pass, seconds)) }
        lines.append(Self.timingLine("write", (end - compiledAt).seconds))
        printError(lines.joined(separator: "\n"))
      }

      let size = (try? FileManager.default.attributesOfItem(atPath: outputURL.path)[.size] as? Int) ?? 0
      printError(
        "compiled \(model) -> \(outputURL.relativePath): \(compiled.kernelCount) kernels, "
          + "targets \(chosen.joined(separator: "+")), \(Self.formatBytes(size)), "
          + (options.cache.map { "\($0.hits) of \($0.hits + $0.misses) compiled modules from the cache, " } ?? "")
          + "compile time \(String(format: "%.3f", (end - start).seconds)) s "
          + "(import \(String(format: "%.3f", (imported - start).seconds)) s, "
          + "codegen \(String(format: "%.3f", (compiledAt - imported).seconds)) s, "
          + "write \(String(format: "%.3f", (end - compiledAt).seconds)) s)")
    }
  }

  /// `values` in order without repeats (a flag given twice counts once).
  static func firstOfEach(_ values: [String]) -> [String] {
    var seen = Set<String>()
    return values.filter { seen.insert($0).inserted }
  }

  static func timingLine(_ name: String, _ seconds: Double) -> String {
    "  " + name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%.3f", seconds)
  }

  /// Import options from `--bind`, `--input-shape` and `--memory-budget`.
  func importOptions() throws -> ImportOptions {
    var options = ImportOptions()
    if let memoryBudget { options.memoryBudget = memoryBudget }
    for entry in inputShapes {
      guard let (name, text) = Self.splitAssignment(entry), let shape = ImportOptions.parseShape(text) else { continue }
      options.inputShapes[name] = shape
    }
    for entry in bindings {
      guard let (name, path) = Self.splitAssignment(entry) else { continue }
      let url = URL(fileURLWithPath: path)
      let tensor: HostTensor
      do {
        tensor = try TensorFiles.read(url)
      } catch {
        throw CLIError("--bind \(name): \(describe(error))")
      }
      options.constantInputs[name] = try TensorFiles.tensorData(tensor)
    }
    return options
  }

  /// `NAME=VALUE` split at the first `=`; nil when either side is empty.
  static func splitAssignment(_ entry: String) -> (String, String)? {
    guard let equals = entry.firstIndex(of: "=") else { return nil }
    let name = String(entry[..<equals])
    let value = String(entry[entry.index(after: equals)...])
    return name.isEmpty || value.isEmpty ? nil : (name, value)
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
