import KilnCompiler
import KilnIR
import Testing

@Suite("Movement lowering")
struct MovementLoweringTests {
  @Test func reshapeMapsThroughLinearOrder() throws {
    let x = iota([2, 3, 4])
    let result = try LoweringHarness.run1(
      "Reshape", version: 14, inputs: [x, TensorData([Int64(4), 1, 6])], output: TensorType(.float32, [4, 1, 6]))
    #expect(result == (0..<24).map(Double.init))
  }

  final class Recorder {
    var coordinates: [Expr] = []
  }

  @Test func reshapeKeepsCoordinatesOfUnchangedAxes() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [2, 3, 4]))
    let shape = graph.addConstant(TensorData([Int64(6), 1, 4]), name: "shape")
    graph.addNode("Reshape", version: 14, inputs: [x, shape], outputTypes: [TensorType(.float32, [6, 1, 4])])
    let node = graph.nodes[0]
    let lowering = try #require(try OpLowerings.lowering(for: node))
    let recorder = Recorder()
    let context = LoweringContext(node: node, graph: graph, variables: VariableCounter()) { _, coordinates in
      recorder.coordinates = coordinates
      return .literal(.of(0, .float32))
    }
    _ = try lowering.lower(context, 0, [.coordinate(0), .coordinate(1), .coordinate(2)])
    // [6] splits into [2, 3]; the unit axis disappears; the last axis passes through.
    #expect(recorder.coordinates == [.coordinate(0).floorDivided(by: 3), .coordinate(0).modulo(3), .coordinate(2)])
  }

  @Test func transposeDefaultsToReversedAxes() throws {
    let x = iota([2, 3])
    let result = try LoweringHarness.run1("Transpose", inputs: [x], output: TensorType(.float32, [3, 2]))
    #expect(result == [0, 3, 1, 4, 2, 5])
    let permuted = try LoweringHarness.run1(
      "Transpose", inputs: [iota([2, 3, 4])], output: TensorType(.float32, [4, 2, 3]),
      attributes: ["perm": .ints([2, 0, 1])])
    var expected: [Double] = []
    forEachIndex([4, 2, 3]) { i in expected.append(Double(offset([i[1], i[2], i[0]], [2, 3, 4]))) }
    #expect(permuted == expected)
  }

  @Test func sliceWithNegativeStepsAndClamping() throws {
    let x = iota([4, 5])
    // Rows 3, 1 (step -2 from the end); columns from 10 (clamped to 4) down past 0.
    let result = try LoweringHarness.run1(
      "Slice", version: 13,
      inputs: [
        x, TensorData([Int64(-1), 10]), TensorData([Int64(-5), Int64.min]), TensorData([Int64(0), 1]),
        TensorData([Int64(-2), -3]),
      ],
      output: TensorType(.float32, [2, 2]))
    #expect(result == [19, 16, 9, 6])
  }

  @Test func sliceAttributesBeforeOpset10() throws {
    let x = iota([3, 4])
    let result = try LoweringHarness.run1(
      "Slice", version: 9, inputs: [x], output: TensorType(.float32, [2, 2]),
      attributes: ["starts": .ints([1, -3]), "ends": .ints([100, -1]), "axes": .ints([0, 1])])
    #expect(result == [5, 6, 9, 10])
  }

  @Test func sliceNeedsConstantStarts() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [4]))
    let starts = graph.addInput(name: "starts", type: TensorType(.int64, [1]))
    let ends = graph.addConstant(TensorData([Int64(3)]), name: "ends")
    graph.addNode("Slice", version: 13, inputs: [x, starts, ends], outputTypes: [TensorType(.float32, [2])])
    #expect {
      try LoweringHarness.kernel(graph, node: 0)
    } throws: { error in
      (error as? LoweringError)?.message.contains("input 1 (starts) must be a compile-time constant") == true
    }
  }

  /// NumPy-style padding of one row for the reference.
  static func padRow(_ row: [Double], _ before: Int, _ after: Int, _ mode: String, _ value: Double) -> [Double] {
    let n = row.count
    let cropped = Array(row[max(-before, 0)..<(n - max(-after, 0))])
    let m = cropped.count
    return (-max(before, 0)..<(m + max(after, 0))).map { i in
      if i >= 0 && i < m { return cropped[i] }
      switch mode {
      case "constant": return value
      case "edge": return cropped[min(max(i, 0), m - 1)]
      case "wrap": return cropped[((i % m) + m) % m]
      default:
        let period = 2 * (m - 1)
        let p = ((i % period) + period) % period
        return cropped[p < m ? p : period - p]
      }
    }
  }

  @Test(arguments: ["constant", "reflect", "edge", "wrap"])
  func padModes(_ mode: String) throws {
    let x = iota([2, 4], offset: 1)
    let pads: [Int64] = [1, 3, 0, 2]  // axis 0: 1 before, 0 after; axis 1: 3 before, 2 after
    let result = try LoweringHarness.run1(
      "Pad", version: 19, inputs: [x, TensorData(pads), TensorData.scalar(Float(-7))],
      output: TensorType(.float32, [3, 9]),
      attributes: ["mode": .string(mode)])
    let rows = [[1.0, 2, 3, 4], [5.0, 6, 7, 8]].map { Self.padRow($0, 3, 2, mode, -7) }
    let columns = (0..<9).map { j in Self.padRow([rows[0][j], rows[1][j]], 1, 0, mode, -7) }
    var expected: [Double] = []
    for i in 0..<3 { for j in 0..<9 { expected.append(columns[j][i]) } }
    #expect(result == expected)
  }

  @Test func padNegativeCropsAndAttributeForm() throws {
    let x = iota([2, 5])
    let result = try LoweringHarness.run1(
      "Pad", version: 2, inputs: [x], output: TensorType(.float32, [3, 4]),
      attributes: ["pads": .ints([0, -2, 1, 1]), "value": .float(9)])
    #expect(result == [2, 3, 4, 9, 7, 8, 9, 9, 9, 9, 9, 9])
    let reflect = try LoweringHarness.run1(
      "Pad", version: 18, inputs: [x, TensorData([Int64(-1), 2]), nil, TensorData([Int64(1)])],
      output: TensorType(.float32, [2, 6]),
      attributes: ["mode": .string("reflect")])
    #expect(reflect == [1, 2, 3, 4, 3, 2, 6, 7, 8, 9, 8, 7])
  }

  @Test func concatSelectsByAxisAndSkipsEmptyInputs() throws {
    let a = iota([2, 1])
    let empty = TensorData([Float](), shape: [2, 0])
    let b = iota([2, 2], offset: 10)
    let c = iota([2, 1], offset: 20)
    let result = try LoweringHarness.run1(
      "Concat", version: 13, inputs: [a, empty, b, c], output: TensorType(.float32, [2, 4]),
      attributes: ["axis": .int(-1)])
    #expect(result == [0, 10, 11, 20, 1, 12, 13, 21])
  }

  @Test func splitUnevenParts() throws {
    let x = iota([7])
    let outputs = try LoweringHarness.run(
      "Split", version: 18, inputs: [x],
      outputs: [TensorType(.float32, [3]), TensorType(.float32, [3]), TensorType(.float32, [1])],
      attributes: ["num_outputs": .int(3)])
    #expect(outputs == [[0, 1, 2], [3, 4, 5], [6]])
    let sized = try LoweringHarness.run(
      "Split", version: 13, inputs: [iota([2, 5]), TensorData([Int64(2), 3])],
      outputs: [TensorType(.float32, [2, 2]), TensorType(.float32, [2, 3])], attributes: ["axis": .int(1)])
    #expect(sized == [[0, 1, 5, 6], [2, 3, 4, 7, 8, 9]])
  }

  @Test func gatherWrapsNegativeIndices() throws {
    let data = iota([3, 4])
    let indices = TensorData([Int64(-1), 0, 2, -4], shape: [2, 2])
    let result = try LoweringHarness.run1(
      "Gather", version: 13, inputs: [data, indices], output: TensorType(.float32, [3, 2, 2]),
      attributes: ["axis": .int(1)])
    #expect(result == [3, 0, 2, 0, 7, 4, 6, 4, 11, 8, 10, 8])
    let scalar = try LoweringHarness.run1(
      "Gather", version: 13, inputs: [data, TensorData([Int32(-2)], shape: [])], output: TensorType(.float32, [4]))
    #expect(scalar == [4, 5, 6, 7])
  }

  @Test func gatherIndicesComputedAtRunTimeStayInBounds() throws {
    var graph = Graph()
    let data = graph.addConstant(iota([5]), name: "data")
    let indices = graph.addInput(name: "indices", type: TensorType(.int64, [3]))
    let out = graph.addNode("Gather", version: 13, inputs: [data, indices], outputTypes: [TensorType(.float32, [3])])[0]
    // Out-of-range indices are invalid in ONNX; they must still never read outside the tensor.
    let values = try LoweringHarness.evaluate(graph, inputs: [indices: [-5, 4, 7]])
    #expect(values[out] == [0, 4, 2])
  }

  @Test func gatherElementsAndGatherND() throws {
    let data = iota([2, 3])
    let indices = TensorData([Int64(2), -3, 0, 1], shape: [2, 2])
    let elements = try LoweringHarness.run1(
      "GatherElements", inputs: [data, indices], output: TensorType(.float32, [2, 2]), attributes: ["axis": .int(1)])
    #expect(elements == [2, 0, 3, 4])
    let nd = try LoweringHarness.run1(
      "GatherND", inputs: [data, TensorData([Int64(1), 2, 0, -1], shape: [2, 2])], output: TensorType(.float32, [2]))
    #expect(nd == [5, 2])
  }

  @Test func tileAndExpand() throws {
    let x = iota([2, 1])
    let tiled = try LoweringHarness.run1(
      "Tile", inputs: [iota([1, 2]), TensorData([Int64(2), 2])], output: TensorType(.float32, [2, 4]))
    #expect(tiled == [0, 1, 0, 1, 0, 1, 0, 1])
    let expanded = try LoweringHarness.run1(
      "Expand", inputs: [x, TensorData([Int64(2), 2, 3])], output: TensorType(.float32, [2, 2, 3]))
    #expect(expanded == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1])
  }

  @Test(arguments: ["DCR", "CRD"])
  func depthToSpaceInvertsSpaceToDepth(_ mode: String) throws {
    let x = iota([1, 8, 2, 3])
    let space = try LoweringHarness.run1(
      "DepthToSpace", version: 13, inputs: [x], output: TensorType(.float32, [1, 2, 4, 6]),
      attributes: ["blocksize": .int(2), "mode": .string(mode)])
    var expected: [Double] = []
    forEachIndex([1, 2, 4, 6]) { o in
      let (c, h, w) = (o[1], o[2], o[3])
      let (i, j) = (h % 2, w % 2)
      let channel = mode == "DCR" ? (i * 2 + j) * 2 + c : c * 4 + i * 2 + j
      expected.append(Double(offset([0, channel, h / 2, w / 2], [1, 8, 2, 3])))
    }
    #expect(space == expected)
    if mode == "DCR" {
      let back = try LoweringHarness.run1(
        "SpaceToDepth", inputs: [TensorData(space.map { Float($0) }, shape: [1, 2, 4, 6])], output: x.type,
        attributes: ["blocksize": .int(2)])
      #expect(back == (0..<48).map(Double.init))
    }
  }

  @Test func flattenSqueezeUnsqueeze() throws {
    let x = iota([2, 1, 3])
    #expect(
      try LoweringHarness.run1(
        "Flatten", inputs: [x], output: TensorType(.float32, [2, 3]), attributes: ["axis": .int(2)])
        == (0..<6).map(Double.init))
    #expect(
      try LoweringHarness.run1(
        "Squeeze", version: 13, inputs: [x, TensorData([Int64(1)])], output: TensorType(.float32, [2, 3]))
        == (0..<6).map(Double.init))
    #expect(
      try LoweringHarness.run1(
        "Unsqueeze", version: 11, inputs: [x], output: TensorType(.float32, [1, 2, 1, 3]),
        attributes: ["axes": .ints([0])]) == (0..<6).map(Double.init))
  }
}
