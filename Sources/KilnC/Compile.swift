import Foundation
import KilnBundle
import KilnCodegen
import KilnONNX

/// `kiln_compile_options *`: `kiln compile`'s options, set by name.
/// Thread-safety: not for concurrent `set`; compiles only read it (under its lock).
final class CCompileOptions {
  private let state = NSLock()
  private var targets: [Target] = Target.allCases
  private var vulkanClasses: [VulkanClass]?
  private var cpuVariants: [String]?
  private var precision: Precision = .fp32
  private var inputShapes: [String: [Int]] = [:]
  private var memoryBudget: Int?
  private var cacheDirectory: URL?
  private var cache = true
  private var optimizeSPIRV = false
  private var modelName: String?

  /// Sets the option `key` (a `kiln compile` option name) from its text form.
  func set(_ key: String, _ value: String) throws {
    try state.withLock {
      switch key {
      case "target":
        targets = try list(value, key) { Target(rawValue: $0) }
      case "vulkan-class":
        vulkanClasses = try list(value, key) { VulkanClass(rawValue: $0) }
      case "cpu-variant":
        cpuVariants = try list(value, key) { CompileOptions.knownCPUVariants.contains($0) ? $0 : nil }
      case "precision":
        guard let chosen = Precision(rawValue: value) else { throw bad(key, value, Precision.allCases.map(\.rawValue)) }
        precision = chosen
      case "input-shape":
        guard let equals = value.firstIndex(of: "="), equals != value.startIndex else {
          throw CAPIError(.invalidArgument, "option 'input-shape': expected NAME=D0,D1,..., got '\(value)'")
        }
        guard let dims = ImportOptions.parseShape(value[value.index(after: equals)...]) else {
          throw CAPIError(
            .invalidArgument,
            "option 'input-shape': the shape must be comma-separated non-negative integers, got '\(value)'")
        }
        inputShapes[String(value[..<equals])] = dims
      case "memory-budget":
        guard let bytes = Int(value), bytes > 0 else {
          throw CAPIError(
            .invalidArgument, "option 'memory-budget': expected a positive number of bytes, got '\(value)'")
        }
        memoryBudget = bytes
      case "cache-dir":
        guard !value.isEmpty else { throw CAPIError(.invalidArgument, "option 'cache-dir' is empty") }
        cacheDirectory = URL(fileURLWithPath: value, isDirectory: true)
      case "cache": cache = try flag(value, key)
      case "spirv-opt": optimizeSPIRV = try flag(value, key)
      case "model-name": modelName = value
      default:
        throw CAPIError(
          .invalidArgument,
          "unknown compile option '\(key)' (choose from target, vulkan-class, cpu-variant, precision, input-shape, memory-budget, cache-dir, cache, spirv-opt, model-name)"
        )
      }
    }
  }

  /// The import and compile options for a model named `name`.
  func resolved(modelName name: String) throws -> (ImportOptions, CompileOptions) {
    try state.withLock {
      var importing = ImportOptions()
      importing.inputShapes = inputShapes
      if let memoryBudget { importing.memoryBudget = memoryBudget }
      var options = CompileOptions(targets: targets, modelName: modelName ?? name, printer: { _ in })
      options.vulkanClasses = vulkanClasses
      if let cpuVariants { options.cpuVariants = cpuVariants }
      options.precision = precision
      options.optimizeSPIRV = optimizeSPIRV
      if options.resolvedVulkanClasses.contains(.coopmat), precision != .fp16 {
        throw CAPIError(
          .invalidArgument, "vulkan-class coopmat rounds contraction operands to float16: set precision to fp16")
      }
      if cache, let directory = cacheDirectory ?? KernelCache.defaultDirectory() {
        options.cache = KernelCache(directory: directory)
      }
      return (importing, options)
    }
  }

  private func list<T>(_ value: String, _ key: String, _ parse: (String) -> T?) throws -> [T] {
    let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    var parsed: [T] = []
    for name in names {
      guard let item = parse(name) else {
        throw CAPIError(.invalidArgument, "option '\(key)': unknown value '\(name)'")
      }
      parsed.append(item)
    }
    guard !parsed.isEmpty else { throw CAPIError(.invalidArgument, "option '\(key)' is empty") }
    return parsed
  }

  private func flag(_ value: String, _ key: String) throws -> Bool {
    switch value {
    case "on", "true", "1": return true
    case "off", "false", "0": return false
    default: throw bad(key, value, ["on", "off"])
    }
  }

  private func bad(_ key: String, _ value: String, _ choices: [String]) -> CAPIError {
    CAPIError(
      .invalidArgument, "option '\(key)': unknown value '\(value)' (choose from \(choices.joined(separator: ", ")))")
  }
}

/// `kiln_blob *`: bytes Kiln returns, at an address that stays put until release. Immutable.
final class CBlob {
  let bytes: UnsafeMutableRawBufferPointer
  let count: Int
  init(_ source: [UInt8]) {
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
    source.withUnsafeBytes { bytes.copyMemory(from: $0) }
    self.bytes = bytes
    count = source.count
  }
  deinit { bytes.deallocate() }
}

@_cdecl("kiln_compile_options_create")
public func kiln_compile_options_create(_ out: UnsafeMutablePointer<OpaquePointer?>?) -> OpaquePointer? {
  status {
    guard let out else { throw CAPIError(.invalidArgument, "out_options is NULL") }
    out.pointee = retained(CCompileOptions())
  }
}

@_cdecl("kiln_compile_options_set")
public func kiln_compile_options_set(
  _ options: OpaquePointer?, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?
) -> OpaquePointer? {
  status {
    let options: CCompileOptions = try object(options, "options")
    try options.set(try string(key, "key"), try string(value, "value"))
  }
}

@_cdecl("kiln_compile_options_release")
public func kiln_compile_options_release(_ options: OpaquePointer?) {
  release(options, as: CCompileOptions.self)
}

/// The options behind a possibly NULL handle.
private func compileOptions(_ handle: OpaquePointer?) -> CCompileOptions {
  (peek(handle) as CCompileOptions?) ?? CCompileOptions()
}

@_cdecl("kiln_compile_file")
public func kiln_compile_file(
  _ model: UnsafePointer<CChar>?, _ options: OpaquePointer?, _ bundle: UnsafePointer<CChar>?
) -> OpaquePointer? {
  status {
    let modelURL = URL(fileURLWithPath: try string(model, "model_path"))
    let bundleURL = URL(fileURLWithPath: try string(bundle, "bundle_path"))
    guard FileManager.default.fileExists(atPath: modelURL.path) else {
      throw CAPIError(.notFound, "'\(modelURL.path)': no such file")
    }
    let stem = modelURL.deletingPathExtension().lastPathComponent
    let (importing, compiling) = try compileOptions(options).resolved(modelName: stem)
    let graph = try ONNXImporter(options: importing).importModel(at: modelURL)
    var compiled = try ModelCompiler(options: compiling).compile(graph)
    compiled.writer.protect(modelURL)
    try compiled.writer.write(manifest: compiled.manifest, to: bundleURL)
  }
}

@_cdecl("kiln_compile_bytes")
public func kiln_compile_bytes(
  _ model: UnsafeRawPointer?, _ size: Int, _ options: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> OpaquePointer? {
  status {
    guard let model, size > 0 else { throw CAPIError(.invalidArgument, "model is NULL or empty") }
    guard let out else { throw CAPIError(.invalidArgument, "out_bundle is NULL") }
    let (importing, compiling) = try compileOptions(options).resolved(modelName: "model")
    let bytes = Array(UnsafeRawBufferPointer(start: model, count: size))
    let graph = try ONNXImporter(options: importing).importModel(bytes: bytes)
    let compiled = try ModelCompiler(options: compiling).compile(graph)
    out.pointee = retained(CBlob(try compiled.writer.serialize(manifest: compiled.manifest)))
  }
}

@_cdecl("kiln_blob_get_data")
public func kiln_blob_get_data(_ blob: OpaquePointer?) -> UnsafeRawPointer? {
  (peek(blob) as CBlob?).flatMap { UnsafeRawPointer($0.bytes.baseAddress) }
}

@_cdecl("kiln_blob_get_size")
public func kiln_blob_get_size(_ blob: OpaquePointer?) -> Int {
  (peek(blob) as CBlob?)?.count ?? 0
}

@_cdecl("kiln_blob_release")
public func kiln_blob_release(_ blob: OpaquePointer?) {
  release(blob, as: CBlob.self)
}
