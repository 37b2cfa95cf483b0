import ArgumentParser
import Foundation

@main
struct Kiln: ParsableCommand {
  /// Exit codes: 0 success, 1 a user error (bad model, bundle or input, a failing device),
  /// 2 a usage error (unknown option, missing argument).
  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      if exitCode(for: error) == .validationFailure {
        FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
        Foundation.exit(2)
      }
      exit(withError: error)
    }
  }

  static let configuration = CommandConfiguration(
    commandName: "kiln",
    abstract: "Compile ONNX models to one .kiln bundle and run them on Vulkan devices and the CPU.",
    version: KilnVersion.string,
    subcommands: [
      DevicesCommand.self, ConformanceCommand.self, CompileCommand.self, RunCommand.self, InspectCommand.self,
      BenchCommand.self,
    ])
}

enum KilnVersion {
  static let string = "0.1.0"
}

/// Writes one line to standard error.
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}
