import ArgumentParser
import Foundation
import KilnBundle
import KilnCodegen
import KilnHAL
import KilnRuntime

/// `kiln bench B.kiln [--device D]... [--input @FILE]...`: latency of `Session.run` per device,
/// the first run apart, and where the time goes, dispatch by dispatch.
struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure a .kiln bundle's latency on each device, with a per-dispatch breakdown.",
    discussion: """
      Per device: session creation (load), the first run (pipeline creation and JIT included), then \
      --warmup runs, then timed runs of Session.run: exactly --iterations, or until --min-time \
      seconds have passed and at least 10 runs were made. Median, p90 and min are over the timed \
      runs. The per-dispatch breakdown replays the program with a timestamp after every dispatch \
      (GPU timestamp queries on Vulkan, the wall clock on the CPU device), --profile-runs times, \
      and reports each dispatch's median. Without --input, inputs are random (seeded): floats \
      in [-1, 1), integers in [0, 4), random booleans. CSV has one row per device.
      """)

  enum Format: String, ExpressibleByArgument, CaseIterable {
    case text, json, csv
  }

  @Argument(help: "The .kiln bundle.")
  var bundle: String

  @Option(
    name: .customLong("device"),
    help: ArgumentHelp("A device to measure (repeatable; default: every device `kiln devices` lists).", valueName: "D"))
  var devices: [String] = []

  @Option(
    name: .customLong("input"),
    help: ArgumentHelp("An input tensor file, in input order or by name (repeatable).", valueName: "@FILE|NAME=@FILE"))
  var inputs: [String] = []

  @Option(help: ArgumentHelp("Untimed runs after the first run.", valueName: "N"))
  var warmup = 3

  @Option(help: ArgumentHelp("Timed runs per device (instead of --min-time).", valueName: "N"))
  var iterations: Int?

  @Option(
    name: .customLong("min-time"),
    help: ArgumentHelp("Time runs for at least this long, and at least 10 runs (default 2).", valueName: "S"))
  var minTime: Double?

  @Option(help: ArgumentHelp("Timestamped runs for the per-dispatch breakdown (0: none).", valueName: "N"))
  var profileRuns = 5

  @Option(
    name: .customLong("memory-budget"),
    help: ArgumentHelp(
      "Refuse to load when the bundle's buffers (arena, weights, inputs, outputs) need more bytes.", valueName: "BYTES"))
  var memoryBudget: Int?

  @OptionGroup var deviceClassOption: DeviceClassOption
  var deviceClass: String? { deviceClassOption.deviceClass }

  @Option(help: "Seed of the random inputs.")
  var seed: UInt64 = 0

  @Option(help: "Output format: text, json or csv.")
  var format: Format = .text

  @Option(help: ArgumentHelp("Also write an SVG bar chart of the results.", valueName: "FILE.svg"))
  var chart: String?

  func validate() throws {
    if let memoryBudget, memoryBudget <= 0 { throw ValidationError("--memory-budget must be positive") }
    for value in inputs { _ = try FileArgument(parsing: value, option: "input") }
    guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
    if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
    if let minTime, !(minTime > 0 && minTime.isFinite) {
      throw ValidationError("--min-time must be a positive number of seconds")
    }
    guard iterations == nil || minTime == nil else {
      throw ValidationError("give --iterations or --min-time, not both")
    }
    guard profileRuns >= 0 else { throw ValidationError("--profile-runs must be 0 or more") }
  }

  func run() throws {
    try reportingErrors { try execute() }
  }

  private func execute() throws {
    let bundleURL = URL(fileURLWithPath: bundle)
    let reader = try TensorFiles.openBundle(bundleURL)
    guard let function = reader.manifest.function(named: "main") else {
      throw CLIError("'\(bundle)': the bundle has no function 'main'")
    }
    if let chart {
      let url = URL(fileURLWithPath: chart)
      if FileSafety.sameFile(url, bundleURL) { throw CLIError("--chart: refusing to overwrite the bundle '\(bundle)'") }
      try FileSafety.checkFolderExists(for: url, what: "--chart")
    }
    let (tensors, inputDescription) = try loadInputs(function)

    // Devices: the ones asked for (each must work), else every device the bundle has a program for.
    let registry = DeviceRegistry()
    var targets: [DeviceInfo] = []
    if devices.isEmpty {
      for info in registry.allDevices {
        if function.program(for: info.driver) == nil {
          printError("note: skipping \(info.shortURI): the bundle has no \(info.driver) program")
        } else {
          targets.append(info)
        }
      }
      guard !targets.isEmpty else {
        throw CLIError(
          "'\(bundle)' has no program for any device here (it has: \(function.programs.map(\.target).joined(separator: ", ")))"
        )
      }
    } else {
      for uri in devices {
        let info = try registry.resolve(uri)
        if !targets.contains(where: { $0.uuid == info.uuid && $0.driver == info.driver }) { targets.append(info) }
      }
    }

    var results: [BenchReport.DeviceResult] = []
    for info in targets {
      results.append(try measure(info, registry: registry, reader: reader, tensors: tensors))
    }
    let report = BenchReport(
      bundle: bundle, model: reader.manifest.modelName, inputs: inputDescription,
      date: ISO8601DateFormatter().string(from: Date()), warmup: warmup, devices: results)

    switch format {
    case .text: print(report.text(), terminator: "")
    case .json: print(try report.json())
    case .csv: print(report.csv(), terminator: "")
    }
    if let chart {
      try FileSafety.writeAtomically(Array(BenchChart.svg(report).utf8), to: URL(fileURLWithPath: chart))
      printError("wrote \(chart)")
    }
  }

  /// The input tensors: files where given, seeded random tensors for the rest.
  private func loadInputs(_ function: Manifest.Function) throws -> ([HostTensor], String) {
    let names = function.inputs.map(\.name)
    let slots = try FileArgument.bind(
      inputs.map { try FileArgument(parsing: $0, option: "input") }, to: names, kind: "input", option: "input")
    var tensors: [HostTensor] = []
    var randomNames: [String] = []
    for (index, signature) in function.inputs.enumerated() {
      if let slot = slots[index] {
        let tensor = try TensorFiles.read(slot.url)
        guard tensor.dtype == signature.dtype, tensor.shape == signature.shape else {
          throw CLIError(
            "input \(index) '\(signature.name)': expected \(signature.dtype) \(signature.shape), "
              + "'\(slot.path)' holds \(tensor.dtype) \(tensor.shape)")
        }
        tensors.append(tensor)
      } else {
        tensors.append(try RandomTensor.make(signature, seed: seed &+ UInt64(index)))
        randomNames.append(signature.name)
      }
    }
    let description: String
    if randomNames.isEmpty {
      description = "files"
    } else if randomNames.count == names.count {
      description = "random (seed \(seed))"
    } else {
      description = "files; random (seed \(seed)) for \(randomNames.joined(separator: ", "))"
    }
    return (tensors, description)
  }

  private func measure(
    _ info: DeviceInfo, registry: DeviceRegistry, reader: BundleReader, tensors: [HostTensor]
  ) throws -> BenchReport.DeviceResult {
    let clock = ContinuousClock()
    let progress = BenchProgress(device: info.shortURI)
    progress.say("loading")
    let loadStart = clock.now
    let device = try registry.open(info)
    let session = try Session(bundle: reader, device: device, memoryBudget: memoryBudget, deviceClass: deviceClass)
    let load = clock.now - loadStart
    progress.say("first run")
    let firstStart = clock.now
    _ = try session.run(tensors)
    let first = clock.now - firstStart
    for index in 0..<warmup {
      progress.say("warmup \(index + 1)/\(warmup)")
      _ = try session.run(tensors)
    }

    var times: [Double] = []
    let start = clock.now
    let minSeconds = minTime ?? 2
    while true {
      let elapsed = (clock.now - start).seconds
      if let iterations {
        if times.count >= iterations { break }
        progress.say("run \(times.count + 1)/\(iterations)", often: true)
      } else {
        if times.count >= 10 && elapsed >= minSeconds { break }
        progress.say(
          "\(times.count) runs, \(String(format: "%.1f", elapsed))/\(String(format: "%g", minSeconds)) s",
          often: true)
      }
      let runStart = clock.now
      _ = try session.run(tensors)
      times.append((clock.now - runStart).milliseconds)
    }

    var dispatches: [BenchReport.DispatchResult] = []
    var profileNote: String?
    if profileRuns > 0 {
      var samples: [[DispatchTiming]] = []
      do {
        for index in 0..<profileRuns {
          progress.say("profile \(index + 1)/\(profileRuns)")
          samples.append(try session.profile(tensors))
        }
      } catch let error as HALError where error.code == .unsupported {
        let note = "no per-dispatch breakdown: \(error.message)"
        profileNote = note
        printError("note: \(info.shortURI): \(note)")
      }
      if let firstSample = samples.first {
        dispatches = firstSample.indices.map { index in
          let timing = firstSample[index]
          return BenchReport.DispatchResult(
            index: timing.index, executable: timing.executable, entryPoint: timing.entryPoint,
            sourceOps: timing.sourceOps, workgroups: timing.workgroups,
            milliseconds: Statistics.median(samples.map { $0[index].milliseconds }))
        }
      }
    }
    progress.done()

    let sorted = times.sorted()
    return BenchReport.DeviceResult(
      device: info.shortURI, name: info.name, driver: info.driver, variant: session.cpuVariant ?? session.program.deviceClass,
      loadMilliseconds: load.milliseconds, firstRunMilliseconds: first.milliseconds,
      medianMilliseconds: Statistics.median(sorted), p90Milliseconds: Statistics.percentile(sorted, 0.9),
      minMilliseconds: sorted[0], maxMilliseconds: sorted[sorted.count - 1],
      meanMilliseconds: sorted.reduce(0, +) / Double(sorted.count), iterations: sorted.count, warmup: warmup,
      timingSource: info.driver == "vulkan" ? "gpu-timestamps" : "wall-clock",
      profileRuns: dispatches.isEmpty ? 0 : profileRuns,
      profileNote: profileNote, dispatches: dispatches)
  }
}

/// Progress on standard error: one rewritten line on a terminal (messages sent `often` at most
/// every 0.1 s); otherwise a line when a device starts and then at most one every 5 seconds.
final class BenchProgress {
  let device: String
  let interactive = isatty(STDERR_FILENO) != 0
  private var lastLine = ContinuousClock.now
  private var printedStart = false

  init(device: String) { self.device = device }

  func say(_ message: String, often: Bool = false) {
    let line = "bench \(device): \(message)"
    if interactive {
      guard !often || ContinuousClock.now - lastLine >= .milliseconds(100) else { return }
      lastLine = ContinuousClock.now
      FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    } else if !printedStart || ContinuousClock.now - lastLine >= .seconds(5) {
      printedStart = true
      lastLine = ContinuousClock.now
      printError(line)
    }
  }

  func done() {
    if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}

enum Statistics {
  /// The median of sorted or unsorted values (mean of the middle two for an even count).
  static func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  }

  /// Nearest-rank percentile: the smallest value with at least `fraction` of the values at or below it.
  static func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
  }
}

/// Deterministic random tensors (SplitMix64) for benchmarking without input files.
enum RandomTensor {
  static func make(_ signature: Manifest.TensorSignature, seed: UInt64) throws -> HostTensor {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x2545_F491_4F6C_DD1D
    func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    func unit() -> Double { Double(next() >> 11) / Double(1 << 53) * 2 - 1 }
    let count = signature.shape.reduce(1, *)
    var bytes: [UInt8] = []
    func append<T: FixedWidthInteger>(_ value: T) {
      withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    bytes.reserveCapacity(count * (HostTensor.elementSize(signature.dtype) ?? 1))
    for _ in 0..<count {
      let small = next() % 4
      switch signature.dtype {
      case "float32": append(Float(unit()).bitPattern)
      case "float64": append(unit().bitPattern)
      case "float16": append(Float16(unit()).bitPattern)
      case "bfloat16": append(UInt16(truncatingIfNeeded: Float(unit()).bitPattern >> 16))
      case "bool": append(UInt8(next() & 1))
      case "int8", "uint8", "int4", "uint4", "int2", "uint2", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
        "float8e5m2fnuz", "float8e8m0", "float4e2m1":
        append(UInt8(small))
      case "int16", "uint16": append(UInt16(small))
      case "int32", "uint32": append(UInt32(small))
      case "int64", "uint64": append(UInt64(small))
      default:
        throw CLIError("input '\(signature.name)': cannot make random \(signature.dtype) values; give --input")
      }
    }
    return HostTensor(dtype: signature.dtype, shape: signature.shape, bytes: bytes)
  }
}

/// Everything `kiln bench` measured, and its text, JSON and CSV forms.
struct BenchReport: Encodable {
  struct DispatchResult: Encodable {
    var index: Int
    var executable: Int
    var entryPoint: String
    var sourceOps: [String]
    var workgroups: [Int]
    var milliseconds: Double

    enum CodingKeys: String, CodingKey {
      case index, executable, entryPoint = "entry_point", sourceOps = "source_ops", workgroups, milliseconds = "ms"
    }

    /// The entry point, with its executable where the name alone says nothing (SPIR-V's "main").
    var kernelLabel: String { entryPoint == "main" ? "main (executable \(executable))" : entryPoint }

    /// "Conv+Relu" style label of the source ops (or the entry point when the manifest has none).
    var opsLabel: String { sourceOps.isEmpty ? entryPoint : sourceOps.joined(separator: "+") }
  }

  struct DeviceResult: Encodable {
    var device: String
    var name: String
    var driver: String
    /// The CPU variant that ran (x86-64-v3, baseline), or the Vulkan program's device class.
    var variant: String?
    var loadMilliseconds: Double
    var firstRunMilliseconds: Double
    var medianMilliseconds: Double
    var p90Milliseconds: Double
    var minMilliseconds: Double
    var maxMilliseconds: Double
    var meanMilliseconds: Double
    var iterations: Int
    var warmup: Int
    var timingSource: String
    var profileRuns: Int
    var profileNote: String?
    var dispatches: [DispatchResult]

    enum CodingKeys: String, CodingKey {
      case device, name, driver, variant
      case loadMilliseconds = "load_ms", firstRunMilliseconds = "first_run_ms", medianMilliseconds = "median_ms"
      case p90Milliseconds = "p90_ms", minMilliseconds = "min_ms", maxMilliseconds = "max_ms"
      case meanMilliseconds = "mean_ms", iterations, warmup
      case timingSource = "dispatch_timing", profileRuns = "profile_runs", profileNote = "profile_note", dispatches
      case dispatchTotal = "dispatch_total_ms"
    }

    var dispatchTotal: Double { dispatches.reduce(0) { $0 + $1.milliseconds } }

    /// Dispatches by time, longest first.
    var ranked: [DispatchResult] { dispatches.sorted { $0.milliseconds > $1.milliseconds } }

    func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(device, forKey: .device)
      try container.encode(name, forKey: .name)
      try container.encode(driver, forKey: .driver)
      try container.encodeIfPresent(variant, forKey: .variant)
      try container.encode(rounded(loadMilliseconds), forKey: .loadMilliseconds)
      try container.encode(rounded(firstRunMilliseconds), forKey: .firstRunMilliseconds)
      try container.encode(rounded(medianMilliseconds), forKey: .medianMilliseconds)
      try container.encode(rounded(p90Milliseconds), forKey: .p90Milliseconds)
      try container.encode(rounded(minMilliseconds), forKey: .minMilliseconds)
      try container.encode(rounded(maxMilliseconds), forKey: .maxMilliseconds)
      try container.encode(rounded(meanMilliseconds), forKey: .meanMilliseconds)
      try container.encode(iterations, forKey: .iterations)
      try container.encode(warmup, forKey: .warmup)
      try container.encode(timingSource, forKey: .timingSource)
      try container.encode(profileRuns, forKey: .profileRuns)
      try container.encodeIfPresent(profileNote, forKey: .profileNote)
      try container.encode(rounded(dispatchTotal), forKey: .dispatchTotal)
      let exact = dispatches.map { dispatch -> DispatchResult in
        var copy = dispatch
        copy.milliseconds = rounded(dispatch.milliseconds)
        return copy
      }
      try container.encode(exact, forKey: .dispatches)
    }
  }

  var bundle: String
  var model: String
  var inputs: String
  var date: String
  var warmup: Int
  var devices: [DeviceResult]

  /// How many dispatches the text report lists per device.
  static let topCount = 8

  func json() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(self), as: UTF8.self)
  }

  func csv() -> String {
    var lines = [
      "device,name,driver,load_ms,first_run_ms,median_ms,p90_ms,min_ms,max_ms,mean_ms,iterations,dispatches,dispatch_total_ms"
    ]
    for result in devices {
      let fields: [String] = [
        result.device, result.name, result.driver, formatMilliseconds(result.loadMilliseconds),
        formatMilliseconds(result.firstRunMilliseconds),
        formatMilliseconds(result.medianMilliseconds), formatMilliseconds(result.p90Milliseconds),
        formatMilliseconds(result.minMilliseconds),
        formatMilliseconds(result.maxMilliseconds), formatMilliseconds(result.meanMilliseconds),
        String(result.iterations),
        String(result.dispatches.count), formatMilliseconds(result.dispatchTotal),
      ]
      lines.append(fields.map(csvField).joined(separator: ","))
    }
    return lines.joined(separator: "\n") + "\n"
  }

  func text() -> String {
    var out = "kiln bench \(bundle): model '\(model)', inputs \(inputs), warmup \(warmup)\n\n"
    let header = ["device", "name", "load ms", "first run ms", "median ms", "p90 ms", "min ms", "runs"]
    let rows = devices.map { result in
      [
        result.device, result.name, formatMilliseconds(result.loadMilliseconds),
        formatMilliseconds(result.firstRunMilliseconds),
        formatMilliseconds(result.medianMilliseconds), formatMilliseconds(result.p90Milliseconds),
        formatMilliseconds(result.minMilliseconds), String(result.iterations),
      ]
    }
    out += table(header: header, rows: rows, leftAligned: 2)
    for result in devices where !result.dispatches.isEmpty {
      let total = result.dispatchTotal
      let source = result.timingSource == "gpu-timestamps" ? "GPU timestamps" : "wall clock"
      out +=
        "\n\(result.device): top dispatches of \(result.dispatches.count) (\(source), median of \(result.profileRuns) "
      out += "serialised runs, \(formatMilliseconds(total)) ms in all)\n"
      let top = result.ranked.prefix(Self.topCount)
      let dispatchRows = top.map { dispatch in
        [
          String(dispatch.index), dispatch.kernelLabel, formatMilliseconds(dispatch.milliseconds),
          String(format: "%.1f%%", total > 0 ? dispatch.milliseconds / total * 100 : 0),
          dispatch.sourceOps.joined(separator: ", "),
        ]
      }
      out += table(
        header: ["#", "kernel", "ms", "share", "source ops"], rows: dispatchRows, leftAligned: 0, leftColumns: [1, 4])
      if result.dispatches.count > top.count {
        let rest = result.ranked.dropFirst(top.count).reduce(0) { $0 + $1.milliseconds }
        out += "   (\(result.dispatches.count - top.count) more: \(formatMilliseconds(rest)) ms)\n"
      }
    }
    return out
  }

  /// A plain-text table: numbers right-aligned, the first `leftAligned` columns (and `leftColumns`) left-aligned.
  private func table(header: [String], rows: [[String]], leftAligned: Int, leftColumns: Set<Int> = []) -> String {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
      let padded = cells.enumerated().map { column, cell in
        let pad = String(repeating: " ", count: widths[column] - cell.count)
        return column < leftAligned || leftColumns.contains(column) ? cell + pad : pad + cell
      }
      var text = padded.joined(separator: "  ")
      while text.hasSuffix(" ") { text.removeLast() }
      return text + "\n"
    }
    return line(header) + rows.map(line).joined()
  }

  private func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }
}

/// Milliseconds for people: 4 significant digits, at most 3 decimals.
func formatMilliseconds(_ value: Double) -> String {
  if value >= 1000 { return String(format: "%.0f", value) }
  if value >= 100 { return String(format: "%.1f", value) }
  if value >= 10 { return String(format: "%.2f", value) }
  if value >= 0.01 { return String(format: "%.3f", value) }
  return String(format: "%.4f", value)
}

/// Rounds to 0.1 microsecond for JSON.
private func rounded(_ value: Double) -> Double { (value * 10_000).rounded() / 10_000 }
