/// The one error type of KilnCodegen: what went wrong (`code`), a message that names the kernel
/// and the failing step, and `details` such as a compiler's diagnostics.
public struct CodegenError: Error, CustomStringConvertible, Sendable, Equatable {
  public enum Code: String, Sendable {
    /// The input (kernel IR, a name, an option) is malformed.
    case invalidInput
    /// Valid input the backend cannot generate code for (an op, a type, a device feature).
    case unsupported
    /// glslang or the SPIR-V validator rejected a shader.
    case shaderCompilation
    /// No native C compiler was found (KILN_CC, the Swift toolchain's clang, clang or cc on PATH).
    case compilerNotFound
    /// The native C compiler failed; `details` holds its diagnostics.
    case nativeCompilation
    /// An external tool ran past its time-out.
    case timeout
    /// Reading or writing a temporary file failed.
    case io
    /// A bug in Kiln.
    case `internal`
  }

  public var code: Code
  public var message: String
  /// Extra text for the user, e.g. the compiler's standard error; empty when there is none.
  public var details: String

  public init(_ code: Code, _ message: String, details: String = "") {
    self.code = code
    self.message = message
    self.details = details
  }

  public var description: String {
    details.isEmpty ? "\(code.rawValue): \(message)" : "\(code.rawValue): \(message)\n\(details)"
  }
}
