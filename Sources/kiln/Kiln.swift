import ArgumentParser
import Foundation

@main
struct Kiln: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kiln",
    abstract: "Compile ONNX models to one .kiln bundle and run them on Vulkan devices and the CPU.",
    version: KilnVersion.string,
    subcommands: [DevicesCommand.self, ConformanceCommand.self, CompileCommand.self, RunCommand.self, InspectCommand.self])
}

enum KilnVersion {
  static let string = "0.1.0"
}

/// Writes one line to standard error.
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}
