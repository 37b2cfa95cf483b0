import ArgumentParser
import Foundation
import KilnBundle
import KilnCodegen
import KilnHAL
import KilnRuntime

/// `kiln run B.kiln --device DEVICE --input @FILE ... [--output @FILE ...]`: one inference.
struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Run a .kiln bundle on a device.",
    discussion: """
      Tensor files are NumPy .npy or ONNX TensorProto .pb, chosen by extension. Inputs and outputs \
      are given in the model's order (@FILE) or by name (NAME=@FILE). Without --output, a summary \
      of each output is printed. KILN_FAULTS=SITE:N,... injects device failures for reproduction \
      (sites: alloc, pipeline, submit, device-lost, hang; see docs/security.md).
      """)

  @Argument(help: "The .kiln bundle.")
  var bundle: String

  @Option(help: "The device: auto, cpu, vulkan, vulkan:N or vulkan://UUID (see `kiln devices`).")
  var device = "auto"

  @Option(
    name: .customLong("input"),
    help: ArgumentHelp("An input tensor file, in input order or by name (repeatable).", valueName: "@FILE|NAME=@FILE"))
  var inputs: [String] = []

  @Option(
    name: .customLong("output"),
    help: ArgumentHelp(
      "Where to write an output, in output order or by name (repeatable).", valueName: "@FILE|NAME=@FILE"))
  var outputs: [String] = []

  @Option(
    name: .customLong("expect"),
    help: ArgumentHelp(
      "Compare an output with this file and exit 1 on mismatch (repeatable).", valueName: "@FILE|NAME=@FILE"))
  var expectations: [String] = []

  @Option(help: "Relative tolerance for --expect.")
  var rtol = 1e-3

  @Option(help: "Absolute tolerance for --expect, scaled by max(1, max|expected|).")
  var atol = 1e-4

  @Option(
    name: .customLong("repeat"),
    help: ArgumentHelp("Run N more times after the first and print timing to standard error.", valueName: "N"))
  var repeatCount = 0

  @Option(
    name: .customLong("memory-budget"),
    help: ArgumentHelp(
      "Refuse to load when the bundle's buffers (arena, weights, inputs, outputs) need more bytes.", valueName: "BYTES"))
  var memoryBudget: Int?

  @OptionGroup var deviceClassOption: DeviceClassOption
  var deviceClass: String? { deviceClassOption.deviceClass }

  @Option(
    help: ArgumentHelp("Give up on a run the device has not finished after this long (default 600).", valueName: "SECONDS"))
  var timeout: Double?

  func validate() throws {
    if let memoryBudget, memoryBudget <= 0 { throw ValidationError("--memory-budget must be positive") }
    if let timeout, !(timeout > 0 && timeout <= 1e9) { throw ValidationError("--timeout must be positive") }
    for (option, values) in [("input", inputs), ("output", outputs), ("expect", expectations)] {
      for value in values { _ = try FileArgument(parsing: value, option: option) }
    }
    guard repeatCount >= 0 else { throw ValidationError("--repeat must be 0 or more") }
    guard rtol >= 0, atol >= 0 else { throw ValidationError("--rtol and --atol must not be negative") }
  }

  func run() throws {
    try reportingErrors { try execute() }
  }

  private func execute() throws {
    let clock = ContinuousClock()
    let bundleURL = URL(fileURLWithPath: bundle)
    let reader = try TensorFiles.openBundle(bundleURL)
    guard let function = reader.manifest.function(named: "main") else {
      throw CLIError("'\(bundle)': the bundle has no function 'main'")
    }
    let inputNames = function.inputs.map(\.name)
    let outputNames = function.visibleOutputs.map(\.name)

    // Bind and check every file before touching the device.
    let inputSlots = try FileArgument.bind(
      inputs.map { try FileArgument(parsing: $0, option: "input") }, to: inputNames, kind: "input", option: "input")
    let missing = inputSlots.indices.filter { inputSlots[$0] == nil }
    guard missing.isEmpty else {
      let list = missing.map { "\($0) '\(inputNames[$0])' \(function.inputs[$0].dtype) \(function.inputs[$0].shape)" }
      throw CLIError(
        "missing input\(missing.count == 1 ? "" : "s") \(list.joined(separator: ", ")) (give --input @FILE in order or --input NAME=@FILE)"
      )
    }
    let outputSlots = try FileArgument.bind(
      outputs.map { try FileArgument(parsing: $0, option: "output") }, to: outputNames, kind: "output", option: "output"
    )
    let expectSlots = try FileArgument.bind(
      expectations.map { try FileArgument(parsing: $0, option: "expect") }, to: outputNames, kind: "output",
      option: "expect")
    let inputURLs = inputSlots.compactMap { $0?.url }
    var written: [URL] = []
    for (index, slot) in outputSlots.enumerated() {
      guard let url = slot?.url else { continue }
      if FileSafety.sameFile(url, bundleURL) {
        throw CLIError("output \(index) '\(outputNames[index])': refusing to overwrite the bundle '\(bundle)'")
      }
      if let input = inputURLs.first(where: { FileSafety.sameFile(url, $0) }) {
        throw CLIError("output \(index) '\(outputNames[index])': refusing to overwrite the input '\(input.path)'")
      }
      if let reference = expectSlots.compactMap({ $0?.url }).first(where: { FileSafety.sameFile(url, $0) }) {
        throw CLIError(
          "output \(index) '\(outputNames[index])': refusing to overwrite the --expect file '\(reference.path)'")
      }
      if let other = written.first(where: { FileSafety.sameFile(url, $0) }) {
        throw CLIError("output \(index) '\(outputNames[index])': '\(other.path)' is already written by another output")
      }
      _ = try TensorFiles.format(of: url)
      try FileSafety.checkFolderExists(for: url, what: "output \(index) '\(outputNames[index])'")
      written.append(url)
    }

    var tensors: [HostTensor] = []
    for (index, slot) in inputSlots.enumerated() {
      guard let slot else { continue }
      let tensor = try TensorFiles.read(slot.url)
      let signature = function.inputs[index]
      guard tensor.dtype == signature.dtype, tensor.shape == signature.shape else {
        throw CLIError(
          "input \(index) '\(signature.name)': expected \(signature.dtype) \(signature.shape), "
            + "'\(slot.path)' holds \(tensor.dtype) \(tensor.shape)")
      }
      tensors.append(tensor)
    }
    var expected: [Int: (FileArgument, HostTensor)] = [:]
    for (index, slot) in expectSlots.enumerated() {
      guard let slot else { continue }
      expected[index] = (slot, try TensorFiles.read(slot.url))
    }

    // Load and run.
    let registry = DeviceRegistry()
    let loadStart = clock.now
    let opened = try registry.open(device)
    let session = try Session(bundle: reader, device: opened, memoryBudget: memoryBudget, deviceClass: deviceClass)
    if let timeout { session.timeout = .milliseconds(Int64(timeout * 1000)) }
    let loadTime = clock.now - loadStart
    let firstStart = clock.now
    let results = try session.run(tensors)
    let firstTime = clock.now - firstStart
    var times: [Duration] = []
    for _ in 0..<repeatCount {
      let start = clock.now
      _ = try session.run(tensors)
      times.append(clock.now - start)
    }

    // Outputs.
    for (index, result) in results.enumerated() {
      if let slot = outputSlots[index] {
        try TensorFiles.write(result, name: outputNames[index], to: slot.url)
      } else if outputs.isEmpty {
        print("output \(index) '\(outputNames[index])': \(TensorFiles.summary(result))")
      }
    }
    if repeatCount > 0 {
      let sorted = times.sorted()
      let median =
        sorted.count % 2 == 1
        ? sorted[sorted.count / 2].milliseconds
        : (sorted[sorted.count / 2 - 1].milliseconds + sorted[sorted.count / 2].milliseconds) / 2
      printError(
        "timing \(opened.info.shortURI): load \(ms(loadTime.milliseconds)) ms, first run \(ms(firstTime.milliseconds)) ms, "
          + "median \(ms(median)) ms over \(repeatCount) runs (min \(ms(sorted[0].milliseconds)) ms, "
          + "max \(ms(sorted[sorted.count - 1].milliseconds)) ms)")
    }

    // Expectations.
    var failures: [String] = []
    let tolerance = Tolerance(relative: rtol, absoluteScale: atol)
    for index in expected.keys.sorted() {
      guard let (slot, want) = expected[index] else { continue }
      let label = "output \(index) '\(outputNames[index])'"
      if let problem = try TensorFiles.mismatch(got: results[index], expected: want, tolerance: tolerance) {
        failures.append("\(label) does not match '\(slot.path)' on \(opened.info.shortURI): \(problem)")
      } else {
        printError(
          "ok: \(label) matches '\(slot.path)' on \(opened.info.shortURI) "
            + "(max abs error \(String(format: "%.3g", TensorFiles.maxAbsoluteError(got: results[index], expected: want))))"
        )
      }
    }
    if !failures.isEmpty {
      for failure in failures.dropLast() { printError("error: " + oneLine(failure)) }
      throw CLIError(failures[failures.count - 1])
    }
  }

  private func ms(_ value: Double) -> String { String(format: "%.3f", value) }
}
