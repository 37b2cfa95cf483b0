import Foundation
import Testing

@testable import KilnBundle

@Suite struct AtomicWriteTests {
  let original = Data("the previous bundle".utf8)

  func contents(of folder: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
  }

  @Test func invalidManifestLeavesDestinationUnchanged() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("model.kiln")
    try original.write(to: url)
    var (manifest, writer) = Fixtures.sample()
    manifest.executables[0].section = 7
    #expect(throws: BundleError.self) { try writer.write(manifest: manifest, to: url) }
    #expect(try Data(contentsOf: url) == original)
    #expect(try contents(of: folder) == ["model.kiln"])
  }

  @Test(arguments: [0, 1, 63, 64, 200, 500])
  func failureWhileWritingLeavesDestinationUnchanged(failAfterBytes: Int) throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("model.kiln")
    try original.write(to: url)
    let (manifest, writer) = Fixtures.sample()
    let error = #expect(throws: BundleError.self) {
      try writer.write(manifest: manifest, to: url, failAfterBytes: failAfterBytes)
    }
    #expect(error?.code == .io)
    #expect(try Data(contentsOf: url) == original)
    #expect(try contents(of: folder) == ["model.kiln"])
  }

  @Test func failureWithoutPreviousFileLeavesNothing() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let (manifest, writer) = Fixtures.sample()
    #expect(throws: BundleError.self) {
      try writer.write(
        manifest: manifest, to: folder.appendingPathComponent("new.kiln"), failAfterBytes: 100)
    }
    #expect(try contents(of: folder) == [])
  }

  @Test func successfulWriteReplacesTheFile() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("model.kiln")
    try original.write(to: url)
    let (manifest, writer) = Fixtures.sample()
    try writer.write(manifest: manifest, to: url)
    #expect([UInt8](try Data(contentsOf: url)) == (try Fixtures.sampleBytes()))
    #expect(try contents(of: folder) == ["model.kiln"])
  }

  @Test func refusesAProtectedPathHoweverItIsSpelled() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let model = folder.appendingPathComponent("model.onnx")
    try original.write(to: model)
    let link = folder.appendingPathComponent("link.onnx")
    try FileManager.default.createSymbolicLink(at: link, withDestinationURL: model)
    let hardLink = folder.appendingPathComponent("hard.onnx")
    try FileManager.default.linkItem(at: model, to: hardLink)

    var (manifest, writer) = Fixtures.sample()
    writer.protect(model)
    #expect(writer.protectedPaths == [model])
    let spellings = [
      model, URL(fileURLWithPath: folder.path + "/./model.onnx"),
      URL(fileURLWithPath: folder.path + "/sub/../model.onnx"), link, hardLink,
    ]
    for destination in spellings {
      let error = #expect(throws: BundleError.self, "\(destination.path)") {
        try writer.write(manifest: manifest, to: destination)
      }
      #expect(error?.code == .protectedPath)
      #expect(error?.message == "refusing to write bundle over protected file '\(model.path)'")
    }
    #expect(try Data(contentsOf: model) == original)
    manifest.modelName = "other"
    try writer.write(manifest: manifest, to: folder.appendingPathComponent("model.kiln"))
  }

  @Test func protectedPathThatDoesNotExistYet() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let (manifest, sample) = Fixtures.sample()
    var writer = sample
    writer.protect(folder.appendingPathComponent("later.onnx"))
    #expect(throws: BundleError.self) {
      try writer.write(manifest: manifest, to: folder.appendingPathComponent("later.onnx"))
    }
    #expect(try contents(of: folder) == [])
  }

  @Test func missingFolderAndDirectoryDestination() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let (manifest, writer) = Fixtures.sample()
    let missing = #expect(throws: BundleError.self) {
      try writer.write(manifest: manifest, to: folder.appendingPathComponent("no/such/x.kiln"))
    }
    #expect(missing?.code == .io)
    let directory = folder.appendingPathComponent("dir.kiln")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
    let onDirectory = #expect(throws: BundleError.self) {
      try writer.write(manifest: manifest, to: directory)
    }
    #expect(onDirectory?.code == .io)
    #expect(try contents(of: folder) == ["dir.kiln"])
  }
}
