// Packs many weights into one weights section, each 64-byte aligned.

/// Concatenates weights into the payload of one weights section, padding each to
/// `BundleFormat.weightAlignment` so that every weight is aligned in the file and in the mapping.
///
/// ```swift
/// var packer = WeightPacker()
/// packer.append(name: "conv1.weight", bytes: conv1)
/// let section = writer.addWeights(packer.bytes)
/// manifest.weights = packer.entries(section: section)
/// ```
public struct WeightPacker: Sendable {
  /// One weight's bytes at its offset in the section.
  public struct Part: Sendable {
    public var offset: Int
    public var bytes: [UInt8]
  }

  /// The weights, each at its aligned offset; they share their buffers with the caller's arrays.
  public private(set) var parts: [Part] = []
  /// The section's length in bytes.
  public private(set) var length = 0
  private var names: [String] = []

  public init() {}

  /// Number of weights appended so far.
  public var count: Int { parts.count }

  /// The section's payload as one array (zeros between the weights).
  public var bytes: [UInt8] {
    var result = [UInt8](repeating: 0, count: length)
    for part in parts { result.replaceSubrange(part.offset..<(part.offset + part.bytes.count), with: part.bytes) }
    return result
  }

  /// Appends one weight; returns its index among this packer's entries.
  @discardableResult
  public mutating func append(name: String, bytes weight: some Collection<UInt8>) -> Int {
    let offset = BundleWriter.align(length, to: BundleFormat.weightAlignment)
    let part = Part(offset: offset, bytes: Array(weight))
    parts.append(part)
    names.append(name)
    length = offset + part.bytes.count
    return parts.count - 1
  }

  /// Manifest entries for the appended weights, stored in section `section`.
  public func entries(section: Int) -> [Manifest.WeightEntry] {
    zip(names, parts).map { Manifest.WeightEntry(name: $0, section: section, offset: $1.offset, length: $1.bytes.count) }
  }
}
