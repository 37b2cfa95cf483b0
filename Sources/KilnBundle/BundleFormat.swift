// The binary layout of a `.kiln` file: constants, the header and the section table.
// docs/bundle-format.md is the prose version of this file; keep the two in step.

/// Constants and limits of the `.kiln` container format.
public enum BundleFormat {
  /// The first 8 bytes of every bundle.
  public static let magic: [UInt8] = Array("KILNBNDL".utf8)
  /// The version this library writes and the newest it reads.
  public static let currentVersion = FormatVersion(major: 1, minor: 2)
  /// Size of the fixed header; the section table starts right after it.
  public static let headerSize = 64
  /// Size of one section table entry.
  public static let sectionEntrySize = 48
  /// Minimum (and default) alignment of every section's file offset.
  public static let sectionAlignment = 64
  /// Largest alignment a section may ask for.
  public static let maxSectionAlignment = 1 << 16
  /// Alignment of every weight inside a weights section.
  public static let weightAlignment = 64
  /// Most sections one bundle may have.
  public static let maxSectionCount = 4096
  /// Largest manifest section, in bytes.
  public static let maxManifestSize = 64 << 20

  /// Byte offsets of the header fields.
  enum HeaderField {
    static let magic = 0
    static let majorVersion = 8
    static let minorVersion = 10
    static let flags = 12
    static let sectionCount = 16
    static let headerSize = 20
    static let sectionEntrySize = 22
    static let fileLength = 24
    static let reserved = 32  // 24 bytes, zero
    static let checksum = 56
  }

  /// Byte offsets of the fields inside one section table entry.
  enum EntryField {
    static let kind = 0
    static let flags = 4
    static let offset = 8
    static let length = 16
    static let alignment = 24
    static let reserved0 = 28  // 4 bytes, zero
    static let checksum = 32
    static let reserved1 = 40  // 8 bytes, zero
  }
}

/// A container format version. Readers accept their own major version with a minor version no
/// newer than their own.
public struct FormatVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var major: UInt16
  public var minor: UInt16

  public init(major: UInt16, minor: UInt16) {
    self.major = major
    self.minor = minor
  }

  public static func < (lhs: FormatVersion, rhs: FormatVersion) -> Bool {
    (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
  }

  public var description: String { "\(major).\(minor)" }
}

/// What a section holds. Unknown kinds (from newer minor versions) are kept and ignored.
public struct SectionKind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
  public var rawValue: UInt32

  public init(rawValue: UInt32) { self.rawValue = rawValue }

  /// The JSON manifest; exactly one per bundle, written as section 0.
  public static let manifest = SectionKind(rawValue: 1)
  /// One executable (a SPIR-V module, an ELF object, ...), described by an `ExecutableEntry`.
  public static let executable = SectionKind(rawValue: 2)
  /// Packed weights, described by `WeightEntry`s.
  public static let weights = SectionKind(rawValue: 3)

  public var description: String {
    switch self {
    case .manifest: "manifest"
    case .executable: "executable"
    case .weights: "weights"
    default: "kind-\(rawValue)"
    }
  }
}

/// One entry of the section table: where a section lies and its checksum.
public struct SectionEntry: Sendable, Hashable {
  public var kind: SectionKind
  /// Byte offset from the start of the file; a multiple of `alignment`.
  public var offset: UInt64
  /// Payload length in bytes.
  public var length: UInt64
  /// A power of two, at least `BundleFormat.sectionAlignment`.
  public var alignment: UInt32
  /// XXH64 (seed 0) of the payload.
  public var checksum: UInt64

  public init(kind: SectionKind, offset: UInt64, length: UInt64, alignment: UInt32, checksum: UInt64) {
    self.kind = kind
    self.offset = offset
    self.length = length
    self.alignment = alignment
    self.checksum = checksum
  }

  /// The kind and length, which is what manifest validation needs.
  public var info: SectionInfo { SectionInfo(kind: kind, length: Int(clamping: length)) }

  func encode(into bytes: inout [UInt8]) {
    bytes.appendLittleEndian(kind.rawValue)
    bytes.appendLittleEndian(UInt32(0))  // flags
    bytes.appendLittleEndian(offset)
    bytes.appendLittleEndian(length)
    bytes.appendLittleEndian(alignment)
    bytes.appendLittleEndian(UInt32(0))  // reserved
    bytes.appendLittleEndian(checksum)
    bytes.appendLittleEndian(UInt64(0))  // reserved
  }
}

/// A section's kind and length: what `Manifest.validate(sections:)` checks references against.
public struct SectionInfo: Sendable, Hashable {
  public var kind: SectionKind
  public var length: Int

  public init(kind: SectionKind, length: Int) {
    self.kind = kind
    self.length = length
  }
}

/// The fixed 64-byte header.
struct BundleHeader: Sendable, Equatable {
  var version: FormatVersion
  var flags: UInt32
  var sectionCount: UInt32
  var fileLength: UInt64
  var checksum: UInt64

  /// Byte offset just past the section table.
  static func tableEnd(sectionCount: Int) -> Int {
    BundleFormat.headerSize + sectionCount * BundleFormat.sectionEntrySize
  }

  func encode(into bytes: inout [UInt8]) {
    bytes.append(contentsOf: BundleFormat.magic)
    bytes.appendLittleEndian(version.major)
    bytes.appendLittleEndian(version.minor)
    bytes.appendLittleEndian(flags)
    bytes.appendLittleEndian(sectionCount)
    bytes.appendLittleEndian(UInt16(BundleFormat.headerSize))
    bytes.appendLittleEndian(UInt16(BundleFormat.sectionEntrySize))
    bytes.appendLittleEndian(fileLength)
    bytes.append(contentsOf: repeatElement(0, count: 24))
    bytes.appendLittleEndian(checksum)
  }

  /// XXH64 (seed 0) of the header and section table with the checksum field read as zero.
  static func computeChecksum(headerAndTable: UnsafeRawBufferPointer) -> UInt64 {
    var copy = [UInt8](headerAndTable)
    for index in BundleFormat.HeaderField.checksum..<BundleFormat.HeaderField.checksum + 8 {
      copy[index] = 0
    }
    return Checksum.xxh64(copy)
  }
}

extension Array where Element == UInt8 {
  /// Appends `value` as `MemoryLayout<T>.size` little-endian bytes.
  mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
    for index in 0..<MemoryLayout<T>.size {
      append(UInt8(truncatingIfNeeded: value >> (index * 8)))
    }
  }
}

extension UnsafeRawBufferPointer {
  /// Reads a little-endian integer at `offset`. Callers check bounds first; reading past the end
  /// is a programmer error.
  func readLittleEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
    precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count, "read out of bounds")
    var value: T = 0
    for index in 0..<MemoryLayout<T>.size {
      value |= T(self[offset + index]) << (index * 8)
    }
    return value
  }
}
