import KilnIR

/// Knobs for `ONNXImporter`.
public struct ImportOptions: Sendable {
  /// Most bytes of constant data (initializers, Constant nodes, folded results) the importer will
  /// hold, and the largest any single tensor in the graph may be. Default 4 GiB.
  public var memoryBudget: Int
  /// Nodes whose inputs are all constants are evaluated at import time when every output has at
  /// most this many elements. Default 1 Mi elements.
  public var foldingElementLimit: Int
  /// Fold constants at all (Shape and Size are folded regardless: shapes are static).
  public var foldConstants: Bool
  /// Run dead-code elimination and common-subexpression elimination after import.
  public var cleanup: Bool
  /// Full shapes for graph inputs by name; they replace the model's declared shapes.
  public var inputShapes: [String: [Int]]
  /// `1,3,224,224` (the text form of an `inputShapes` entry, as `kiln compile --input-shape` and
  /// the C API take it) as dimensions; nil unless every entry is a non-negative integer.
  public static func parseShape(_ text: some StringProtocol) -> [Int]? {
    let dims = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !dims.isEmpty, dims.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
    return dims.map { $0! }
  }

  /// Values for symbolic dimensions (ONNX `dim_param`) by name, e.g. `["batch": 1]`.
  public var symbolicDimensions: [String: Int]
  /// Graph inputs fixed to a value at compile time, by name: they become constants and leave the
  /// runtime signature (useful when an input determines shapes, e.g. a Reshape target).
  /// Each value's dtype must match the input's, and its shape every static dimension.
  public var constantInputs: [String: TensorData]

  public init(
    memoryBudget: Int = 4 << 30, foldingElementLimit: Int = 1 << 20, foldConstants: Bool = true,
    cleanup: Bool = true, inputShapes: [String: [Int]] = [:], symbolicDimensions: [String: Int] = [:],
    constantInputs: [String: TensorData] = [:]
  ) {
    self.memoryBudget = memoryBudget
    self.foldingElementLimit = foldingElementLimit
    self.foldConstants = foldConstants
    self.cleanup = cleanup
    self.inputShapes = inputShapes
    self.symbolicDimensions = symbolicDimensions
    self.constantInputs = constantInputs
  }
}
