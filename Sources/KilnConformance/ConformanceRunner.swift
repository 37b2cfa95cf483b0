import Foundation
import KilnBundle
import KilnCodegen
import KilnHAL
import KilnIR
import KilnONNX
import KilnRuntime

/// How one backend test fared on one device.
public enum ConformanceOutcome: String, Sendable, Codable, CaseIterable {
  case pass
  /// Import, lowering or code generation refused the model.
  case compileError = "compile-error"
  /// The bundle would not load or run on the device.
  case runError = "run-error"
  /// It ran, but an output differs from the stored one.
  case mismatch
  /// The process running it died (only the subprocess runner can see this).
  case crash
  /// It did not finish in time (only the subprocess runner can see this).
  case timeout
}

public struct ConformanceResult: Sendable, Codable, Hashable {
  public var test: String
  public var group: String
  public var device: String
  public var outcome: ConformanceOutcome
  /// The first line of the error or the first mismatching element.
  public var detail: String
  public var seconds: Double

  public init(test: String, group: String, device: String, outcome: ConformanceOutcome, detail: String, seconds: Double) {
    self.test = test
    self.group = group
    self.device = device
    self.outcome = outcome
    self.detail = detail
    self.seconds = seconds
  }
}

/// Runs ONNX backend tests (`model.onnx` + `test_data_set_N/{input,output}_K.pb`) through the
/// whole pipeline: import, compile for the devices' targets, write and verify a bundle in memory,
/// load a session per device, run every data set, compare with the stored outputs.
public struct ConformanceRunner: Sendable {
  public var tolerance: Tolerance
  /// The Vulkan program class to compile and run on every Vulkan device (`VulkanClass`); nil
  /// for each device's own class.
  public var vulkanClass: VulkanClass?

  public init(tolerance: Tolerance = Tolerance()) {
    self.tolerance = tolerance
  }

  /// Runs the test in `directory` on every device; one result per device.
  public func run(testDirectory directory: URL, group: String, devices: [any Device]) -> [ConformanceResult] {
    let name = directory.lastPathComponent
    let clock = ContinuousClock()
    let start = clock.now
    func elapsed() -> Double { (clock.now - start).seconds }
    let targets = Set(devices.map(\.info.driver)).compactMap(Target.init(rawValue:)).sorted { $0.rawValue < $1.rawValue }

    let bundle: BundleReader
    var specialized: Set<String> = []
    do {
      let model = directory.appendingPathComponent("model.onnx")
      // Kiln compiles static shapes ahead of time. Backend tests pass shape-defining operands
      // (Reshape's shape, Reduce axes, Resize scales, OneHot depth...) as graph inputs; like
      // `kiln compile --bind`, specialise the model on the data set's values of exactly the inputs
      // the importer names as needed for static shapes (all other inputs stay runtime data).
      let (graph, bound) = try Self.importSpecialized(model: model, dataSet: directory.appendingPathComponent("test_data_set_0"))
      specialized = bound
      var options = CompileOptions(targets: targets, modelName: name)
      // Correctness only: one CPU variant, compiled quickly.
      options.cpuVariants = ["baseline"]
      options.cpuFlags = ["-O1"]
      // Only the classes the devices run.
      options.vulkanClasses =
        vulkanClass.map { [$0] }
        ?? VulkanClass.allCases.filter { c in devices.contains { $0.info.driver == "vulkan" && $0.info.type.kernelClass == c.rawValue } }
      let compiled = try ModelCompiler(options: options).compile(graph)
      bundle = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    } catch {
      return devices.map {
        ConformanceResult(test: name, group: group, device: $0.info.shortURI, outcome: .compileError, detail: firstLine(error), seconds: elapsed())
      }
    }

    let dataSets: [URL]
    do {
      dataSets = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        .filter { $0.lastPathComponent.hasPrefix("test_data_set_") }.sorted { $0.path < $1.path }
    } catch {
      return devices.map {
        ConformanceResult(test: name, group: group, device: $0.info.shortURI, outcome: .runError, detail: firstLine(error), seconds: elapsed())
      }
    }
    return devices.map { device in
      let deviceStart = clock.now
      let (outcome, detail) = runOnDevice(bundle: bundle, device: device, dataSets: dataSets, specialized: specialized)
      return ConformanceResult(
        test: name, group: group, device: device.info.shortURI, outcome: outcome, detail: detail,
        seconds: (clock.now - deviceStart).seconds)
    }
  }

  private func runOnDevice(
    bundle: BundleReader, device: any Device, dataSets: [URL], specialized: Set<String>
  ) -> (ConformanceOutcome, String) {
    let session: Session
    do {
      session = try Session(bundle: bundle, device: device)
    } catch {
      return (.runError, firstLine(error))
    }
    for dataSet in dataSets {
      let inputs: [HostTensor]
      let expected: [HostTensor]
      do {
        let named = try Self.namedTensors(in: dataSet, prefix: "input_")
        // Inputs the model was specialised on are constants now; the rest keep their order.
        inputs = named.filter { !specialized.contains($0.name) }.map(\.tensor)
        expected = try Self.tensors(in: dataSet, prefix: "output_")
      } catch {
        return (.runError, "reading \(dataSet.lastPathComponent): \(firstLine(error))")
      }
      let outputs: [HostTensor]
      do {
        outputs = try session.run(inputs)
      } catch {
        return (.runError, firstLine(error))
      }
      guard outputs.count >= expected.count else {
        return (.mismatch, "\(outputs.count) outputs, expected \(expected.count)")
      }
      for (index, reference) in expected.enumerated() {
        if let difference = tolerance.compare(outputs[index], reference) {
          return (.mismatch, "output \(index) (\(session.outputs[index].name)): \(difference)")
        }
      }
    }
    return (.pass, "")
  }

  /// `prefix0.pb`, `prefix1.pb`, ... in numeric order.
  static func tensors(in directory: URL, prefix: String) throws -> [HostTensor] {
    try namedTensors(in: directory, prefix: prefix).map(\.tensor)
  }

  static func namedTensors(in directory: URL, prefix: String) throws -> [(name: String, tensor: HostTensor)] {
    var tensors: [(name: String, tensor: HostTensor)] = []
    while true {
      let file = directory.appendingPathComponent("\(prefix)\(tensors.count).pb")
      guard FileManager.default.fileExists(atPath: file.path) else { break }
      tensors.append(try ONNXTensorFile.read(contentsOf: file))
    }
    return tensors
  }

  /// Imports `model`, specialising it on `dataSet` one importer request at a time: an input with a
  /// symbolic dimension gets the data's shape (`--input-shape`), and an operand that must be a
  /// constant gets the data's values of the graph inputs it is computed from (`--bind`; each
  /// `.dynamicShape` error names them). Returns the graph and the names of the inputs bound.
  static func importSpecialized(model: URL, dataSet: URL) throws -> (Graph, Set<String>) {
    var options = ImportOptions()
    var cached: [String: HostTensor]?
    func available() throws -> [String: HostTensor] {
      if let cached { return cached }
      let tensors = Dictionary(try namedTensors(in: dataSet, prefix: "input_").map { ($0.name, $0.tensor) }) { a, _ in a }
      cached = tensors
      return tensors
    }
    while true {
      do {
        return (try ONNXImporter(options: options).importModel(at: model), Set(options.constantInputs.keys))
      } catch let error as ONNXImportError where error.code == .dynamicShape {
        if let name = error.unshapedInput, options.inputShapes[name] == nil, let tensor = try available()[name] {
          // A symbolic dimension: compile for the data set's shape.
          options.inputShapes[name] = tensor.shape
          continue
        }
        let missing = error.requiredInputs.filter { options.constantInputs[$0] == nil }
        guard !missing.isEmpty else { throw error }
        for name in missing {
          guard let tensor = try available()[name], let dtype = DType(rawValue: tensor.dtype) else { throw error }
          options.constantInputs[name] = try TensorData(type: TensorType(dtype, tensor.shape), bytes: tensor.bytes)
        }
      }
    }
  }
}

func firstLine(_ error: any Error) -> String {
  let text = String(describing: error)
  return String(text.split(separator: "\n", maxSplits: 1).first ?? "")
}

extension Duration {
  var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
