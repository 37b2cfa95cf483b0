import CSPIRVTools

/// A SPIR-V module failed validation, disassembly or optimisation.
public struct SPIRVError: Error, CustomStringConvertible, Sendable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// SPIRV-Tools entry points: validation (as `spirv-val`), disassembly, and optimisation (a short list of passes).
public enum SPIRVTools {
  public enum Environment: Sendable {
    case vulkan1_1, vulkan1_2, vulkan1_3

    var c: kiln_spirv_env {
      switch self {
      case .vulkan1_1: KILN_SPIRV_ENV_VULKAN_1_1
      case .vulkan1_2: KILN_SPIRV_ENV_VULKAN_1_2
      case .vulkan1_3: KILN_SPIRV_ENV_VULKAN_1_3
      }
    }
  }

  /// Throws the validator's message unless `words` is a valid module for `environment`.
  public static func validate(_ words: [UInt32], environment: Environment = .vulkan1_2) throws {
    var result = words.withUnsafeBufferPointer { kiln_spirv_validate($0.baseAddress, $0.count, environment.c) }
    defer { kiln_spirv_free(&result) }
    if result.ok == 0 { throw SPIRVError("invalid SPIR-V: \(message(result))") }
  }

  public static func disassemble(_ words: [UInt32], environment: Environment = .vulkan1_2) throws -> String {
    var result = words.withUnsafeBufferPointer { kiln_spirv_disassemble($0.baseAddress, $0.count, environment.c) }
    defer { kiln_spirv_free(&result) }
    guard result.ok != 0, let text = result.text else { throw SPIRVError("disassembly failed: \(message(result))") }
    return String(cString: text)
  }

  /// How much `optimize` does.
  public enum Level: Sendable {
    /// Debug names stripped, each function's locals turned into SSA values, dead code removed; no inlining.
    case size
    /// `size` plus exhaustive inlining, constant propagation and unrolling of `[[unroll]]` loops.
    case performance

    var c: kiln_spirv_level {
      switch self {
      case .size: KILN_SPIRV_LEVEL_SIZE
      case .performance: KILN_SPIRV_LEVEL_PERFORMANCE
      }
    }
  }

  /// Runs a short list of SPIRV-Tools optimisation passes. Nothing is validated here: validate the
  /// result before using it (`GLSLCompiler` does).
  public static func optimize(
    _ words: [UInt32], environment: Environment = .vulkan1_2, level: Level = .size
  ) throws -> [UInt32] {
    var result = words.withUnsafeBufferPointer {
      kiln_spirv_optimize($0.baseAddress, $0.count, environment.c, level.c)
    }
    defer { kiln_spirv_free(&result) }
    guard result.ok != 0, let output = result.words else {
      throw SPIRVError("optimisation failed: \(message(result))")
    }
    return Array(UnsafeBufferPointer(start: output, count: result.word_count))
  }

  private static func message(_ result: kiln_spirv_result) -> String {
    result.text.map { String(cString: $0) } ?? "no diagnostic"
  }
}
