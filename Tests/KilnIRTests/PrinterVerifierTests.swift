import Testing

@testable import KilnIR

@Suite struct GraphPrinterTests {
  @Test func canonicalText() {
    let text = GraphPrinter().print(sampleGraph())
    let w = TensorData(type: TensorType(.float32, [4, 3, 3, 3]), repeating: 0.5).contentHash
    let b = TensorData([1, 2, 3, 4] as [Float], shape: [1, 4, 1, 1]).contentHash
    let expected = """
      graph "sample" opset(ai.onnx=17) {
        input %0: f32[1,3,8,8] "x"
        const %1: f32[4,3,3,3] #\(w) "w"
        const %2: f32[1,4,1,1] #\(b) = [1.0,2.0,3.0,4.0] "b"
        %3: f32[1,4,6,6] = Conv(%0, %1, _) {auto_pad="NOTSET", group=1, strides=[1,1]} "conv1"
        %4: f32[1,4,6,6] = Add(%3, %2) "add"
        %5: f32[1,4,6,6] = Relu(%4) "relu"
        output %5
      }

      """
    #expect(text == expected)
  }

  @Test func independentOfValueIDsAndDictionaryOrder() {
    let a = sampleGraph()
    let b = sampleGraph(reversedIDs: true)
    #expect(a.values.map(\.name) != b.values.map(\.name))
    #expect(a.description == b.description)
    for _ in 0..<5 { #expect(sampleGraph().description == a.description) }
  }

  @Test func namesCanBeHidden() {
    let text = GraphPrinter(showNames: false).print(sampleGraph())
    #expect(!text.contains("\"conv1\""))
    #expect(text.contains("%3: f32[1,4,6,6] = Conv(%0, %1, _) {auto_pad=\"NOTSET\", group=1, strides=[1,1]}\n"))
  }

  @Test func printsBrokenGraphsWithoutCrashing() {
    var graph = sampleGraph()
    graph.nodes[1].inputs[1] = ValueID(99)
    graph.outputs.append(ValueID(-4))
    let text = graph.description
    #expect(text.contains("%?99"))
    #expect(text.contains("%?-4"))
  }

  @Test func escapesNamesAndShowsVersionsThatDiffer() {
    var graph = Graph(name: "q\"uote\n", opsetImports: ["": 13])
    let x = graph.addInput(name: "a\\b", type: TensorType(.bool, []))
    let y = graph.addNode("Not", version: 11, inputs: [x], outputTypes: [TensorType(.bool, [])])
    graph.outputs = y
    let text = graph.description
    #expect(text.hasPrefix("graph \"q\\\"uote\\n\" opset(ai.onnx=13) {"))
    #expect(text.contains("\"a\\\\b\""))
    #expect(text.contains("= Not@v11(%0)"))
  }
}

@Suite struct GraphVerifierTests {
  func expectError(_ graph: Graph, _ fragment: String, code: IRError.Code = .invalidGraph) {
    do {
      try graph.verify()
      Issue.record("expected a verifier error containing '\(fragment)'")
    } catch let error as IRError {
      #expect(error.code == code)
      #expect(error.message.contains(fragment), "\(error.message)")
    } catch {
      Issue.record("unexpected \(error)")
    }
  }

  @Test func validGraphPasses() throws {
    try sampleGraph().verify()
  }

  @Test func useBeforeDefinition() {
    var graph = sampleGraph()
    graph.nodes.swapAt(0, 1)
    expectError(graph, "is not defined before this node")
  }

  @Test func undefinedOperandAndOutput() {
    var graph = sampleGraph()
    graph.nodes[2].inputs[0] = ValueID(42)
    expectError(graph, "does not exist")
    graph = sampleGraph()
    graph.outputs = [graph.addValue(name: "dangling", type: TensorType(.float32, [1]))]
    expectError(graph, "graph output 0 'dangling'")
  }

  @Test func doubleDefinition() {
    var graph = sampleGraph()
    graph.nodes[1].outputs = [ValueID(3)]
    expectError(graph, "defines 'c' (%3) again")
    graph = sampleGraph()
    graph.inputs.append(ValueID(1))
    expectError(graph, "is also a constant")
  }

  @Test func constantTypeMismatch() {
    var graph = sampleGraph()
    graph.constants[ValueID(2)] = TensorData([1, 2, 3, 4] as [Float])
    expectError(graph, "holds f32[4] but the value has type f32[1,4,1,1]", code: .typeMismatch)
  }

  @Test func uncountableTypes() {
    var graph = sampleGraph()
    graph.values[5].type = TensorType(.float32, [-1, 4])
    expectError(graph, "cannot be counted", code: .invalidType)
    graph = sampleGraph()
    graph.values[5].type = TensorType(.float32, [1 << 62, 8])
    expectError(graph, "cannot be counted", code: .invalidType)
  }

  @Test func mismatchedIDAndEmptyOp() {
    var graph = sampleGraph()
    graph.values[2].id = ValueID(7)
    expectError(graph, "at index 2 has id %7")
    graph = sampleGraph()
    graph.nodes[0].op = ""
    expectError(graph, "empty op type")
  }
}
