import Foundation
@testable import KilnCodegen
import Testing

/// The compiler carries shaders/*.comp inside the binary (tools/embed-shaders writes
/// Generated/Shaders.swift); the two must not drift apart.
struct EmbeddedShadersTests {
  static let embedded = [
    ("matmul_tiled.comp", EmbeddedShaders.matmulTiled), ("matmul_shared.comp", EmbeddedShaders.matmulShared),
    ("matmul_coopmat.comp", EmbeddedShaders.matmulCoopmat),
  ]

  @Test func everyShaderIsEmbeddedAsWritten() throws {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("shaders")
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".comp") }.sorted()
    #expect(files == Self.embedded.map(\.0).sorted(), "shaders/ has other files: add them here and run tools/embed-shaders")
    for (file, text) in Self.embedded {
      let written = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
      #expect(text + "\n" == written, "shaders/\(file) changed: run tools/embed-shaders")
    }
  }
}
