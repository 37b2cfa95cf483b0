import Foundation
import KilnCPU
import KilnCodegen
import KilnHAL
import Testing

@Suite struct NativeToolchainTests {
  @Test func abiHeaderMatchesTheCHeader() throws {
    let header = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Sources/CKilnCPU/include/kiln_cpu_abi.h")
    let text = try String(contentsOf: header, encoding: .utf8)
    let begin = try #require(text.range(of: "/* BEGIN KILN CPU ABI */\n"))
    let end = try #require(text.range(of: "/* END KILN CPU ABI */"))
    let block = String(text[begin.upperBound..<end.lowerBound])
    #expect(block == NativeToolchain.kilnCPUABIHeader)
    #expect(block.contains("typedef struct kiln_cpu_dispatch {"))
  }

  @Test func findsACompiler() throws {
    let toolchain = try NativeToolchain()
    #expect(FileManager.default.isExecutableFile(atPath: toolchain.compilerPath))
  }

  @Test func kilnCCSelectsTheCompiler() throws {
    var environment = ProcessInfo.processInfo.environment
    let found = try NativeToolchain.locateCompiler(environment: environment)
    environment["KILN_CC"] = found
    #expect(try NativeToolchain.locateCompiler(environment: environment) == found)
    environment["KILN_CC"] = "/nonexistent/kiln-cc"
    do {
      _ = try NativeToolchain.locateCompiler(environment: environment)
      Issue.record("a missing KILN_CC compiler was accepted")
    } catch let error as CodegenError {
      #expect(error.code == .compilerNotFound)
      #expect(error.message.contains("/nonexistent/kiln-cc"))
    }
  }

  @Test func compilerErrorsCarryTheCompilersOutput() throws {
    do {
      _ = try compileKernels("int broken(void) { return undeclared_name_42; }", name: "broken")
      Issue.record("broken C compiled")
    } catch let error as CodegenError {
      #expect(error.code == .nativeCompilation)
      #expect(error.details.contains("undeclared_name_42"), "\(error)")
      #expect(error.description.contains("undeclared_name_42"))
      #expect(error.message.contains("broken"))
    }
  }

  @Test(arguments: ["", "../escape", "-o", "a b", ".hidden"])
  func badNamesAreRefused(name: String) throws {
    do {
      _ = try NativeToolchain().compileSharedObject(source: "", flags: [], name: name)
      Issue.record("name '\(name)' was accepted")
    } catch let error as CodegenError {
      #expect(error.code == .invalidInput)
    }
  }

  @Test func leavesNoTemporaryFilesBehind() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cpu-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    var toolchain = try NativeToolchain()
    toolchain.temporaryDirectory = directory
    let source = NativeToolchain.kilnCPUABIHeader + "KILN_CPU_DEFINE_ABI_VERSION();"
    let code = try toolchain.compileSharedObject(source: source, flags: [], name: "tidy")
    #expect(code.starts(with: [0x7F, 0x45, 0x4C, 0x46]), "an ELF file")
    #expect(throws: CodegenError.self) {
      try toolchain.compileSharedObject(source: "syntax error", flags: [], name: "tidy")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
  }

  /// Calls `body` with a private folder and a shell script in it that stands in for the compiler.
  func withScriptCompiler(_ script: String, _ body: (_ folder: URL, _ compiler: String) throws -> Void) throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cpu-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("script-cc")
    try Data(("#!/bin/sh\n" + script).utf8).write(to: path)
    try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path.path)
    try body(directory, path.path)
  }

  @Test func aCompilerThatHangsIsStopped() throws {
    // A "compiler" that never finishes.
    try withScriptCompiler("exec sleep 30\n") { _, compiler in
      let toolchain = NativeToolchain(compilerPath: compiler, timeout: .milliseconds(300))
      let start = ContinuousClock.now
      do {
        _ = try toolchain.compileSharedObject(source: "", flags: [], name: "hang")
        Issue.record("a hanging compiler returned")
      } catch let error as CodegenError {
        #expect(error.code == .timeout)
      }
      #expect(ContinuousClock.now - start < .seconds(20))
    }
  }

  /// The compiler runs in the private directory with nothing on standard input; both its output
  /// streams reach the error, and so does its exit status.
  @Test func theCompilerRunsInItsDirectoryWithItsOutputCaptured() throws {
    try withScriptCompiler("echo \"to stdout in $(pwd)\"\necho to stderr >&2\ncat\necho \"args: $*\"\nexit 3\n") {
      directory, compiler in
      var toolchain = NativeToolchain(compilerPath: compiler, timeout: .seconds(30))
      toolchain.temporaryDirectory = directory
      do {
        _ = try toolchain.compileSharedObject(source: "int x;", flags: ["-DSOMETHING"], name: "chatty")
        Issue.record("a failing compiler succeeded")
      } catch let error as CodegenError {
        #expect(error.code == .nativeCompilation)
        #expect(error.message.contains("exit status 3"), "\(error.message)")
        #expect(error.details.contains("to stdout in \(directory.path)/kiln-cc-"), "\(error.details)")
        #expect(error.details.contains("to stderr"))
        #expect(
          error.details.contains("args: -O2") && error.details.contains("-DSOMETHING")
            && error.details.contains("chatty.c"))
      }
    }
  }

  /// Builds the test kernels for a `-march` level and checks saxpy on both the scalar tail and
  /// the vectorised body.
  @Test(arguments: ["x86-64", "x86-64-v2", "x86-64-v3"])
  func microarchitectureVariantsBuildAndRun(march: String) throws {
    #if arch(x86_64)
      let required: [String: [String]] = [
        "x86-64": [], "x86-64-v2": ["sse4_2", "popcnt", "ssse3"], "x86-64-v3": ["avx2", "fma", "bmi2", "movbe"],
      ]
      let code = try compileKernels(
        kernelSource, flags: ["-D_GNU_SOURCE", "-march=\(march)"], name: "kernels_\(march)")
      guard hostCPUHasFlags(required[march] ?? []) else {
        print("skipping the run of -march=\(march): the host CPU lacks \(required[march] ?? [])")
        return
      }
      let device = try device()
      let executable = try device.makeExecutable(
        ExecutableSpec(format: .sharedObject, code: code, entryPoints: Kernel.allCases.map(\.entryPoint)))
      let n = 1000
      let x = (0..<n).map { Float($0) * 0.25 }
      let y = (0..<n).map { Float(n - $0) }
      let xBuffer = try device.buffer(x)
      let yBuffer = try device.buffer(y)
      let commands = try device.makeCommandBuffer()
      try commands.dispatch(
        executable, entryPoint: Kernel.saxpy.rawValue, bindings: [BufferRange(xBuffer), BufferRange(yBuffer)],
        pushConstants: [UInt32(n), Float(3).bitPattern], workgroups: WorkgroupCount((n + 63) / 64))
      try commands.end()
      try device.submitAndWait(commands)
      let result = try device.floats(yBuffer)
      for index in 0..<n {
        // Within one rounding: -march=x86-64-v3 may contract a * x + y into an FMA.
        let expected = 3 * x[index] + y[index]
        #expect(abs(result[index] - expected) <= expected.ulp, "element \(index)")
      }
    #endif
  }
}
