import KilnIR

/// The result of dispatch-region formation: one kernel per materialised tensor, in execution order.
public struct DispatchPlan: Sendable {
  public struct Step: Sendable, Hashable {
    /// Index into `kernels`.
    public var kernel: Int
    /// The materialised values bound as the kernel's inputs, in binding order.
    public var inputs: [ValueID]
    public var output: ValueID
  }

  /// A graph output that is a graph input, a constant, or another output: copied, not computed.
  public struct Copy: Sendable, Hashable {
    public var source: ValueID
    public var destination: Int
  }

  public var graph: Graph
  public var kernels: [Kernel]
  public var steps: [Step]
  public var copies: [Copy]
  /// Values that live in memory: graph inputs, bound constants, and kernel outputs.
  public var materialized: Set<ValueID>
}

/// Forms dispatch regions and lowers each to a kernel.
///
/// A value is materialised (written to memory by its own dispatch) when it is a graph output,
/// when it contains a reduction that its consumer would otherwise recompute (anything but one
/// same-shape elementwise consumer), when several consumers would recompute it, or when fusing it
/// into a reduction's inner loop would multiply a long elementwise chain, or when it is a
/// transcendental chain (Erf, Exp, Tanh...) feeding a contraction, which reads each operand
/// element many times: GELU before a MatMul is computed once into memory, not once per use (and
/// the contraction's operand stays a plain load, which the tiled templates read fastest). A view
/// that chooses among three or more computed operands (Inception's concatenations) is also
/// materialised when a reduction reads it: a window over it would otherwise carry one copy of its
/// body per operand and per border case (GoogLeNet's seven Concat_MaxPool kernels were 38% of the
/// C compiler's time), and a copy into memory is cheap next to that. Everything else is
/// fused into its consumer: elementwise producers and consumers and movement ops (as index
/// arithmetic on loads) join the region of the root they feed or follow.
public enum FormDispatchRegions {
  /// Elementwise chains longer than this are not fused into a reduction's inner loop.
  static let maxChainInReduction = 6
  /// Fused expressions are capped at this many ops (by node count) to bound recomputation.
  static let maxFusedCost = 48
  /// Ops evaluated with a transcendental function.
  static let transcendentalOps: Set<String> = [
    "Erf", "Exp", "Log", "Tanh", "Sigmoid", "Softplus", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
    "Cosh", "Asinh", "Acosh", "Atanh", "Gelu", "Mish", "Elu", "Selu", "Celu", "HardSigmoid", "Swish",
  ]
  /// Ops that read each element of an operand many times.
  static let contractionOps: Set<String> = [
    "MatMul", "Gemm", "Conv", "ConvTranspose", "MatMulInteger", "ConvInteger", "Einsum", "DeformConv",
  ]

  public static func run(_ graph: Graph) throws -> DispatchPlan {
    let producers = graph.producers()
    let consumers = graph.consumers()
    var lowerings: [Int: OpLowering] = [:]
    for (index, node) in graph.nodes.enumerated() {
      guard let lowering = try OpLowerings.lowering(for: node) else {
        throw LoweringError(node, "unsupported op \(node.domain.isEmpty ? "" : node.domain + ".")\(node.op)")
      }
      lowerings[index] = lowering
    }

    let graphOutputs = Set(graph.outputs)
    var materialized = Set(graph.inputs)
    for id in graph.constants.keys { materialized.insert(id) }
    var containsReduction: [ValueID: Bool] = [:]
    var cost: [ValueID: Int] = [:]
    var transcendental: [ValueID: Bool] = [:]

    for (index, node) in graph.nodes.enumerated() {
      guard let lowering = lowerings[index] else { continue }
      var inlinedReduction = false
      var inlinedCost = 0
      var inlinedTranscendental = transcendentalOps.contains(node.op)
      for case let input? in node.inputs where !materialized.contains(input) {
        inlinedReduction = inlinedReduction || containsReduction[input, default: false]
        inlinedCost += cost[input, default: 0]
        inlinedTranscendental = inlinedTranscendental || transcendental[input, default: false]
      }
      for output in node.outputs {
        let uses = consumers[output] ?? []
        let reduction = lowering.kind == .reduction || inlinedReduction
        let ownCost = 1 + inlinedCost
        containsReduction[output] = reduction
        cost[output] = ownCost
        transcendental[output] = inlinedTranscendental
        if graphOutputs.contains(output) {
          materialized.insert(output)
          continue
        }
        if uses.isEmpty { continue }
        let outputShape = graph.type(of: output).shape
        let consumerNodes = uses.map { graph.nodes[$0.node] }
        let consumerKinds = uses.map { lowerings[$0.node]?.kind ?? .reduction }
        // A custom op's program reads its inputs from memory and writes its outputs there.
        if lowering.kind == .custom || consumerKinds.contains(.custom) {
          materialized.insert(output)
          continue
        }
        if reduction {
          // Only one same-shape elementwise consumer may absorb a reduction.
          let single =
            uses.count == 1 && consumerKinds[0] == .elementwise
            && consumerNodes[0].outputs.allSatisfy { graph.type(of: $0).shape == outputShape }
          if !single { materialized.insert(output) }
          continue
        }
        let pureView =
          lowering.kind == .movement
          && node.inputs.allSatisfy { input in input.map { materialized.contains($0) } ?? true }
        let computedOperands = node.inputs.compactMap { $0 }.filter { graph.constants[$0] == nil }.count
        if uses.count > 1 && !pureView {
          materialized.insert(output)
        } else if lowering.kind == .movement && computedOperands >= 3 && consumerKinds.contains(.reduction) {
          materialized.insert(output)
        } else if ownCost > maxChainInReduction && consumerKinds.contains(.reduction) {
          materialized.insert(output)
        } else if inlinedTranscendental && consumerNodes.contains(where: { contractionOps.contains($0.op) }) {
          materialized.insert(output)
        } else if ownCost > maxFusedCost {
          materialized.insert(output)
        }
      }
    }

    // Lower each materialised, computed value to a kernel.
    var kernels: [Kernel] = []
    var steps: [DispatchPlan.Step] = []
    var copies: [DispatchPlan.Copy] = []
    var kernelOf: [ValueID: Int] = [:]
    for (index, node) in graph.nodes.enumerated() {
      for (slot, output) in node.outputs.enumerated() where materialized.contains(output) && kernelOf[output] == nil {
        let type = graph.type(of: output)
        guard let count = type.elementCount, count > 0 else { continue }
        let builder = KernelBuilder(
          graph: graph, producers: producers, lowerings: lowerings, materialized: materialized)
        let body: Expr
        var region: Region?
        if let lowering = lowerings[index], lowering.kind == .custom {
          // The body of a custom region is unused: its program computes the output.
          let program = try builder.program(nodeIndex: index, output: slot)
          body = Expr.constant(0, .compute(type.dtype))
          region = Region(kind: .custom, program: program)
        } else {
          body = try builder.lower(nodeIndex: index, output: slot, coordinates: (0..<type.rank).map { .coordinate($0) })
        }
        // Named after the fused ops in execution order (producers first), e.g. k3_Conv_Add_Relu.
        var opNames: [String] = []
        for op in builder.sourceOpTypes.reversed() where !opNames.contains(op) { opNames.append(op) }
        let name = "k\(kernels.count)_" + opNames.prefix(4).map(sanitize).joined(separator: "_")
        let kernel = Kernel(
          name: name,
          inputs: builder.bindings.map {
            Kernel.Operand(dtype: graph.type(of: $0).dtype, elementCount: graph.type(of: $0).elementCount ?? 0)
          },
          output: Kernel.Operand(dtype: type.dtype, elementCount: count), shape: type.shape, body: body,
          sourceOps: builder.sourceOps, region: region ?? builder.region(of: body))
        try KernelVerifier().verify(kernel)
        kernels.append(kernel)
        kernelOf[output] = kernels.count - 1
        steps.append(DispatchPlan.Step(kernel: kernels.count - 1, inputs: builder.bindings, output: output))
      }
    }
    // Graph outputs that nothing computes (inputs, constants) or that repeat another output.
    var seen = Set<ValueID>()
    for (position, output) in graph.outputs.enumerated() {
      let computed = kernelOf[output] != nil
      if !computed || seen.contains(output) {
        copies.append(DispatchPlan.Copy(source: output, destination: position))
      }
      seen.insert(output)
    }
    return DispatchPlan(graph: graph, kernels: kernels, steps: steps, copies: copies, materialized: materialized)
  }

  static func sanitize(_ op: String) -> String {
    String(op.map { $0.isLetter || $0.isNumber ? $0 : "_" })
  }
}

/// Builds one kernel body, fusing non-materialised producers by recursive lowering.
final class KernelBuilder {
  let graph: Graph
  let producers: [ValueID: ValueUse]
  let lowerings: [Int: OpLowering]
  let materialized: Set<ValueID>
  let variables = VariableCounter()
  private(set) var bindings: [ValueID] = []
  private(set) var sourceOps: [String] = []
  /// What the fused lowerings stated, and the region kinds of the reductions they computed.
  private var statements: [RegionStatement] = []
  private var kinds = Set<RegionKind>()
  /// Op types of `sourceOps`, in the same order.
  private(set) var sourceOpTypes: [String] = []
  private var sourceSet = Set<String>()

  init(graph: Graph, producers: [ValueID: ValueUse], lowerings: [Int: OpLowering], materialized: Set<ValueID>) {
    self.graph = graph
    self.producers = producers
    self.lowerings = lowerings
    self.materialized = materialized
  }

  func lower(nodeIndex: Int, output: Int, coordinates: [Expr]) throws -> Expr {
    let node = graph.nodes[nodeIndex]
    guard let lowering = lowerings[nodeIndex] else { throw LoweringError(node, "no lowering") }
    if sourceSet.insert(node.name).inserted {
      sourceOps.append(node.name)
      sourceOpTypes.append(node.op)
    }
    if lowering.kind == .reduction { kinds.insert(lowering.region) }
    let context = LoweringContext(
      node: node, graph: graph, variables: variables,
      element: { [unowned self] slot, coords in
        guard slot < node.inputs.count, let input = node.inputs[slot] else {
          throw LoweringError(node, "input \(slot) is missing")
        }
        return try self.element(of: input, at: coords)
      },
      state: { [unowned self] in self.statements.append($0) })
    let expr = try lowering.lower(context, output, coordinates)
    let expected = ValueType.compute(graph.type(of: node.outputs[output]).dtype)
    // Lowerings compute in their natural type; the stored tensor decides the kernel's type.
    return expr.type == expected ? expr : .cast(expr, expected)
  }

  /// The program of custom op `nodeIndex`'s output `output`: its inputs are bound in slot order as
  /// they are read (all of them are in memory).
  func program(nodeIndex: Int, output: Int) throws -> KernelProgram {
    let node = graph.nodes[nodeIndex]
    guard let lowering = lowerings[nodeIndex], let program = lowering.program else { throw LoweringError(node, "no program") }
    sourceOps.append(node.name)
    sourceOpTypes.append(node.op)
    let context = LoweringContext(
      node: node, graph: graph, variables: variables, element: { _, _ in throw LoweringError(node, "internal: element of a custom op") },
      linear: { [unowned self] slot, index in
        guard slot < node.inputs.count, let input = node.inputs[slot] else { throw LoweringError(node, "input \(slot) is missing") }
        return .load(input: self.binding(of: input), dtype: self.graph.type(of: input).dtype, index: index)
      })
    return try program(context, output)
  }

  /// The binding of materialised value `value`, bound on first use.
  private func binding(of value: ValueID) -> Int {
    if let existing = bindings.firstIndex(of: value) { return existing }
    bindings.append(value)
    return bindings.count - 1
  }

  /// The region of a kernel computing `body`: the statements whose reductions it holds, and the
  /// kind of the reductions its lowerings computed (a stated contraction's before a stated
  /// window's, those before an indexed placement's, that before any other reduction);
  /// `.elementwise` without one.
  func region(of body: Expr) -> Region {
    let present = Set(body.postOrder().map(\.identity))
    var region = Region(kind: .elementwise)
    for statement in statements {
      switch statement {
      case .contraction(let c) where present.contains(c.reduction.identity): region.contractions.append(c)
      case .maximum(let m) where present.contains(m.reduction.identity): region.maxima.append(m)
      default: break
      }
    }
    if body.containsReduction {
      let stated = !region.contractions.isEmpty || !region.maxima.isEmpty
      if kinds.contains(.contraction), !region.contractions.isEmpty {
        region.kind = .contraction
      } else if kinds.contains(.window), stated {
        region.kind = .window
      } else {
        region.kind = kinds.contains(.gatherScatter) ? .gatherScatter : .reduction
      }
    }
    return region
  }

  /// A value's element at some coordinates, lowered once: a lowering that reads an operand at
  /// the same coordinates twice gets the same node back, so fused chains stay linear in size.
  private struct ElementKey: Hashable {
    var value: ValueID
    var coordinates: [Expr]
  }
  private var elements: [ElementKey: Expr] = [:]

  func element(of value: ValueID, at coordinates: [Expr]) throws -> Expr {
    let key = ElementKey(value: value, coordinates: coordinates)
    if let known = elements[key] { return known }
    let result = try lowerElement(of: value, at: coordinates)
    elements[key] = result
    return result
  }

  private func lowerElement(of value: ValueID, at coordinates: [Expr]) throws -> Expr {
    let type = graph.type(of: value)
    if let constant = graph.constants[value], constant.elementCount == 1 {
      return .literal(KernelBuilder.literal(constant))
    }
    if materialized.contains(value) || producers[value] == nil {
      return .load(input: binding(of: value), dtype: type.dtype, index: Expr.linearIndex(coordinates, shape: type.shape))
    }
    guard let producer = producers[value] else { throw LoweringError(message: "value \(value) has no producer") }
    return try lower(nodeIndex: producer.node, output: producer.slot, coordinates: coordinates)
  }

  /// A one-element constant as a literal of its compute type.
  static func literal(_ data: TensorData) -> Literal {
    let type = ValueType.compute(data.dtype)
    switch data.dtype {
    case .uint64:
      let value = data.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
      return .unsigned(UInt64(littleEndian: value), type)
    case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32:
      return .integer(data.int64s().first ?? 0, type)
    case .bool:
      return .of(data.bools().first == true ? 1 : 0, .bool)
    default:
      return .of(data.doubles().first ?? 0, type)
    }
  }
}

/// Type checking of kernel expressions against the kernel's inputs.
public enum KernelTyping {
  /// The type of `expr`, after checking that every load names a bound input of its dtype.
  public static func type(of expr: Expr, inputs: [DType]) throws -> ValueType {
    for node in expr.postOrder() {
      guard case .load(let input, let dtype, _) = node.kind else { continue }
      guard inputs.indices.contains(input) else { throw LoweringError(message: "load of unbound input \(input)") }
      guard inputs[input] == dtype else {
        throw LoweringError(message: "load of input \(input) as \(dtype.rawValue), bound as \(inputs[input].rawValue)")
      }
    }
    return expr.type
  }
}
