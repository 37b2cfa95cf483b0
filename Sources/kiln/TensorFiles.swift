// Tensor files for the CLI (.npy and ONNX .pb), their values, comparisons, atomic writes, and
// the mapping of errors to one-line messages and exit codes.

import ArgumentParser
import Foundation
import KilnBundle
import KilnIR
import KilnRuntime

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reading and writing tensors in the formats `kiln run` accepts: NumPy `.npy` and serialized ONNX
/// `TensorProto` (`.pb`), chosen by the file's extension.
enum TensorFiles {
  enum Format: String {
    case npy, pb
  }

  /// The format a path names by its extension.
  static func format(of url: URL) throws -> Format {
    switch url.pathExtension.lowercased() {
    case "npy": return .npy
    case "pb": return .pb
    default:
      throw CLIError("'\(url.path)': unknown tensor file type '.\(url.pathExtension)' (use .npy or .pb)")
    }
  }

  /// Reads a tensor file; errors name the file.
  static func read(_ url: URL) throws -> HostTensor {
    switch try format(of: url) {
    case .npy: return try NPY.read(contentsOf: url)
    case .pb: return try ONNXTensorFile.read(contentsOf: url).tensor
    }
  }

  /// The bytes of `tensor` in the format `url` names; `.pb` files carry `name`.
  static func encode(_ tensor: HostTensor, name: String, for url: URL) throws -> [UInt8] {
    switch try format(of: url) {
    case .npy: return try NPY.encode(tensor)
    case .pb: return try ONNXTensorFile.encode(tensor, name: name)
    }
  }

  /// Writes `tensor` to `url` atomically, in the format its extension names.
  static func write(_ tensor: HostTensor, name: String, to url: URL) throws {
    try FileSafety.writeAtomically(try encode(tensor, name: name, for: url), to: url)
  }

  /// Opens and verifies a bundle; errors name the file.
  static func openBundle(_ url: URL) throws -> BundleReader {
    do {
      return try BundleReader(contentsOf: url)
    } catch let error as BundleError where error.code != .io {
      throw CLIError("'\(url.relativePath)': \(error.message)")
    }
  }

  // MARK: HostTensor <-> TensorData

  /// The IR view of a host tensor (checks that the bytes fill the shape).
  static func tensorData(_ tensor: HostTensor) throws -> TensorData {
    guard let dtype = DType(rawValue: tensor.dtype) else {
      throw CLIError("unknown dtype '\(tensor.dtype)'")
    }
    return try TensorData(type: TensorType(dtype, tensor.shape), bytes: tensor.bytes)
  }

  static func hostTensor(_ data: TensorData) -> HostTensor {
    HostTensor(dtype: data.dtype.rawValue, shape: data.shape, bytes: data.bytes)
  }

  // MARK: Summaries

  /// One line: `dtype [shape]  min .. max .. mean ..  [first values ...]`.
  static func summary(_ tensor: HostTensor, firstValues: Int = 6) -> String {
    guard let data = try? tensorData(tensor) else {
      return "\(tensor.dtype) \(tensor.shape) (\(tensor.bytes.count) bytes)"
    }
    let head = "\(tensor.dtype) \(tensor.shape)"
    let isFloat = data.dtype.isFloat
    let values = data.doubles()
    guard !values.isEmpty else { return head + "  (empty)" }
    var minimum = Double.infinity
    var maximum = -Double.infinity
    var sum = 0.0
    var finite = 0
    var nans = 0
    for value in values {
      if value.isNaN {
        nans += 1
        continue
      }
      minimum = min(minimum, value)
      maximum = max(maximum, value)
      if value.isFinite {
        sum += value
        finite += 1
      }
    }
    func show(_ value: Double) -> String {
      if !isFloat { return data.dtype == .bool ? (value != 0 ? "true" : "false") : String(Int64(value)) }
      return String(format: "%.6g", value)
    }
    var text = head
    if nans < values.count {
      text +=
        "  min \(show(minimum))  max \(show(maximum))  mean \(String(format: "%.6g", finite > 0 ? sum / Double(finite) : .nan))"
    }
    if nans > 0 { text += "  \(nans) NaN" }
    let shown: [String]
    if data.dtype == .int64 || data.dtype == .uint64 {
      // Doubles lose precision past 2^53: print 64-bit integers exactly.
      shown = data.int64s().prefix(firstValues).map {
        data.dtype == .uint64 ? String(UInt64(bitPattern: $0)) : String($0)
      }
    } else {
      shown = values.prefix(firstValues).map(show)
    }
    text += "  [" + shown.joined(separator: ", ") + (values.count > firstValues ? ", ..." : "") + "]"
    return text
  }

  // MARK: Comparison

  /// `kiln run --expect`'s comparison: KilnRuntime's `Tolerance` (the house rule).
  static func mismatch(got: HostTensor, expected: HostTensor, tolerance: Tolerance) throws -> String? {
    tolerance.compare(got, expected)
  }

  /// The largest |got - expected| over finite pairs (for reports).
  static func maxAbsoluteError(got: HostTensor, expected: HostTensor) -> Double {
    Tolerance.maxAbsoluteError(got, expected)
  }
}

// MARK: - File arguments

/// A `--input`/`--output`/`--expect` value: `@FILE` (by position) or `NAME=@FILE` (by name).
struct FileArgument: Sendable {
  var name: String?
  var path: String

  var url: URL { URL(fileURLWithPath: path) }

  init(parsing text: String, option: String) throws {
    if text.hasPrefix("@") {
      name = nil
      path = String(text.dropFirst())
    } else if let separator = text.range(of: "=@") {
      name = String(text[..<separator.lowerBound])
      path = String(text[separator.upperBound...])
      guard name?.isEmpty == false else {
        throw ValidationError("--\(option) '\(text)': the name before '=@' is empty")
      }
    } else {
      throw ValidationError("--\(option) '\(text)': expected @FILE or NAME=@FILE")
    }
    guard !path.isEmpty else { throw ValidationError("--\(option) '\(text)': the file name after '@' is empty") }
  }

  /// Binds arguments to signature slots: named ones by name, the others in order.
  /// Returns, per slot, the argument bound to it (nil for unbound slots).
  static func bind(_ arguments: [FileArgument], to names: [String], kind: String, option: String) throws
    -> [FileArgument?]
  {
    var slots = [FileArgument?](repeating: nil, count: names.count)
    var position = 0
    for argument in arguments {
      let slot: Int
      if let name = argument.name {
        guard let index = names.firstIndex(of: name) else {
          let list = names.map { "'\($0)'" }.joined(separator: ", ")
          throw CLIError(
            "--\(option) \(name)=@\(argument.path): the model has no \(kind) named '\(name)' (its \(kind)s: \(list))")
        }
        slot = index
      } else {
        guard position < names.count else {
          throw CLIError(
            "--\(option) @\(argument.path): the model has only \(names.count) \(kind)\(names.count == 1 ? "" : "s")")
        }
        slot = position
        position += 1
      }
      if let previous = slots[slot] {
        throw CLIError(
          "\(kind) \(slot) '\(names[slot])' is given twice (@\(previous.path) and @\(argument.path))")
      }
      slots[slot] = argument
    }
    return slots
  }
}

// MARK: - File safety

enum FileSafety {
  /// Whether two paths name the same file: the same path after resolving symlinks, or, when both
  /// exist, the same device and inode.
  static func sameFile(_ a: URL, _ b: URL) -> Bool {
    if a.standardizedFileURL.resolvingSymlinksInPath().path == b.standardizedFileURL.resolvingSymlinksInPath().path {
      return true
    }
    var first = stat()
    var second = stat()
    guard stat(a.path, &first) == 0, stat(b.path, &second) == 0 else { return false }
    return first.st_dev == second.st_dev && first.st_ino == second.st_ino
  }

  /// Throws unless the folder that will hold `url` exists.
  static func checkFolderExists(for url: URL, what: String) throws {
    let folder = url.standardizedFileURL.deletingLastPathComponent()
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory) else {
      throw CLIError("\(what) '\(url.path)': the folder '\(folder.path)' does not exist")
    }
    guard isDirectory.boolValue else {
      throw CLIError("\(what) '\(url.path)': '\(folder.path)' is not a folder")
    }
    var isTarget: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isTarget), isTarget.boolValue {
      throw CLIError("\(what) '\(url.path)' is a folder")
    }
  }

  /// Writes `bytes` to a temporary file beside `url`, syncs it, and renames it over `url`. On
  /// failure `url` is untouched and the temporary file is removed.
  static func writeAtomically(_ bytes: [UInt8], to url: URL) throws {
    try checkFolderExists(for: url, what: "output")
    let destination = url.standardizedFileURL
    let folder = destination.deletingLastPathComponent()
    let temporary = folder.appendingPathComponent(
      ".\(destination.lastPathComponent).\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).tmp"
    ).path
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw CLIError("cannot create '\(temporary)': \(String(cString: strerror(errno)))") }
    var finished = false
    defer {
      if !finished { unlink(temporary) }
    }
    var written = 0
    let failure: String? = bytes.withUnsafeBytes { buffer in
      while written < buffer.count {
        let result = write(fd, buffer.baseAddress! + written, buffer.count - written)
        if result < 0 {
          if errno == EINTR { continue }
          return String(cString: strerror(errno))
        }
        written += result
      }
      return fsync(fd) == 0 ? nil : String(cString: strerror(errno))
    }
    let closed = close(fd) == 0
    if let failure { throw CLIError("cannot write '\(temporary)': \(failure)") }
    guard closed else { throw CLIError("cannot close '\(temporary)': \(String(cString: strerror(errno)))") }
    guard rename(temporary, destination.path) == 0 else {
      throw CLIError("cannot rename '\(temporary)' to '\(destination.path)': \(String(cString: strerror(errno)))")
    }
    finished = true
  }
}

// MARK: - Errors and exit codes

/// A user error with a message for the one-line `error: ...` report.
struct CLIError: Error, CustomStringConvertible {
  var message: String
  init(_ message: String) { self.message = message }
  var description: String { message }
}

/// Runs `body`, turning any error except usage errors and explicit exit codes into one line
/// `error: ...` on standard error and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as ExitCode {
    throw error
  } catch let error as ValidationError {
    throw error
  } catch {
    printError("error: " + oneLine(describe(error)))
    throw ExitCode(1)
  }
}

/// A readable description of any error (Foundation errors get their localized text).
func describe(_ error: Error) -> String {
  if let cocoa = error as? CocoaError { return cocoa.localizedDescription }
  if type(of: error) is NSError.Type { return (error as NSError).localizedDescription }
  return String(describing: error)
}

/// Collapses a multi-line message into one line.
func oneLine(_ text: String, limit: Int = 4000) -> String {
  let parts = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter {
    !$0.isEmpty
  }
  let joined = parts.joined(separator: " | ")
  return joined.count > limit ? String(joined.prefix(limit)) + " ..." : joined
}

extension Duration {
  var seconds: Double {
    let (seconds, attoseconds) = components
    return Double(seconds) + Double(attoseconds) / 1e18
  }
}
