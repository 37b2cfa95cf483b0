import ArgumentParser
import Foundation
import KilnCodegen
import KilnConformance
import KilnHAL
import KilnRuntime

/// `kiln conformance DIR`: runs ONNX backend tests through import, compile, bundle and run on
/// each device, each test in its own process (so a crash or a hang is reported, not fatal).
struct ConformanceCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "conformance",
    abstract: "Run ONNX backend tests (model.onnx + test_data_set_N) on devices and compare with stored outputs.")

  @Argument(help: "A test folder, a group folder (e.g. onnx-tests/node) or the suite root (onnx-tests).")
  var directory: String

  @Option(name: .customLong("device"), help: "Device URI; repeatable (default: every device).")
  var devices: [String] = []

  @Option(help: "Write every result as JSON to this file.")
  var json: String?

  @Option(help: "Only tests whose name contains this text.")
  var filter: String?

  @Flag(help: "Only the core set of inventory.csv (ONNX Runtime passes; tensors only; no subgraphs, strings or low precision).")
  var core = false

  @Option(help: "Seconds before a test is reported as a time-out.")
  var timeout: Double = 300

  @Option(help: "Tests run at once (default: the number of cores).")
  var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "Write docs/op-coverage.md-style Markdown from this run to the file.")
  var coverageMarkdown: String?

  @OptionGroup var deviceClassOption: DeviceClassOption
  var deviceClass: String? { deviceClassOption.deviceClass }

  @Option(help: .hidden)
  var single: String?

  func run() throws {
    if let single {
      try runSingle(URL(fileURLWithPath: single))
      return
    }
    let root = URL(fileURLWithPath: directory)
    var tests = try Self.findTests(root)
    var inventory: [InventoryEntry] = []
    if let inventoryURL = Self.inventory(near: root) { inventory = (try? TestInventory.load(inventoryURL)) ?? [] }
    if core {
      guard !inventory.isEmpty else { throw ValidationError("--core needs inventory.csv next to the test groups") }
      let coreNames = Set(inventory.filter(\.isCore).map(\.test))
      tests = tests.filter { coreNames.contains($0.directory.lastPathComponent) }
    }
    if let filter { tests = tests.filter { $0.directory.lastPathComponent.contains(filter) } }
    let registry = DeviceRegistry()
    let uris = devices.isEmpty ? registry.allDevices.map(\.shortURI) : try devices.map { try registry.resolve($0).shortURI }
    printError("conformance: \(tests.count) tests on \(uris.joined(separator: ", ")), \(jobs) at a time")

    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    let queue = DispatchQueue(label: "kiln.conformance", attributes: .concurrent)
    let semaphore = DispatchSemaphore(value: max(1, jobs))
    let group = DispatchGroup()
    let collected = ResultStore()
    let total = tests.count
    for test in tests {
      semaphore.wait()
      group.enter()
      queue.async {
        defer {
          semaphore.signal()
          group.leave()
        }
        let results = Self.runChild(
          executable: executable, test: test, devices: uris, deviceClass: deviceClass, timeout: timeout)
        let done = collected.add(results)
        if done % 50 == 0 { printError("conformance: \(done)/\(total)") }
      }
    }
    group.wait()
    let results = collected.all.sorted { ($0.test, $0.device) < ($1.test, $1.device) }

    for uri in uris {
      let mine = results.filter { $0.device == uri }
      let counts = ConformanceOutcome.allCases.map { outcome in "\(outcome.rawValue) \(mine.filter { $0.outcome == outcome }.count)" }
      print("\(uri): \(mine.filter { $0.outcome == .pass }.count)/\(mine.count) passed; " + counts.joined(separator: ", "))
    }
    if let json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try encoder.encode(results).write(to: URL(fileURLWithPath: json), options: .atomic)
    }
    if let coverageMarkdown {
      let formatter = DateFormatter()
      formatter.dateFormat = "yyyy-MM-dd"
      let text = OpCoverage.markdown(results: results, inventory: inventory, devices: uris, date: formatter.string(from: Date()))
      try text.write(to: URL(fileURLWithPath: coverageMarkdown), atomically: true, encoding: .utf8)
    }
  }

  /// In the child: run one test on the requested devices and print the results as JSON.
  private func runSingle(_ directory: URL) throws {
    let registry = DeviceRegistry()
    let opened = try devices.map { try registry.open($0) }
    let group = directory.deletingLastPathComponent().lastPathComponent
    var runner = ConformanceRunner()
    runner.vulkanClass = deviceClass.flatMap(VulkanClass.init(rawValue:))
    let results = runner.run(testDirectory: directory, group: group, devices: opened)
    let data = try JSONEncoder().encode(results)
    FileHandle.standardOutput.write(data)
  }

  struct TestCase {
    var directory: URL
    var group: String
  }

  static func findTests(_ root: URL) throws -> [TestCase] {
    let manager = FileManager.default
    if manager.fileExists(atPath: root.appendingPathComponent("model.onnx").path) {
      return [TestCase(directory: root, group: root.deletingLastPathComponent().lastPathComponent)]
    }
    var found: [TestCase] = []
    for child in try manager.contentsOfDirectory(at: root, includingPropertiesForKeys: nil).sorted(by: { $0.path < $1.path }) {
      if manager.fileExists(atPath: child.appendingPathComponent("model.onnx").path) {
        found.append(TestCase(directory: child, group: root.lastPathComponent))
      } else {
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: child.path, isDirectory: &isDirectory), isDirectory.boolValue {
          found += try findTests(child)
        }
      }
    }
    return found
  }

  static func inventory(near root: URL) -> URL? {
    for candidate in [root, root.deletingLastPathComponent(), root.deletingLastPathComponent().deletingLastPathComponent()] {
      let file = candidate.appendingPathComponent("inventory.csv")
      if FileManager.default.fileExists(atPath: file.path) { return file }
    }
    return nil
  }

  /// Runs `kiln conformance --single` for one test; a signal is a crash, the time-out kills it.
  static func runChild(executable: URL, test: TestCase, devices: [String], deviceClass: String? = nil, timeout: Double) -> [ConformanceResult] {
    let name = test.directory.lastPathComponent
    func all(_ outcome: ConformanceOutcome, _ detail: String) -> [ConformanceResult] {
      devices.map { ConformanceResult(test: name, group: test.group, device: $0, outcome: outcome, detail: detail, seconds: 0) }
    }
    let process = Process()
    process.executableURL = executable
    process.arguments =
      ["conformance", test.directory.path, "--single", test.directory.path] + devices.flatMap { ["--device", $0] }
      + (deviceClass.map { ["--device-class", $0] } ?? [])
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      return all(.runError, "could not start \(executable.path): \(error)")
    }
    let deadline = DispatchTime.now() + timeout
    let finished = DispatchSemaphore(value: 0)
    let reader = DispatchQueue(label: "kiln.conformance.reader")
    let box = DataBox()
    reader.async {
      box.data = output.fileHandleForReading.readDataToEndOfFile()
      finished.signal()
    }
    if finished.wait(timeout: deadline) == .timedOut {
      process.terminate()
      kill(process.processIdentifier, SIGKILL)
      finished.wait()
      process.waitUntilExit()
      return all(.timeout, "no result after \(Int(timeout)) s")
    }
    process.waitUntilExit()
    if process.terminationReason == .uncaughtSignal {
      return all(.crash, "killed by signal \(process.terminationStatus)")
    }
    guard process.terminationStatus == 0, let results = try? JSONDecoder().decode([ConformanceResult].self, from: box.data) else {
      return all(.crash, "exited with status \(process.terminationStatus) and no result")
    }
    return results
  }
}

/// Results from concurrent children.
final class ResultStore: @unchecked Sendable {
  // @unchecked: every access holds `lock`.
  private let lock = NSLock()
  private var results: [ConformanceResult] = []
  private var tests = 0

  func add(_ new: [ConformanceResult]) -> Int {
    lock.lock()
    defer { lock.unlock() }
    results += new
    tests += 1
    return tests
  }

  var all: [ConformanceResult] {
    lock.lock()
    defer { lock.unlock() }
    return results
  }
}

/// The child's standard output, written by the reader before it signals `finished`.
final class DataBox: @unchecked Sendable {
  // @unchecked: written once by the reader thread, read after the semaphore it signals.
  var data = Data()
}
