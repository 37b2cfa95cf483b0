/// The one error type of KilnONNX. Its description names the model, the node (name, op, opset)
/// when there is one, and the bad value:
/// `model.onnx: node 'foo' (Bar, opset 17): unsupported op`.
public struct ONNXImportError: Error, CustomStringConvertible, Sendable, Equatable {
  public enum Code: String, Sendable, CaseIterable {
    /// The model file could not be read.
    case io
    /// The bytes are not a decodable ONNX ModelProto.
    case invalidProtobuf = "invalid-protobuf"
    /// The model is structurally broken: no graph, a dangling or duplicate name, a cycle.
    case invalidModel = "invalid-model"
    /// An opset version or domain Kiln does not implement.
    case unsupportedOpset = "unsupported-opset"
    /// An operator Kiln does not implement.
    case unsupportedOp = "unsupported-op"
    /// An attribute (or attribute value, or operand form) Kiln does not implement.
    case unsupportedAttribute = "unsupported-attribute"
    /// An element type (string, complex, float8...) or value kind (sequence, map) Kiln does not support.
    case unsupportedType = "unsupported-type"
    /// An attribute is malformed: wrong kind, out of range, inconsistent with the inputs.
    case invalidAttribute = "invalid-attribute"
    /// Operand types or shapes do not satisfy the operator.
    case shapeMismatch = "shape-mismatch"
    /// A shape is not static: a symbolic input dimension or a shape computed from runtime values.
    case dynamicShape = "dynamic-shape"
    /// A tensor's data does not match its declared type and shape.
    case invalidTensor = "invalid-tensor"
    /// External tensor data is missing, too short, or outside the model's folder.
    case externalData = "external-data"
    /// A tensor is larger than `ImportOptions.memoryBudget` allows, or a count overflows.
    case budgetExceeded = "budget-exceeded"
    /// An inconsistency inside the importer (a bug); the message says what.
    case internalError = "internal-error"
  }

  public var code: Code
  public var message: String
  /// The model's path as given (or `<memory>`).
  public var modelPath: String?
  /// The node's name, op and opset when the error belongs to a node.
  public var nodeName: String?
  public var op: String?
  public var opset: Int?
  /// For `.dynamicShape` errors about an operand that must be a constant: the runtime graph inputs
  /// that operand is computed from. Binding them (`ImportOptions.constantInputs`, `kiln compile
  /// --bind`) makes the operand a constant.
  public var requiredInputs: [String] = []
  /// For `.dynamicShape` errors about a graph input whose declared shape is not static: its name.
  public var unshapedInput: String?
  /// The operand slot of the node that had to be a constant (set by `OpContext.constant`).
  var operandSlot: Int?

  public init(
    _ code: Code, _ message: String, modelPath: String? = nil, nodeName: String? = nil,
    op: String? = nil, opset: Int? = nil
  ) {
    self.code = code
    self.message = message
    self.modelPath = modelPath
    self.nodeName = nodeName
    self.op = op
    self.opset = opset
  }

  public var description: String {
    var text = ""
    if let modelPath { text += "\(modelPath): " }
    if let op {
      text += "node '\(nodeName ?? "")' (\(op)"
      if let opset { text += ", opset \(opset)" }
      text += "): "
    }
    return text + message
  }
}

extension ONNXImportError {
  static func shape(_ message: String) -> ONNXImportError { .init(.shapeMismatch, message) }
  static func attribute(_ message: String) -> ONNXImportError { .init(.invalidAttribute, message) }
  static func unsupported(_ message: String) -> ONNXImportError { .init(.unsupportedAttribute, message) }
  static func dynamic(_ message: String) -> ONNXImportError { .init(.dynamicShape, message) }

  /// `subject` (operand `slot` of the node) is computed at run time where Kiln needs a constant;
  /// the importer then names the graph inputs to bind.
  static func runtimeOperand(slot: Int, _ subject: String, _ suffix: String = "") -> ONNXImportError {
    var error = dynamic("\(subject) is computed at run time; Kiln needs it to be a constant\(suffix)")
    error.operandSlot = slot
    return error
  }
  static func budget(_ message: String) -> ONNXImportError { .init(.budgetExceeded, message) }
  static func model(_ message: String) -> ONNXImportError { .init(.invalidModel, message) }
}
