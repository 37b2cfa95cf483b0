import KilnIR

// Control flow (If, Loop, Scan). Kiln compiles static shapes ahead of time and has no runtime
// interpreter, so control flow is resolved at import: a subgraph is inlined into the outer graph
// (every name it defines gets a fresh name; names it captures from enclosing scopes resolve to the
// outer values), an If on a constant condition inlines the chosen branch and an If on a runtime
// condition inlines both and selects each output with Where, and Loop and Scan unroll.

extension ImportSession {
  /// Ops with subgraphs that the importer resolves itself.
  static let controlFlowOps: Set<String> = ["If", "Loop", "Scan"]
  /// The most iterations a Loop or Scan may unroll to.
  static let maxUnrolledIterations = 4096
  /// The most subgraph nodes one import may inline, counting every unrolled iteration and nesting.
  static let maxInlinedNodes = 1 << 18

  mutating func importControlFlowNode(_ proto: Onnx_NodeProto, version: Int, used: Set<String>) throws {
    switch proto.opType {
    case "If": try importIf(proto, used: used)
    case "Loop": try importLoop(proto, used: used)
    case "Scan": try importScan(proto, version: version, used: used)
    default: throw ONNXImportError(.internalError, "\(proto.opType) is not a control-flow op")
    }
  }

  // MARK: Names and scopes

  /// The subgraphs held by `node`'s attributes.
  static func subgraphs(of node: Onnx_NodeProto) -> [Onnx_GraphProto] {
    node.attribute.flatMap { attribute in (attribute.hasG ? [attribute.g] : []) + attribute.graphs }
  }

  /// The names `node` reads: its inputs, then the names its subgraphs capture from enclosing scopes.
  static func readNames(_ node: Onnx_NodeProto) -> [String] {
    let graphs = subgraphs(of: node)
    guard !graphs.isEmpty else { return node.input }
    return node.input + graphs.flatMap(capturedNames)
  }

  /// The names a subgraph's own inputs, initializers and nodes define.
  static func definedNames(_ graph: Onnx_GraphProto) -> Set<String> {
    var names = Set(graph.input.map(\.name))
    names.formUnion(graph.initializer.map(\.name))
    names.formUnion(graph.sparseInitializer.map(\.values.name))
    for node in graph.node { names.formUnion(node.output.filter { !$0.isEmpty }) }
    return names
  }

  /// The names `graph` (or a subgraph nested in it) reads without defining them, in first-use order.
  static func capturedNames(_ graph: Onnx_GraphProto) -> [String] {
    let defined = definedNames(graph)
    var seen = Set<String>()
    var captured: [String] = []
    for name in graph.node.flatMap(readNames) + graph.output.map(\.name)
    where !name.isEmpty && !defined.contains(name) && seen.insert(name).inserted {
      captured.append(name)
    }
    return captured
  }

  /// `node` with every name in `renames` replaced: in its inputs, outputs, and in its subgraphs
  /// wherever they do not define the name themselves.
  static func renamed(_ node: Onnx_NodeProto, _ renames: [String: String]) -> Onnx_NodeProto {
    var node = node
    node.input = node.input.map { renames[$0] ?? $0 }
    node.output = node.output.map { renames[$0] ?? $0 }
    for index in node.attribute.indices {
      if node.attribute[index].hasG { node.attribute[index].g = renamed(node.attribute[index].g, renames) }
      node.attribute[index].graphs = node.attribute[index].graphs.map { renamed($0, renames) }
    }
    return node
  }

  /// `graph` with the names it captures renamed by `renames` (names it defines shadow outer ones).
  static func renamed(_ graph: Onnx_GraphProto, _ renames: [String: String]) -> Onnx_GraphProto {
    let local = definedNames(graph)
    let visible = local.contains(where: { renames[$0] != nil }) ? renames.filter { !local.contains($0.key) } : renames
    var graph = graph
    graph.node = graph.node.map { renamed($0, visible) }
    for index in graph.output.indices {
      if let name = visible[graph.output[index].name] { graph.output[index].name = name }
    }
    return graph
  }

  /// Imports the nodes of `body` that its outputs need into the outer graph and returns the outer
  /// names of its outputs. The body's inputs are bound to the outer values named by `arguments`;
  /// every other name it defines gets a fresh name; names it captures resolve in the enclosing scopes.
  mutating func inline(_ body: Onnx_GraphProto, arguments: [String], what: String) throws -> [String] {
    guard body.input.count == arguments.count else {
      throw ONNXImportError.model("\(what) has \(body.input.count) inputs, expected \(arguments.count)")
    }
    if let sparse = body.sparseInitializer.first {
      throw ONNXImportError(.unsupportedType, "sparse initializer '\(sparse.values.name)' of \(what) is not supported")
    }
    try checkInlineBudget(body.node.count, what: what)
    inlinedNodes += body.node.count
    var renames: [String: String] = [:]
    var definitions: [String: Definition] = [:]
    func define(_ name: String, _ definition: Definition, as outer: String) throws {
      guard !name.isEmpty else { throw ONNXImportError.model("\(what) defines a value with an empty name") }
      guard definitions[name] == nil else { throw ONNXImportError.model("\(what) defines '\(name)' twice") }
      definitions[name] = definition
      renames[name] = outer
    }
    for (index, tensor) in body.initializer.enumerated() {
      let name = syntheticName(tensor.name)
      let data = try decoder.decode(tensor, what: "initializer '\(tensor.name)' of \(what)")
      values[name] = graph.addConstant(data, name: name)
      try define(tensor.name, .initializer(index), as: name)
    }
    for (index, info) in body.input.enumerated() {
      // An input that is also an initializer (IR version < 4) keeps the initializer.
      if case .initializer? = definitions[info.name] { continue }
      try define(info.name, .input(index), as: arguments[index])
    }
    for (index, node) in body.node.enumerated() {
      for name in node.output where !name.isEmpty { try define(name, .node(index), as: syntheticName(name)) }
    }

    let order = try topologicalOrder(body.node, definitions)
    var live = [Bool](repeating: false, count: body.node.count)
    var used = Set<String>()
    var pending = body.output.map(\.name)
    while let name = pending.popLast() {
      guard used.insert(renames[name] ?? name).inserted else { continue }
      if case .node(let index)? = definitions[name], !live[index] {
        live[index] = true
        pending += Self.readNames(body.node[index]).filter { !$0.isEmpty }
      }
    }
    for index in order where live[index] {
      try importNode(Self.renamed(body.node[index], renames), used: used)
    }
    return body.output.map { renames[$0.name] ?? $0.name }
  }

  // MARK: Helpers

  /// The subgraph held by attribute `name`.
  func graphAttribute(_ proto: Onnx_NodeProto, _ name: String) throws -> Onnx_GraphProto {
    guard let attribute = proto.attribute.first(where: { $0.name == name }) else {
      throw ONNXImportError.attribute("attribute '\(name)' is required")
    }
    guard attribute.type == .graph || (attribute.type == .undefined && attribute.hasG) else {
      throw ONNXImportError.attribute("attribute '\(name)' must be a graph")
    }
    return attribute.g
  }

  /// The node's attributes other than its subgraphs `graphs`, rejecting any not in `allowed`.
  mutating func plainAttributes(_ proto: Onnx_NodeProto, allowed: Set<String>, graphs: Set<String>) throws
    -> [String: AttributeValue]
  {
    var attributes: [String: AttributeValue] = [:]
    var seen = Set<String>()
    for attribute in proto.attribute {
      guard allowed.contains(attribute.name) || graphs.contains(attribute.name) else {
        throw ONNXImportError.unsupported("unsupported attribute '\(attribute.name)'")
      }
      guard seen.insert(attribute.name).inserted else {
        throw ONNXImportError.attribute("attribute '\(attribute.name)' appears twice")
      }
      if !graphs.contains(attribute.name) { attributes[attribute.name] = try decoder.attribute(attribute) }
    }
    return attributes
  }

  /// An ints attribute, or `count` copies of `fallback` when absent; it must hold `count` values.
  func intsAttribute(_ attributes: [String: AttributeValue], _ name: String, count: Int, default fallback: Int) throws
    -> [Int]
  {
    guard let value = attributes[name] else { return Array(repeating: fallback, count: count) }
    guard case .ints(let ints) = value else { throw ONNXImportError.attribute("attribute '\(name)' must be ints") }
    guard ints.count == count else {
      throw ONNXImportError.attribute("attribute '\(name)' has \(ints.count) values, expected \(count)")
    }
    return ints.map { Int($0) }
  }

  /// A scalar constant, by name.
  mutating func scalarConstant(_ data: TensorData, base: String) -> String {
    let name = syntheticName(base)
    values[name] = graph.addConstant(data, name: name)
    return name
  }

  /// Makes `target` name the same value (tensor, sequence or empty optional) as `source`.
  mutating func alias(_ target: String, to source: String) throws {
    guard !target.isEmpty else { return }
    if let elements = sequences[source] {
      sequences[target] = elements
    } else if emptyOptionals.contains(source) {
      emptyOptionals.insert(target)
    } else if let id = values[source] {
      values[target] = id
    } else {
      throw ONNXImportError(.internalError, "'\(source)' has no value")
    }
  }

  /// The value of a constant single-element operand, or a dynamic-shape error naming `operand` and,
  /// through `operandSlot`, the runtime inputs to bind.
  func constantScalar(_ name: String, slot: Int, _ what: String) throws -> TensorData {
    guard let id = values[name] else {
      throw ONNXImportError.shape("input \(slot) (\(what)) must be a tensor")
    }
    guard let data = graph.constants[id] else {
      throw ONNXImportError.runtimeOperand(slot: slot, what)
    }
    guard data.elementCount == 1 else {
      throw ONNXImportError.shape("input \(slot) (\(what)) must hold one element, got \(data.type)")
    }
    return data
  }

  /// A dynamic-shape error about `value`, naming the runtime inputs it is computed from.
  func runtimeValueError(_ message: String, value: ValueID) -> ONNXImportError {
    var error = ONNXImportError.dynamic(message)
    error.require(runtimeInputs(feeding: value))
    return error
  }

  /// Stacks per-iteration values along a new axis `axis` into `output`. Without iterations, the
  /// shape comes from the body's declaration of the output, which must then be static.
  mutating func stack(
    _ elements: [String], axis: Int, output: String, declared: Onnx_ValueInfoProto, what: String, used: Set<String>
  ) throws {
    guard !output.isEmpty else { return }
    if !elements.isEmpty {
      try concatFromSequence(
        elements, output: output, axis: axis, newAxis: true, version: 0, used: used.union([output]))
      return
    }
    guard case .tensorType(let tensor)? = declared.type.value, let dtype = DType(onnxCode: tensor.elemType),
      tensor.hasShape
    else {
      throw ONNXImportError.shape("\(what) has no iterations and its body does not declare the scan output's type")
    }
    var shape: [Int] = try tensor.shape.dim.map { dim in
      guard case .dimValue(let value)? = dim.value, value >= 0 else {
        throw ONNXImportError.shape("\(what) has no iterations and its body's scan output has no static shape")
      }
      return Int(value)
    }
    guard axis >= -shape.count - 1 && axis <= shape.count else {
      throw ONNXImportError.attribute("scan output axis \(axis) is out of range for rank \(shape.count + 1)")
    }
    shape.insert(0, at: axis < 0 ? axis + shape.count + 1 : axis)
    values[output] = graph.addConstant(try TensorData(type: TensorType(dtype, shape), bytes: []), name: output)
  }

  /// Checks that inlining `count` more subgraph nodes stays within `maxInlinedNodes`.
  func checkInlineBudget(_ count: Int, what: String) throws {
    guard count <= Self.maxInlinedNodes - inlinedNodes else {
      throw ONNXImportError.budget(
        "inlining \(what) exceeds \(Self.maxInlinedNodes) subgraph nodes in all; Kiln unrolls control flow at "
          + "compile time")
    }
  }

  /// Checks that unrolling one more iteration stays within `maxUnrolledIterations`.
  func checkUnrollBudget(iteration: Int, what: String) throws {
    guard iteration < Self.maxUnrolledIterations else {
      throw ONNXImportError.budget(
        "\(what) runs more than \(Self.maxUnrolledIterations) iterations; Kiln unrolls loops at compile time")
    }
  }

  // MARK: If

  mutating func importIf(_ proto: Onnx_NodeProto, used: Set<String>) throws {
    _ = try plainAttributes(proto, allowed: [], graphs: ["then_branch", "else_branch"])
    let thenBranch = try graphAttribute(proto, "then_branch")
    let elseBranch = try graphAttribute(proto, "else_branch")
    guard proto.input.count == 1, !proto.input[0].isEmpty, let conditionID = values[proto.input[0]] else {
      throw ONNXImportError.model("takes 1 input (a tensor condition)")
    }
    let outputs = Array(proto.output)
    guard thenBranch.output.count == outputs.count, elseBranch.output.count == outputs.count else {
      throw ONNXImportError.model(
        "has \(outputs.count) outputs but its branches give \(thenBranch.output.count) and \(elseBranch.output.count)")
    }
    let conditionType = graph.type(of: conditionID)
    guard conditionType.dtype == .bool, conditionType.elementCount == 1 else {
      throw ONNXImportError.shape("the condition must be a single bool, got \(conditionType)")
    }
    if let data = graph.constants[conditionID] {
      let branch = data.bools()[0] ? thenBranch : elseBranch
      let results = try inline(branch, arguments: [], what: data.bools()[0] ? "then_branch" : "else_branch")
      for (output, result) in zip(outputs, results) { try alias(output, to: result) }
      return
    }
    let thenResults = try inline(thenBranch, arguments: [], what: "then_branch")
    let elseResults = try inline(elseBranch, arguments: [], what: "else_branch")
    var condition = proto.input[0]
    if conditionType.rank > 0 {
      condition = syntheticName(proto.input[0])
      try importSynthetic(
        "Reshape", name: condition, inputs: [proto.input[0], int64Constant([], base: condition)], outputs: [condition],
        used: used)
    }
    for (slot, output) in outputs.enumerated() where !output.isEmpty {
      try select(condition, thenResults[slot], elseResults[slot], output: output, slot: slot, used: used)
    }
  }

  /// Makes `output` the runtime choice between the branch results `a` (condition true) and `b`.
  mutating func select(_ condition: String, _ a: String, _ b: String, output: String, slot: Int, used: Set<String>)
    throws
  {
    if a == b { return try alias(output, to: a) }
    let differ = "output \(slot): the branches give different"
    let runtime = "; Kiln selects between branches at run time only when they match"
    if sequences[a] != nil || sequences[b] != nil {
      guard let first = sequences[a], let second = sequences[b], first.count == second.count else {
        let counts = [a, b].map { sequences[$0].map { "a sequence of \($0.count)" } ?? "not a sequence" }
        throw ONNXImportError.shape("\(differ) kinds (\(counts[0]) vs \(counts[1]))\(runtime)")
      }
      sequences[output] = try zip(first, second).map { pair in
        let element = syntheticName(output)
        try select(condition, pair.0, pair.1, output: element, slot: slot, used: used)
        return element
      }
      return
    }
    if emptyOptionals.contains(a) || emptyOptionals.contains(b) {
      guard emptyOptionals.contains(a) && emptyOptionals.contains(b) else {
        throw ONNXImportError.shape("\(differ) kinds (an empty optional and a value)\(runtime)")
      }
      emptyOptionals.insert(output)
      return
    }
    guard let first = values[a], let second = values[b] else {
      throw ONNXImportError(.internalError, "a branch result of output \(slot) has no value")
    }
    if first == second { return try alias(output, to: a) }
    let types = (graph.type(of: first), graph.type(of: second))
    guard types.0 == types.1 else {
      throw ONNXImportError.shape(
        "\(differ) shapes or types (then \(types.0), else \(types.1)) and the condition is computed at run time\(runtime)"
      )
    }
    try importSynthetic(
      "Where", name: output, inputs: [condition, a, b], outputs: [output], used: used.union([output]))
  }

  // MARK: Loop

  mutating func importLoop(_ proto: Onnx_NodeProto, used: Set<String>) throws {
    _ = try plainAttributes(proto, allowed: [], graphs: ["body"])
    let body = try graphAttribute(proto, "body")
    guard proto.input.count >= 2 else {
      throw ONNXImportError.model("takes 2 or more inputs, got \(proto.input.count)")
    }
    let initial = Array(proto.input.dropFirst(2))
    if let index = initial.firstIndex(where: \.isEmpty) {
      throw ONNXImportError.model("loop-carried input \(index + 2) has no value")
    }
    let carriedCount = initial.count
    guard body.input.count == carriedCount + 2, body.output.count >= carriedCount + 1 else {
      throw ONNXImportError.model(
        "the body has \(body.input.count) inputs and \(body.output.count) outputs; with \(carriedCount) "
          + "loop-carried values it needs \(carriedCount + 2) inputs and at least \(carriedCount + 1) outputs")
    }
    let scanCount = body.output.count - 1 - carriedCount
    guard proto.output.count == carriedCount + scanCount else {
      throw ONNXImportError.model("has \(proto.output.count) outputs, expected \(carriedCount + scanCount)")
    }

    var tripCount = Int.max
    if !proto.input[0].isEmpty {
      let data = try constantScalar(proto.input[0], slot: 0, "Loop trip count")
      tripCount = max(0, Int(data.int64s()[0]))
    }
    let conditioned = !proto.input[1].isEmpty
    var running = true
    if conditioned { running = try constantScalar(proto.input[1], slot: 1, "Loop condition").bools()[0] }
    guard conditioned || tripCount != .max else {
      throw ONNXImportError.model("has neither a trip count nor a condition, so it never ends")
    }

    let what = "Loop '\(Self.displayName(proto))'"
    if !conditioned && tripCount <= Self.maxUnrolledIterations {
      try checkInlineBudget(tripCount * body.node.count, what: what)
    }
    var carried = initial
    var scans = [[String]](repeating: [], count: scanCount)
    var iteration = 0
    while running && iteration < tripCount {
      try checkUnrollBudget(iteration: iteration, what: what)
      let arguments = [
        scalarConstant(TensorData([Int64(iteration)], shape: []), base: "\(Self.displayName(proto))/iteration"),
        scalarConstant(TensorData([true], shape: []), base: "\(Self.displayName(proto))/condition"),
      ]
      let results = try inline(body, arguments: arguments + carried, what: "the Loop body")
      if conditioned { running = try bodyCondition(results[0]) }
      carried = Array(results[1..<(1 + carriedCount)])
      for slot in 0..<scanCount { scans[slot].append(results[1 + carriedCount + slot]) }
      iteration += 1
    }
    for (output, value) in zip(proto.output, carried) { try alias(output, to: value) }
    for slot in 0..<scanCount {
      try stack(
        scans[slot], axis: 0, output: proto.output[carriedCount + slot],
        declared: body.output[1 + carriedCount + slot], what: what, used: used)
    }
  }

  /// The value of the condition a Loop body computed; it must fold to a constant.
  func bodyCondition(_ name: String) throws -> Bool {
    guard let id = values[name] else { throw ONNXImportError.shape("the Loop body's condition must be a tensor") }
    guard let data = graph.constants[id] else {
      throw runtimeValueError(
        "the Loop condition computed by the body is only known at run time; Kiln needs it to be a constant",
        value: id)
    }
    guard data.elementCount == 1 else {
      throw ONNXImportError.shape("the Loop body's condition must hold one element, got \(data.type)")
    }
    return data.bools()[0]
  }

  // MARK: Scan

  mutating func importScan(_ proto: Onnx_NodeProto, version: Int, used: Set<String>) throws {
    let legacy = version < 9
    let allowed: Set<String> =
      legacy
      ? ["num_scan_inputs", "directions"]
      : ["num_scan_inputs", "scan_input_axes", "scan_input_directions", "scan_output_axes", "scan_output_directions"]
    let attributes = try plainAttributes(proto, allowed: allowed, graphs: ["body"])
    let body = try graphAttribute(proto, "body")
    guard case .int(let rawScanInputs)? = attributes["num_scan_inputs"] else {
      throw ONNXImportError.attribute("attribute 'num_scan_inputs' is required (an int)")
    }
    let inputs = legacy ? Array(proto.input.dropFirst()) : Array(proto.input)
    let scanInputCount = Int(rawScanInputs)
    guard scanInputCount >= 1, scanInputCount <= inputs.count else {
      throw ONNXImportError.attribute("num_scan_inputs \(rawScanInputs) must be in 1...\(inputs.count)")
    }
    if let index = inputs.firstIndex(where: \.isEmpty) {
      throw ONNXImportError.model("input \(index + (legacy ? 1 : 0)) has no value")
    }
    let stateCount = inputs.count - scanInputCount
    guard body.input.count == inputs.count, body.output.count >= stateCount else {
      throw ONNXImportError.model(
        "the body has \(body.input.count) inputs and \(body.output.count) outputs; it needs \(inputs.count) inputs "
          + "and at least \(stateCount) outputs")
    }
    let scanOutputCount = body.output.count - stateCount
    guard proto.output.count == body.output.count else {
      throw ONNXImportError.model("has \(proto.output.count) outputs, expected \(body.output.count)")
    }
    var plan = ScanPlan(
      body: body, states: Array(inputs[..<stateCount]), scanInputs: Array(inputs[stateCount...]),
      inputAxes: [], inputReverse: [], outputAxes: [], outputReverse: [], what: "Scan '\(Self.displayName(proto))'")
    if legacy {
      if proto.input.first?.isEmpty == false {
        throw ONNXImportError.unsupported(
          "input 0 (sequence_lens) is not supported; every sequence must be full length")
      }
      plan.inputReverse = try intsAttribute(attributes, "directions", count: scanInputCount, default: 0).map { $0 != 0 }
      plan.inputAxes = Array(repeating: 0, count: scanInputCount)
      plan.outputAxes = Array(repeating: 0, count: scanOutputCount)
      plan.outputReverse = Array(repeating: false, count: scanOutputCount)
      try importBatchedScan(plan, outputs: Array(proto.output), used: used)
      return
    }
    plan.inputAxes = try intsAttribute(attributes, "scan_input_axes", count: scanInputCount, default: 0)
    plan.inputReverse = try intsAttribute(attributes, "scan_input_directions", count: scanInputCount, default: 0)
      .map { $0 != 0 }
    plan.outputAxes = try intsAttribute(attributes, "scan_output_axes", count: scanOutputCount, default: 0)
    plan.outputReverse = try intsAttribute(attributes, "scan_output_directions", count: scanOutputCount, default: 0)
      .map { $0 != 0 }
    let results = try unrollScan(plan, base: proto.output.first { !$0.isEmpty } ?? proto.name, used: used)
    for (output, result) in zip(proto.output, results) { try alias(output, to: result) }
  }

  /// What one Scan unrolls: the body, its state and scan inputs, and each scan axis and direction.
  struct ScanPlan {
    var body: Onnx_GraphProto
    var states: [String]
    var scanInputs: [String]
    var inputAxes: [Int]
    var inputReverse: [Bool]
    var outputAxes: [Int]
    var outputReverse: [Bool]
    var what: String
  }

  /// Unrolls a Scan (opset 9 form); returns the names of the final states, then the scan outputs.
  mutating func unrollScan(_ plan: ScanPlan, base: String, used: Set<String>) throws -> [String] {
    var length: Int?
    var axes: [Int] = []
    for (slot, name) in plan.scanInputs.enumerated() {
      guard let id = values[name] else { throw ONNXImportError.shape("scan input \(slot) must be a tensor") }
      let shape = graph.type(of: id).shape
      let axis = plan.inputAxes[slot]
      guard axis >= -shape.count && axis < shape.count else {
        throw ONNXImportError.attribute("scan input axis \(axis) is out of range for rank \(shape.count)")
      }
      axes.append(axis < 0 ? axis + shape.count : axis)
      guard length == nil || length == shape[axes[slot]] else {
        throw ONNXImportError.shape("the scan inputs have different lengths (\(length!) and \(shape[axes[slot]]))")
      }
      length = shape[axes[slot]]
    }
    if let length, length <= Self.maxUnrolledIterations {
      try checkInlineBudget(length * plan.body.node.count, what: plan.what)
    }
    var states = plan.states
    var scans = [[String]](repeating: [], count: plan.outputAxes.count)
    for step in 0..<(length ?? 0) {
      try checkUnrollBudget(iteration: step, what: plan.what)
      var arguments = states
      for (slot, name) in plan.scanInputs.enumerated() {
        let index = plan.inputReverse[slot] ? length! - 1 - step : step
        let element = syntheticName(name)
        try importSynthetic(
          "Gather", name: element,
          inputs: [name, scalarConstant(TensorData([Int64(index)], shape: []), base: element)], outputs: [element],
          intAttributes: ["axis": axes[slot]], used: used)
        arguments.append(element)
      }
      let results = try inline(plan.body, arguments: arguments, what: "the Scan body")
      states = Array(results[..<states.count])
      for slot in scans.indices { scans[slot].append(results[states.count + slot]) }
    }
    var outputs = states
    for slot in scans.indices {
      let name = syntheticName(base)
      try stack(
        plan.outputReverse[slot] ? scans[slot].reversed() : scans[slot], axis: plan.outputAxes[slot], output: name,
        declared: plan.body.output[states.count + slot], what: plan.what, used: used)
      outputs.append(name)
    }
    return outputs
  }

  /// Unrolls an opset-8 Scan: axis 0 of every input and output is a batch axis, each batch entry
  /// scans along its axis 0, and the results stack back along the batch axis.
  mutating func importBatchedScan(_ plan: ScanPlan, outputs: [String], used: Set<String>) throws {
    let operands = plan.states + plan.scanInputs
    let batches = try Set(
      operands.map { name -> Int in
        guard let id = values[name], let batch = graph.type(of: id).shape.first else {
          throw ONNXImportError.shape("every input of an opset-8 Scan needs a batch axis")
        }
        return batch
      })
    guard batches.count == 1, let batch = batches.first else {
      throw ONNXImportError.shape("the inputs have different batch sizes \(batches.sorted())")
    }
    var perBatch = [[String]](repeating: [], count: outputs.count)
    for entry in 0..<batch {
      var entryPlan = plan
      let sliced = try operands.map { name in
        let element = syntheticName(name)
        try importSynthetic(
          "Gather", name: element,
          inputs: [name, scalarConstant(TensorData([Int64(entry)], shape: []), base: element)], outputs: [element],
          intAttributes: ["axis": 0], used: used)
        return element
      }
      entryPlan.states = Array(sliced[..<plan.states.count])
      entryPlan.scanInputs = Array(sliced[plan.states.count...])
      let results = try unrollScan(entryPlan, base: outputs.first { !$0.isEmpty } ?? "scan", used: used)
      for slot in results.indices { perBatch[slot].append(results[slot]) }
    }
    for (slot, output) in outputs.enumerated() where !output.isEmpty {
      try stack(perBatch[slot], axis: 0, output: output, declared: Onnx_ValueInfoProto(), what: plan.what, used: used)
    }
  }
}

extension ONNXImportError {
  /// Names the runtime graph inputs that binding (`--bind`) would make the operand constant.
  mutating func require(_ inputs: [String]) {
    requiredInputs = inputs
    guard !inputs.isEmpty else { return }
    message +=
      " (bind graph input\(inputs.count == 1 ? "" : "s") " + inputs.map { "'\($0)'" }.joined(separator: ", ")
      + " to a value with --bind)"
  }
}
