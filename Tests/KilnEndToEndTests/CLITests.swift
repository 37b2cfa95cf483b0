import Foundation
import KilnRuntime
import KilnTestSupport
import Testing

/// The `kiln` executable's contract: compile, run, inspect, exit codes, and which files it refuses
/// to write. Uses the binary SwiftPM builds beside the test bundle, and the CPU device only.
@Suite(.serialized, .enabled(if: KilnBinary.url != nil, "the kiln executable was not built beside the tests"))
struct CLITests {
  @discardableResult
  func kiln(_ arguments: String..., in folder: URL) throws -> KilnBinary.Result {
    try kiln(arguments, in: folder)
  }

  func kiln(_ arguments: [String], in folder: URL) throws -> KilnBinary.Result {
    try KilnBinary.run(arguments, in: folder)
  }

  /// A folder holding copies of the example model, input and expected output.
  func workspace() throws -> TemporaryFolder {
    let folder = try TemporaryFolder()
    let example = ModelCases.repositoryRoot.appendingPathComponent("Examples/tiny-cnn")
    for name in ["model.onnx", "input.npy", "expected.npy"] {
      try FileManager.default.copyItem(
        at: example.appendingPathComponent(name), to: folder.url.appendingPathComponent(name))
    }
    return folder
  }

  func expectUserError(_ result: KilnBinary.Result, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.status == 1, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stderr.hasPrefix("error: "), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
    #expect(
      result.stderr.split(separator: "\n").count == 1, "more than one line: \(result.stderr)",
      sourceLocation: sourceLocation)
    #expect(result.stderr.contains(text), "'\(result.stderr)' should mention '\(text)'", sourceLocation: sourceLocation)
  }

  /// `--cache-dir` names the kernel cache: the second compile reads every module from it and
  /// writes the same bundle; `--no-cache` neither reads nor mentions it; `--time-passes` lists
  /// every pass.
  @Test func compileUsesTheKernelCacheUnlessTold() throws {
    let folder = try workspace()
    let dir = folder.url
    let first = try kiln("compile", "model.onnx", "-o", "a.kiln", "--cache-dir", "cache", in: dir)
    #expect(first.status == 0, "\(first.stderr)")
    let counts = first.stderr.firstMatch(of: /(\d+) of (\d+) compiled modules from the cache/)
    #expect(counts?.output.1 == "0" && (Int(counts?.output.2 ?? "") ?? 0) > 2, "\(first.stderr)")
    let second = try kiln("compile", "model.onnx", "-o", "b.kiln", "--cache-dir", "cache", "--time-passes", in: dir)
    let total = counts?.output.2 ?? "?"
    #expect(second.stderr.contains("\(total) of \(total) compiled modules from the cache"), "\(second.stderr)")
    for pass in ["import", "schedule-vulkan", "schedule-cpu", "codegen-vulkan", "codegen-cpu", "write"] {
      #expect(second.stderr.contains("\n  \(pass) "), "no time for \(pass): \(second.stderr)")
    }
    let third = try kiln("compile", "model.onnx", "-o", "c.kiln", "--no-cache", "--cache-dir", "cache", in: dir)
    #expect(third.status == 0 && !third.stderr.contains("cache"), "\(third.stderr)")
    let bundles = try ["a", "b", "c"].map { try Data(contentsOf: dir.appendingPathComponent("\($0).kiln")) }
    #expect(bundles[0] == bundles[1] && bundles[1] == bundles[2])
  }

  /// `--vulkan-class` picks the programs a bundle carries, `--device-class` the one a run takes.
  @Test(arguments: TestDevices.vulkanURIs) func deviceClassesChooseTheVulkanProgram(uri: String) throws {
    let folder = try workspace()
    let dir = folder.url
    #expect(try kiln("compile", "model.onnx", "-o", "both.kiln", "--target", "vulkan", "--no-cache", in: dir).status == 0)
    let both = try kiln("inspect", "both.kiln", in: dir)
    #expect(both.stdout.contains("program vulkan/cpu:") && both.stdout.contains("program vulkan/gpu:"), "\(both.stdout)")
    for deviceClass in ["cpu", "gpu"] {
      let run = try kiln(
        "run", "both.kiln", "--device", uri, "--device-class", deviceClass, "--input", "@input.npy", "--expect", "@expected.npy",
        in: dir)
      #expect(run.status == 0, "\(deviceClass): \(run.stderr)")
    }
    let one = try kiln("compile", "model.onnx", "-o", "cpu.kiln", "--target", "vulkan", "--vulkan-class", "cpu", "--no-cache", in: dir)
    #expect(one.status == 0, "\(one.stderr)")
    let inspected = try kiln("inspect", "cpu.kiln", in: dir)
    #expect(inspected.stdout.contains("program vulkan:") && !inspected.stdout.contains("vulkan/"), "\(inspected.stdout)")
    // One class alone runs on every device; asking for a class it lacks is a clear error.
    #expect(try kiln("run", "cpu.kiln", "--device", uri, "--input", "@input.npy", "--expect", "@expected.npy", in: dir).status == 0)
    expectUserError(
      try kiln("run", "cpu.kiln", "--device", uri, "--device-class", "gpu", "--input", "@input.npy", in: dir),
      mentioning: "no vulkan program for device class 'gpu'")
    let unknown = try kiln("compile", "model.onnx", "-o", "x.kiln", "--vulkan-class", "npu", in: dir)
    #expect(unknown.status != 0 && unknown.stderr.contains("unknown Vulkan class 'npu'"), "\(unknown.stderr)")
    let precision = try kiln("compile", "model.onnx", "-o", "x.kiln", "--precision", "fp8", in: dir)
    #expect(precision.status != 0 && precision.stderr.contains("unknown precision 'fp8'"), "\(precision.stderr)")
    let note = try kiln("compile", "model.onnx", "-o", "x.kiln", "--target", "cpu", "--precision", "fp16", "--no-cache", in: dir)
    #expect(note.status == 0 && note.stderr.contains("note: --precision fp16 applies to the Vulkan gpu and coopmat classes"), "\(note.stderr)")
  }

  /// `--precision fp16` adds the coopmat class; a device without cooperative matrices runs another
  /// class, and refuses the coopmat one by name when asked for it.
  @Test(arguments: TestDevices.vulkanURIs) func coopmatClassComesWithFloat16(uri: String) throws {
    let folder = try workspace()
    let dir = folder.url
    let compiled = try kiln("compile", "model.onnx", "-o", "half.kiln", "--target", "vulkan", "--precision", "fp16", "--no-cache", in: dir)
    #expect(compiled.status == 0, "\(compiled.stderr)")
    let inspected = try kiln("inspect", "half.kiln", in: dir)
    #expect(inspected.stdout.contains("program vulkan/coopmat:"), "\(inspected.stdout)")
    let run = try kiln("run", "half.kiln", "--device", uri, "--input", "@input.npy", "--expect", "@expected.npy", in: dir)
    #expect(run.status == 0, "\(run.stderr)")
    expectUserError(
      try kiln("run", "half.kiln", "--device", uri, "--device-class", "coopmat", "--input", "@input.npy", in: dir),
      mentioning: "needs cooperative matrices")
    let single = try kiln("compile", "model.onnx", "-o", "x.kiln", "--vulkan-class", "coopmat", in: dir)
    #expect(single.status != 0 && single.stderr.contains("add --precision fp16"), "\(single.stderr)")
  }

  /// `--cpu-variant` builds fewer CPU objects; the bundle still runs and matches.
  @Test func cpuVariantsChooseTheObjectsBuilt() throws {
    let folder = try workspace()
    let dir = folder.url
    let built = try kiln("compile", "model.onnx", "-o", "base.kiln", "--target", "cpu", "--cpu-variant", "baseline", "--no-cache", in: dir)
    #expect(built.status == 0, "\(built.stderr)")
    let inspected = try kiln("inspect", "base.kiln", in: dir)
    #expect(inspected.stdout.contains("elf-x86_64 (baseline)") && !inspected.stdout.contains("x86-64-v3"), "\(inspected.stdout)")
    let run = try kiln("run", "base.kiln", "--device", "cpu", "--input", "@input.npy", "--expect", "@expected.npy", in: dir)
    #expect(run.status == 0, "\(run.stderr)")
    let unknown = try kiln("compile", "model.onnx", "-o", "x.kiln", "--cpu-variant", "avx512", in: dir)
    #expect(unknown.status != 0 && unknown.stderr.contains("unknown CPU variant 'avx512'"), "\(unknown.stderr)")
  }

  @Test func compileRunInspectRoundTrip() throws {
    let folder = try workspace()
    let dir = folder.url
    let compiled = try kiln("compile", "model.onnx", "-o", "tiny.kiln", "--target", "cpu", in: dir)
    #expect(compiled.status == 0, "\(compiled.stderr)")
    #expect(compiled.stderr.contains("kernels") && compiled.stderr.contains("targets cpu"), "\(compiled.stderr)")

    let summary = try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", in: dir)
    #expect(summary.status == 0, "\(summary.stderr)")
    #expect(summary.stdout.contains("output 0 'probabilities': float32 [1, 10]"), "\(summary.stdout)")

    let run = try kiln(
      "run", "tiny.kiln", "--device", "cpu", "--input", "image=@input.npy", "--output", "@out.npy",
      "--expect", "@expected.npy", "--repeat", "3", in: dir)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("timing cpu:") && run.stderr.contains("median"), "\(run.stderr)")
    let expected = try NPY.read(contentsOf: dir.appendingPathComponent("expected.npy"))
    let written = try NPY.read(contentsOf: dir.appendingPathComponent("out.npy"))
    #expect(Tolerance().compare(written, expected) == nil)

    let proto = try kiln(
      "run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--output", "probabilities=@out.pb", in: dir)
    #expect(proto.status == 0, "\(proto.stderr)")
    let (name, tensor) = try ONNXTensorFile.read(contentsOf: dir.appendingPathComponent("out.pb"))
    #expect(name == "probabilities")
    #expect(tensor == written)
    // A .pb input works too.
    let again = try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--expect", "@out.pb", in: dir)
    #expect(again.status == 0, "\(again.stderr)")

    let inspect = try kiln("inspect", "tiny.kiln", in: dir)
    #expect(inspect.status == 0 && inspect.stdout.contains("probabilities"), "\(inspect.stdout)")
    let json = try kiln("inspect", "tiny.kiln", "--json", in: dir)
    #expect(json.status == 0)
    #expect(
      (try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) != nil, "not JSON: \(json.stdout.prefix(200))")

    let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
    #expect(leftovers.isEmpty, "temporary files left behind: \(leftovers)")
  }

  /// `--bind` fixes a shape-defining graph input at compile time; without it the error names it.
  @Test func bindMakesShapeOperandsConstant() throws {
    let test = ModelCases.repositoryRoot.deletingLastPathComponent()
      .appendingPathComponent("shared/onnx-tests/node/test_reshape_reordered_all_dims")
    try #require(FileManager.default.fileExists(atPath: test.path), "../shared/onnx-tests is missing")
    let folder = try TemporaryFolder()
    let dir = folder.url
    try FileManager.default.copyItem(at: test.appendingPathComponent("model.onnx"), to: dir.appendingPathComponent("model.onnx"))
    for name in ["input_0.pb", "input_1.pb", "output_0.pb"] {
      try FileManager.default.copyItem(
        at: test.appendingPathComponent("test_data_set_0/\(name)"), to: dir.appendingPathComponent(name))
    }
    expectUserError(
      try kiln("compile", "model.onnx", "-o", "r.kiln", "--target", "cpu", in: dir), mentioning: "bind graph input 'shape'")
    expectUserError(
      try kiln("compile", "model.onnx", "-o", "r.kiln", "--bind", "shape=missing.npy", in: dir), mentioning: "missing.npy")
    expectUserError(
      try kiln("compile", "model.onnx", "-o", "r.kiln", "--bind", "nope=input_1.pb", in: dir), mentioning: "'nope'")
    let compiled = try kiln("compile", "model.onnx", "-o", "r.kiln", "--target", "cpu", "--bind", "shape=input_1.pb", in: dir)
    #expect(compiled.status == 0, "\(compiled.stderr)")
    let run = try kiln("run", "r.kiln", "--device", "cpu", "--input", "@input_0.pb", "--expect", "@output_0.pb", in: dir)
    #expect(run.status == 0, "\(run.stderr)")
  }

  @Test func userErrorsAreOneLineAndExitOne() throws {
    let folder = try workspace()
    let dir = folder.url
    try #require(try kiln("compile", "model.onnx", "-o", "tiny.kiln", "--target", "cpu", in: dir).status == 0)
    let model = try Data(contentsOf: dir.appendingPathComponent("model.onnx"))
    let input = try Data(contentsOf: dir.appendingPathComponent("input.npy"))
    try NPY.encode(
      HostTensor(dtype: "float32", shape: [1, 3, 32, 31], bytes: [UInt8](repeating: 0, count: 3 * 32 * 31 * 4))
    )
    .withUnsafeBytes { try Data($0).write(to: dir.appendingPathComponent("wrong.npy")) }
    try Data("not a model".utf8).write(to: dir.appendingPathComponent("bad.onnx"))

    expectUserError(
      try kiln("compile", "model.onnx", "-o", "model.onnx", in: dir), mentioning: "refusing to overwrite the model")
    #expect(try Data(contentsOf: dir.appendingPathComponent("model.onnx")) == model)
    expectUserError(try kiln("compile", "bad.onnx", "-o", "bad.kiln", in: dir), mentioning: "bad.onnx")
    expectUserError(try kiln("compile", "model.onnx", "-o", "missing/x.kiln", in: dir), mentioning: "does not exist")
    expectUserError(try kiln("run", "tiny.kiln", "--device", "cpu", in: dir), mentioning: "missing input 0 'image'")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@wrong.npy", in: dir), mentioning: "input 0 'image'")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--output", "@input.npy", in: dir),
      mentioning: "refusing to overwrite the input")
    #expect(try Data(contentsOf: dir.appendingPathComponent("input.npy")) == input)
    expectUserError(
      try kiln(
        "run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--output", "@expected.npy", "--expect",
        "@expected.npy", in: dir),
      mentioning: "refusing to overwrite the --expect file")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--output", "@tiny.kiln", in: dir),
      mentioning: "refusing to overwrite the bundle")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--output", "@nowhere/out.npy", in: dir),
      mentioning: "does not exist")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "nope=@input.npy", in: dir),
      mentioning: "no input named 'nope'")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--expect", "@input.npy", in: dir),
      mentioning: "does not match")
    expectUserError(try kiln("inspect", "model.onnx", in: dir), mentioning: "model.onnx")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@absent.npy", in: dir), mentioning: "absent.npy")
  }

  /// Hostile run inputs: unknown devices, wrong dtype or count, corrupt tensor files and bundles.
  @Test func badRunInputsAreUserErrors() throws {
    let folder = try workspace()
    let dir = folder.url
    try #require(try kiln("compile", "model.onnx", "-o", "tiny.kiln", "--target", "cpu", in: dir).status == 0)
    let input = try NPY.read(contentsOf: dir.appendingPathComponent("input.npy"))
    let doubles = HostTensor(dtype: "float64", shape: input.shape, bytes: [UInt8](repeating: 0, count: input.bytes.count * 2))
    try Data(try NPY.encode(doubles)).write(to: dir.appendingPathComponent("double.npy"))
    let npy = try Data(contentsOf: dir.appendingPathComponent("input.npy"))
    try npy.prefix(npy.count / 2).write(to: dir.appendingPathComponent("truncated.npy"))
    try Data("\u{93}NUMPY garbage".utf8).write(to: dir.appendingPathComponent("garbage.npy"))
    try Data([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).write(to: dir.appendingPathComponent("garbage.pb"))
    let bundle = try Data(contentsOf: dir.appendingPathComponent("tiny.kiln"))
    try bundle.prefix(bundle.count - 100).write(to: dir.appendingPathComponent("truncated.kiln"))
    var flipped = bundle
    flipped[flipped.count / 2] ^= 0x40
    try flipped.write(to: dir.appendingPathComponent("flipped.kiln"))

    expectUserError(try kiln("run", "tiny.kiln", "--device", "vulkan:9", "--input", "@input.npy", in: dir), mentioning: "vulkan:9")
    expectUserError(try kiln("run", "tiny.kiln", "--device", "tpu", "--input", "@input.npy", in: dir), mentioning: "tpu")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@double.npy", in: dir), mentioning: "float64")
    expectUserError(
      try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy", "--input", "@input.npy", in: dir),
      mentioning: "input")
    for name in ["truncated.npy", "garbage.npy", "garbage.pb"] {
      expectUserError(try kiln("run", "tiny.kiln", "--device", "cpu", "--input", "@\(name)", in: dir), mentioning: name)
    }
    for name in ["truncated.kiln", "flipped.kiln"] {
      expectUserError(try kiln("run", name, "--device", "cpu", "--input", "@input.npy", in: dir), mentioning: name)
      expectUserError(try kiln("inspect", name, in: dir), mentioning: name)
    }
  }

  /// NaN and infinities are data: they flow through the kernels and the run succeeds.
  @Test func nonFiniteInputsAreData() throws {
    let folder = try workspace()
    let dir = folder.url
    try #require(try kiln("compile", "model.onnx", "-o", "tiny.kiln", "--target", "cpu", in: dir).status == 0)
    let input = try NPY.read(contentsOf: dir.appendingPathComponent("input.npy"))
    let count = input.bytes.count / 4
    let values = (0..<count).map { [Float.nan, .infinity, -.infinity, 1][$0 % 4] }
    let bytes = values.withUnsafeBytes { [UInt8]($0) }
    try Data(try NPY.encode(HostTensor(dtype: "float32", shape: input.shape, bytes: bytes)))
      .write(to: dir.appendingPathComponent("nonfinite.npy"))
    let run = try kiln(
      "run", "tiny.kiln", "--device", "cpu", "--input", "@nonfinite.npy", "--output", "@out.npy", in: dir)
    #expect(run.status == 0, "\(run.stderr)")
    let output = try NPY.read(contentsOf: dir.appendingPathComponent("out.npy"))
    let floats = output.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    #expect(floats.count == 10 && floats.contains { $0.isNaN }, "\(floats)")
  }

  /// A failing device (reproduced with KILN_FAULTS) and a memory budget are user errors: exit 1,
  /// one `error:` line that names the device and what failed, and no hang.
  @Test func failingDevicesAndMemoryBudgetAreOneLineErrors() throws {
    let folder = try workspace()
    let dir = folder.url
    try #require(try kiln("compile", "model.onnx", "-o", "tiny.kiln", "--target", "cpu", in: dir).status == 0)
    let run = ["run", "tiny.kiln", "--device", "cpu", "--input", "@input.npy"]
    for (faults, mentioning) in [
      ("alloc:1", "injected fault alloc:1"), ("pipeline:1", "injected fault pipeline:1"),
      ("submit:1", "injected fault submit:1"), ("device-lost:1", "injected fault device-lost:1"),
      ("nonsense", "KILN_FAULTS=nonsense"),
    ] {
      let result = try KilnBinary.run(run, in: dir, environment: ["KILN_FAULTS": faults])
      expectUserError(result, mentioning: mentioning)
      #expect(faults == "nonsense" || result.stderr.contains("cpu"), "\(faults): \(result.stderr)")
    }
    let hung = try KilnBinary.run(run + ["--timeout", "0.2"], in: dir, environment: ["KILN_FAULTS": "hang:1"])
    expectUserError(hung, mentioning: "timed out")
    expectUserError(try kiln(run + ["--memory-budget", "1000"], in: dir), mentioning: "memory budget of 1000 bytes")
    #expect(try kiln(run + ["--memory-budget", "100000000"], in: dir).status == 0)
  }

  /// Usage errors exit with ArgumentParser's usage code, never 0 or 1 (1 is for user errors).
  @Test func usageErrorsAreNotUserErrors() throws {
    let folder = try workspace()
    for arguments in [
      ["run", "x.kiln", "--input", "input.npy"], ["compile", "model.onnx", "--target", "metal"], ["frobnicate"],
    ] {
      let result = try kiln(arguments, in: folder.url)
      #expect(result.status != 0 && result.status != 1, "\(arguments): exit \(result.status)")
    }
  }
}

/// The `kiln` executable in the build products folder, beside the running test bundle.
enum KilnBinary {
  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  /// Runs `kiln` in `folder`; standard output and error go to files (no pipe can fill up).
  static func run(_ arguments: [String], in folder: URL, environment: [String: String] = [:]) throws -> Result {
    let logs = try TemporaryFolder()
    let outURL = logs.url.appendingPathComponent("stdout")
    let errURL = logs.url.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    guard let binary = url else { throw RuntimeError(.unsupported, "the kiln executable was not built") }
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.currentDirectoryURL = folder
    if !environment.isEmpty {
      process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    process.waitUntilExit()
    return Result(
      status: process.terminationStatus, stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
      stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
  }

  static let url: URL? = {
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var folder = executable.deletingLastPathComponent()
    // Linux: .build/debug/KilnPackageTests.xctest; macOS: .build/debug/KilnPackageTests.xctest/Contents/MacOS/...
    for _ in 0..<4 {
      let candidate = folder.appendingPathComponent("kiln")
      if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
      folder = folder.deletingLastPathComponent()
    }
    return nil
  }()
}
