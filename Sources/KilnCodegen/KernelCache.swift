import Foundation
import KilnBundle
import KilnSPIRV
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// An on-disk cache of compiled kernels: SPIR-V modules by GLSL source, CPU shared objects by C
/// translation unit, compiler and flags. A model compiled again, or one that shares kernels with a
/// model compiled before, skips glslang, SPIRV-Tools and the C compiler for what is cached.
///
/// A key covers everything the output depends on: the source, the compiler's options and identity
/// (the C compiler's path, size and modification time), and the identity of the Kiln build
/// itself, so a rebuilt `kiln` never reads what an older one wrote. An entry carries its length
/// and XXH64 checksum; a SPIR-V entry is validated again when read. An entry that fails a check is
/// a miss, and is compiled and written again.
///
/// The cache is best effort: a directory that cannot be made or written, or one that other users
/// can write to or that belongs to someone else, turns it off with no error. Entries are written
/// to a temporary file and renamed, so concurrent compiles never see half an entry.
public final class KernelCache: Sendable {
  public let directory: URL
  /// The most bytes `prune()` leaves behind.
  public let capacity: Int
  private let counters = Mutex<(hits: Int, misses: Int)>((0, 0))
  private let usable: Bool

  static let magic: [UInt8] = Array("KILNKC01".utf8)
  static let headerSize = 24

  public init(directory: URL, capacity: Int = 512 << 20) {
    self.directory = directory
    self.capacity = capacity
    usable = Self.prepare(directory)
  }

  /// `kernels` in Kiln's cache folder (the Vulkan pipeline caches' too): `$KILN_CACHE_DIR`, else
  /// `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`; nil without any.
  public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
    var root: URL?
    if let path = environment["KILN_CACHE_DIR"], !path.isEmpty {
      root = URL(fileURLWithPath: path, isDirectory: true)
    } else if let path = environment["XDG_CACHE_HOME"], path.hasPrefix("/") {
      root = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("kiln", isDirectory: true)
    } else if let home = environment["HOME"], home.hasPrefix("/") {
      root = URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(".cache/kiln", isDirectory: true)
    }
    return root?.appendingPathComponent("kernels", isDirectory: true)
  }

  /// Lookups answered from the cache, and lookups that were not, since this cache was made.
  public var hits: Int { counters.withLock { $0.hits } }
  public var misses: Int { counters.withLock { $0.misses } }

  /// The key of one compile: `kind` and 128 bits of XXH64 (seeds 0 and 1) over the parts, each
  /// length-prefixed, and over the identity of this Kiln build.
  public static func key(_ kind: String, _ parts: [String]) -> String {
    var bytes: [UInt8] = []
    for part in [buildIdentity] + parts {
      let utf8 = Array(part.utf8)
      withUnsafeBytes(of: UInt64(utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
      bytes.append(contentsOf: utf8)
    }
    let low = Checksum.xxh64(bytes, seed: 0)
    let high = Checksum.xxh64(bytes, seed: 1)
    return kind + "-" + hex(high) + hex(low)
  }

  /// The cached bytes for `key`, or nil (a miss) when there are none or they fail a check;
  /// `verify` is the caller's own check of the payload (SPIR-V validation, an ELF header).
  public func load(_ key: String, verify: ([UInt8]) -> Bool = { _ in true }) -> [UInt8]? {
    guard usable, let data = FileManager.default.contents(atPath: path(key)) else {
      counters.withLock { $0.misses += 1 }
      return nil
    }
    let bytes = [UInt8](data)
    guard bytes.count >= Self.headerSize, Array(bytes[0..<8]) == Self.magic else { return miss() }
    let length = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    let checksum = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) }
    guard length == UInt64(bytes.count - Self.headerSize) else { return miss() }
    let payload = Array(bytes[Self.headerSize...])
    guard Checksum.xxh64(payload) == checksum, verify(payload) else { return miss() }
    counters.withLock { $0.hits += 1 }
    // Recently used entries are the last that `prune` removes.
    try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: path(key))
    return payload
  }

  /// Writes `bytes` under `key`; failures are ignored (the cache only saves time).
  public func store(_ key: String, _ bytes: [UInt8]) {
    guard usable else { return }
    var entry = Self.magic
    withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { entry.append(contentsOf: $0) }
    withUnsafeBytes(of: Checksum.xxh64(bytes).littleEndian) { entry.append(contentsOf: $0) }
    entry.append(contentsOf: bytes)
    let temporary = directory.appendingPathComponent(".\(key).\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).tmp")
    do {
      try Data(entry).write(to: temporary)
      if rename(temporary.path, path(key)) != 0 { try? FileManager.default.removeItem(at: temporary) }
    } catch {
      try? FileManager.default.removeItem(at: temporary)
    }
  }

  /// Removes the least recently used entries until the cache holds at most `capacity` bytes.
  public func prune() {
    guard usable else { return }
    let keys: [URLResourceKey] = [.fileSizeKey, .contentModificationDateKey]
    guard let files = try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: keys) else { return }
    var entries: [(url: URL, size: Int, date: Date)] = []
    // Only this cache's own entries: a directory shared by mistake loses nothing else.
    for url in files where url.pathExtension == "bin" && Self.isKey(url.deletingPathExtension().lastPathComponent) {
      guard let values = try? url.resourceValues(forKeys: Set(keys)) else { continue }
      entries.append((url, values.fileSize ?? 0, values.contentModificationDate ?? .distantPast))
    }
    var total = entries.reduce(0) { $0 + $1.size }
    for entry in entries.sorted(by: { $0.date < $1.date }) where total > capacity {
      try? FileManager.default.removeItem(at: entry.url)
      total -= entry.size
    }
  }

  /// Whether `name` is a key: a kind, "-", then 32 hexadecimal digits.
  static func isKey(_ name: String) -> Bool {
    let characters = Array(name.utf8)
    guard characters.count > 33, characters[characters.count - 33] == UInt8(ascii: "-") else { return false }
    return characters.suffix(32).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
  }

  private func miss() -> [UInt8]? {
    counters.withLock { $0.misses += 1 }
    return nil
  }

  private func path(_ key: String) -> String { directory.appendingPathComponent(key + ".bin").path }

  /// Makes the directory (mode 0700) if needed; false when it cannot be used safely.
  private static func prepare(_ directory: URL) -> Bool {
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    var info = stat()
    guard stat(directory.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return false }
    // Someone else's directory, or one others may write to, could hand us their code.
    guard info.st_uid == geteuid(), info.st_mode & 0o022 == 0 else { return false }
    return access(directory.path, W_OK) == 0
  }

  private static func hex(_ value: UInt64) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: 16 - text.count) + text
  }

  /// This Kiln build: the running executable's path, size and modification time.
  static let buildIdentity: String = {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? "kiln"
    var info = stat()
    guard stat(executable, &info) == 0 else { return executable + " " + KilnCodegenVersion.string }
    return "\(executable) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(KilnCodegenVersion.string)"
  }()
}

extension NativeToolchain {
  /// The C compiler's path, size and modification time, for cache keys.
  var identity: String {
    var info = stat()
    guard stat(compilerPath, &info) == 0 else { return compilerPath }
    return "\(compilerPath) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
  }
}
