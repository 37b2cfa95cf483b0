import KilnIR

/// What the importer knows about one supported operator: which attributes it accepts, how many
/// operands and results it has, how to infer result types, and (optionally) how to evaluate it on
/// constants at import time.
struct OpSpec: Sendable {
  /// Attribute names accepted in any opset; any other attribute is an `unsupportedAttribute` error.
  var attributes: Set<String>
  /// Allowed operand counts (after trailing omitted operands are dropped).
  var inputs: ClosedRange<Int>
  /// Allowed result counts.
  var outputs: ClosedRange<Int>
  /// Trailing results nobody reads are dropped before inference (optional outputs such as
  /// Dropout's mask, MaxPool's indices, BatchNormalization's training statistics).
  var dropsUnusedOutputs = false
  /// With one result, the node is a no-op: its result is replaced by its first operand.
  var isAlias = false
  /// Always evaluated, whatever the operands and the size limit: the result is known from shapes
  /// or attributes alone (Shape, Size, Constant).
  var alwaysFolds = false
  /// Result types, one per result. May rewrite `node` (e.g. drop legacy attributes whose meaning
  /// it has folded into the modern form).
  var infer: @Sendable (inout OpContext) throws -> [TensorType]
  /// Result data from constant operands; nil declines (e.g. division by zero), keeping the node.
  var fold: (@Sendable (OpContext) throws -> [TensorData]?)?
  /// For ops whose result sizes depend on data (NonZero, Compress, Unique, NonMaxSuppression): per
  /// result slot, the axis whose extent is computed at run time (`infer` gives the maximum). The
  /// node then gets one more result, the int64 scalar extent, which its lowering computes.
  var dataDependent: (@Sendable (OpContext) throws -> [Int: Int])?
}

/// The view of one node that inference and folding work from.
struct OpContext {
  var node: Node
  /// Operand types by slot; nil for omitted optional operands.
  var inputTypes: [TensorType?]
  /// Operand data by slot where the operand is a constant.
  var inputData: [TensorData?]
  var outputCount: Int
  /// Filled in (from `infer`) before `fold` runs.
  var outputTypes: [TensorType] = []
  var options: ImportOptions

  var opset: Int { node.version }
  var inputCount: Int { inputTypes.count }

  func hasInput(_ slot: Int) -> Bool { slot < inputTypes.count && inputTypes[slot] != nil }

  /// The type of a required operand.
  func type(_ slot: Int) throws -> TensorType {
    guard slot < inputTypes.count, let type = inputTypes[slot] else {
      throw ONNXImportError.model("required input \(slot) is missing")
    }
    return type
  }

  func optionalType(_ slot: Int) -> TensorType? { slot < inputTypes.count ? inputTypes[slot] : nil }

  /// The data of an operand that must be a constant for shapes to be static; nil when omitted.
  func constant(_ slot: Int, _ what: String) throws -> TensorData? {
    guard hasInput(slot) else { return nil }
    guard let data = inputData[slot] else {
      throw ONNXImportError.runtimeOperand(slot: slot, "input \(slot) (\(what))", " so that shapes are static")
    }
    return data
  }

  /// A constant integer operand as [Int]; nil when omitted.
  func constantInts(_ slot: Int, _ what: String) throws -> [Int]? {
    guard let data = try constant(slot, what) else { return nil }
    guard data.dtype.isInteger else {
      throw ONNXImportError.shape("input \(slot) (\(what)) must be an integer tensor, got \(data.type)")
    }
    return data.int64s().map { Int($0) }
  }

  /// Operand data during folding (all operands are constant then).
  func data(_ slot: Int) -> TensorData? { slot < inputData.count ? inputData[slot] : nil }

  /// Reads an axis list that is an attribute before `inputSince` and operand `slot` from then on.
  func axes(attributeBefore inputSince: Int, slot: Int) throws -> [Int]? {
    if opset < inputSince {
      return try node.ints("axes")
    }
    if node.hasAttribute("axes") {
      throw ONNXImportError.unsupported("attribute 'axes' is not valid from opset \(inputSince) on (axes is an input)")
    }
    return try constantInts(slot, "axes")
  }
}

// MARK: - Shared helpers

enum Shapes {
  /// Normalises `axis` for a tensor of `rank` (negative counts from the end).
  static func axis(_ axis: Int, rank: Int, what: String = "axis") throws -> Int {
    guard axis >= -rank, axis < rank else {
      throw ONNXImportError.attribute("\(what) \(axis) is out of range for rank \(rank)")
    }
    return axis < 0 ? axis + rank : axis
  }

  /// Normalises a list of distinct axes.
  static func axes(_ axes: [Int], rank: Int, what: String = "axes") throws -> [Int] {
    let normalized = try axes.map { try axis($0, rank: rank, what: what) }
    guard Set(normalized).count == normalized.count else {
      throw ONNXImportError.attribute("\(what) \(axes) repeat an axis")
    }
    return normalized
  }

  /// The product of `dims`, or a budget error on overflow.
  static func product(_ dims: some Sequence<Int>) throws -> Int {
    var result = 1
    for dim in dims {
      let (next, overflow) = result.multipliedReportingOverflow(by: dim)
      guard !overflow else { throw ONNXImportError.budget("element count overflows") }
      result = next
    }
    return result
  }

  static func multiply(_ a: Int, _ b: Int) throws -> Int {
    let (result, overflow) = a.multipliedReportingOverflow(by: b)
    guard !overflow else { throw ONNXImportError.budget("dimension \(a) x \(b) overflows") }
    return result
  }

  static func add(_ a: Int, _ b: Int) throws -> Int {
    let (result, overflow) = a.addingReportingOverflow(b)
    guard !overflow else { throw ONNXImportError.budget("dimension \(a) + \(b) overflows") }
    return result
  }

  /// Multidirectional broadcast of operand shapes.
  static func broadcast(_ types: [TensorType]) throws -> [Int] {
    guard let shape = Broadcast.shape(types.map(\.shape)) else {
      let shapes = types.map { "\($0.shape)" }.joined(separator: ", ")
      throw ONNXImportError.shape("shapes \(shapes) cannot be broadcast together")
    }
    return shape
  }

  /// All operands share one dtype.
  static func sameDType(_ types: [TensorType], what: String = "inputs") throws -> DType {
    guard let first = types.first else { throw ONNXImportError.model("no inputs") }
    for type in types where type.dtype != first.dtype {
      throw ONNXImportError.shape("\(what) have different element types: \(types.map(\.dtype.rawValue))")
    }
    return first.dtype
  }

  static func requireFloat(_ type: TensorType, _ what: String = "input") throws {
    guard type.dtype.isFloat else {
      throw ONNXImportError(
        .unsupportedType, "\(what) has element type \(type.dtype.rawValue); this op needs a float type")
    }
  }

  static func requireNumeric(_ type: TensorType, _ what: String = "input") throws {
    guard type.dtype != .bool else {
      throw ONNXImportError(.unsupportedType, "\(what) has element type bool; this op needs a numeric type")
    }
  }

  static func requireInteger(_ type: TensorType, _ what: String = "input") throws {
    guard !type.dtype.isFloat, type.dtype != .bool else {
      throw ONNXImportError(
        .unsupportedType, "\(what) has element type \(type.dtype.rawValue); this op needs an integer type")
    }
  }

  static func requireBool(_ type: TensorType, _ what: String = "input") throws {
    guard type.dtype == .bool else {
      throw ONNXImportError(.unsupportedType, "\(what) has element type \(type.dtype.rawValue); this op needs bool")
    }
  }

  static func requireRank(_ type: TensorType, atLeast minimum: Int, _ what: String = "input") throws {
    guard type.rank >= minimum else {
      throw ONNXImportError.shape("\(what) has shape \(type.shape); rank \(minimum) or more is needed")
    }
  }
}

// MARK: - Registry

/// Every operator of the ai.onnx domain the importer supports.
enum OpRegistry {
  static let specs: [String: OpSpec] = {
    var specs: [String: OpSpec] = [:]
    let families = [
      elementwiseSpecs(), neuralNetworkSpecs(), tensorSpecs(), reductionSpecs(), sequenceSpecs(), indexingSpecs(),
      samplingSpecs(), quantizationSpecs(), recurrentSpecs(), signalSpecs(), linearAlgebraSpecs(), dataDependentSpecs(),
    ]
    for family in families {
      specs.merge(family) { first, _ in first }
    }
    return specs
  }()

  static var supportedOps: [String] { specs.keys.sorted() }
}
