// A small valid bundle and helpers that edit raw bundle bytes for the corruption tests.

import Foundation
import Testing

@testable import KilnBundle

typealias Binding = Manifest.Binding

enum Fixtures {
  static let spirv: [UInt8] = [0x03, 0x02, 0x23, 0x07] + (0..<92).map { UInt8($0) }
  static let elf: [UInt8] = [0x7F, 0x45, 0x4C, 0x46] + (0..<40).map { UInt8(255 - $0) }
  static let weight0: [UInt8] = (0..<16).map { UInt8($0 * 3) }
  static let weight1: [UInt8] = (0..<16).map { UInt8(200 - $0) }

  static func program(target: String, executable: Int) -> Manifest.Program {
    Manifest.Program(
      target: target,
      buffers: [
        .init(id: 0, size: 16, role: .input(0)),
        .init(id: 1, size: 16, role: .output(0)),
        .init(id: 2, size: 16, role: .constant(weight: 0)),
        .init(id: 3, size: 16, role: .constant(weight: 1)),
        .init(id: 4, size: 64, role: .transient),
      ],
      commands: [
        .fill(.init(target: Binding(buffer: 4, offset: 0, length: 64), pattern: 0)),
        .barrier,
        .dispatch(
          .init(
            executable: executable, entryPoint: "matmul",
            bindings: [
              Binding(buffer: 0, offset: 0, length: 16), Binding(buffer: 2, offset: 0, length: 16),
              Binding(buffer: 4, offset: 0, length: 16),
            ], pushConstants: [4, 1], workgroups: [1, 1, 1], sourceOps: ["MatMul_0"])),
        .barrier,
        .copy(
          .init(
            source: Binding(buffer: 4, offset: 0, length: 16),
            destination: Binding(buffer: 4, offset: 16, length: 16))),
        .barrier,
        .dispatch(
          .init(
            executable: executable, entryPoint: "add",
            bindings: [
              Binding(buffer: 4, offset: 16, length: 16), Binding(buffer: 3, offset: 0, length: 16),
              Binding(buffer: 1, offset: 0, length: 16),
            ], workgroups: [4, 1, 1], sourceOps: ["Add_1", "Relu_2"])),
      ])
  }

  /// The sample manifest and a writer holding its sections (1: SPIR-V, 2: ELF, 3: weights).
  static func sample() -> (Manifest, BundleWriter) {
    var writer = BundleWriter()
    let spirvSection = writer.addExecutable(spirv)
    let elfSection = writer.addExecutable(elf)
    var packer = WeightPacker()
    packer.append(name: "fc.weight", bytes: weight0)
    packer.append(name: "fc.bias", bytes: weight1)
    let weightSection = writer.addWeights(packer.bytes)
    let manifest = Manifest(
      modelName: "tiny", producer: "kiln-tests", createdBy: "kiln 0.0.0-test",
      functions: [
        .init(
          name: "main",
          inputs: [.init(name: "x", dtype: "float32", shape: [1, 4])],
          outputs: [.init(name: "y", dtype: "float32", shape: [1, 4])],
          programs: [
            program(target: "vulkan", executable: 0), program(target: "cpu", executable: 1),
          ])
      ],
      executables: [
        .init(
          target: "vulkan", format: "spirv", section: spirvSection, entryPoints: ["matmul", "add"],
          specializationConstants: [64, 1]),
        .init(
          target: "cpu", format: "elf-x86_64", section: elfSection, entryPoints: ["matmul", "add"],
          variant: "x86-64-v3"),
      ],
      weights: packer.entries(section: weightSection))
    return (manifest, writer)
  }

  static func sampleBytes() throws -> [UInt8] {
    let (manifest, writer) = sample()
    return try writer.serialize(manifest: manifest)
  }

  /// Section infos matching `sample()`, for calling `Manifest.validate` directly.
  static func sampleSections() throws -> [SectionInfo] {
    try BundleReader(bytes: sampleBytes()).sections.map(\.info)
  }

  static func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("kiln-bundle-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }
}

/// Edits of raw bundle bytes. Each edit of the header or table is followed by `resealHeader` in
/// tests that want a specific later check (not the header checksum) to fire.
extension [UInt8] {
  mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
    for index in 0..<MemoryLayout<T>.size {
      self[offset + index] = UInt8(truncatingIfNeeded: value >> (index * 8))
    }
  }

  func get<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    withUnsafeBytes { $0.readLittleEndian(T.self, at: offset) }
  }

  var sectionCount: Int { Int(get(UInt32.self, at: BundleFormat.HeaderField.sectionCount)) }

  static func entryOffset(_ section: Int) -> Int {
    BundleFormat.headerSize + section * BundleFormat.sectionEntrySize
  }

  mutating func putEntry<T: FixedWidthInteger>(_ section: Int, _ field: Int, _ value: T) {
    put(value, at: Self.entryOffset(section) + field)
  }

  func entry(_ section: Int) -> (offset: Int, length: Int) {
    (
      Int(get(UInt64.self, at: Self.entryOffset(section) + BundleFormat.EntryField.offset)),
      Int(get(UInt64.self, at: Self.entryOffset(section) + BundleFormat.EntryField.length))
    )
  }

  /// Recomputes the header checksum over the header and the table.
  mutating func resealHeader() {
    let tableEnd = BundleHeader.tableEnd(sectionCount: sectionCount)
    let checksum = withUnsafeBytes {
      BundleHeader.computeChecksum(headerAndTable: UnsafeRawBufferPointer(rebasing: $0[0..<tableEnd]))
    }
    put(checksum, at: BundleFormat.HeaderField.checksum)
  }

  /// Recomputes section `section`'s checksum after editing its payload, then reseals the header.
  mutating func resealSection(_ section: Int) {
    let (offset, length) = entry(section)
    let checksum = Checksum.xxh64(Array(self[offset..<offset + length]))
    putEntry(section, BundleFormat.EntryField.checksum, checksum)
    resealHeader()
  }
}

/// Expects `BundleReader(bytes:)` to fail with `code`; returns the error for message checks.
@discardableResult
func expectRejected(
  _ bytes: [UInt8], _ code: BundleError.Code, sourceLocation: SourceLocation = #_sourceLocation
) -> BundleError? {
  do {
    _ = try BundleReader(bytes: bytes)
    Issue.record("bundle was accepted, expected \(code)", sourceLocation: sourceLocation)
    return nil
  } catch let error as BundleError {
    #expect(error.code == code, "\(error.message)", sourceLocation: sourceLocation)
    return error
  } catch {
    Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    return nil
  }
}
