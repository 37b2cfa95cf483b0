/// Typed attribute getters. Each throws an `IRError` (code `.attribute`) naming the node and the
/// attribute when the attribute has another kind, or when it is missing and no default is given.
/// ONNX stores integers as int64; the getters return `Int` (Kiln targets 64-bit hosts).
extension Node {
  private func kindError(_ name: String, _ value: AttributeValue, expected: String) -> IRError {
    IRError(.attribute, "\(label): attribute '\(name)' is \(value.kindName), expected \(expected)")
  }

  private func missing(_ name: String, _ kind: String) -> IRError {
    IRError(.attribute, "\(label): required \(kind) attribute '\(name)' is missing")
  }

  public func hasAttribute(_ name: String) -> Bool { attributes[name] != nil }

  /// An int attribute, or nil when absent.
  public func int(_ name: String) throws -> Int? {
    guard let value = attributes[name] else { return nil }
    guard case .int(let v) = value else { throw kindError(name, value, expected: "int") }
    return Int(v)
  }

  public func int(_ name: String, default fallback: Int) throws -> Int {
    try int(name) ?? fallback
  }

  public func requiredInt(_ name: String) throws -> Int {
    guard let v = try int(name) else { throw missing(name, "int") }
    return v
  }

  /// An ints attribute, or nil when absent.
  public func ints(_ name: String) throws -> [Int]? {
    guard let value = attributes[name] else { return nil }
    guard case .ints(let v) = value else { throw kindError(name, value, expected: "ints") }
    return v.map { Int($0) }
  }

  public func ints(_ name: String, default fallback: [Int]) throws -> [Int] {
    try ints(name) ?? fallback
  }

  public func requiredInts(_ name: String) throws -> [Int] {
    guard let v = try ints(name) else { throw missing(name, "ints") }
    return v
  }

  /// A float attribute, or nil when absent.
  public func float(_ name: String) throws -> Float? {
    guard let value = attributes[name] else { return nil }
    guard case .float(let v) = value else { throw kindError(name, value, expected: "float") }
    return v
  }

  public func float(_ name: String, default fallback: Float) throws -> Float {
    try float(name) ?? fallback
  }

  /// A floats attribute, or nil when absent.
  public func floats(_ name: String) throws -> [Float]? {
    guard let value = attributes[name] else { return nil }
    guard case .floats(let v) = value else { throw kindError(name, value, expected: "floats") }
    return v
  }

  public func floats(_ name: String, default fallback: [Float]) throws -> [Float] {
    try floats(name) ?? fallback
  }

  /// A string attribute, or nil when absent.
  public func string(_ name: String) throws -> String? {
    guard let value = attributes[name] else { return nil }
    guard case .string(let v) = value else { throw kindError(name, value, expected: "string") }
    return v
  }

  public func string(_ name: String, default fallback: String) throws -> String {
    try string(name) ?? fallback
  }

  /// A strings attribute, or nil when absent.
  public func strings(_ name: String) throws -> [String]? {
    guard let value = attributes[name] else { return nil }
    guard case .strings(let v) = value else { throw kindError(name, value, expected: "strings") }
    return v
  }

  /// A tensor attribute, or nil when absent.
  public func tensor(_ name: String) throws -> TensorData? {
    guard let value = attributes[name] else { return nil }
    guard case .tensor(let v) = value else { throw kindError(name, value, expected: "tensor") }
    return v
  }

  public func requiredTensor(_ name: String) throws -> TensorData {
    guard let v = try tensor(name) else { throw missing(name, "tensor") }
    return v
  }
}
