import Foundation
import KilnCompiler
import KilnIR
import Testing

@Suite("Elementwise lowering")
struct ElementwiseLoweringTests {
  @Test func addBroadcastsMultidirectionally() throws {
    let a = iota([2, 3, 1])
    let b = TensorData([Float(10), 20, 30, 40])
    let result = try LoweringHarness.run1("Add", inputs: [a, b], output: TensorType(.float32, [2, 3, 4]))
    var expected: [Double] = []
    forEachIndex([2, 3, 4]) { i in expected.append(Double(i[0] * 3 + i[1]) + Double(10 * (i[2] + 1))) }
    #expect(result == expected)
  }

  @Test func broadcastReadsPinUnitAxesToZero() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [3, 1]))
    let y = graph.addInput(name: "y", type: TensorType(.float32, [1, 2]))
    graph.addNode("Mul", version: 14, inputs: [x, y], outputTypes: [TensorType(.float32, [3, 2])])
    let kernel = try LoweringHarness.kernel(graph, node: 0)
    // x[i, 0] reads linear index i; y[0, j] reads j.
    #expect(
      kernel.body == .binary(.multiply, .load(input: 0, dtype: .float32, index: .coordinate(0)), .load(input: 1, dtype: .float32, index: .coordinate(1))))
  }

  @Test func integerDivisionTruncatesTowardZero() throws {
    let a = TensorData([Int32(7), -7, 7, -7])
    let b = TensorData([Int32(2), 2, -2, -2])
    let result = try LoweringHarness.run1("Div", version: 14, inputs: [a, b], output: TensorType(.int32, [4]))
    #expect(result == [3, -3, -3, 3])
  }

  @Test func modFollowsFmodAttribute() throws {
    let a = TensorData([Int32(7), -7, 7, -7])
    let b = TensorData([Int32(3), 3, -3, -3])
    let python = try LoweringHarness.run1("Mod", inputs: [a, b], output: TensorType(.int32, [4]))
    #expect(python == [1, 2, -2, -1])
    let c = try LoweringHarness.run1(
      "Mod", inputs: [a, b], output: TensorType(.int32, [4]), attributes: ["fmod": .int(1)])
    #expect(c == [1, -1, 1, -1])
  }

  @Test func powMixesTypes() throws {
    let base = TensorData([Int64(2), 3, -2])
    let exponent = TensorData([Int64(3), 2, 3])
    #expect(
      try LoweringHarness.run1("Pow", version: 15, inputs: [base, exponent], output: TensorType(.int64, [3])) == [
        8, 9, -8,
      ])
    let floatExponent = TensorData([Float(0.5), 2, 1])
    let mixed = try LoweringHarness.run1(
      "Pow", version: 15, inputs: [TensorData([Int64(9), 3, 5]), floatExponent], output: TensorType(.int64, [3]))
    #expect(mixed == [3, 9, 5])
    let floats = try LoweringHarness.run1(
      "Pow", version: 15, inputs: [TensorData([Float(2), 4]), TensorData([Int64(3), -1])],
      output: TensorType(.float32, [2]))
    #expect(floats == [8, 0.25])
  }

  @Test func castTruncatesAndTestsNonZero() throws {
    let x = TensorData([Float(-2.7), -0.5, 0, 0.5, 2.7, .nan])
    let ints = try LoweringHarness.run1(
      "Cast", inputs: [x], output: TensorType(.int32, [6]), attributes: ["to": .int(6)])
    #expect(Array(ints.prefix(5)) == [-2, 0, 0, 0, 2])
    let bools = try LoweringHarness.run1(
      "Cast", inputs: [x], output: TensorType(.bool, [6]), attributes: ["to": .int(9)])
    #expect(bools == [1, 1, 0, 1, 1, 1])
  }

  @Test func clipUsesAttributesBeforeOpset11() throws {
    let x = TensorData([Float(-3), -1, 0, 1, 3])
    let old = try LoweringHarness.run1(
      "Clip", version: 6, inputs: [x], output: TensorType(.float32, [5]),
      attributes: ["min": .float(-1), "max": .float(2)])
    #expect(old == [-1, -1, 0, 1, 2])
    let onlyMax = try LoweringHarness.run1(
      "Clip", version: 13, inputs: [x, nil, TensorData.scalar(Float(0.5))], output: TensorType(.float32, [5]))
    #expect(onlyMax == [-3, -1, 0, 0.5, 0.5])
  }

  @Test func clipBoundsMayBeComputedAtRunTime() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [3]))
    let low = graph.addInput(name: "low", type: TensorType(.float32, []))
    let out = graph.addNode("Clip", version: 13, inputs: [x, low], outputTypes: [TensorType(.float32, [3])])[0]
    let values = try LoweringHarness.evaluate(graph, inputs: [x: [-1, 0.5, 2], low: [0.25]])
    #expect(values[out] == [0.25, 0.5, 2])
  }

  @Test func whereBroadcastsAllThreeOperands() throws {
    let condition = TensorData([true, false], shape: [2, 1])
    let x = TensorData([Float(1), 2, 3])
    let y = TensorData.scalar(Float(-1))
    let result = try LoweringHarness.run1("Where", inputs: [condition, x, y], output: TensorType(.float32, [2, 3]))
    #expect(result == [1, 2, 3, -1, -1, -1])
  }

  @Test func preluBroadcastsSlopePerChannel() throws {
    let x = TensorData([Float(-1), 1, -2, 2, -3, 3], shape: [1, 3, 2])
    let slope = TensorData([Float(0.1), 0.2, 0.3], shape: [3, 1])
    let result = try LoweringHarness.run1("PRelu", inputs: [x, slope], output: TensorType(.float32, [1, 3, 2]))
    expectClose(result, [-0.1, 1, -0.4, 2, -0.9, 3])
  }

  static let activations: [String: @Sendable (Double) -> Double] = [
    "Relu": { max($0, 0) },
    "Sigmoid": { 1 / (1 + exp(-$0)) },
    "Softplus": { log(exp($0) + 1) },
    "Softsign": { $0 / (1 + abs($0)) },
    "HardSwish": { $0 * max(0, min(1, $0 / 6 + 0.5)) },
    "Mish": { $0 * tanh(log(1 + exp($0))) },
    "Gelu": { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) },
    "Selu": { $0 > 0 ? 1.0507009873554805 * $0 : 1.0507009873554805 * 1.6732632423543772 * (exp($0) - 1) },
    "Elu": { $0 < 0 ? exp($0) - 1 : $0 },
    "LeakyRelu": { $0 < 0 ? 0.01 * $0 : $0 },
    "HardSigmoid": { max(0, min(1, 0.2 * $0 + 0.5)) },
    "ThresholdedRelu": { $0 > 1 ? $0 : 0 },
    "Celu": { max(0, $0) + min(0, exp($0) - 1) },
  ]

  @Test(arguments: activations.keys.sorted())
  func activationMatchesFormula(_ op: String) throws {
    let inputs: [Float] = [-3, -1, 0, 0.5, 3]
    let result = try LoweringHarness.run1(
      op, version: 20, inputs: [TensorData(inputs)], output: TensorType(.float32, [5]))
    let formula = try #require(Self.activations[op])
    expectClose(result, inputs.map { formula(Double($0)) })
  }

  @Test func softplusDoesNotOverflow() throws {
    let result = try LoweringHarness.run1(
      "Softplus", inputs: [TensorData([Float(200), -200])], output: TensorType(.float32, [2]))
    expectClose(result, [200, 0])
  }

  @Test func geluTanhApproximation() throws {
    let x: [Float] = [-2, -0.5, 0.7, 2]
    let result = try LoweringHarness.run1(
      "Gelu", version: 20, inputs: [TensorData(x)], output: TensorType(.float32, [4]),
      attributes: ["approximate": .string("tanh")])
    let expected = x.map { Double($0) }.map {
      0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))
    }
    expectClose(result, expected)
  }

  @Test func isInfHonoursDetectFlags() throws {
    let x = TensorData([Float.infinity, -.infinity, 1, .nan])
    let positive = try LoweringHarness.run1(
      "IsInf", inputs: [x], output: TensorType(.bool, [4]), attributes: ["detect_negative": .int(0)])
    #expect(positive == [1, 0, 0, 0])
    let none = try LoweringHarness.run1(
      "IsInf", inputs: [x], output: TensorType(.bool, [4]),
      attributes: ["detect_negative": .int(0), "detect_positive": .int(0)])
    #expect(none == [0, 0, 0, 0])
  }

  @Test func variadicOpsFoldEveryInput() throws {
    let a = TensorData([Float(1), 5])
    let b = TensorData([Float(4), 2])
    let c = TensorData.scalar(Float(3))
    #expect(try LoweringHarness.run1("Max", inputs: [a, b, c], output: TensorType(.float32, [2])) == [4, 5])
    #expect(try LoweringHarness.run1("Sum", inputs: [a, b, c], output: TensorType(.float32, [2])) == [8, 10])
    #expect(
      try LoweringHarness.run1("Mean", inputs: [a, b, c], output: TensorType(.float32, [2]))
        == [8.0 / 3, 10.0 / 3].map { Double(Float($0)) })
  }

  @Test func batchNormalizationUsesRunningStatistics() throws {
    let x = random([2, 3, 2, 2])
    let scale = TensorData([Float(1), 2, 0.5])
    let bias = TensorData([Float(0), 1, -1])
    let mean = TensorData([Float(0.1), -0.2, 0.3])
    let variance = TensorData([Float(1), 0.5, 2])
    let result = try LoweringHarness.run1(
      "BatchNormalization", version: 15, inputs: [x, scale, bias, mean, variance], output: x.type,
      attributes: ["epsilon": .float(1e-3)])
    let xs = x.doubles()
    var expected: [Double] = []
    forEachIndex([2, 3, 2, 2]) { i in
      let c = i[1]
      let s = scale.doubles()[c], b = bias.doubles()[c], m = mean.doubles()[c], v = variance.doubles()[c]
      expected.append((xs[offset(i, [2, 3, 2, 2])] - m) / (v + Double(Float(1e-3))).squareRoot() * s + b)
    }
    expectClose(result, expected)
  }

  @Test func batchNormalizationTrainingIsRejected() throws {
    let node = Node(
      name: "bn", op: "BatchNormalization", version: 15, inputs: [], outputs: [ValueID(0)],
      attributes: ["training_mode": .int(1)])
    #expect(throws: LoweringError.self) { try OpLowerings.lowering(for: node) }
  }

  @Test func dropoutIsIdentityWithTrueMask() throws {
    let x = TensorData([Float(1), 2, 3])
    let outputs = try LoweringHarness.run(
      "Dropout", version: 13, inputs: [x], outputs: [x.type, TensorType(.bool, [3])])
    #expect(outputs[0] == [1, 2, 3])
    #expect(outputs[1] == [1, 1, 1])
  }

  @Test func bitShiftDirections() throws {
    let x = TensorData(type: TensorType(.uint8, [3]), int64s: [16, 4, 1])
    let amount = TensorData(type: TensorType(.uint8, [3]), int64s: [1, 2, 3])
    #expect(
      try LoweringHarness.run1(
        "BitShift", inputs: [x, amount], output: x.type, attributes: ["direction": .string("RIGHT")])
        == [8, 1, 0])
    #expect(
      try LoweringHarness.run1(
        "BitShift", inputs: [x, amount], output: x.type, attributes: ["direction": .string("LEFT")])
        == [32, 16, 8])
  }

  @Test func unsupportedOpHasNoLowering() throws {
    let node = Node(name: "n", op: "NoSuchOp", version: 18, inputs: [], outputs: [])
    #expect(try OpLowerings.lowering(for: node) == nil)
    let custom = Node(name: "c", op: "Add", domain: "com.example", version: 1, inputs: [], outputs: [])
    #expect(try OpLowerings.lowering(for: custom) == nil)
  }

  @Test func decomposedOpsAskForTheDecomposePass() throws {
    let node = Node(name: "sm", op: "Softmax", version: 13, inputs: [], outputs: [])
    #expect(throws: LoweringError.self) { try OpLowerings.lowering(for: node) }
  }
}
