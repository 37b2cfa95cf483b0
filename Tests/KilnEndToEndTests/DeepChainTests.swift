import Foundation
import KilnBundle
import KilnCodegen
import KilnCompiler
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

/// Long chains of fused elementwise ops whose lowerings read their operand twice or more (Relu is
/// `select(x < 0, 0, x)`, Swish `x * sigmoid(x)`, HardSwish `x * clamp(x / 6 + 1/2)`): the
/// kernel IR shares such operands, so compile time and memory grow linearly with the chain, and
/// the kernels still compute the chain.
@Suite(.serialized) struct DeepChainTests {
  enum Chain: String, CaseIterable, CustomTestStringConvertible {
    case negRelu, swish, hardSwish
    var testDescription: String { rawValue }

    /// Nodes in the chain (Swish is two nodes per link: Sigmoid and Mul).
    var nodes: Int { self == .negRelu ? 3000 : 1000 }

    func reference(_ x: Float) -> Float {
      var v = x
      switch self {
      case .negRelu: for i in 0..<nodes { v = i % 2 == 0 ? -v : max(v, 0) }
      case .swish: for _ in 0..<(nodes / 2) { v = v / (1 + exp(-v)) }
      case .hardSwish: for _ in 0..<nodes { v = v * min(max(v / 6 + 0.5, 0), 1) }
      }
      return v
    }

    func graph(elements: Int) -> Graph {
      var graph = Graph(opsetImports: ["": 17])
      let type = TensorType(.float32, [elements])
      var value = graph.addInput(name: "x", type: type)
      switch self {
      case .negRelu:
        for i in 0..<nodes { value = graph.addNode(i % 2 == 0 ? "Neg" : "Relu", inputs: [value], outputTypes: [type])[0] }
      case .swish:
        for _ in 0..<(nodes / 2) {
          let sigmoid = graph.addNode("Sigmoid", inputs: [value], outputTypes: [type])[0]
          value = graph.addNode("Mul", inputs: [value, sigmoid], outputTypes: [type])[0]
        }
      case .hardSwish:
        for _ in 0..<nodes { value = graph.addNode("HardSwish", inputs: [value], outputTypes: [type])[0] }
      }
      graph.outputs = [value]
      return graph
    }
  }

  /// The fused kernels hold a number of distinct values linear in the chain (a tree of the
  /// same chain would double per Relu: 2^24 nodes for one kernel of 48 fused ops).
  @Test(arguments: Chain.allCases)
  func fusedChainsStayLinear(chain: Chain) throws {
    let plan = try FormDispatchRegions.run(try Decompose.run(chain.graph(elements: 64)))
    let values = plan.kernels.reduce(0) { $0 + $1.body.nodeCount }
    #expect(values <= 16 * chain.nodes, "\(chain): \(values) values in \(plan.kernels.count) kernels")
  }

  @Test(arguments: Chain.allCases)
  func chainsCompileAndRunOnEveryDevice(chain: Chain) throws {
    let elements = 256
    var options = CompileOptions(modelName: chain.rawValue, printer: { _ in })
    options.cpuVariants = ["baseline"]
    let compiled = try ModelCompiler(options: options).compile(chain.graph(elements: elements))
    let reader = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    let x = (0..<elements).map { Float($0 - elements / 2) / 32 }
    let want = x.map(chain.reference)
    let input = HostTensor(dtype: "float32", shape: [elements], bytes: x.withUnsafeBytes { Array($0) })
    for uri in TestDevices.uris {
      let output = try Session(bundle: reader, device: try TestDevices.device(uri)).run([input])[0]
      let got = output.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
      let worst = zip(got, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
      #expect(worst < 1e-3, "\(chain) on \(uri): worst relative error \(worst)")
    }
  }
}
