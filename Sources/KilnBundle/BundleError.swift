// The one error type of KilnBundle.

/// A failure to write, read, verify or validate a `.kiln` bundle.
///
/// `code` says what kind of rule was broken; `message` names the offending value and where it came
/// from, e.g. `function 'main' program 'vulkan' command 12: binding 1 offset 4096+512 exceeds
/// buffer 3 size 4096`. The message is a single line suitable for a CLI.
public struct BundleError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Code: String, Sendable, CaseIterable {
    /// A file system call failed (open, read, write, rename, ...).
    case io
    /// The writer was asked to write over a path it was told to protect.
    case protectedPath
    /// The file is shorter than its header, section table or declared length.
    case truncated
    /// The first 8 bytes are not `KILNBNDL`.
    case badMagic
    /// The format major version differs, or the minor version is newer than this reader.
    case unsupportedVersion
    /// A header field has a value this version does not allow (sizes, flags, reserved bytes,
    /// declared file length).
    case malformedHeader
    /// The header + section table checksum does not match.
    case headerChecksumMismatch
    /// A section table entry is malformed (bad alignment value, reserved bytes, no manifest or
    /// more than one).
    case malformedSectionTable
    /// A section lies (partly) outside the file, or its offset + length overflows.
    case sectionOutOfBounds
    /// A section overlaps the header, the section table or another section.
    case sectionOverlap
    /// A section offset is not a multiple of its alignment.
    case sectionMisaligned
    /// A byte between or after sections is not zero.
    case nonZeroPadding
    /// A section's checksum does not match its payload.
    case sectionChecksumMismatch
    /// A size or count is above one of the limits in `BundleFormat`.
    case limitExceeded
    /// The manifest is not valid JSON or does not match the schema.
    case malformedManifest
    /// The manifest decoded but breaks a cross-reference or consistency rule.
    case invalidManifest
    /// An accessor was called with an index or name that does not exist.
    case notFound
  }

  public let code: Code
  public let message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
