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
  public private(set) var bytes: [UInt8] = []
  private var placed: [(name: String, offset: Int, length: Int)] = []

  public init() {}

  /// Number of weights appended so far.
  public var count: Int { placed.count }

  /// Makes room for `count` more bytes of weights (and their padding), so appending them copies
  /// each weight once: a model's weights are hundreds of megabytes.
  public mutating func reserveCapacity(forWeightBytes count: Int) {
    bytes.reserveCapacity(bytes.count + count)
  }

  /// Appends one weight; returns its index among this packer's entries.
  @discardableResult
  public mutating func append(name: String, bytes weight: some Collection<UInt8>) -> Int {
    let offset = BundleWriter.align(bytes.count, to: BundleFormat.weightAlignment)
    bytes.append(contentsOf: repeatElement(0, count: offset - bytes.count))
    let appended = weight.withContiguousStorageIfAvailable { bytes.append(contentsOf: $0) }
    if appended == nil { bytes.append(contentsOf: weight) }
    placed.append((name, offset, bytes.count - offset))
    return placed.count - 1
  }

  /// Manifest entries for the appended weights, stored in section `section`.
  public func entries(section: Int) -> [Manifest.WeightEntry] {
    placed.map { Manifest.WeightEntry(name: $0.name, section: section, offset: $0.offset, length: $0.length) }
  }
}
