import Foundation
import Testing

@testable import KilnBundle

typealias Entry = BundleFormat.EntryField
typealias Header = BundleFormat.HeaderField

@Suite struct CorruptionTests {
  @Test func sampleIsAccepted() throws {
    _ = try BundleReader(bytes: Fixtures.sampleBytes())
  }

  @Test func truncationAtEveryPointIsDetected() throws {
    let bytes = try Fixtures.sampleBytes()
    for length in 0..<bytes.count {
      expectRejected(Array(bytes[0..<length]), .truncated)
    }
  }

  @Test func everyFlippedByteIsDetected() throws {
    let bytes = try Fixtures.sampleBytes()
    #expect(bytes.count < 4096, "keep the sample small so this test stays fast")
    for position in bytes.indices {
      for mask: UInt8 in [0x01, 0x80, 0xFF] {
        var corrupted = bytes
        corrupted[position] ^= mask
        #expect(throws: BundleError.self, "byte \(position) ^ \(mask)") {
          try BundleReader(bytes: corrupted)
        }
      }
    }
  }

  @Test func flippedBytesGiveTheErrorOfTheirRegion() throws {
    let bytes = try Fixtures.sampleBytes()
    let tableEnd = BundleHeader.tableEnd(sectionCount: bytes.sectionCount)
    var header = bytes
    header[Header.fileLength] ^= 1
    expectRejected(header, .headerChecksumMismatch)
    var table = bytes
    table[tableEnd - 1] ^= 1
    expectRejected(table, .headerChecksumMismatch)
    let manifestEnd = bytes.entry(0).offset + bytes.entry(0).length
    #expect(bytes.entry(1).offset > manifestEnd, "a padding gap after the manifest")
    var padding = bytes
    padding[manifestEnd] ^= 1
    expectRejected(padding, .nonZeroPadding)
    for section in 0..<bytes.sectionCount {
      var payload = bytes
      payload[bytes.entry(section).offset] ^= 1
      let error = expectRejected(payload, .sectionChecksumMismatch)
      #expect(error?.message.hasPrefix("section \(section) ") == true)
    }
  }

  @Test func wrongMagic() throws {
    var bytes = try Fixtures.sampleBytes()
    bytes[0] = UInt8(ascii: "X")
    let error = expectRejected(bytes, .badMagic)
    #expect(error?.message.contains("0x58494c4e424e444c") == true)
    expectRejected(Array("not a bundle".utf8), .badMagic)
    expectRejected(Array("KILN".utf8), .truncated)
  }

  @Test(arguments: [(2, 0), (0, 0), (1, 3), (0xFFFF, 0), (1, 0xFFFF)])
  func unsupportedVersions(major: UInt16, minor: UInt16) throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.put(major, at: Header.majorVersion)
    bytes.put(minor, at: Header.minorVersion)
    bytes.resealHeader()
    let error = expectRejected(bytes, .unsupportedVersion)
    #expect(error?.message.contains("version \(major).\(minor) is not supported") == true)
  }

  @Test func unknownFlagsAndReservedHeaderBytes() throws {
    var flags = try Fixtures.sampleBytes()
    flags.put(UInt32(1), at: Header.flags)
    flags.resealHeader()
    expectRejected(flags, .malformedHeader)
    var reserved = try Fixtures.sampleBytes()
    reserved[Header.reserved + 5] = 1
    reserved.resealHeader()
    expectRejected(reserved, .malformedHeader)
    var sizes = try Fixtures.sampleBytes()
    sizes.put(UInt16(80), at: Header.headerSize)
    sizes.resealHeader()
    expectRejected(sizes, .malformedHeader)
  }

  @Test func trailingDataIsRejected() throws {
    expectRejected(try Fixtures.sampleBytes() + [0], .malformedHeader)
  }

  @Test func declaredLengthLongerThanFile() throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.put(UInt64(bytes.count + 64), at: Header.fileLength)
    bytes.resealHeader()
    expectRejected(bytes, .truncated)
  }

  @Test(arguments: [UInt32(BundleFormat.maxSectionCount + 1), 1_000_000, UInt32.max])
  func hugeSectionCount(count: UInt32) throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.put(count, at: Header.sectionCount)
    expectRejected(bytes, .limitExceeded)
  }

  @Test func sectionsOverlappingEachOther() throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.putEntry(2, Entry.offset, UInt64(bytes.entry(1).offset))
    bytes.resealHeader()
    let error = expectRejected(bytes, .sectionOverlap)
    #expect(error?.message.contains("overlaps section") == true)
  }

  @Test func sectionOverlappingTheHeaderAndTable() throws {
    for offset: UInt64 in [0, 64] {
      var bytes = try Fixtures.sampleBytes()
      bytes.putEntry(1, Entry.offset, offset)
      bytes.resealHeader()
      let error = expectRejected(bytes, .sectionOverlap)
      #expect(error?.message.contains("header and section table") == true)
    }
  }

  @Test func zeroLengthSectionInsideAnother() throws {
    var bytes = try Fixtures.sampleBytes()
    let manifest = bytes.entry(0)
    #expect(manifest.length > 64)
    bytes.putEntry(1, Entry.offset, UInt64(manifest.offset + 64))
    bytes.putEntry(1, Entry.length, UInt64(0))
    bytes.resealHeader()
    expectRejected(bytes, .sectionOverlap)
  }

  @Test func sectionPastEndOfFile() throws {
    var length = try Fixtures.sampleBytes()
    length.putEntry(3, Entry.length, UInt64(length.entry(3).length + 1))
    length.resealHeader()
    expectRejected(length, .sectionOutOfBounds)
    var offset = try Fixtures.sampleBytes()
    offset.putEntry(3, Entry.offset, UInt64(offset.count + 64) & ~63)
    offset.resealHeader()
    expectRejected(offset, .sectionOutOfBounds)
    var beyondInt = try Fixtures.sampleBytes()
    beyondInt.putEntry(1, Entry.offset, UInt64(1) << 63)
    beyondInt.putEntry(1, Entry.length, UInt64(0))
    beyondInt.resealHeader()
    expectRejected(beyondInt, .sectionOutOfBounds)
  }

  @Test func sectionOffsetPlusLengthOverflows() throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.putEntry(1, Entry.offset, UInt64.max & ~63)
    bytes.putEntry(1, Entry.length, UInt64(1000))
    bytes.resealHeader()
    let error = expectRejected(bytes, .sectionOutOfBounds)
    #expect(error?.message.contains("overflows") == true)
    var huge = try Fixtures.sampleBytes()
    huge.putEntry(1, Entry.length, UInt64.max)
    huge.resealHeader()
    expectRejected(huge, .sectionOutOfBounds)
  }

  @Test func misalignedSection() throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.putEntry(2, Entry.offset, UInt64(bytes.entry(2).offset + 8))
    bytes.resealHeader()
    expectRejected(bytes, .sectionMisaligned)
    var bigger = try Fixtures.sampleBytes()
    bigger.putEntry(2, Entry.alignment, UInt32(4096))
    bigger.resealHeader()
    expectRejected(bigger, .sectionMisaligned)
  }

  @Test(arguments: [UInt32(0), 32, 100, 1 << 17])
  func badAlignmentValue(alignment: UInt32) throws {
    var bytes = try Fixtures.sampleBytes()
    bytes.putEntry(1, Entry.alignment, alignment)
    bytes.resealHeader()
    expectRejected(bytes, .malformedSectionTable)
  }

  @Test func reservedEntryFields() throws {
    for field in [Entry.flags, Entry.reserved0, Entry.reserved1] {
      var bytes = try Fixtures.sampleBytes()
      bytes.putEntry(1, field, UInt8(1))
      bytes.resealHeader()
      expectRejected(bytes, .malformedSectionTable)
    }
  }

  @Test func missingAndDuplicateManifest() throws {
    var none = try Fixtures.sampleBytes()
    none.putEntry(0, Entry.kind, SectionKind.executable.rawValue)
    none.resealHeader()
    expectRejected(none, .malformedSectionTable)
    var two = try Fixtures.sampleBytes()
    two.putEntry(3, Entry.kind, SectionKind.manifest.rawValue)
    two.resealHeader()
    expectRejected(two, .malformedSectionTable)
  }

  @Test func headerWithNoSections() {
    var bytes = [UInt8](repeating: 0, count: 64)
    for (index, byte) in BundleFormat.magic.enumerated() { bytes[index] = byte }
    bytes.put(UInt16(1), at: Header.majorVersion)
    bytes.put(UInt16(64), at: Header.headerSize)
    bytes.put(UInt16(48), at: Header.sectionEntrySize)
    bytes.put(UInt64(64), at: Header.fileLength)
    bytes.resealHeader()
    expectRejected(bytes, .malformedSectionTable)
  }

  @Test func manifestOverTheSizeLimit() {
    let length = BundleFormat.maxManifestSize + 1
    var bytes = [UInt8](repeating: 0, count: 128 + length)
    for (index, byte) in BundleFormat.magic.enumerated() { bytes[index] = byte }
    bytes.put(UInt16(1), at: Header.majorVersion)
    bytes.put(UInt32(1), at: Header.sectionCount)
    bytes.put(UInt16(64), at: Header.headerSize)
    bytes.put(UInt16(48), at: Header.sectionEntrySize)
    bytes.put(UInt64(bytes.count), at: Header.fileLength)
    bytes.putEntry(0, Entry.kind, SectionKind.manifest.rawValue)
    bytes.putEntry(0, Entry.offset, UInt64(128))
    bytes.putEntry(0, Entry.length, UInt64(length))
    bytes.putEntry(0, Entry.alignment, UInt32(64))
    bytes.resealHeader()
    expectRejected(bytes, .limitExceeded)
  }

  @Test(arguments: [
    "", "not json", "[1, 2, 3]", "{\"formatVersion\": 1}", "{\"formatVersion\": \"one\"}",
  ])
  func manifestThatIsNotAManifest(json: String) throws {
    let (_, writer) = Fixtures.sample()
    expectRejected(writer.serialize(rawManifest: Array(json.utf8)), .malformedManifest)
  }

  @Test func manifestWithUnknownCommandKind() throws {
    let (manifest, writer) = Fixtures.sample()
    let json = String(decoding: try manifest.jsonBytes(), as: UTF8.self)
      .replacingOccurrences(of: #"{"kind":"barrier"}"#, with: #"{"kind":"teleport"}"#)
    let error = expectRejected(writer.serialize(rawManifest: Array(json.utf8)), .malformedManifest)
    #expect(error?.message.contains("unknown command kind 'teleport'") == true)
    #expect(error?.message.contains(".functions[0].programs[0].commands[1]") == true)
  }

  @Test func manifestWithMissingKeyNamesThePath() throws {
    let (manifest, writer) = Fixtures.sample()
    let json = String(decoding: try manifest.jsonBytes(), as: UTF8.self)
      .replacingOccurrences(of: #""entryPoint":"add","#, with: "")
    let error = expectRejected(writer.serialize(rawManifest: Array(json.utf8)), .malformedManifest)
    #expect(error?.message.contains("missing key 'entryPoint'") == true)
  }

  @Test func readerValidatesTheManifest() throws {
    let (sample, writer) = Fixtures.sample()
    var manifest = sample
    manifest.executables[0].section = 3
    let bytes = writer.serialize(rawManifest: try manifest.jsonBytes())
    let error = expectRejected(bytes, .invalidManifest)
    #expect(
      error?.message
        == "executable 0 (vulkan spirv): section 3 has kind weights, expected executable")
  }

  @Test func readerReadingAFileThatIsNotThere() throws {
    let folder = try Fixtures.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(throws: BundleError(.io, "cannot open '\(folder.path)/missing.kiln': No such file or directory")) {
      try BundleReader(contentsOf: folder.appendingPathComponent("missing.kiln"))
    }
    let error = #expect(throws: BundleError.self) { try BundleReader(contentsOf: folder) }
    #expect(error?.code == .io)
    let empty = folder.appendingPathComponent("empty.kiln")
    try Data().write(to: empty)
    let emptyError = #expect(throws: BundleError.self) { try BundleReader(contentsOf: empty) }
    #expect(emptyError?.code == .truncated)
  }
}
