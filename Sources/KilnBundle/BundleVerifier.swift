// Everything the reader checks before it hands out a single byte, in the order it checks it.
// docs/bundle-format.md lists the same steps under "What the reader verifies".

/// A bundle whose header, section table, checksums and manifest all passed verification.
struct VerifiedBundle: Sendable {
  var header: BundleHeader
  var sections: [SectionEntry]
  var manifest: Manifest
  var manifestSection: Int
}

enum BundleVerifier {
  /// Verifies `bytes` as a complete bundle.
  ///
  /// - Throws: `BundleError` describing the first problem found; nothing about the file may be
  ///   trusted in that case.
  static func verify(_ bytes: UnsafeRawBufferPointer) throws -> VerifiedBundle {
    let header = try verifyHeader(bytes)
    let sectionCount = Int(header.sectionCount)
    let tableEnd = BundleHeader.tableEnd(sectionCount: sectionCount)
    var sections: [SectionEntry] = []
    sections.reserveCapacity(sectionCount)
    for index in 0..<sectionCount {
      sections.append(
        try verifyEntry(
          bytes, index: index, at: BundleFormat.headerSize + index * BundleFormat.sectionEntrySize,
          tableEnd: tableEnd))
    }
    try verifyNoOverlapAndZeroPadding(bytes, sections: sections, tableEnd: tableEnd)
    let manifestSection = try locateManifest(sections)
    for (index, section) in sections.enumerated() {
      let payload = slice(bytes, section)
      let computed = Checksum.xxh64(payload)
      guard computed == section.checksum else {
        throw BundleError(
          .sectionChecksumMismatch,
          "section \(index) (\(section.kind)): checksum mismatch: stored \(hex(section.checksum)), "
            + "computed \(hex(computed))")
      }
    }
    let manifest = try Manifest(jsonBytes: slice(bytes, sections[manifestSection]))
    try manifest.validate(sections: sections.map(\.info))
    return VerifiedBundle(
      header: header, sections: sections, manifest: manifest, manifestSection: manifestSection)
  }

  /// Steps 1-7: size, magic, version, table fits, header checksum, flags and reserved bytes,
  /// declared file length.
  static func verifyHeader(_ bytes: UnsafeRawBufferPointer) throws -> BundleHeader {
    typealias Field = BundleFormat.HeaderField
    // Magic first, on however many bytes there are: a short non-bundle is "not a bundle".
    let magic = Array(bytes.prefix(BundleFormat.magic.count))
    guard magic == Array(BundleFormat.magic.prefix(magic.count)) else {
      let shown = magic.map { String(format2: $0) }.joined()
      throw BundleError(
        .badMagic, "not a Kiln bundle: magic is 0x\(shown), expected 'KILNBNDL'")
    }
    guard bytes.count >= BundleFormat.headerSize else {
      throw BundleError(
        .truncated,
        "file is \(bytes.count) bytes, shorter than the \(BundleFormat.headerSize)-byte header")
    }
    let version = FormatVersion(
      major: bytes.readLittleEndian(UInt16.self, at: Field.majorVersion),
      minor: bytes.readLittleEndian(UInt16.self, at: Field.minorVersion))
    let current = BundleFormat.currentVersion
    guard version.major == current.major, version.minor <= current.minor else {
      throw BundleError(
        .unsupportedVersion,
        "bundle format version \(version) is not supported; this reader reads "
          + "\(current.major).0 through \(current)")
    }
    let headerSize = bytes.readLittleEndian(UInt16.self, at: Field.headerSize)
    let entrySize = bytes.readLittleEndian(UInt16.self, at: Field.sectionEntrySize)
    guard headerSize == BundleFormat.headerSize, entrySize == BundleFormat.sectionEntrySize else {
      throw BundleError(
        .malformedHeader,
        "header declares header size \(headerSize) and section entry size \(entrySize); version "
          + "\(version) requires \(BundleFormat.headerSize) and \(BundleFormat.sectionEntrySize)")
    }
    let sectionCount = bytes.readLittleEndian(UInt32.self, at: Field.sectionCount)
    guard sectionCount <= BundleFormat.maxSectionCount else {
      throw BundleError(
        .limitExceeded,
        "section count \(sectionCount) exceeds the limit of \(BundleFormat.maxSectionCount)")
    }
    let tableEnd = BundleHeader.tableEnd(sectionCount: Int(sectionCount))
    guard bytes.count >= tableEnd else {
      throw BundleError(
        .truncated,
        "file is \(bytes.count) bytes, too short for its section table of \(sectionCount) "
          + "entries ending at byte \(tableEnd)")
    }
    let stored = bytes.readLittleEndian(UInt64.self, at: Field.checksum)
    let computed = BundleHeader.computeChecksum(
      headerAndTable: UnsafeRawBufferPointer(rebasing: bytes[0..<tableEnd]))
    guard stored == computed else {
      throw BundleError(
        .headerChecksumMismatch,
        "header checksum mismatch: stored \(hex(stored)), computed \(hex(computed))")
    }
    let flags = bytes.readLittleEndian(UInt32.self, at: Field.flags)
    guard flags == 0 else {
      throw BundleError(.malformedHeader, "unknown header flags \(hex(UInt64(flags)))")
    }
    guard bytes[Field.reserved..<Field.checksum].allSatisfy({ $0 == 0 }) else {
      throw BundleError(
        .malformedHeader, "reserved header bytes \(Field.reserved)..<\(Field.checksum) are not zero")
    }
    let fileLength = bytes.readLittleEndian(UInt64.self, at: Field.fileLength)
    if fileLength > UInt64(bytes.count) {
      throw BundleError(
        .truncated, "file is \(bytes.count) bytes but its header declares \(fileLength)")
    }
    if fileLength < UInt64(bytes.count) {
      throw BundleError(
        .malformedHeader,
        "file is \(bytes.count) bytes but its header declares \(fileLength) (trailing data)")
    }
    return BundleHeader(
      version: version, flags: flags, sectionCount: sectionCount, fileLength: fileLength,
      checksum: stored)
  }

  /// Step 8: one section table entry on its own: reserved fields, alignment, bounds.
  static func verifyEntry(
    _ bytes: UnsafeRawBufferPointer, index: Int, at start: Int, tableEnd: Int
  ) throws -> SectionEntry {
    typealias Field = BundleFormat.EntryField
    let entry = SectionEntry(
      kind: SectionKind(rawValue: bytes.readLittleEndian(UInt32.self, at: start + Field.kind)),
      offset: bytes.readLittleEndian(UInt64.self, at: start + Field.offset),
      length: bytes.readLittleEndian(UInt64.self, at: start + Field.length),
      alignment: bytes.readLittleEndian(UInt32.self, at: start + Field.alignment),
      checksum: bytes.readLittleEndian(UInt64.self, at: start + Field.checksum))
    let context = "section \(index) (\(entry.kind))"
    guard bytes.readLittleEndian(UInt32.self, at: start + Field.flags) == 0,
      bytes.readLittleEndian(UInt32.self, at: start + Field.reserved0) == 0,
      bytes.readLittleEndian(UInt64.self, at: start + Field.reserved1) == 0
    else {
      throw BundleError(.malformedSectionTable, "\(context): flags or reserved fields are not zero")
    }
    let alignment = Int(entry.alignment)
    guard alignment >= BundleFormat.sectionAlignment, alignment <= BundleFormat.maxSectionAlignment,
      alignment.nonzeroBitCount == 1
    else {
      throw BundleError(
        .malformedSectionTable,
        "\(context): alignment \(alignment) is not a power of two in "
          + "\(BundleFormat.sectionAlignment)...\(BundleFormat.maxSectionAlignment)")
    }
    guard entry.offset % UInt64(alignment) == 0 else {
      throw BundleError(
        .sectionMisaligned,
        "\(context): offset \(entry.offset) is not a multiple of its alignment \(alignment)")
    }
    let (end, overflow) = entry.offset.addingReportingOverflow(entry.length)
    guard !overflow else {
      throw BundleError(
        .sectionOutOfBounds, "\(context): offset \(entry.offset) + length \(entry.length) overflows")
    }
    guard end <= UInt64(bytes.count) else {
      throw BundleError(
        .sectionOutOfBounds,
        "\(context): bytes \(entry.offset)..<\(end) extend past the end of the "
          + "\(bytes.count)-byte file")
    }
    guard entry.offset >= UInt64(tableEnd) else {
      throw BundleError(
        .sectionOverlap,
        "\(context): offset \(entry.offset) overlaps the header and section table, which end at "
          + "byte \(tableEnd)")
    }
    return entry
  }

  /// Step 9: sections do not overlap each other, and every byte not in the header, table or a
  /// section is zero (so that no byte of the file escapes a checksum or a check).
  static func verifyNoOverlapAndZeroPadding(
    _ bytes: UnsafeRawBufferPointer, sections: [SectionEntry], tableEnd: Int
  ) throws {
    let order = sections.indices.sorted {
      (sections[$0].offset, sections[$0].length) < (sections[$1].offset, sections[$1].length)
    }
    var cursor = tableEnd
    var previous: Int?
    for index in order {
      let section = sections[index]
      let start = Int(section.offset)
      let end = start + Int(section.length)
      if start < cursor {
        // verifyEntry put every section at or after tableEnd, so `previous` is set here.
        let otherIndex = previous ?? index
        let other = sections[otherIndex]
        throw BundleError(
          .sectionOverlap,
          "section \(index) (\(section.kind)) at \(start)..<\(end) overlaps section "
            + "\(otherIndex) (\(other.kind)) at \(other.offset)..<\(other.offset + other.length)")
      }
      try checkZero(bytes, cursor..<start)
      cursor = end
      previous = index
    }
    try checkZero(bytes, cursor..<bytes.count)
  }

  private static func checkZero(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws {
    if let position = bytes[range].firstIndex(where: { $0 != 0 }) {
      throw BundleError(
        .nonZeroPadding, "padding byte at offset \(position) is \(bytes[position]), not zero")
    }
  }

  /// Step 10: exactly one manifest section, within the size limit (checked before hashing it).
  static func locateManifest(_ sections: [SectionEntry]) throws -> Int {
    let manifestIndices = sections.indices.filter { sections[$0].kind == .manifest }
    guard let index = manifestIndices.first else {
      throw BundleError(.malformedSectionTable, "bundle has no manifest section")
    }
    guard manifestIndices.count == 1 else {
      throw BundleError(
        .malformedSectionTable,
        "bundle has \(manifestIndices.count) manifest sections \(manifestIndices); expected one")
    }
    let length = sections[index].length
    guard length <= UInt64(BundleFormat.maxManifestSize) else {
      throw BundleError(
        .limitExceeded,
        "manifest section is \(length) bytes, over the limit of \(BundleFormat.maxManifestSize)")
    }
    return index
  }

  /// The payload of a section already checked to lie inside `bytes`.
  static func slice(_ bytes: UnsafeRawBufferPointer, _ section: SectionEntry)
    -> UnsafeRawBufferPointer
  {
    let start = Int(section.offset)
    return UnsafeRawBufferPointer(rebasing: bytes[start..<start + Int(section.length)])
  }
}

/// `0x` and 16 lowercase hex digits.
func hex(_ value: UInt64) -> String {
  let digits = String(value, radix: 16)
  return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
}

extension String {
  /// Two lowercase hex digits of `byte`.
  init(format2 byte: UInt8) {
    let digits = String(byte, radix: 16)
    self = digits.count == 1 ? "0" + digits : digits
  }
}
