import Foundation
import KilnBundle
import KilnCodegen
import KilnONNX
import KilnTestSupport
import Testing

/// The compiled-kernel cache: a second compile reads every module from it and writes the same
/// bundle; damaged entries, and a directory others could write to, are never used.
@Suite struct KernelCacheTests {
  /// Compiles `model` for both targets with `cache`; returns the bundle's bytes.
  static func compile(_ model: String, cache: KernelCache?) throws -> [UInt8] {
    let testCase = try #require(ModelCases.fixtures[model])
    let graph = try ONNXImporter().importModel(at: testCase.model)
    var options = CompileOptions(modelName: testCase.name, printer: { _ in })
    options.cache = cache
    let compiled = try ModelCompiler(options: options).compile(graph)
    return try compiled.writer.serialize(manifest: compiled.manifest)
  }

  static func entries(_ folder: URL) throws -> [URL] {
    try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
      .filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
  }

  @Test func aSecondCompileReadsEveryModuleAndWritesTheSameBundle() throws {
    let folder = try TemporaryFolder()
    let uncached = try Self.compile("example-tiny-cnn", cache: nil)
    let first = KernelCache(directory: folder.url)
    let cold = try Self.compile("example-tiny-cnn", cache: first)
    #expect(first.hits == 0)
    #expect(first.misses > 1, "the shaders and both CPU variants are looked up")
    // One entry per SPIR-V module and CPU variant.
    #expect(try Self.entries(folder.url).count == first.misses)
    let second = KernelCache(directory: folder.url)
    let warm = try Self.compile("example-tiny-cnn", cache: second)
    #expect(second.hits == first.misses)
    #expect(second.misses == 0)
    #expect(cold == uncached)
    #expect(warm == uncached)
  }

  @Test func damagedEntriesAreCompiledAgain() throws {
    let folder = try TemporaryFolder()
    let reference = try Self.compile("example-tiny-cnn", cache: KernelCache(directory: folder.url))
    let entries = try Self.entries(folder.url)
    #expect(entries.count > 2)
    // One entry flipped in its payload, one truncated, one with a valid checksum over a payload
    // that is not a module, and the rest left alone.
    for (index, url) in entries.enumerated() {
      var bytes = [UInt8](try Data(contentsOf: url))
      switch index % 4 {
      case 0: bytes[bytes.count / 2] ^= 0x40
      case 1: bytes.removeLast(bytes.count / 3)
      case 2:
        let payload = [UInt8](repeating: 7, count: 64)
        bytes = Array("KILNKC01".utf8)
        withUnsafeBytes(of: UInt64(payload.count).littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: Checksum.xxh64(payload).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += payload
      default: continue
      }
      try Data(bytes).write(to: url)
    }
    let damaged = entries.indices.filter { $0 % 4 != 3 }.count
    let cache = KernelCache(directory: folder.url)
    #expect(try Self.compile("example-tiny-cnn", cache: cache) == reference)
    #expect(cache.misses == damaged)
    #expect(cache.hits == entries.count - damaged)
    // The damaged entries were written again.
    let again = KernelCache(directory: folder.url)
    #expect(try Self.compile("example-tiny-cnn", cache: again) == reference)
    #expect(again.misses == 0)
  }

  @Test func aDirectoryOthersCanWriteIsNotUsed() throws {
    let folder = try TemporaryFolder()
    let shared = folder.url.appendingPathComponent("shared", isDirectory: true)
    try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: false)
    try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: shared.path)
    let cache = KernelCache(directory: shared)
    #expect(try Self.compile("example-tiny-cnn", cache: cache) == Self.compile("example-tiny-cnn", cache: nil))
    #expect(cache.hits == 0)
    #expect(try Self.entries(shared).isEmpty)
  }

  @Test func keysSeparateSourcesKindsAndParts() {
    let key = KernelCache.key("spirv", ["glslang", "void main() {}"])
    #expect(key == KernelCache.key("spirv", ["glslang", "void main() {}"]))
    #expect(key != KernelCache.key("spirv", ["glslang", "void main() { }"]))
    #expect(key != KernelCache.key("cpu-baseline", ["glslang", "void main() {}"]))
    // Parts are length-prefixed: moving a boundary changes the key.
    #expect(KernelCache.key("k", ["ab", "c"]) != KernelCache.key("k", ["a", "bc"]))
  }

  @Test func pruneKeepsTheMostRecentlyUsedWithinCapacity() throws {
    let folder = try TemporaryFolder()
    let cache = KernelCache(directory: folder.url, capacity: 3 * (1000 + 24))
    let keys = (0..<6).map { KernelCache.key("spirv", ["\($0)"]) }
    for (index, key) in keys.enumerated() {
      cache.store(key, [UInt8](repeating: UInt8(index), count: 1000))
      let url = folder.url.appendingPathComponent("\(key).bin")
      try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: Double(index - 10))], ofItemAtPath: url.path)
    }
    // A file that is not an entry (the Vulkan pipeline caches share Kiln's cache folder) stays.
    let other = folder.url.appendingPathComponent("pipelines-0123.bin")
    try Data(repeating: 1, count: 5000).write(to: other)
    try FileManager.default.setAttributes([.modificationDate: Date.distantPast], ofItemAtPath: other.path)
    // Reading the first entry makes it the most recent.
    #expect(cache.load(keys[0]) == [UInt8](repeating: 0, count: 1000))
    cache.prune()
    let left = Set(try Self.entries(folder.url).map { $0.deletingPathExtension().lastPathComponent })
    #expect(left == Set([keys[0], keys[4], keys[5], "pipelines-0123"]))
  }

  @Test func theDefaultFolderIsKernelsInKilnsCacheFolder() {
    #expect(KernelCache.defaultDirectory(environment: ["KILN_CACHE_DIR": "/x/c", "HOME": "/h"])?.path == "/x/c/kernels")
    #expect(KernelCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x", "HOME": "/h"])?.path == "/x/kiln/kernels")
    #expect(KernelCache.defaultDirectory(environment: ["HOME": "/h"])?.path == "/h/.cache/kiln/kernels")
    #expect(KernelCache.defaultDirectory(environment: [:]) == nil)
  }
}
