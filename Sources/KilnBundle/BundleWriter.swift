// Writes `.kiln` files: lays out sections, checksums them and writes atomically.

import Foundation

/// Builds a bundle from a manifest and section payloads and writes it atomically.
///
/// The manifest is always section 0; `addSection` returns indices from 1 in call order, which are
/// the numbers the manifest's `section` fields must use. Output depends only on the manifest and
/// the sections, so the same inputs give a byte-identical file.
///
/// ```swift
/// var writer = BundleWriter()
/// writer.protect(modelURL)
/// let spirv = writer.addExecutable(spirvBytes)
/// let weights = writer.addWeights(packer)
/// try writer.write(manifest: manifest, to: outputURL)
/// ```
public struct BundleWriter: Sendable {
  struct PendingSection: Sendable {
    var kind: SectionKind
    /// The payload as pieces at byte offsets, zeros between them (a weights section is written
    /// straight from each weight's buffer, never copied into one array).
    var parts: [WeightPacker.Part]
    var length: Int
    var alignment: Int

    init(kind: SectionKind, parts: [WeightPacker.Part], length: Int, alignment: Int) {
      self.kind = kind
      self.parts = parts
      self.length = length
      self.alignment = alignment
    }

    var checksum: UInt64 {
      if parts.count == 1, parts[0].offset == 0, parts[0].bytes.count == length { return Checksum.xxh64(parts[0].bytes) }
      var stream = Checksum.Stream()
      BundleWriter.forEachPiece(of: self) { stream.update($0) }
      return stream.digest()
    }
  }

  /// Feeds the section's payload, in order and with its zero gaps, to `body`.
  static func forEachPiece(of section: PendingSection, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
    let zeros = [UInt8](repeating: 0, count: 4096)
    var position = 0
    func gap(_ count: Int) throws {
      var left = count
      while left > 0 {
        let n = min(left, zeros.count)
        try zeros.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        left -= n
      }
    }
    for part in section.parts {
      try gap(part.offset - position)
      try part.bytes.withUnsafeBytes { try body($0) }
      position = part.offset + part.bytes.count
    }
    try gap(section.length - position)
  }

  private var pending: [PendingSection] = []
  public private(set) var protectedPaths: [URL] = []

  public init() {}

  /// The index the next `addSection` call will return.
  public var nextSectionIndex: Int { pending.count + 1 }

  /// Adds a section and returns its index in the section table.
  ///
  /// - Parameters:
  ///   - kind: anything but `.manifest`, which the writer adds itself.
  ///   - alignment: file offset alignment; a power of two from 64 to 65536.
  @discardableResult
  public mutating func addSection(
    kind: SectionKind, bytes: [UInt8], alignment: Int = BundleFormat.sectionAlignment
  ) -> Int {
    precondition(kind != .manifest, "the writer adds the manifest section itself")
    return append(PendingSection(kind: kind, parts: [WeightPacker.Part(offset: 0, bytes: bytes)], length: bytes.count, alignment: alignment))
  }

  private mutating func append(_ section: PendingSection) -> Int {
    precondition(
      section.alignment >= BundleFormat.sectionAlignment && section.alignment <= BundleFormat.maxSectionAlignment
        && section.alignment.nonzeroBitCount == 1, "section alignment must be a power of two in 64...65536")
    pending.append(section)
    return pending.count
  }

  /// Adds an executable section (SPIR-V module, ELF object, ...) and returns its index.
  @discardableResult
  public mutating func addExecutable(_ bytes: [UInt8]) -> Int {
    addSection(kind: .executable, bytes: bytes)
  }

  /// Adds a weights section and returns its index. See `WeightPacker`.
  @discardableResult
  public mutating func addWeights(_ bytes: [UInt8], alignment: Int = BundleFormat.sectionAlignment)
    -> Int
  {
    addSection(kind: .weights, bytes: bytes, alignment: alignment)
  }

  /// Adds a weights section holding `packer`'s weights, written from their own buffers.
  @discardableResult
  public mutating func addWeights(_ packer: WeightPacker, alignment: Int = BundleFormat.sectionAlignment) -> Int {
    append(PendingSection(kind: .weights, parts: packer.parts, length: packer.length, alignment: alignment))
  }

  /// Refuses any later `write` whose destination is `url`: the same path after resolving
  /// symlinks, or the same file (device and inode). Use it for the compiler's input model.
  public mutating func protect(_ url: URL) {
    protectedPaths.append(url)
  }

  /// The whole bundle in memory.
  ///
  /// - Throws: `BundleError` if the manifest does not validate against the sections or a limit
  ///   is exceeded.
  public func serialize(manifest: Manifest) throws -> [UInt8] {
    let layout = try makeLayout(manifest: manifest)
    var output: [UInt8] = []
    output.reserveCapacity(layout.fileLength)
    try emit(layout) { output.append(contentsOf: $0) }
    return output
  }

  /// Writes the bundle to `url` atomically: into a temporary file in the same folder (synced
  /// when `url` exists, so a crash cannot lose the file it replaces), then renamed over `url`. On failure `url` is untouched and the temporary file removed.
  ///
  /// - Throws: `BundleError` with `.protectedPath` if `url` is protected, `.io` on file system
  ///   errors, or the validation error of `serialize`.
  public func write(manifest: Manifest, to url: URL) throws {
    try write(manifest: manifest, to: url, failAfterBytes: nil)
  }

  /// `write`, with a simulated I/O failure after `failAfterBytes` bytes (tests only).
  func write(manifest: Manifest, to url: URL, failAfterBytes: Int?) throws {
    try checkNotProtected(url)
    let layout = try makeLayout(manifest: manifest)
    let destination = url.standardizedFileURL.path
    let folder = url.standardizedFileURL.deletingLastPathComponent()
    let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
    let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(suffix).tmp").path

    let fd = try FileIO.createExclusive(temporary)
    var isOpen = true
    var finished = false
    defer {
      if isOpen { _ = FileIO.closeFile(fd) }
      if !finished { FileIO.removeFile(temporary) }
    }
    var written = 0
    try emit(layout) { chunk in
      if let limit = failAfterBytes, written + chunk.count > limit {
        try FileIO.writeAll(
          fd, UnsafeRawBufferPointer(rebasing: chunk[..<(limit - written)]),
          path: temporary)
        throw BundleError(.io, "cannot write '\(temporary)': simulated failure after \(limit) bytes")
      }
      try FileIO.writeAll(fd, chunk, path: temporary)
      written += chunk.count
    }
    // Before replacing a file, the new bytes must be on disk, or a crash after the rename could
    // leave neither the old bundle nor the new one. A new name puts nothing at risk: after a
    // crash the file may be short or zeroed, which the reader's lengths and checksums reject, as
    // compilers' outputs are not synced either. That skips waiting 0.3-0.5 s for a 200 MiB bundle.
    if FileIO.exists(destination) {
      try FileIO.sync(fd, path: temporary)
    }
    isOpen = false
    guard FileIO.closeFile(fd) == 0 else { throw FileIO.ioError("cannot close", temporary) }
    try FileIO.renameFile(temporary, to: destination)
    finished = true
    FileIO.syncDirectory(folder.path)
  }

  private func checkNotProtected(_ url: URL) throws {
    let destination = FileIO.canonicalPath(url)
    let destinationIdentity = FileIO.identity(of: destination)
    for protected in protectedPaths {
      let path = FileIO.canonicalPath(protected)
      var sameFile = false
      if let destinationIdentity, let identity = FileIO.identity(of: path) {
        sameFile = identity == destinationIdentity
      }
      if path == destination || sameFile {
        throw BundleError(
          .protectedPath, "refusing to write bundle over protected file '\(protected.path)'")
      }
    }
  }

  // MARK: Layout

  struct Layout {
    var headerAndTable: [UInt8]
    var manifest: [UInt8]
    var entries: [SectionEntry]
    var fileLength: Int
  }

  func makeLayout(manifest: Manifest) throws -> Layout {
    let json = try manifest.jsonBytes()
    guard json.count <= BundleFormat.maxManifestSize else {
      throw BundleError(
        .limitExceeded,
        "manifest is \(json.count) bytes, over the limit of \(BundleFormat.maxManifestSize)")
    }
    let sectionCount = pending.count + 1
    guard sectionCount <= BundleFormat.maxSectionCount else {
      throw BundleError(
        .limitExceeded,
        "bundle has \(sectionCount) sections, over the limit of \(BundleFormat.maxSectionCount)")
    }
    try manifest.validate(sections: sectionInfos(manifestLength: json.count))
    return makeLayout(manifestJSON: json)
  }

  /// The bundle with `json` as its manifest section, unchecked (tests build broken bundles).
  func serialize(rawManifest json: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    // The sink never throws.
    try? emit(makeLayout(manifestJSON: json)) { output.append(contentsOf: $0) }
    return output
  }

  private func sectionInfos(manifestLength: Int) -> [SectionInfo] {
    [SectionInfo(kind: .manifest, length: manifestLength)]
      + pending.map { SectionInfo(kind: $0.kind, length: $0.length) }
  }

  private func makeLayout(manifestJSON json: [UInt8]) -> Layout {
    let sectionCount = pending.count + 1
    let infos = sectionInfos(manifestLength: json.count)
    let payloads: [(SectionKind, Int)] =
      [(.manifest, BundleFormat.sectionAlignment)] + pending.map { ($0.kind, $0.alignment) }
    var entries: [SectionEntry] = []
    var offset = BundleHeader.tableEnd(sectionCount: sectionCount)
    for (index, (kind, alignment)) in payloads.enumerated() {
      offset = Self.align(offset, to: alignment)
      let checksum = index == 0 ? Checksum.xxh64(json) : pending[index - 1].checksum
      entries.append(
        SectionEntry(
          kind: kind, offset: UInt64(offset), length: UInt64(infos[index].length),
          alignment: UInt32(alignment), checksum: checksum))
      offset += infos[index].length
    }

    var headerAndTable: [UInt8] = []
    let header = BundleHeader(
      version: BundleFormat.currentVersion, flags: 0, sectionCount: UInt32(sectionCount),
      fileLength: UInt64(offset), checksum: 0)
    header.encode(into: &headerAndTable)
    for entry in entries { entry.encode(into: &headerAndTable) }
    let checksum = headerAndTable.withUnsafeBytes {
      BundleHeader.computeChecksum(headerAndTable: $0)
    }
    for index in 0..<8 {
      headerAndTable[BundleFormat.HeaderField.checksum + index] = UInt8(
        truncatingIfNeeded: checksum >> (index * 8))
    }
    return Layout(headerAndTable: headerAndTable, manifest: json, entries: entries, fileLength: offset)
  }

  /// Feeds the file's bytes, in order, to `sink`.
  private func emit(_ layout: Layout, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
    let zeros = [UInt8](repeating: 0, count: BundleFormat.maxSectionAlignment)
    var position = 0
    func put(_ bytes: UnsafeRawBufferPointer) throws {
      try sink(bytes)
      position += bytes.count
    }
    try layout.headerAndTable.withUnsafeBytes { try put($0) }
    for (index, entry) in layout.entries.enumerated() {
      let padding = Int(entry.offset) - position
      try zeros.withUnsafeBytes { try put(UnsafeRawBufferPointer(rebasing: $0[..<padding])) }
      if index == 0 {
        try layout.manifest.withUnsafeBytes { try put($0) }
      } else {
        try Self.forEachPiece(of: pending[index - 1]) { try put($0) }
      }
    }
    precondition(position == layout.fileLength, "bundle layout and emitted bytes disagree")
  }

  static func align(_ value: Int, to alignment: Int) -> Int {
    (value + alignment - 1) / alignment * alignment
  }
}
