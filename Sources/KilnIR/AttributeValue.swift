/// The value of a node attribute (ONNX AttributeProto without subgraphs).
public enum AttributeValue: Hashable, Sendable {
  case int(Int64)
  case float(Float)
  case string(String)
  case tensor(TensorData)
  case ints([Int64])
  case floats([Float])
  case strings([String])

  /// The kind's name as used in messages: `int`, `floats`, `tensor`...
  public var kindName: String {
    switch self {
    case .int: "int"
    case .float: "float"
    case .string: "string"
    case .tensor: "tensor"
    case .ints: "ints"
    case .floats: "floats"
    case .strings: "strings"
    }
  }
}
