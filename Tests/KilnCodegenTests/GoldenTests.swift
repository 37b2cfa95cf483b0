import Foundation
import KilnCodegen
import KilnCompiler
import KilnIR
import Testing

/// The printed kernel IR, region and schedules of representative regions, pinned as text in
/// Tests/KilnCodegenTests/Golden/<case>.txt. `tools/update-golden` (KILN_UPDATE_GOLDEN=1)
/// rewrites the files; a change in structure then shows as a diff in review.
struct GoldenTests {
  enum Case: String, CaseIterable, CustomTestStringConvertible {
    /// Conv 3x3 with padding, bias and Relu fused into its epilogue.
    case convEpilogue
    /// Scaled dot-product attention of 2 heads: MatMul, scale, Softmax (decomposed), MatMul.
    case attention
    /// Depthwise 3x3 convolution with a ReLU6 (Clip) epilogue.
    case depthwiseWindow
    /// Max pool 3x3, stride 2, padded.
    case maxPool
    /// LayerNorm-style mean and variance over the last axis.
    case reduction
    /// TopK 3 of 8: a custom program (a heap per line) for the indices, a gather for the values.
    case customTopK
    var testDescription: String { rawValue }

    func graph() -> Graph {
      var graph = Graph(opsetImports: ["": 17])
      func constant(_ shape: [Int], _ name: String) -> ValueID {
        let count = shape.reduce(1, *)
        return graph.addConstant(TensorData((0..<count).map { Float($0 % 7) / 7 - 0.4 }, shape: shape), name: name)
      }
      switch self {
      case .convEpilogue:
        let x = graph.addInput(name: "x", type: TensorType(.float32, [1, 8, 10, 10]))
        let conv = graph.addNode(
          "Conv", name: "conv", inputs: [x, constant([16, 8, 3, 3], "w"), constant([16], "b")],
          outputTypes: [TensorType(.float32, [1, 16, 10, 10])], attributes: ["pads": .ints([1, 1, 1, 1])])
        graph.outputs = graph.addNode("Relu", name: "relu", inputs: conv, outputTypes: [TensorType(.float32, [1, 16, 10, 10])])
      case .attention:
        let type = TensorType(.float32, [1, 2, 8, 16])
        let (q, k, v) = (graph.addInput(name: "q", type: type), graph.addInput(name: "k", type: type), graph.addInput(name: "v", type: type))
        let kt = graph.addNode("Transpose", name: "kt", inputs: [k], outputTypes: [TensorType(.float32, [1, 2, 16, 8])], attributes: ["perm": .ints([0, 1, 3, 2])])
        let scores = graph.addNode("MatMul", name: "scores", inputs: [q] + kt, outputTypes: [TensorType(.float32, [1, 2, 8, 8])])
        let scale = graph.addConstant(TensorData([Float(0.25)], shape: []), name: "scale")
        let scaled = graph.addNode("Mul", name: "scaled", inputs: scores + [scale], outputTypes: [TensorType(.float32, [1, 2, 8, 8])])
        let probs = graph.addNode("Softmax", name: "probs", inputs: scaled, outputTypes: [TensorType(.float32, [1, 2, 8, 8])], attributes: ["axis": .int(-1)])
        graph.outputs = graph.addNode("MatMul", name: "context", inputs: probs + [v], outputTypes: [type])
      case .depthwiseWindow:
        let x = graph.addInput(name: "x", type: TensorType(.float32, [1, 8, 12, 12]))
        let conv = graph.addNode(
          "Conv", name: "dw", inputs: [x, constant([8, 1, 3, 3], "w")], outputTypes: [TensorType(.float32, [1, 8, 12, 12])],
          attributes: ["pads": .ints([1, 1, 1, 1]), "group": .int(8)])
        graph.outputs = graph.addNode(
          "Clip", name: "relu6", inputs: conv + [graph.addConstant(TensorData([Float(0)], shape: []), name: "lo"), graph.addConstant(TensorData([Float(6)], shape: []), name: "hi")],
          outputTypes: [TensorType(.float32, [1, 8, 12, 12])])
      case .maxPool:
        let x = graph.addInput(name: "x", type: TensorType(.float32, [1, 4, 13, 13]))
        graph.outputs = graph.addNode(
          "MaxPool", name: "pool", inputs: [x], outputTypes: [TensorType(.float32, [1, 4, 7, 7])],
          attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
      case .customTopK:
        let x = graph.addInput(name: "x", type: TensorType(.float32, [2, 8]))
        graph.outputs = graph.addNode(
          "TopK", version: 11, name: "topk", inputs: [x, graph.addConstant(TensorData([Int64(3)], shape: [1]), name: "k")],
          outputTypes: [TensorType(.float32, [2, 3]), TensorType(.int64, [2, 3])])
      case .reduction:
        let x = graph.addInput(name: "x", type: TensorType(.float32, [4, 32]))
        let axes: [String: AttributeValue] = ["axes": .ints([-1])]
        let mean = graph.addNode("ReduceMean", name: "mean", inputs: [x], outputTypes: [TensorType(.float32, [4, 1])], attributes: axes)
        let centred = graph.addNode("Sub", name: "centred", inputs: [x] + mean, outputTypes: [TensorType(.float32, [4, 32])])
        let square = graph.addNode("Mul", name: "square", inputs: centred + centred, outputTypes: [TensorType(.float32, [4, 32])])
        graph.outputs = graph.addNode("ReduceMean", name: "variance", inputs: square, outputTypes: [TensorType(.float32, [4, 1])], attributes: axes)
      }
      return graph
    }
  }

  /// Every kernel of `testCase`: its printed IR and region, then its schedule on the CPU and in
  /// the Vulkan `cpu` and `gpu` classes.
  static func printed(_ testCase: Case) throws -> String {
    let plan = try FormDispatchRegions.run(try Decompose.run(testCase.graph()))
    let cpu = WeightPrepacking.run(plan)
    var text: [String] = []
    for (index, kernel) in plan.kernels.enumerated() {
      text.append(KernelPrinter().print(kernel))
      text.append("  schedule cpu: \(cpu.schedules[index].summary)")
      for deviceClass in [VulkanClass.cpu, .gpu] {
        let schedule = VulkanSchedule.choose(
          kernel, deviceClass: deviceClass, emulateCooperativeMatrix: false, maximumBindingBytes: VulkanBindingLayout.guaranteedBytes)
        text.append("  schedule vulkan \(deviceClass.rawValue): \(schedule.summary)")
      }
    }
    return text.joined(separator: "\n") + "\n"
  }

  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

  @Test(arguments: Case.allCases)
  func printedRegionsMatchTheirGoldenFiles(testCase: Case) throws {
    let text = try Self.printed(testCase)
    let file = Self.directory.appendingPathComponent("\(testCase.rawValue).txt")
    if ProcessInfo.processInfo.environment["KILN_UPDATE_GOLDEN"] == "1" {
      try text.write(to: file, atomically: true, encoding: .utf8)
      return
    }
    let golden = try String(contentsOf: file, encoding: .utf8)
    #expect(text == golden, "\(testCase.rawValue) differs from \(file.path) (tools/update-golden rewrites it):\n\(text)")
  }
}
