import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads ONNX external tensor data (`data_location = EXTERNAL`) confined to the model's folder.
///
/// A location must be a relative path without `..` components; after resolving symlinks the file
/// must still lie inside the folder and be a regular file. Files are memory-mapped once and
/// shared by every tensor that names them.
final class ExternalDataReader {
  private let baseDirectory: URL?
  private var resolvedBase: String?
  private var files: [String: Data] = [:]

  init(baseDirectory: URL?) {
    self.baseDirectory = baseDirectory
  }

  /// The bytes `[offset, offset + length)` of `location`, where `length` defaults to
  /// `expectedCount` and must equal it when given.
  func read(location: String, offset: Int, length: Int?, expectedCount: Int, tensor: String) throws -> [UInt8] {
    func fail(_ message: String) -> ONNXImportError {
      ONNXImportError(.externalData, "tensor '\(tensor)': external data '\(location)': \(message)")
    }
    guard let baseDirectory else {
      throw fail("the model was loaded from memory, so there is no folder to read it from")
    }
    guard !location.isEmpty else { throw fail("empty location") }
    guard !location.utf8.contains(0) else { throw fail("location contains a NUL byte") }
    if location.hasPrefix("/") || location.hasPrefix("\\") || location.hasPrefix("~") {
      throw fail("absolute paths are not allowed; the data must be inside the model's folder")
    }
    let scalars = Array(location.unicodeScalars)
    if scalars.count >= 2, scalars[1] == ":" {
      throw fail("absolute (drive) paths are not allowed; the data must be inside the model's folder")
    }
    let components = location.split(whereSeparator: { $0 == "/" || $0 == "\\" })
    if components.contains("..") { throw fail("'..' is not allowed; the data must be inside the model's folder") }
    guard offset >= 0 else { throw fail("negative offset \(offset)") }
    if let length, length != expectedCount {
      throw fail("length \(length) does not match the tensor's \(expectedCount) bytes")
    }

    let base = try resolvedBaseDirectory(baseDirectory, fail: fail)
    let candidate = base + "/" + components.joined(separator: "/")
    guard let resolved = Self.realPath(candidate) else { throw fail("file not found in \(base)") }
    guard resolved.hasPrefix(base.hasSuffix("/") ? base : base + "/") else {
      throw fail("resolves to \(resolved), outside the model's folder")
    }
    var status = stat()
    guard stat(resolved, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
      throw fail("not a regular file")
    }

    let data: Data
    if let cached = files[resolved] {
      data = cached
    } else {
      do {
        data = try Data(contentsOf: URL(fileURLWithPath: resolved), options: .alwaysMapped)
      } catch {
        throw fail("cannot read: \(error.localizedDescription)")
      }
      files[resolved] = data
    }
    let (end, overflow) = offset.addingReportingOverflow(expectedCount)
    guard !overflow, end <= data.count else {
      throw fail("file has \(data.count) bytes, but the tensor needs \(expectedCount) bytes at offset \(offset)")
    }
    return [UInt8](data[data.startIndex + offset..<data.startIndex + end])
  }

  private func resolvedBaseDirectory(_ url: URL, fail: (String) -> ONNXImportError) throws -> String {
    if let resolvedBase { return resolvedBase }
    guard let path = Self.realPath(url.path) else { throw fail("model folder \(url.path) does not exist") }
    resolvedBase = path
    return path
  }

  /// realpath(3): the absolute path with every symlink resolved; nil when it does not exist.
  static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }
}
