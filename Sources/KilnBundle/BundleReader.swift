// Opens `.kiln` files: maps them read-only, verifies everything, then hands out zero-copy views.

import Foundation

/// The bytes of an opened bundle: a read-only file mapping or a 64-byte aligned heap copy.
///
/// `@unchecked Sendable`: the memory is written only during `init`, never after, and released
/// only in `deinit`, so concurrent reads need no synchronisation.
final class BundleStorage: @unchecked Sendable {
  let bytes: UnsafeRawBufferPointer
  let isMapped: Bool

  private init(bytes: UnsafeRawBufferPointer, isMapped: Bool) {
    self.bytes = bytes
    self.isMapped = isMapped
  }

  deinit {
    guard let base = bytes.baseAddress else { return }
    if isMapped {
      FileIO.unmap(base, count: bytes.count)
    } else {
      UnsafeMutableRawPointer(mutating: base).deallocate()
    }
  }

  /// A heap copy of `source`, 64-byte aligned like a mapping would be.
  static func copying(_ source: UnsafeRawBufferPointer) -> BundleStorage {
    let memory = UnsafeMutableRawBufferPointer.allocate(
      byteCount: max(source.count, 1), alignment: BundleFormat.sectionAlignment)
    if source.count > 0 { memory.copyMemory(from: source) }
    return BundleStorage(
      bytes: UnsafeRawBufferPointer(rebasing: memory[0..<source.count]), isMapped: false)
  }

  /// The file at `path`, mapped if `memoryMap` and the system allows it, else read into memory.
  static func load(path: String, memoryMap: Bool) throws -> BundleStorage {
    let fd = try FileIO.openReadOnly(path)
    defer { _ = FileIO.closeFile(fd) }
    let size = try FileIO.fileSize(fd, path: path)
    if memoryMap, let address = FileIO.mapReadOnly(fd, count: size) {
      return BundleStorage(bytes: UnsafeRawBufferPointer(start: address, count: size), isMapped: true)
    }
    let memory = UnsafeMutableRawBufferPointer.allocate(
      byteCount: max(size, 1), alignment: BundleFormat.sectionAlignment)
    do {
      if size > 0, let base = memory.baseAddress {
        try FileIO.readAll(fd, into: base, count: size, path: path)
      }
    } catch {
      memory.deallocate()
      throw error
    }
    return BundleStorage(bytes: UnsafeRawBufferPointer(rebasing: memory[0..<size]), isMapped: false)
  }
}

/// A verified, read-only view of one bundle.
///
/// Construction verifies the whole file (see docs/bundle-format.md, "What the reader verifies")
/// before returning: magic, version, header and section table checksum, section bounds,
/// alignment and overlap, zero padding, every section checksum, and the manifest's schema and
/// cross-references. After that, accessors only bounds-check their arguments.
///
/// Lifetime: every `UnsafeRawBufferPointer` it returns points into memory owned by this object and
/// is valid exactly as long as the reader is alive; keep the reader (e.g. with
/// `withExtendedLifetime`) while using them, or use `sectionData(_:)`, which retains it.
/// Section payloads start at 64-byte aligned addresses.
///
/// A mapped file must not be truncated by another process while the reader lives (the OS would
/// raise SIGBUS on access); `BundleWriter` never modifies an existing file in place.
///
/// `@unchecked Sendable`: all stored properties are immutable and the bytes are read-only.
public final class BundleReader: @unchecked Sendable {
  public let version: FormatVersion
  public let flags: UInt32
  /// The header + section table checksum, as stored (and verified).
  public let headerChecksum: UInt64
  /// The section table, in file order of entries.
  public let sections: [SectionEntry]
  public let manifest: Manifest
  /// Index of the manifest section in `sections` (0 for bundles from `BundleWriter`).
  public let manifestSection: Int

  private let storage: BundleStorage
  private let weightIndexByName: [String: Int]

  /// Opens and verifies the bundle at `url`.
  ///
  /// - Parameter memoryMap: map the file read-only (the default); if mapping fails or this is
  ///   false, the file is read into memory instead.
  /// - Throws: `BundleError` (`.io` for file system errors, otherwise what verification found).
  public convenience init(contentsOf url: URL, memoryMap: Bool = true) throws {
    try self.init(storage: BundleStorage.load(path: url.path, memoryMap: memoryMap))
  }

  /// Verifies a bundle held in memory (tests, fuzzing, bundles received over a wire).
  public convenience init(bytes: [UInt8]) throws {
    try self.init(storage: bytes.withUnsafeBytes { BundleStorage.copying($0) })
  }

  private init(storage: BundleStorage) throws {
    let verified = try BundleVerifier.verify(storage.bytes)
    self.storage = storage
    version = verified.header.version
    flags = verified.header.flags
    headerChecksum = verified.header.checksum
    sections = verified.sections
    manifest = verified.manifest
    manifestSection = verified.manifestSection
    var names: [String: Int] = [:]
    for (index, weight) in verified.manifest.weights.enumerated() { names[weight.name] = index }
    weightIndexByName = names
  }

  /// Whether the bytes are a file mapping (true) or a heap copy.
  public var isMemoryMapped: Bool { storage.isMapped }

  /// The whole file. Valid while the reader lives.
  public var fileBytes: UnsafeRawBufferPointer { storage.bytes }

  /// The payload of section `index`. Valid while the reader lives.
  public func sectionBytes(_ index: Int) throws -> UnsafeRawBufferPointer {
    guard sections.indices.contains(index) else {
      throw BundleError(
        .notFound, "section \(index) out of range (bundle has \(sections.count) sections)")
    }
    return BundleVerifier.slice(storage.bytes, sections[index])
  }

  /// The payload of section `index` as `Data` without copying; the `Data` keeps the reader alive.
  public func sectionData(_ index: Int) throws -> Data {
    let bytes = try sectionBytes(index)
    guard let base = bytes.baseAddress, bytes.count > 0 else { return Data() }
    return Data(
      bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count,
      deallocator: .custom { _, _ in withExtendedLifetime(self) {} })
  }

  /// The code of `manifest.executables[index]`. Valid while the reader lives.
  public func executableBytes(_ index: Int) throws -> UnsafeRawBufferPointer {
    guard manifest.executables.indices.contains(index) else {
      throw BundleError(
        .notFound,
        "executable \(index) out of range (manifest has \(manifest.executables.count) executables)"
      )
    }
    return try sectionBytes(manifest.executables[index].section)
  }

  /// The bytes of `manifest.weights[index]`, 64-byte aligned. Valid while the reader lives.
  public func weightBytes(_ index: Int) throws -> UnsafeRawBufferPointer {
    guard manifest.weights.indices.contains(index) else {
      throw BundleError(
        .notFound, "weight \(index) out of range (manifest has \(manifest.weights.count) weights)")
    }
    let weight = manifest.weights[index]
    let section = try sectionBytes(weight.section)
    return UnsafeRawBufferPointer(rebasing: section[weight.offset..<weight.offset + weight.length])
  }

  /// The bytes of the weight called `name`. Valid while the reader lives.
  public func weightBytes(named name: String) throws -> UnsafeRawBufferPointer {
    guard let index = weightIndexByName[name] else {
      throw BundleError(.notFound, "no weight named '\(name)'")
    }
    return try weightBytes(index)
  }
}
