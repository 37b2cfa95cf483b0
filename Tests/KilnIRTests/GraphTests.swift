import Testing

@testable import KilnIR

/// A small graph: y = Relu(Conv(x, w) + b), with the bias reshaped by a constant shape.
func sampleGraph(reversedIDs: Bool = false) -> Graph {
  var graph = Graph(name: "sample", opsetImports: ["": 17])
  let weight = TensorData(type: TensorType(.float32, [4, 3, 3, 3]), repeating: 0.5)
  let bias = TensorData([1, 2, 3, 4] as [Float], shape: [1, 4, 1, 1])
  // Create values in a different order to show the printer does not depend on ids.
  var x = ValueID(0)
  var w = ValueID(0)
  var b = ValueID(0)
  if reversedIDs {
    b = graph.addConstant(bias, name: "b")
    w = graph.addConstant(weight, name: "w")
    x = graph.addInput(name: "x", type: TensorType(.float32, [1, 3, 8, 8]))
  } else {
    x = graph.addInput(name: "x", type: TensorType(.float32, [1, 3, 8, 8]))
    w = graph.addConstant(weight, name: "w")
    b = graph.addConstant(bias, name: "b")
  }
  let conv = graph.addNode(
    "Conv", name: "conv1", inputs: [x, w, nil], outputTypes: [TensorType(.float32, [1, 4, 6, 6])],
    outputNames: ["c"], attributes: ["strides": .ints([1, 1]), "group": .int(1), "auto_pad": .string("NOTSET")])
  let sum = graph.addNode(
    "Add", name: "add", inputs: [conv[0], b], outputTypes: [TensorType(.float32, [1, 4, 6, 6])], outputNames: ["s"])
  let relu = graph.addNode(
    "Relu", name: "relu", inputs: [sum[0]], outputTypes: [TensorType(.float32, [1, 4, 6, 6])], outputNames: ["y"])
  graph.outputs = [relu[0]]
  return graph
}

@Suite struct GraphTests {
  @Test func buildersAndUses() {
    let graph = sampleGraph()
    #expect(graph.values.count == 6)
    #expect(graph.inputs == [ValueID(0)])
    #expect(graph.isConstant(ValueID(1)))
    #expect(graph.nodes[0].version == 17)
    let producers = graph.producers()
    #expect(producers[ValueID(3)] == ValueUse(node: 0, slot: 0))
    let consumers = graph.consumers()
    #expect(consumers[ValueID(0)] == [ValueUse(node: 0, slot: 0)])
    #expect(consumers[ValueID(3)] == [ValueUse(node: 1, slot: 0)])
    #expect(graph.usedValues().contains(ValueID(5)))
  }

  @Test func replaceAllUsesFollowsChains() {
    var graph = sampleGraph()
    let extra = graph.addValue(name: "other", type: TensorType(.float32, [1, 4, 6, 6]))
    graph.replaceAllUses([ValueID(3): ValueID(4), ValueID(4): extra])
    #expect(graph.nodes[1].inputs[0] == extra)
    graph.replaceAllUses(of: ValueID(5), with: extra)
    #expect(graph.outputs == [extra])
  }

  @Test func compactedRenumbersAndDropsUnusedConstants() throws {
    var graph = sampleGraph(reversedIDs: true)
    graph.addConstant(TensorData.scalar(Int64(1)), name: "unused")
    graph.addValue(name: "orphan", type: TensorType(.float32, [1]))
    let compact = graph.compacted()
    #expect(compact.values.count == 6)
    #expect(compact.inputs == [ValueID(0)])
    #expect(compact.constants.count == 2)
    #expect(compact.values.map(\.id) == (0..<6).map(ValueID.init))
    try compact.verify()
    #expect(GraphPrinter().print(compact) == GraphPrinter().print(graph.compacted()))
  }

  @Test func attributeGetters() throws {
    let node = Node(
      name: "n", op: "Foo", version: 13, inputs: [], outputs: [],
      attributes: [
        "axis": .int(-1), "scale": .float(0.5), "mode": .string("linear"), "pads": .ints([1, 2]),
        "alphas": .floats([1, 2]), "names": .strings(["a"]), "value": .tensor(.scalar(Float(1))),
      ])
    #expect(try node.int("axis") == -1)
    #expect(try node.int("missing", default: 7) == 7)
    #expect(try node.int("missing") == nil)
    #expect(try node.float("scale", default: 1) == 0.5)
    #expect(try node.string("mode") == "linear")
    #expect(try node.ints("pads") == [1, 2])
    #expect(try node.floats("alphas") == [1, 2])
    #expect(try node.strings("names") == ["a"])
    #expect(try node.tensor("value")?.scalarDouble == 1)
    #expect(try node.requiredInt("axis") == -1)
    do {
      _ = try node.int("mode")
      Issue.record("expected a kind error")
    } catch let error as IRError {
      #expect(error.code == .attribute)
      #expect(error.message == "node 'n' (Foo): attribute 'mode' is string, expected int")
    }
    do {
      _ = try node.requiredInts("kernel_shape")
      Issue.record("expected a missing-attribute error")
    } catch let error as IRError {
      #expect(error.message.contains("required ints attribute 'kernel_shape' is missing"))
    }
  }
}
