import KilnIR
import Testing

@testable import KilnONNX

extension ModelBuilder {
  /// A graph-valued attribute holding `body`'s graph.
  static func graphAttribute(_ name: String, _ body: ModelBuilder) -> Onnx_AttributeProto {
    var attribute = Onnx_AttributeProto()
    attribute.name = name
    attribute.type = .graph
    attribute.g = body.graph
    return attribute
  }

  /// Appends a node whose attributes include the subgraphs `graphs`.
  mutating func node(
    _ op: String, _ inputs: [String], _ outputs: [String], graphs: [String: ModelBuilder],
    _ attributes: [String: AttributeValue] = [:]
  ) {
    node(op, inputs, outputs, attributes)
    graph.node[graph.node.count - 1].attribute += graphs.keys.sorted().map { Self.graphAttribute($0, graphs[$0]!) }
  }
}

/// If, Loop and Scan resolve at import: branches inline, loops unroll.
@Suite struct ControlFlowImportTests {
  let scalarTrue = TensorData([true], shape: [])

  /// A branch computing `op(x, x)` from the captured outer value `x`.
  func branch(_ op: String, output: String) -> ModelBuilder {
    var body = ModelBuilder(name: op)
    body.node(op, ["x", "x"], [output])
    body.output(output)
    return body
  }

  func ifModel(condition: TensorData?, elseShape: [Int] = [2]) -> ModelBuilder {
    var builder = ModelBuilder(opset: 17)
    builder.input("x", .float32, [2])
    if let condition { builder.initializer("c", condition) } else { builder.input("c", .bool, []) }
    var elseBranch = branch("Mul", output: "e")
    if elseShape != [2] {
      elseBranch = ModelBuilder(name: "else")
      elseBranch.initializer("k", TensorData([Float](repeating: 1, count: elseShape.reduce(1, *)), shape: elseShape))
      elseBranch.node("Identity", ["k"], ["e"])
      elseBranch.output("e")
    }
    builder.node("If", ["c"], ["y"], graphs: ["then_branch": branch("Add", output: "t"), "else_branch": elseBranch])
    builder.output("y")
    return builder
  }

  func ops(_ graph: Graph) -> [String] { graph.nodes.map(\.op) }

  @Test func constantConditionInlinesTheChosenBranch() throws {
    let taken = try ifModel(condition: scalarTrue).importGraph()
    #expect(ops(taken) == ["Add"])
    #expect(outputType(taken).shape == [2])
    let other = try ifModel(condition: TensorData([false], shape: [1])).importGraph()
    #expect(ops(other) == ["Mul"])
  }

  @Test func runtimeConditionSelectsWithWhere() throws {
    let graph = try ifModel(condition: nil).importGraph()
    #expect(Set(ops(graph)) == ["Add", "Mul", "Where"])
    #expect(outputType(graph) == TensorType(.float32, [2]))

    let error = importError(ifModel(condition: nil, elseShape: [3]))
    #expect(error?.code == .shapeMismatch)
    #expect(error?.description.contains("node 'y' (If, opset 17)") == true, "\(String(describing: error))")
    #expect(error?.description.contains("branches give different shapes") == true, "\(String(describing: error))")
  }

  @Test func runtimeConditionSelectsSequencesPerElement() throws {
    func sequenceBranch(_ inputs: [String], output: String) -> ModelBuilder {
      var body = ModelBuilder(name: output)
      body.node("SequenceConstruct", inputs, [output])
      return body
    }
    func model(elseInputs: [String]) -> ModelBuilder {
      var builder = ModelBuilder(opset: 17)
      builder.input("c", .bool, [1])
      builder.input("a", .float32, [2])
      builder.input("b", .float32, [2])
      var then = sequenceBranch(["a", "b"], output: "s")
      then.graph.output.append(Onnx_ValueInfoProto.with { $0.name = "s" })
      var otherwise = sequenceBranch(elseInputs, output: "t")
      otherwise.graph.output.append(Onnx_ValueInfoProto.with { $0.name = "t" })
      builder.node("If", ["c"], ["seq"], graphs: ["then_branch": then, "else_branch": otherwise])
      builder.node("ConcatFromSequence", ["seq"], ["y"], ["axis": .int(0)])
      builder.output("y")
      return builder
    }
    let graph = try model(elseInputs: ["b", "a"]).importGraph()
    #expect(ops(graph).filter { $0 == "Where" }.count == 2)
    #expect(outputType(graph).shape == [4])
    let error = importError(model(elseInputs: ["b"]))
    #expect(error?.code == .shapeMismatch)
    #expect(error?.description.contains("a sequence of 2 vs a sequence of 1") == true, "\(String(describing: error))")
  }

  /// A Loop body `y_out = y_in + x + float(i)` with scan output `y_out`; condition `cond_out`.
  func loopBody(condition: (inout ModelBuilder) -> Void) -> ModelBuilder {
    var body = ModelBuilder(name: "body")
    body.input("i", .int64, [])
    body.input("cond_in", .bool, [])
    body.input("y_in", .float32, [2])
    condition(&body)
    body.node("Cast", ["i"], ["fi"], ["to": .int(1)])
    body.node("Add", ["y_in", "x"], ["sum"])
    body.node("Add", ["sum", "fi"], ["y_out"])
    body.node("Identity", ["y_out"], ["scan"])
    body.output("cond_out", .bool)
    body.output("y_out")
    body.output("scan")
    return body
  }

  func loopModel(tripCount: TensorData?, runtimeTripCount: Bool = false, body: ModelBuilder) -> ModelBuilder {
    var builder = ModelBuilder(opset: 17)
    builder.initializer("x", TensorData([Float(10), 20]))
    builder.initializer("y0", TensorData([Float(1), 2]))
    builder.initializer("true", scalarTrue)
    if runtimeTripCount { builder.input("M", .int64, []) }
    if let tripCount { builder.initializer("M", tripCount) }
    let trip = runtimeTripCount || tripCount != nil ? "M" : ""
    builder.node("Loop", [trip, "true", "y0"], ["y", "ys"], graphs: ["body": body])
    builder.output("y")
    builder.output("ys")
    return builder
  }

  @Test func loopUnrollsCarriedValuesAndScanOutputs() throws {
    let identity = loopBody { $0.node("Identity", ["cond_in"], ["cond_out"]) }
    let graph = try loopModel(tripCount: TensorData([Int64(3)], shape: []), body: identity).importGraph()
    // y: [1,2] -> [11,22] -> [22,43] -> [34,65]
    #expect(graph.constants[graph.outputs[0]]?.floats() == [34, 65])
    #expect(outputType(graph, 1).shape == [3, 2])
    #expect(graph.constants[graph.outputs[1]]?.floats() == [11, 22, 22, 43, 34, 65])

    // No trip count: the body's condition (i < 1) stops it after two iterations.
    let counted = loopBody { body in
      body.graph.initializer.append(ModelBuilder.tensorProto("one", TensorData([Int64(1)], shape: [])))
      body.node("Less", ["i", "one"], ["cond_out"])
    }
    let stopped = try loopModel(tripCount: nil, body: counted).importGraph()
    #expect(stopped.constants[stopped.outputs[0]]?.floats() == [22, 43])
    #expect(outputType(stopped, 1).shape == [2, 2])
  }

  @Test func loopWithRuntimeInputsStaysAGraph() throws {
    var body = ModelBuilder(name: "body")
    body.input("i", .int64, [])
    body.input("c", .bool, [])
    body.input("y_in", .float32, [2])
    body.node("Relu", ["y_in"], ["y_out"])
    body.output("c", .bool)
    body.output("y_out")
    body.output("y_out")
    var builder = ModelBuilder(opset: 17)
    builder.input("y0", .float32, [2])
    builder.initializer("M", TensorData([Int64(2)], shape: []))
    builder.node("Loop", ["M", "", "y0"], ["y", "ys"], graphs: ["body": body])
    builder.output("y")
    builder.output("ys")
    let graph = try builder.importGraph()
    #expect(ops(graph).filter { $0 == "Relu" }.count == 2)
    #expect(outputType(graph, 0).shape == [2])
    #expect(outputType(graph, 1).shape == [2, 2])
  }

  @Test func loopErrors() {
    let identity = loopBody { $0.node("Identity", ["cond_in"], ["cond_out"]) }
    let runtime = importError(loopModel(tripCount: nil, runtimeTripCount: true, body: identity))
    #expect(runtime?.code == .dynamicShape)
    #expect(
      runtime?.description.contains("Loop trip count is computed at run time; Kiln needs it to be a constant") == true,
      "\(String(describing: runtime))")
    #expect(runtime?.requiredInputs == ["M"])

    let huge = importError(loopModel(tripCount: TensorData([Int64(100_000)], shape: []), body: identity))
    #expect(huge?.code == .budgetExceeded)
    #expect(huge?.description.contains("more than 4096 iterations") == true, "\(String(describing: huge))")

    // Nested loops count every inlined node against one budget.
    var inner = ModelBuilder(name: "inner")
    inner.input("j", .int64, [])
    inner.input("c", .bool, [])
    inner.input("v", .float32, [2])
    for step in 0..<100 { inner.node("Identity", [step == 0 ? "v" : "v\(step - 1)"], ["v\(step)"]) }
    inner.output("c", .bool)
    inner.output("v99")
    var outer = ModelBuilder(name: "outer")
    outer.input("i", .int64, [])
    outer.input("c", .bool, [])
    outer.input("y_in", .float32, [2])
    outer.node("Loop", ["M", "", "y_in"], ["y_out"], graphs: ["body": inner])
    outer.output("c", .bool)
    outer.output("y_out")
    var nested = ModelBuilder(opset: 17)
    nested.input("y0", .float32, [2])
    nested.initializer("M", TensorData([Int64(4000)], shape: []))
    nested.node("Loop", ["M", "", "y0"], ["y"], graphs: ["body": outer])
    nested.output("y")
    let tooMany = importError(nested)
    #expect(tooMany?.code == .budgetExceeded)
    #expect(tooMany?.description.contains("subgraph nodes in all") == true, "\(String(describing: tooMany))")

    // A condition the body computes from runtime values names them.
    var bodyCondition = ModelBuilder(name: "body")
    bodyCondition.input("i", .int64, [])
    bodyCondition.input("c", .bool, [])
    bodyCondition.input("y_in", .float32, [2])
    bodyCondition.node("ReduceSum", ["y_in"], ["total"], ["keepdims": .int(0)])
    bodyCondition.node("Less", ["total", "limit"], ["more"])
    bodyCondition.output("more", .bool)
    bodyCondition.output("total")
    var whileLoop = ModelBuilder(opset: 17)
    whileLoop.input("y0", .float32, [2])
    whileLoop.initializer("limit", TensorData([Float(10)], shape: []))
    whileLoop.initializer("true", scalarTrue)
    whileLoop.node("Loop", ["", "true", "y0"], ["y"], graphs: ["body": bodyCondition])
    whileLoop.output("y")
    let condition = importError(whileLoop)
    #expect(condition?.code == .dynamicShape)
    #expect(condition?.requiredInputs == ["y0"])
    #expect(
      condition?.description.contains("Loop condition computed by the body") == true, "\(String(describing: condition))"
    )

    var ghost = identity
    ghost.node("Add", ["y_out", "ghost"], ["unused"])
    ghost.graph.output[2].name = "unused"
    let undefined = importError(loopModel(tripCount: TensorData([Int64(1)], shape: []), body: ghost))
    #expect(undefined?.code == .invalidModel)
    #expect(undefined?.description.contains("'ghost'") == true, "\(String(describing: undefined))")
  }

  func scanModel(_ attributes: [String: AttributeValue], x: TensorData) -> ModelBuilder {
    var builder = ModelBuilder(opset: 17)
    builder.initializer("zero", TensorData([Float(0), 0]))
    builder.initializer("x", x)
    var body = ModelBuilder(name: "scan_body")
    body.input("sum_in", .float32, [2])
    body.input("next", .float32, [2])
    body.node("Add", ["sum_in", "next"], ["sum_out"])
    body.node("Identity", ["sum_out"], ["scan_out"])
    body.output("sum_out")
    body.output("scan_out")
    var all = attributes
    all["num_scan_inputs"] = .int(1)
    builder.node("Scan", ["zero", "x"], ["total", "partial"], graphs: ["body": body], all)
    builder.output("total")
    builder.output("partial")
    return builder
  }

  @Test func scanAxesAndDirections() throws {
    let rows = TensorData([Float(1), 2, 3, 4, 5, 6], shape: [3, 2])
    let forward = try scanModel([:], x: rows).importGraph()
    #expect(forward.constants[forward.outputs[0]]?.floats() == [9, 12])
    #expect(forward.constants[forward.outputs[1]]?.floats() == [1, 2, 4, 6, 9, 12])

    let reversed = try scanModel(["scan_input_directions": .ints([1])], x: rows).importGraph()
    #expect(reversed.constants[reversed.outputs[1]]?.floats() == [5, 6, 8, 10, 9, 12])

    // Columns of the transpose, stacked along axis 1 in reverse order.
    let columns = TensorData([Float(1), 3, 5, 2, 4, 6], shape: [2, 3])
    let graph = try scanModel(
      ["scan_input_axes": .ints([1]), "scan_output_axes": .ints([-1]), "scan_output_directions": .ints([1])],
      x: columns
    ).importGraph()
    #expect(outputType(graph, 1).shape == [2, 3])
    #expect(graph.constants[graph.outputs[1]]?.floats() == [9, 4, 1, 12, 6, 2])
  }

  @Test func nestedIfInsideLoopCapturesTheBodyInput() throws {
    // y doubles when i >= 1 and adds one otherwise: [1] -> [2] -> [4] -> [8].
    var then = ModelBuilder(name: "then")
    then.node("Add", ["y_in", "one_f"], ["t"])
    then.output("t")
    var otherwise = ModelBuilder(name: "else")
    otherwise.node("Add", ["y_in", "y_in"], ["e"])
    otherwise.output("e")
    var body = ModelBuilder(name: "body")
    body.input("i", .int64, [])
    body.input("c", .bool, [])
    body.input("y_in", .float32, [1])
    body.node("Less", ["i", "one"], ["first"])
    body.node("If", ["first"], ["y_out"], graphs: ["then_branch": then, "else_branch": otherwise])
    body.output("c", .bool)
    body.output("y_out")
    var builder = ModelBuilder(opset: 17)
    builder.input("y0", .float32, [1])
    builder.initializer("one", TensorData([Int64(1)], shape: []))
    builder.initializer("one_f", TensorData([Float(1)]))
    builder.initializer("M", TensorData([Int64(3)], shape: []))
    builder.node("Loop", ["M", "", "y0"], ["y"], graphs: ["body": body])
    builder.output("y")
    var options = ImportOptions()
    options.constantInputs["y0"] = TensorData([Float(1)])
    let graph = try builder.importGraph(options: options)
    #expect(graph.constants[graph.outputs[0]]?.floats() == [8])
    #expect(ops(try builder.importGraph()) == ["Add", "Add", "Add"])
  }
}
