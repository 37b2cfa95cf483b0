import Foundation
import KilnBundle
import KilnCodegen
import KilnONNX
import KilnRuntime
import Synchronization

/// A model with reference inputs and outputs.
struct ModelCase: Sendable {
  var name: String
  var model: URL
  var inputs: [URL]
  var outputs: [URL]
  /// Extra relative tolerance some references need (the ONNX zoo's own rtol).
  var rtol = 1e-3
  /// For light zoo models: inputs are generated (numpy's `arange(n).reshape(shape) / n`).
  var generatedInputs = false
}

enum ModelCases {
  static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  // MARK: Fixtures (Tests/Fixtures/<name>/model.onnx + input_N.npy + output_N.npy, and the example)

  static let fixtures: [String: ModelCase] = {
    var cases: [String: ModelCase] = [:]
    let folder = repositoryRoot.appendingPathComponent("Tests/Fixtures")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    for name in names.sorted() {
      let directory = folder.appendingPathComponent(name)
      let model = directory.appendingPathComponent("model.onnx")
      guard FileManager.default.fileExists(atPath: model.path) else { continue }
      func numbered(_ prefix: String) -> [URL] {
        var files: [URL] = []
        while true {
          let url = directory.appendingPathComponent("\(prefix)_\(files.count).npy")
          guard FileManager.default.fileExists(atPath: url.path) else { return files }
          files.append(url)
        }
      }
      cases[name] = ModelCase(name: name, model: model, inputs: numbered("input"), outputs: numbered("output"))
    }
    let example = repositoryRoot.appendingPathComponent("Examples/tiny-cnn")
    cases["example-tiny-cnn"] = ModelCase(
      name: "example-tiny-cnn", model: example.appendingPathComponent("model.onnx"),
      inputs: [example.appendingPathComponent("input.npy")], outputs: [example.appendingPathComponent("expected.npy")])
    return cases
  }()

  static var fixtureNames: [String] { fixtures.keys.sorted() }

  // MARK: ONNX light model zoo (from the onnx pip package; see tools/locate-light-models)

  /// Where the light models are, or why they are not available.
  static let lightDirectory: Result<URL, LightModelsMissing> = locateLightModels()

  struct LightModelsMissing: Error, CustomStringConvertible {
    var description: String
  }

  /// The ONNX zoo's tolerances (onnx/backend/test/case/model/__init__.py).
  static let lightRTol: [String: Double] = ["densenet121": 2e-3]

  /// `KILN_LIGHT_MODELS` narrows the light models run (a comma-separated list such as
  /// `squeezenet,resnet50`); unset or `all` runs all nine (about 2.5 minutes on 2 cores with
  /// lavapipe and the CPU device, 0.7 GB peak memory).

  static let availableLightModels: [String] = {
    guard case .success(let directory) = lightDirectory else { return [] }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    return names.filter { $0.hasPrefix("light_") && $0.hasSuffix(".onnx") }
      .map { String($0.dropFirst("light_".count).dropLast(".onnx".count)) }.sorted()
  }()

  static let selectedLightModels: [String] = {
    let request = ProcessInfo.processInfo.environment["KILN_LIGHT_MODELS"] ?? ""
    let wanted: [String]
    switch request {
    case "", "all": wanted = availableLightModels
    default: wanted = request.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
    return wanted.filter(availableLightModels.contains)
  }()

  static func lightCase(_ name: String) throws -> ModelCase {
    let directory = try lightDirectory.get()
    return ModelCase(
      name: "light-\(name)", model: directory.appendingPathComponent("light_\(name).onnx"), inputs: [],
      outputs: [directory.appendingPathComponent("light_\(name)_output_0.pb")], rtol: lightRTol[name] ?? 1e-3,
      generatedInputs: true)
  }

  private static func locateLightModels() -> Result<URL, LightModelsMissing> {
    func check(_ path: String, source: String) -> Result<URL, LightModelsMissing> {
      let url = URL(fileURLWithPath: path, isDirectory: true)
      let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
      guard names.contains(where: { $0.hasPrefix("light_") && $0.hasSuffix(".onnx") }) else {
        return .failure(LightModelsMissing(description: "\(source) '\(path)' holds no light_*.onnx"))
      }
      return .success(url)
    }
    if let path = ProcessInfo.processInfo.environment["KILN_ONNX_DATA"], !path.isEmpty {
      return check(path, source: "KILN_ONNX_DATA")
    }
    // Without the variable, ask an installed onnx package (no installing here: tools/test does that).
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "python3", "-c",
      "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data', 'light'))",
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      return .failure(LightModelsMissing(description: "KILN_ONNX_DATA is not set and python3 could not be started"))
    }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let path = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard process.terminationStatus == 0, !path.isEmpty else {
      return .failure(
        LightModelsMissing(
          description: "KILN_ONNX_DATA is not set and python3 cannot import onnx (run tools/locate-light-models)"))
    }
    return check(path, source: "the onnx package's folder")
  }

  // MARK: Reference data

  static func inputs(for testCase: ModelCase, signature: [Manifest.TensorSignature]) throws -> [HostTensor] {
    guard testCase.generatedInputs else { return try testCase.inputs.map { try NPY.read(contentsOf: $0) } }
    // numpy: (np.arange(n).reshape(shape) / n).astype(np.float32)
    return try signature.map { input in
      guard input.dtype == "float32" else {
        throw RuntimeError(
          .unsupported, "\(testCase.name): generated inputs are float32 only, '\(input.name)' is \(input.dtype)")
      }
      let count = input.shape.reduce(1, *)
      var bytes = [UInt8]()
      bytes.reserveCapacity(count * 4)
      for index in 0..<count {
        withUnsafeBytes(of: Float(Double(index) / Double(count)).bitPattern.littleEndian) { bytes += $0 }
      }
      return HostTensor(dtype: "float32", shape: input.shape, bytes: bytes)
    }
  }

  static func expectedOutputs(for testCase: ModelCase) throws -> [HostTensor] {
    try testCase.outputs.map { url in
      url.pathExtension == "pb" ? try ONNXTensorFile.read(contentsOf: url).tensor : try NPY.read(contentsOf: url)
    }
  }
}

/// Every model compiled once per test process (for both targets), shared by the tests.
enum CompiledModels {
  struct Entry: Sendable {
    var compiled: CompiledModel
    var seconds: Double
  }

  private static let cache = Mutex<[String: Result<Entry, any Error>]>([:])

  /// The compiled model for `testCase`, compiling it on first use. A failure is cached too, so
  /// each device's test reports the same error without compiling again.
  static func get(_ testCase: ModelCase) throws -> Entry {
    try cache.withLock { entries in
      if let entry = entries[testCase.name] { return try entry.get() }
      let result = Result<Entry, any Error> {
        let start = ContinuousClock.now
        let graph = try ONNXImporter().importModel(at: testCase.model)
        let compiled = try ModelCompiler(options: CompileOptions(modelName: testCase.name, printer: { _ in })).compile(
          graph)
        let elapsed = ContinuousClock.now - start
        return Entry(
          compiled: compiled,
          seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
      }
      entries[testCase.name] = result
      return try result.get()
    }
  }
}

/// A temporary folder removed when the value is released.
final class TemporaryFolder: Sendable {
  let url: URL

  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-e2e-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  deinit {
    try? FileManager.default.removeItem(at: url)
  }
}
