import KilnIR

/// How ops fuse, which decides where dispatch regions begin and end.
public enum FusionKind: Sendable, Hashable {
  /// Each output element depends on the inputs' elements at the same (broadcast) coordinates:
  /// cheap to recompute, fused into consumers and producers freely.
  case elementwise
  /// Each output element is one input element at remapped coordinates (transpose, slice, pad,
  /// gather, concat, expand, reshape, resize-nearest): fused into loads as index arithmetic.
  case movement
  /// Output elements fold many input elements (`.reduce` nodes): the root of a dispatch region.
  case reduction
  /// An algorithm of its own (`KernelProgram`): a region alone, its inputs and outputs in memory.
  case custom
}

/// Everything an op lowering may ask about the node it lowers.
///
/// `element(i, at:)` returns the expression for input `i`'s element at the given coordinates
/// (one index expression per axis of input `i`); the region builder decides whether that becomes a
/// load from a materialised tensor or the producer's own expression, fused in.
public struct LoweringContext {
  public let node: Node
  public let graph: Graph
  let elementProvider: (Int, [Expr]) throws -> Expr
  let variableCounter: VariableCounter
  let stateProvider: (RegionStatement) -> Void
  let linearProvider: (Int, Expr) throws -> Expr

  /// - Parameter state: receives the structure the lowering states (`sumOfProducts`,
  ///   `windowMaximum`) for the region being built.
  public init(
    node: Node, graph: Graph, variables: VariableCounter, element: @escaping (Int, [Expr]) throws -> Expr,
    state: @escaping (RegionStatement) -> Void = { _ in },
    linear: @escaping (Int, Expr) throws -> Expr = { _, _ in throw LoweringError(message: "internal: no linear loads here") }
  ) {
    self.node = node
    self.graph = graph
    self.variableCounter = variables
    self.elementProvider = element
    self.stateProvider = state
    self.linearProvider = linear
  }

  /// Input `i`'s element at row-major position `index` (a custom program's load).
  public func load(_ i: Int, at index: Expr) throws -> Expr {
    guard hasInput(i) else { throw missingInput(i) }
    return try linearProvider(i, index)
  }

  /// Number of input slots (including omitted optional ones).
  public var inputCount: Int { node.inputs.count }

  /// Whether input `i` is present (optional inputs may be omitted or absent).
  public func hasInput(_ i: Int) -> Bool { i < node.inputs.count && node.inputs[i] != nil }

  public func inputType(_ i: Int) throws -> TensorType {
    guard hasInput(i), let id = node.inputs[i] else { throw missingInput(i) }
    return graph.type(of: id)
  }

  public func shape(_ i: Int) throws -> [Int] { try inputType(i).shape }
  public func dtype(_ i: Int) throws -> DType { try inputType(i).dtype }

  public func outputType(_ o: Int = 0) -> TensorType { graph.type(of: node.outputs[o]) }

  /// The data of input `i` when it is a compile-time constant (attributes-as-inputs such as axes,
  /// pads, scales), else nil.
  public func constant(_ i: Int) -> TensorData? {
    guard hasInput(i), let id = node.inputs[i] else { return nil }
    return graph.constants[id]
  }

  /// Input `i`'s element at `coordinates` (one per axis of input `i`).
  public func element(_ i: Int, at coordinates: [Expr]) throws -> Expr {
    let rank = try shape(i).count
    guard coordinates.count == rank else {
      throw LoweringError(node, "internal: input \(i) has rank \(rank), \(coordinates.count) coordinates given")
    }
    return try elementProvider(i, coordinates)
  }

  /// Input `i`'s element under multidirectional broadcasting to `outputShape` (`coordinates` has
  /// one entry per output axis): leading axes dropped, size-1 axes pinned to 0.
  public func broadcastElement(_ i: Int, at coordinates: [Expr]) throws -> Expr {
    let inputShape = try shape(i)
    let offset = coordinates.count - inputShape.count
    guard offset >= 0 else { throw LoweringError(node, "input \(i) has a higher rank than the output") }
    let mapped = inputShape.enumerated().map { axis, extent in extent == 1 ? Expr.index(0) : coordinates[axis + offset] }
    return try element(i, at: mapped)
  }

  /// A reduction variable unique within the kernel being built.
  public func freshVariable() -> Int { variableCounter.next() }

  /// The sum over `loops` of the product of `factors` masked by `conditions`, stated as a
  /// `Contraction` of the region (the schedulers read its operands from the statement).
  public func sumOfProducts(over loops: [(variable: Int, extent: Int)], factors: [Expr], conditions: [Expr] = [], type: ValueType) -> Expr {
    let (value, contraction) = Contraction.sum(
      over: loops.map { Contraction.Loop(variable: $0.variable, extent: $0.extent) }, factors: factors, conditions: conditions, type: type)
    if let contraction { stateProvider(.contraction(contraction)) }
    return value
  }

  /// The maximum over `loops` of `element` where `conditions` hold (`lowest` elsewhere), stated
  /// as a `WindowMaximum` of the region.
  public func windowMaximum(over loops: [(variable: Int, extent: Int)], element: Expr, conditions: [Expr], lowest: Expr) -> Expr {
    let live = conditions.filter { $0.boolConstant != true }
    let body = live.isEmpty ? element : Expr.choose(.all(live), element, lowest)
    guard !loops.isEmpty else { return body }
    let value = Expr.reduce(.maximum, over: loops, body: body)
    stateProvider(
      .maximum(
        WindowMaximum(
          reduction: value, loops: loops.map { Contraction.Loop(variable: $0.variable, extent: $0.extent) }, element: element,
          conditions: live)))
    return value
  }

  public func error(_ message: String) -> LoweringError { LoweringError(node, message, in: graph) }

  private func missingInput(_ i: Int) -> LoweringError {
    LoweringError(node, "input \(i) is required but missing", in: graph)
  }
}

/// Hands out reduction-variable ids, unique within one kernel.
public final class VariableCounter {
  private var counter = 0
  public init() {}
  public func next() -> Int {
    counter += 1
    return counter - 1
  }
}

/// A lowering failed: the op, node and opset are named.
public struct LoweringError: Error, CustomStringConvertible, Sendable {
  public var message: String

  /// A message about `node`; an unnamed node is named after its first output when `graph` is
  /// given (`node 'y' (Acos, opset 22): ...`).
  public init(_ node: Node, _ message: String, in graph: Graph? = nil) {
    var name = node.name
    if name.isEmpty, let graph, let output = node.outputs.first, graph.values.indices.contains(output.index) {
      name = graph.values[output.index].name
    }
    self.message = "node '\(name)' (\(node.op), opset \(node.version)): \(message)"
  }

  public init(message: String) { self.message = message }

  public var description: String { message }
}

/// Structure a lowering states about the region it is lowered into.
public enum RegionStatement: Sendable {
  case contraction(Contraction)
  case maximum(WindowMaximum)
}

/// One op's lowering: the expression of output `output`'s element at `coordinates` (one index
/// expression per output axis).
public struct OpLowering: Sendable {
  public var kind: FusionKind
  /// The kind of a region whose reduction this op computes (`.reduction` ops only).
  public var region: RegionKind
  public var lower: @Sendable (LoweringContext, _ output: Int, _ coordinates: [Expr]) throws -> Expr
  /// A custom op's program for output `output` (`kind == .custom` only).
  public var program: (@Sendable (LoweringContext, _ output: Int) throws -> KernelProgram)?

  /// A custom op: each output is computed by its own program, in a region of its own.
  public init(program: @escaping @Sendable (LoweringContext, _ output: Int) throws -> KernelProgram) {
    kind = .custom
    region = .custom
    lower = { ctx, _, _ in throw ctx.error("internal: a custom op has no per-element form") }
    self.program = program
  }

  public init(
    _ kind: FusionKind, region: RegionKind? = nil,
    _ lower: @escaping @Sendable (LoweringContext, _ output: Int, _ coordinates: [Expr]) throws -> Expr
  ) {
    self.kind = kind
    self.region = region ?? (kind == .reduction ? .reduction : .elementwise)
    self.lower = lower
  }
}
