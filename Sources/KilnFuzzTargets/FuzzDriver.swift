// The entry point every fuzz executable calls: libFuzzer's driver in an instrumented build
// (`tools/fuzz`, which passes -DKILN_FUZZ and links libFuzzer), a corpus replayer otherwise.

import Foundation

/// One fuzz target: decodes one input. Returning or throwing a Swift error is a pass; a trap, a
/// sanitizer report, a hang or running out of memory is a finding.
public typealias FuzzTarget = @Sendable (UnsafeRawBufferPointer) throws -> Void

#if KILN_FUZZ
  /// libFuzzer's documented entry for programs that keep their own `main`
  /// (compiler-rt, `FuzzerInterface.h`); resolved from `libclang_rt.fuzzer_no_main`.
  @_silgen_name("LLVMFuzzerRunDriver")
  private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
  ) -> CInt

  /// The target libFuzzer calls back into. Set once in `fuzzMain` before the driver starts;
  /// libFuzzer runs every input on that one thread.
  nonisolated(unsafe) private var activeTarget: FuzzTarget?

  /// Hands control to libFuzzer, which parses the command line (`-max_total_time=`, corpus
  /// folders, ...) and calls `target` with each input. Never returns.
  public func fuzzMain(_ target: @escaping FuzzTarget) -> Never {
    activeTarget = target
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    let status = runFuzzerDriver(&argc, &argv) { data, size in
      let bytes = UnsafeRawBufferPointer(start: size > 0 ? data : nil, count: size)
      // A thrown error is the parser rejecting bad input: the expected outcome, not a finding.
      _ = try? activeTarget?(bytes)
      return 0
    }
    exit(status)
  }
#else
  /// Without libFuzzer: runs `target` once on every file named on the command line (folders are
  /// walked), printing one line per input, so a saved crash or a corpus can be replayed with an
  /// ordinary build.
  public func fuzzMain(_ target: @escaping FuzzTarget) -> Never {
    let arguments = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }
    guard !arguments.isEmpty else {
      let name = (CommandLine.arguments.first ?? "fuzz").split(separator: "/").last ?? "fuzz"
      print("usage: \(name) FILE|DIR...  (replays inputs; build with tools/fuzz to fuzz)")
      exit(2)
    }
    for path in arguments.flatMap(FuzzCorpus.files(at:)) {
      guard let data = FileManager.default.contents(atPath: path) else {
        print("\(path): cannot read")
        exit(1)
      }
      do {
        try data.withUnsafeBytes { try target($0) }
        print("\(path): accepted")
      } catch {
        print("\(path): rejected: \(error)")
      }
    }
    exit(0)
  }
#endif

/// Corpus files on disk.
public enum FuzzCorpus {
  /// `path` itself if it is a file, else the regular files below it, sorted; hidden files skipped.
  public static func files(at path: String) -> [String] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [path] }
    guard isDirectory.boolValue else { return [path] }
    let names = (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []
    return names.filter { !$0.split(separator: "/").contains { $0.hasPrefix(".") } }
      .map { path + "/" + $0 }
      .filter { name in
        var nested: ObjCBool = false
        return FileManager.default.fileExists(atPath: name, isDirectory: &nested) && !nested.boolValue
      }
      .sorted()
  }
}
