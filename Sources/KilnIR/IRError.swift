/// The one error type of KilnIR: a machine-readable code and a message that names the bad value.
public struct IRError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of rule was broken.
  public enum Code: String, Sendable, CaseIterable {
    /// The graph's structure is broken: an undefined or twice-defined value, a cycle, a bad id.
    case invalidGraph = "invalid-graph"
    /// A type is missing, malformed (negative dimension), or too large to count.
    case invalidType = "invalid-type"
    /// Tensor bytes do not match their type.
    case invalidData = "invalid-data"
    /// An attribute is missing or has another kind than the one asked for.
    case attribute = "attribute"
    /// Two types that must agree do not.
    case typeMismatch = "type-mismatch"
  }

  public var code: Code
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.rawValue): \(message)" }
}
