import ArgumentParser
import Foundation

/// `kiln inspect B.kiln`: what a bundle holds, after verifying every checksum.
struct InspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect", abstract: "Verify a .kiln bundle and describe what it holds.")

  @Argument(help: "The .kiln bundle.")
  var bundle: String

  @Flag(help: "Print the manifest as JSON instead.")
  var json = false

  func run() throws {
    try reportingErrors {
      let reader = try TensorFiles.openBundle(URL(fileURLWithPath: bundle))
      print(json ? try reader.manifest.prettyJSON() : reader.describe())
    }
  }
}
