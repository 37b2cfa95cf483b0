import Foundation
import KilnBundle
import KilnCodegen
import KilnIR
import KilnONNX
import KilnRuntime
import KilnSPIRV
import KilnTestSupport
import Testing

/// Import -> compile (both targets) -> write a bundle -> read it back -> run on a device ->
/// compare every output with the reference, for every model and every test device.
///
/// The suite is serialized: compiles are parallel inside, and lavapipe already uses every core.
@Suite(.serialized) struct EndToEndTests {
  /// Runs `testCase` on the device `uri` and records an issue for every output that differs.
  func runAndCompare(_ testCase: ModelCase, on uri: String, deviceClass: String? = nil) throws {
    let entry = try CompiledModels.get(testCase)
    let folder = try TemporaryFolder()
    let url = folder.url.appendingPathComponent("\(testCase.name).kiln")
    try entry.compiled.writer.write(manifest: entry.compiled.manifest, to: url)
    let reader = try BundleReader(contentsOf: url)
    #expect(reader.manifest == entry.compiled.manifest)
    guard let function = reader.manifest.function(named: "main") else {
      Issue.record("\(testCase.name): the bundle has no function 'main'")
      return
    }
    let inputs = try ModelCases.inputs(for: testCase, signature: function.inputs)
    let expected = try ModelCases.expectedOutputs(for: testCase)
    #expect(
      inputs.count == function.inputs.count,
      "\(testCase.name): \(inputs.count) reference inputs for \(function.inputs.count) model inputs")
    #expect(
      !expected.isEmpty && expected.count <= function.outputs.count,
      "\(testCase.name): \(expected.count) reference outputs")

    let device = try TestDevices.device(uri)
    let session = try Session(bundle: reader, device: device, deviceClass: deviceClass)
    if let deviceClass { #expect(session.program.deviceClass == deviceClass) }
    let outputs = try session.run(inputs)
    let tolerance = Tolerance(relative: max(1e-3, testCase.rtol))
    for (index, (got, want)) in zip(outputs, expected).enumerated() {
      if let problem = tolerance.compare(got, want) {
        Issue.record("\(testCase.name) on \(uri)\(deviceClass.map { " (\($0) kernels)" } ?? ""): output \(index) '\(function.outputs[index].name)': \(problem)")
      }
    }
    if device.info.driver == "vulkan" {
      let messages = TestDevices.drainValidationMessages()
      #expect(messages.isEmpty, "Vulkan validation: \(messages.prefix(5).joined(separator: "\n"))")
    }
  }

  @Test(arguments: ModelCases.fixtureNames, TestDevices.uris)
  func fixtureMatchesOnnxRuntime(model: String, device: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    try runAndCompare(testCase, on: device)
  }

  /// The GPU class's kernels (shared-memory tiles, split-K) on every Vulkan device here: lavapipe
  /// runs them correctly, if slowly, so CI checks the program a discrete GPU would run.
  @Test(arguments: ModelCases.fixtureNames, TestDevices.vulkanURIs)
  func fixtureMatchesOnnxRuntimeWithGPUKernels(model: String, device: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    try runAndCompare(testCase, on: device, deviceClass: "gpu")
  }

  @Test(
    .enabled(if: (try? ModelCases.lightDirectory.get()) != nil, Comment(rawValue: LightModelNotes.missing)),
    arguments: ModelCases.selectedLightModels, TestDevices.uris)
  func lightZooModelMatchesReference(model: String, device: String) throws {
    try runAndCompare(try ModelCases.lightCase(model), on: device)
  }

  /// SqueezeNet's GPU program has split-K contractions (its fixtures have none); the larger zoo
  /// models would take minutes on lavapipe with barriers in every tile step.
  @Test(
    .enabled(if: (try? ModelCases.lightDirectory.get()) != nil, Comment(rawValue: LightModelNotes.missing)),
    arguments: ModelCases.selectedLightModels.filter { $0 == "squeezenet" }, TestDevices.vulkanURIs)
  func lightZooModelMatchesReferenceWithGPUKernels(model: String, device: String) throws {
    try runAndCompare(try ModelCases.lightCase(model), on: device, deviceClass: "gpu")
  }

  /// With `CI=true` the light models must be there (tools/test exports KILN_ONNX_DATA).
  @Test func lightModelsAreAvailableInCI() throws {
    if case .failure(let missing) = ModelCases.lightDirectory, TestDevices.isCI {
      Issue.record("CI=true but the ONNX light models are missing: \(missing)")
    }
    if case .success = ModelCases.lightDirectory {
      #expect(
        !ModelCases.selectedLightModels.isEmpty, "KILN_LIGHT_MODELS selects none of \(ModelCases.availableLightModels)")
    }
  }

  /// Reports, as a skip with a reason, the light models this run leaves out.
  @Test(.enabled(if: LightModelNotes.unselected.isEmpty, Comment(rawValue: LightModelNotes.unselectedNote)))
  func everyLightModelIsSelected() {}

  @Test(arguments: ModelCases.fixtureNames)
  func everySPIRVModuleValidates(model: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    let entry = try CompiledModels.get(testCase)
    let reader = try BundleReader(bytes: try entry.compiled.writer.serialize(manifest: entry.compiled.manifest))
    var checked = 0
    for (index, executable) in reader.manifest.executables.enumerated() where executable.format == "spirv" {
      let module = try SPIRVModule(bytes: Array(try reader.executableBytes(index)))
      do {
        try SPIRVTools.validate(module.words)
      } catch {
        Issue.record("\(model): executable \(index): \(error)")
      }
      checked += 1
    }
    #expect(checked > 0, "\(model): the bundle has no SPIR-V")
  }

  @Test(arguments: ["example-tiny-cnn", "causal-decoder", "conv-depthwise"])
  func compilingTwiceIsByteIdentical(model: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    let folder = try TemporaryFolder()
    func build(_ name: String) throws -> (bundle: [UInt8], dump: URL) {
      let dump = folder.url.appendingPathComponent(name, isDirectory: true)
      let graph = try ONNXImporter().importModel(at: testCase.model)
      let options = CompileOptions(dumpDirectory: dump, modelName: testCase.name, printer: { _ in })
      let compiled = try ModelCompiler(options: options).compile(graph)
      return (try compiled.writer.serialize(manifest: compiled.manifest), dump)
    }
    let first = try build("first")
    let second = try build("second")
    if first.bundle != second.bundle {
      Issue.record(
        "\(model): two compiles gave different bundles: \(try Self.differences(first.bundle, second.bundle))")
    }

    let files = try FileManager.default.contentsOfDirectory(atPath: first.dump.path).sorted()
    #expect(try FileManager.default.contentsOfDirectory(atPath: second.dump.path).sorted() == files)
    #expect(files.contains { $0.hasSuffix(".ir") }, "\(model): --dump-dir wrote no IR files: \(files)")
    for file in files {
      let a = try Data(contentsOf: first.dump.appendingPathComponent(file))
      let b = try Data(contentsOf: second.dump.appendingPathComponent(file))
      if a != b { Issue.record("\(model): dump file \(file) differs between two compiles") }
    }
  }

  /// Which sections of two bundles differ (section index, kind and, for executables, target).
  static func differences(_ a: [UInt8], _ b: [UInt8]) throws -> String {
    let first = try BundleReader(bytes: a)
    let second = try BundleReader(bytes: b)
    guard first.sections.count == second.sections.count else {
      return "\(first.sections.count) sections vs \(second.sections.count)"
    }
    var notes: [String] = []
    if first.manifest != second.manifest { notes.append("the manifests differ") }
    for index in first.sections.indices {
      let x = try first.sectionData(index)
      let y = try second.sectionData(index)
      guard x != y else { continue }
      var what = "section \(index) (\(first.sections[index].kind)"
      if let executable = first.manifest.executables.first(where: { $0.section == index }) {
        what += ", \(executable.target) \(executable.format)\(executable.variant.map { " \($0)" } ?? "")"
      }
      let offset =
        zip(Array(x), Array(y)).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(x.count, y.count)
      notes.append(what + "): \(x.count) vs \(y.count) bytes, first difference at byte \(offset)")
    }
    return notes.isEmpty ? "the section payloads match but the files differ" : notes.joined(separator: "; ")
  }
}

enum LightModelNotes {
  static var missing: String {
    if case .failure(let reason) = ModelCases.lightDirectory { return "ONNX light models unavailable: \(reason)" }
    return ""
  }

  static var unselected: [String] {
    ModelCases.availableLightModels.filter { !ModelCases.selectedLightModels.contains($0) }
  }

  static var unselectedNote: String {
    "light models left out by KILN_LIGHT_MODELS: \(unselected.joined(separator: ", "))"
  }
}

/// `--precision fp16`: float16 weights in the Vulkan programs, float32 arithmetic.
@Suite(.serialized) struct HalfPrecisionTests {
  /// On a model whose float32 weights already hold float16 values, the float16 copies are exact,
  /// so the fp16 bundle must compute what the fp32 bundle does, on both device classes' programs;
  /// and its gpu program must bind float16 weights of half the bytes.
  @Test(arguments: ["causal-decoder", "gemm-transb", "transformer-encoder"], TestDevices.vulkanURIs)
  func exactFloat16WeightsGiveTheFloat32Results(model: String, device uri: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    var graph = try ONNXImporter().importModel(at: testCase.model)
    for (id, data) in graph.constants where data.dtype == .float32 {
      let rounded = data.floats().map { FloatConversion.float(fromFloat16Bits: FloatConversion.float16Bits(from: $0)) }
      graph.constants[id] = TensorData(rounded, shape: data.shape)
    }
    func compile(_ precision: Precision) throws -> BundleReader {
      var options = CompileOptions(targets: [.vulkan], modelName: model, printer: { _ in })
      options.precision = precision
      let compiled = try ModelCompiler(options: options).compile(graph)
      return try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    }
    let (single, half) = (try compile(.fp32), try compile(.fp16))
    // The gpu program binds float16 weights; the cpu (lavapipe) program keeps float32.
    func constantBytes(_ reader: BundleReader, _ deviceClass: String) throws -> Int {
      let program = try #require(reader.manifest.function(named: "main")?.program(for: "vulkan", deviceClasses: [deviceClass]))
      return program.buffers.reduce(0) { if case .constant = $1.role { $0 + $1.size } else { $0 } }
    }
    #expect(try constantBytes(half, "gpu") < constantBytes(single, "gpu") * 3 / 4)
    #expect(try constantBytes(half, "cpu") == constantBytes(single, "cpu"))

    let function = try #require(single.manifest.function(named: "main"))
    let inputs = try ModelCases.inputs(for: testCase, signature: function.inputs)
    let device = try TestDevices.device(uri)
    for deviceClass in ["cpu", "gpu"] {
      let want = try Session(bundle: single, device: device, deviceClass: deviceClass).run(inputs)
      let got = try Session(bundle: half, device: device, deviceClass: deviceClass).run(inputs)
      for (index, (g, w)) in zip(got, want).enumerated() {
        if let problem = Tolerance(relative: 1e-5, absoluteScale: 1e-6).compare(g, w) {
          Issue.record("\(model) (\(deviceClass) kernels): output \(index): \(problem)")
        }
      }
    }
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }

  /// The coopmat class (float16 operands on cooperative matrices, float32 accumulators), in its
  /// emulated form, against `reference` (ONNX Runtime's outputs, or the float32 program's) within
  /// float16 rounding: its contractions are the coopmat kernels, and the program is the one a GPU
  /// with cooperative matrices runs.
  static func checkCoopmatProgram(
    _ graph: Graph, name: String, inputs: [HostTensor], reference: [HostTensor], on uri: String
  ) throws {
    var options = CompileOptions(targets: [.vulkan], modelName: name, printer: { _ in })
    options.precision = .fp16
    options.emulateCooperativeMatrix = true
    let compiled = try ModelCompiler(options: options).compile(graph)
    let reader = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    let function = try #require(reader.manifest.function(named: "main"))
    #expect(function.programs.map(\.deviceClass) == ["cpu", "gpu", "coopmat"])
    // The coopmat program dispatches modules of its own (its contractions).
    func executables(_ deviceClass: String) throws -> Set<Int> {
      let program = try #require(function.program(for: "vulkan", deviceClasses: [deviceClass]))
      return Set(program.commands.compactMap { if case .dispatch(let d) = $0 { d.executable } else { nil } })
    }
    #expect(try !executables("coopmat").subtracting(executables("gpu")).isEmpty, "\(name): no coopmat kernel")
    let session = try Session(bundle: reader, device: try TestDevices.device(uri), deviceClass: "coopmat")
    #expect(session.program.deviceClass == "coopmat")
    let outputs = try session.run(inputs)
    #expect(outputs.count == reference.count)
    for (index, (got, want)) in zip(outputs, reference).enumerated() {
      if let problem = Tolerance(relative: 1e-2, absoluteScale: 1e-2).compare(got, want) {
        Issue.record("\(name) (coopmat kernels, emulated): output \(index): \(problem)")
      }
    }
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }

  @Test(arguments: ["matmul-batched-odd", "transformer-encoder"], TestDevices.vulkanURIs)
  func coopmatProgramMatchesWithinFloat16Rounding(model: String, device uri: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    let graph = try ONNXImporter().importModel(at: testCase.model)
    let signature = graph.inputs.map { Manifest.TensorSignature(name: graph[$0].name, dtype: graph.type(of: $0).dtype.rawValue, shape: graph.type(of: $0).shape) }
    try Self.checkCoopmatProgram(
      graph, name: model, inputs: try ModelCases.inputs(for: testCase, signature: signature),
      reference: try ModelCases.expectedOutputs(for: testCase), on: uri)
  }

  /// SqueezeNet's coopmat program has split-K contractions and every tile of the table. The light
  /// zoo's random weights grow its activations to 1e10, beyond float16 (65504), so the weights are
  /// scaled down to keep them in range, and the float32 program of the same graph is the reference.
  @Test(
    .enabled(if: (try? ModelCases.lightDirectory.get()) != nil, Comment(rawValue: LightModelNotes.missing)),
    arguments: ModelCases.selectedLightModels.filter { $0 == "squeezenet" }, TestDevices.vulkanURIs)
  func lightZooCoopmatProgramMatchesWithinFloat16Rounding(model: String, device uri: String) throws {
    let testCase = try ModelCases.lightCase(model)
    var graph = try ONNXImporter().importModel(at: testCase.model)
    for (id, data) in graph.constants where data.dtype == .float32 && data.elementCount >= 1024 {
      graph.constants[id] = TensorData(data.floats().map { $0 / 4 }, shape: data.shape)
    }
    let compiled = try ModelCompiler(options: CompileOptions(targets: [.vulkan], modelName: model, printer: { _ in })).compile(graph)
    let single = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    let function = try #require(single.manifest.function(named: "main"))
    let inputs = try ModelCases.inputs(for: testCase, signature: function.inputs)
    let reference = try Session(bundle: single, device: try TestDevices.device(uri), deviceClass: "cpu").run(inputs)
    try Self.checkCoopmatProgram(graph, name: model, inputs: inputs, reference: reference, on: uri)
  }

  /// A weight beyond float16's range stays float32 (it would become infinity).
  @Test func outOfRangeWeightsStayFloat32() throws {
    let testCase = try #require(ModelCases.fixtures["gemm-transb"])
    var graph = try ONNXImporter().importModel(at: testCase.model)
    let (id, data) = try #require(graph.constants.first { $0.value.dtype == .float32 && $0.value.elementCount >= 1024 })
    var values = data.floats()
    values[0] = 1e6
    graph.constants[id] = TensorData(values, shape: data.shape)
    var options = CompileOptions(targets: [.vulkan], modelName: "gemm-transb", printer: { _ in })
    options.precision = .fp16
    let compiled = try ModelCompiler(options: options).compile(graph)
    #expect(compiled.manifest.weights.allSatisfy { !$0.name.contains("#fp16") })
    // In range, the same weight is stored as float16.
    values[0] = 1
    graph.constants[id] = TensorData(values, shape: data.shape)
    let inRange = try ModelCompiler(options: options).compile(graph)
    #expect(inRange.manifest.weights.contains { $0.name.contains("#fp16") })
  }
}
