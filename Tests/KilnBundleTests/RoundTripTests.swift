import Foundation
import Testing

@testable import KilnBundle

@Suite struct RoundTripTests {
  @Test func inMemoryRoundTrip() throws {
    let (manifest, _) = Fixtures.sample()
    let reader = try BundleReader(bytes: Fixtures.sampleBytes())
    #expect(reader.manifest == manifest)
    #expect(reader.version == BundleFormat.currentVersion)
    #expect(reader.flags == 0)
    #expect(reader.manifestSection == 0)
    #expect(reader.sections.map(\.kind) == [.manifest, .executable, .executable, .weights])
    #expect(Array(try reader.executableBytes(0)) == Fixtures.spirv)
    #expect(Array(try reader.executableBytes(1)) == Fixtures.elf)
    #expect(Array(try reader.weightBytes(0)) == Fixtures.weight0)
    #expect(Array(try reader.weightBytes(named: "fc.bias")) == Fixtures.weight1)
    #expect(Array(try reader.sectionBytes(1)) == Fixtures.spirv)
    #expect(!reader.isMemoryMapped)
  }

  @Test(arguments: [true, false])
  func fileRoundTrip(memoryMap: Bool) throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("tiny.kiln")
    let (manifest, writer) = Fixtures.sample()
    try writer.write(manifest: manifest, to: url)

    let reader = try BundleReader(contentsOf: url, memoryMap: memoryMap)
    #expect(reader.isMemoryMapped == memoryMap)
    #expect(reader.manifest == manifest)
    #expect(Array(reader.fileBytes) == (try Fixtures.sampleBytes()))
    #expect(Array(try reader.weightBytes(named: "fc.weight")) == Fixtures.weight0)
    #expect(Array(try reader.executableBytes(1)) == Fixtures.elf)
  }

  @Test(arguments: [true, false])
  func payloadsAre64ByteAlignedInMemory(memoryMap: Bool) throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let url = folder.appendingPathComponent("tiny.kiln")
    let (manifest, writer) = Fixtures.sample()
    try writer.write(manifest: manifest, to: url)
    let reader = try BundleReader(contentsOf: url, memoryMap: memoryMap)
    for index in reader.sections.indices {
      let address = Int(bitPattern: try reader.sectionBytes(index).baseAddress)
      #expect(address % 64 == 0, "section \(index)")
      #expect(reader.sections[index].offset % 64 == 0)
    }
    for index in reader.manifest.weights.indices {
      #expect(Int(bitPattern: try reader.weightBytes(index).baseAddress) % 64 == 0)
    }
  }

  @Test func outputIsDeterministic() throws {
    let first = try Fixtures.sampleBytes()
    let second = try Fixtures.sampleBytes()
    #expect(first == second)

    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    let (manifest, writer) = Fixtures.sample()
    let a = folder.appendingPathComponent("a.kiln")
    let b = folder.appendingPathComponent("b.kiln")
    try writer.write(manifest: manifest, to: a)
    try writer.write(manifest: manifest, to: b)
    #expect(try Data(contentsOf: a) == Data(contentsOf: b))
    #expect([UInt8](try Data(contentsOf: a)) == first)
  }

  @Test func manifestJSONHasSortedKeysAndNoTimestamps() throws {
    let (manifest, _) = Fixtures.sample()
    let json = String(decoding: try manifest.jsonBytes(), as: UTF8.self)
    #expect(json.hasPrefix(#"{"createdBy":"kiln 0.0.0-test","executables":[{"entryPoints":"#))
    #expect(json.contains(#"{"kind":"barrier"}"#))
    #expect(json.contains(#""role":{"index":0,"kind":"input"}"#))
    #expect(json.contains(#""role":{"kind":"constant","weight":1}"#))
    #expect(json.contains(#""role":{"kind":"transient"}"#))
    #expect(json.contains(#"{"destination":{"buffer":4,"length":16,"offset":16},"kind":"copy""#))
    #expect(json.contains(#"{"kind":"fill","pattern":0,"target":"#))
    #expect(json.contains(#""kind":"dispatch","pushConstants":[4,1],"sourceOps":["MatMul_0"]"#))
    #expect(!json.contains("\n"))
    #expect(try Manifest(jsonBytes: manifest.jsonBytes()) == manifest)
    #expect(try manifest.prettyJSON().contains("\n  \"createdBy\" : \"kiln 0.0.0-test\""))
  }

  @Test func optionalExecutableFieldsAreOmittedWhenNil() throws {
    let entry = Manifest.ExecutableEntry(
      target: "cpu", format: "elf-x86_64", section: 1, entryPoints: ["f"])
    let manifest = Manifest(
      modelName: "m", producer: "p", createdBy: "c", executables: [entry])
    let json = String(decoding: try manifest.jsonBytes(), as: UTF8.self)
    #expect(!json.contains("variant"))
    #expect(!json.contains("specializationConstants"))
  }

  @Test func customAlignmentEmptyAndUnknownSections() throws {
    var writer = BundleWriter()
    let big = writer.addWeights([1, 2, 3], alignment: 4096)
    let empty = writer.addExecutable([])
    let future = writer.addSection(kind: SectionKind(rawValue: 99), bytes: [9, 9])
    let manifest = Manifest(
      modelName: "m", producer: "p", createdBy: "c",
      executables: [.init(target: "cpu", format: "elf-x86_64", section: empty, entryPoints: ["f"])],
      weights: [.init(name: "w", section: big, offset: 0, length: 3)])
    let reader = try BundleReader(bytes: writer.serialize(manifest: manifest))
    #expect(reader.sections[big].offset % 4096 == 0)
    #expect(reader.sections[big].alignment == 4096)
    #expect(reader.sections[empty].length == 0)
    #expect(try reader.executableBytes(0).count == 0)
    #expect(reader.sections[future].kind.description == "kind-99")
    #expect(Array(try reader.sectionBytes(future)) == [9, 9])
  }

  @Test func bundleWithOnlyAManifest() throws {
    let manifest = Manifest(modelName: "empty", producer: "p", createdBy: "c")
    let bytes = try BundleWriter().serialize(manifest: manifest)
    #expect(bytes.count == 128 + (try manifest.jsonBytes()).count)
    #expect(try BundleReader(bytes: bytes).manifest == manifest)
  }

  @Test func accessorsRejectBadIndicesAndNames() throws {
    let reader = try BundleReader(bytes: Fixtures.sampleBytes())
    #expect(throws: BundleError.self) { try reader.sectionBytes(4) }
    #expect(throws: BundleError.self) { try reader.sectionBytes(-1) }
    #expect(throws: BundleError.self) { try reader.executableBytes(2) }
    #expect(throws: BundleError.self) { try reader.weightBytes(2) }
    #expect(throws: BundleError.self) { try reader.weightBytes(named: "nope") }
  }

  @Test func sectionDataKeepsTheReaderAlive() throws {
    var data: Data?
    do {
      let reader = try BundleReader(bytes: Fixtures.sampleBytes())
      data = try reader.sectionData(1)
    }
    #expect(data.map { [UInt8]($0) } == Fixtures.spirv)
  }

  /// A weights section added from the packer's pieces is byte for byte the one added from its
  /// concatenated bytes (offsets, zero gaps, checksum).
  @Test func weightsFromPiecesMatchContiguousWeights() throws {
    var packer = WeightPacker()
    packer.append(name: "a", bytes: [1, 2, 3])
    packer.append(name: "b", bytes: [UInt8](repeating: 7, count: 100))
    packer.append(name: "c", bytes: [])
    packer.append(name: "d", bytes: (0..<1000).map { UInt8($0 % 251) })
    func bundle(pieces: Bool) throws -> [UInt8] {
      var writer = BundleWriter()
      let section = pieces ? writer.addWeights(packer) : writer.addWeights(packer.bytes)
      var manifest = Manifest(modelName: "w", producer: "test", createdBy: "test")
      manifest.weights = packer.entries(section: section)
      return try writer.serialize(manifest: manifest)
    }
    let fromPieces = try bundle(pieces: true)
    #expect(fromPieces == (try bundle(pieces: false)))
    let reader = try BundleReader(bytes: fromPieces)
    #expect(Array(try reader.weightBytes(3)) == (0..<1000).map { UInt8($0 % 251) })
  }

  @Test func weightPackerAlignsEveryWeight() {
    var packer = WeightPacker()
    packer.append(name: "a", bytes: [1, 2, 3])
    packer.append(name: "b", bytes: [UInt8](repeating: 7, count: 64))
    packer.append(name: "c", bytes: [])
    packer.append(name: "d", bytes: [4])
    let entries = packer.entries(section: 5)
    #expect(entries.map(\.offset) == [0, 64, 128, 128])
    #expect(entries.map(\.length) == [3, 64, 0, 1])
    #expect(entries.allSatisfy { $0.section == 5 })
    #expect(packer.bytes.count == 129)
    #expect(packer.bytes[3..<64].allSatisfy { $0 == 0 })
  }

  @Test func describeSummarisesTheBundle() throws {
    let reader = try BundleReader(bytes: Fixtures.sampleBytes())
    let text = reader.describe()
    let sections = reader.sections
    let expected = """
      Kiln bundle, format 1.2, \(reader.fileBytes.count) bytes, header checksum \
      \(hex(reader.headerChecksum))
      model: tiny
      producer: kiln-tests
      created by: kiln 0.0.0-test
      functions: 1
        main
          inputs:  x: float32[1, 4]
          outputs: y: float32[1, 4]
          program vulkan: 2 dispatches, 3 barriers, 1 copy, 1 fill; 5 buffers (1 input, \
      1 output, 2 constant, 1 transient); arena 64 bytes
          program cpu: 2 dispatches, 3 barriers, 1 copy, 1 fill; 5 buffers (1 input, \
      1 output, 2 constant, 1 transient); arena 64 bytes
      executables: 2
        0: vulkan spirv, section 1, 96 bytes, entry points: matmul, add; 2 specialization constants
        1: cpu elf-x86_64 (x86-64-v3), section 2, 44 bytes, entry points: matmul, add
      weights: 2 tensors, 32 bytes in 1 section
      sections: 4
        index  kind        offset  length  align  checksum

      """
    #expect(text.hasPrefix(expected))
    let tableLines = text.split(separator: "\n").suffix(4)
    for (line, section) in zip(tableLines, sections) {
      #expect(line.contains(hex(section.checksum)))
      #expect(line.contains(" \(section.offset) "))
      #expect(line.contains(" \(section.length) "))
    }
    #expect(tableLines.first?.contains("manifest") == true)
    #expect(tableLines.last?.contains("weights") == true)
  }

  @Test func byteSizesUseBinaryUnits() {
    #expect(BundleReader.byteSize(1023) == "1023 bytes")
    #expect(BundleReader.byteSize(12345) == "12345 bytes (12.1 KiB)")
    #expect(BundleReader.byteSize(5 << 20) == "5242880 bytes (5.0 MiB)")
    #expect(BundleReader.byteSize(3 << 30) == "3221225472 bytes (3.0 GiB)")
  }
}
