import CGlslang
import KilnSPIRV

/// Compiles GLSL compute shaders to SPIR-V in-process with glslang, shrinks or optimises the module
/// with a short list of SPIRV-Tools passes and validates the result. The default, `.size`, strips
/// debug names and turns locals into SSA values without inlining, which keeps bundles small at a few
/// milliseconds a module; `.performance` (`kiln compile --spirv-opt`) adds inlining, constant
/// propagation and unrolling: drivers optimise again, and on lavapipe run times and pipeline
/// creation did not change with it (docs/benchmarks.md, 2026-12-07).
public struct GLSLCompiler: Sendable {
  public enum VulkanVersion: Int, Sendable {
    case v1_1 = 1, v1_2 = 2, v1_3 = 3

    var spirvEnvironment: SPIRVTools.Environment {
      switch self {
      case .v1_1: .vulkan1_1
      case .v1_2: .vulkan1_2
      case .v1_3: .vulkan1_3
      }
    }
  }

  /// What SPIRV-Tools does to glslang's module before it is validated.
  public enum Optimization: String, Sendable {
    /// glslang's module as it is (debug names included).
    case none
    /// `SPIRVTools.Level.size`.
    case size
    /// `SPIRVTools.Level.performance`.
    case performance

    /// The SPIRV-Tools pass list, or nil for none.
    var level: SPIRVTools.Level? {
      switch self {
      case .none: nil
      case .size: .size
      case .performance: .performance
      }
    }
  }

  public var target: VulkanVersion
  public var optimization: Optimization

  public init(target: VulkanVersion = .v1_2, optimization: Optimization = .size) {
    self.target = target
    self.optimization = optimization
  }

  /// What besides the source decides this compiler's output (for `KernelCache` keys).
  public var identity: String { "glslang vulkan1.\(target.rawValue) spirv-opt=\(optimization.rawValue)" }

  /// Whether `bytes` are a SPIR-V module that passes validation for this compiler's target.
  public func isValid(_ bytes: [UInt8]) -> Bool {
    guard let module = try? SPIRVModule(bytes: bytes) else { return false }
    return (try? SPIRVTools.validate(module.words, environment: target.spirvEnvironment)) != nil
  }

  /// The SPIR-V words of `source`, validated (and optimised, then validated again).
  /// - Throws: `CodegenError` with glslang's log (or the validator's message) on failure.
  public func compile(_ source: String, name: String = "kernel") throws -> [UInt32] {
    var result = source.withCString { kiln_glslang_compile_compute($0, Int32(target.rawValue)) }
    defer { kiln_glslang_free(&result) }
    guard result.ok != 0, let words = result.words else {
      let log = result.log.map { String(cString: $0) } ?? "no diagnostic"
      throw CodegenError(.shaderCompilation, "glslang failed on '\(name)': \(log.trimmedTrailingNewlines)")
    }
    var module = Array(UnsafeBufferPointer(start: words, count: result.word_count))
    do {
      // Every module is validated once, after the optimiser (which does not validate).
      if let level = optimization.level {
        module = try SPIRVTools.optimize(module, environment: target.spirvEnvironment, level: level)
      }
      try SPIRVTools.validate(module, environment: target.spirvEnvironment)
    } catch let error as SPIRVError {
      throw CodegenError(.shaderCompilation, "'\(name)': \(error.message)")
    }
    return module
  }

  /// `compile(_:)` as little-endian bytes, the form bundles and `ExecutableSpec` carry.
  public func compileToBytes(_ source: String, name: String = "kernel") throws -> [UInt8] {
    let words = try compile(source, name: name)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(words.count * 4)
    for word in words {
      withUnsafeBytes(of: word.littleEndian) { bytes.append(contentsOf: $0) }
    }
    return bytes
  }
}

extension String {
  var trimmedTrailingNewlines: String {
    var text = Substring(self)
    while let last = text.last, last == "\n" || last == "\r" || last == " " { text.removeLast() }
    return String(text)
  }
}
