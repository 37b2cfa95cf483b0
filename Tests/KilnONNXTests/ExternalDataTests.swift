import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Writes a model whose initializer 'w' (f32[4]) lives in external data at `location`, into a fresh
/// folder `<tmp>/<unique>/model/`, next to a sibling folder `outside/` holding `secret.bin`.
struct ExternalFixture {
  let root: URL
  let modelFolder: URL
  let modelURL: URL
  static let values: [Float] = [1, 2, 3, 4]
  static var payload: Data { Data([0xAA, 0xBB, 0xCC, 0xDD]) + Data(TensorData(values).bytes) }

  init(location: String, offset: Int? = 4, length: Int? = 16) throws {
    root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-external-\(UUID().uuidString)")
    modelFolder = root.appendingPathComponent("model")
    let outside = root.appendingPathComponent("outside")
    try FileManager.default.createDirectory(
      at: modelFolder.appendingPathComponent("sub"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
    try Self.payload.write(to: modelFolder.appendingPathComponent("weights.bin"))
    try Self.payload.write(to: modelFolder.appendingPathComponent("sub/weights.bin"))
    try Self.payload.write(to: outside.appendingPathComponent("secret.bin"))
    try Self.payload.prefix(10).write(to: modelFolder.appendingPathComponent("short.bin"))

    var tensor = Onnx_TensorProto()
    tensor.name = "w"
    tensor.dataType = 1
    tensor.dims = [4]
    tensor.dataLocation = .external
    var entries: [(String, String)] = [("location", location)]
    if let offset { entries.append(("offset", "\(offset)")) }
    if let length { entries.append(("length", "\(length)")) }
    tensor.externalData = entries.map { key, value in
      var entry = Onnx_StringStringEntryProto()
      entry.key = key
      entry.value = value
      return entry
    }
    var builder = ModelBuilder()
    builder.input("x", .float32, [4])
    builder.initializer(tensor)
    builder.node("Add", ["x", "w"], ["y"])
    builder.output("y")
    modelURL = modelFolder.appendingPathComponent("model.onnx")
    try builder.serialized().write(to: modelURL)
  }

  func link(_ name: String, to destination: String) throws {
    try FileManager.default.createSymbolicLink(
      atPath: modelFolder.appendingPathComponent(name).path, withDestinationPath: destination)
  }

  func load() throws -> Graph { try ONNXImporter().importModel(at: modelURL) }

  func error() -> ONNXImportError? {
    do {
      _ = try load()
      return nil
    } catch let error as ONNXImportError {
      return error
    } catch {
      return ONNXImportError(.internalError, "\(error)")
    }
  }

  func cleanUp() { try? FileManager.default.removeItem(at: root) }
}

@Suite struct ExternalDataTests {
  func weights(_ graph: Graph) -> [Float]? {
    graph.constants.values.first?.floats()
  }

  @Test func readsInsideTheModelFolder() throws {
    for location in ["weights.bin", "sub/weights.bin", "./weights.bin"] {
      let fixture = try ExternalFixture(location: location)
      defer { fixture.cleanUp() }
      #expect(try weights(fixture.load()) == ExternalFixture.values, "\(location)")
    }
    let noLength = try ExternalFixture(location: "weights.bin", length: nil)
    defer { noLength.cleanUp() }
    #expect(try weights(noLength.load()) == ExternalFixture.values)
  }

  @Test func symlinkInsideIsAllowed() throws {
    let fixture = try ExternalFixture(location: "alias.bin")
    defer { fixture.cleanUp() }
    try fixture.link("alias.bin", to: "sub/weights.bin")
    #expect(try weights(fixture.load()) == ExternalFixture.values)
  }

  @Test func rejectsEscapes() throws {
    let cases: [(String, String)] = [
      ("/etc/passwd", "absolute paths are not allowed"),
      ("../outside/secret.bin", "'..' is not allowed"),
      ("sub/../../outside/secret.bin", "'..' is not allowed"),
      ("..\\outside\\secret.bin", "'..' is not allowed"),
      ("C:\\secret.bin", "drive"),
      ("~/secret.bin", "absolute paths"),
    ]
    for (location, fragment) in cases {
      let fixture = try ExternalFixture(location: location)
      defer { fixture.cleanUp() }
      let error = fixture.error()
      #expect(error?.code == .externalData, "\(location): \(String(describing: error))")
      #expect(error?.message.contains(fragment) == true, "\(location): \(String(describing: error))")
    }
  }

  @Test func rejectsSymlinksLeavingTheFolder() throws {
    let fixture = try ExternalFixture(location: "escape.bin")
    defer { fixture.cleanUp() }
    try fixture.link("escape.bin", to: "../outside/secret.bin")
    let error = fixture.error()
    #expect(error?.code == .externalData)
    #expect(error?.message.contains("outside the model's folder") == true, "\(String(describing: error))")

    let folderLink = try ExternalFixture(location: "out/secret.bin")
    defer { folderLink.cleanUp() }
    try folderLink.link("out", to: folderLink.root.appendingPathComponent("outside").path)
    #expect(folderLink.error()?.message.contains("outside the model's folder") == true)
  }

  @Test func missingShortAndMismatchedFiles() throws {
    let missing = try ExternalFixture(location: "nothing.bin")
    defer { missing.cleanUp() }
    #expect(missing.error()?.message.contains("file not found") == true)

    let short = try ExternalFixture(location: "short.bin")
    defer { short.cleanUp() }
    #expect(short.error()?.message.contains("file has 10 bytes, but the tensor needs 16 bytes at offset 4") == true)

    let wrongLength = try ExternalFixture(location: "weights.bin", length: 12)
    defer { wrongLength.cleanUp() }
    #expect(wrongLength.error()?.message.contains("length 12 does not match") == true)

    let hugeOffset = try ExternalFixture(location: "weights.bin", offset: Int.max - 3)
    defer { hugeOffset.cleanUp() }
    #expect(hugeOffset.error()?.code == .externalData)

    let negativeOffset = try ExternalFixture(location: "weights.bin", offset: -4)
    defer { negativeOffset.cleanUp() }
    #expect(negativeOffset.error()?.message.contains("negative offset") == true)

    let directory = try ExternalFixture(location: "sub")
    defer { directory.cleanUp() }
    #expect(directory.error()?.message.contains("not a regular file") == true)
  }

  @Test func memoryImportsHaveNoFolder() throws {
    let fixture = try ExternalFixture(location: "weights.bin")
    defer { fixture.cleanUp() }
    let data = try Data(contentsOf: fixture.modelURL)
    #expect(throws: ONNXImportError.self) { try ONNXImporter().importModel(data: data) }
    let graph = try ONNXImporter().importModel(data: data, baseDirectory: fixture.modelFolder)
    #expect(weights(graph) == ExternalFixture.values)
  }
}
