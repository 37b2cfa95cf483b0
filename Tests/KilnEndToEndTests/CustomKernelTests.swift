import Foundation
import KilnBundle
import KilnCodegen
import KilnCompiler
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

/// Ops with algorithms of their own (custom regions): TopK as a heap per line, CumSum as one pass
/// per line, on every device and both Vulkan classes, against Swift references.
@Suite(.serialized) struct CustomKernelTests {
  /// Compiles `graph`, checks that its kernels named `custom` are custom programs, and runs it
  /// on every device (and the Vulkan gpu class) with `inputs`.
  func run(_ graph: Graph, custom: Int, inputs: [HostTensor]) throws -> [(String, [HostTensor])] {
    let plan = try FormDispatchRegions.run(try Decompose.run(graph))
    #expect(plan.kernels.filter { $0.region.kind == .custom }.count == custom)
    var options = CompileOptions(modelName: "custom", printer: { _ in })
    options.cpuVariants = ["baseline"]
    let compiled = try ModelCompiler(options: options).compile(graph)
    let reader = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    var results: [(String, [HostTensor])] = []
    for uri in TestDevices.uris {
      let device = try TestDevices.device(uri)
      results.append((uri, try Session(bundle: reader, device: device).run(inputs)))
      if device.info.driver == "vulkan" {
        results.append(("\(uri) gpu", try Session(bundle: reader, device: device, deviceClass: "gpu").run(inputs)))
      }
    }
    #expect(TestDevices.drainValidationMessages().isEmpty)
    return results
  }

  static func floats(_ tensor: HostTensor) -> [Float] { tensor.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
  static func int64s(_ tensor: HostTensor) -> [Int64] { tensor.bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }

  /// Lines of 1000 values drawn from 40 levels (many ties), one NaN, along a middle axis; k of
  /// 17 and all 1000, largest and smallest.
  @Test(arguments: [(17, true), (17, false), (1000, true)])
  func topKSelectsInOrderWithTiesAndNaN(k: Int, largest: Bool) throws {
    let (outer, n, inner) = (3, 1000, 2)
    var x = (0..<(outer * n * inner)).map { Float(($0 * 7919) % 40) / 4 - 3 }
    x[5 * inner] = .nan
    var graph = Graph(opsetImports: ["": 11])
    let input = graph.addInput(name: "x", type: TensorType(.float32, [outer, n, inner]))
    let kValue = graph.addConstant(TensorData([Int64(k)], shape: [1]), name: "k")
    graph.outputs = graph.addNode(
      "TopK", version: 11, inputs: [input, kValue],
      outputTypes: [TensorType(.float32, [outer, k, inner]), TensorType(.int64, [outer, k, inner])],
      attributes: ["axis": .int(1), "largest": .int(largest ? 1 : 0)])
    // The reference: per line, a stable sort by value (NaN largest), best first.
    var wantValues: [Float] = []
    var wantIndices: [Int64] = []
    var lines: [[(Float, Int)]] = []
    for o in 0..<outer {
      for i in 0..<inner {
        let line = (0..<n).map { (x[(o * n + $0) * inner + i], $0) }
        let sorted = line.sorted { a, b in
          let (p, q) = (a.0, b.0)
          if p.isNaN != q.isNaN { return largest ? p.isNaN : q.isNaN }
          if !p.isNaN, p != q { return largest ? p > q : p < q }
          return a.1 < b.1
        }
        lines.append(Array(sorted.prefix(k)))
      }
    }
    for o in 0..<outer {
      for j in 0..<k {
        for i in 0..<inner {
          let (value, index) = lines[o * inner + i][j]
          wantValues.append(value)
          wantIndices.append(Int64(index))
        }
      }
    }
    let inputs = [HostTensor(dtype: "float32", shape: [outer, n, inner], bytes: x.withUnsafeBytes { Array($0) })]
    for (device, outputs) in try run(graph, custom: 1, inputs: inputs) {
      #expect(Self.int64s(outputs[1]) == wantIndices, "indices on \(device)")
      let values = Self.floats(outputs[0])
      #expect(zip(values, wantValues).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "values on \(device)")
    }
  }

  /// CumSum along a middle axis of 300, every mode, against a running sum in Double.
  @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
  func cumulativeSumsRunOnePassPerLine(exclusive: Bool, reverse: Bool) throws {
    let (outer, n, inner) = (5, 300, 3)
    let x = (0..<(outer * n * inner)).map { Float(($0 * 31) % 17) / 8 - 1 }
    var graph = Graph(opsetImports: ["": 14])
    let input = graph.addInput(name: "x", type: TensorType(.float32, [outer, n, inner]))
    let axis = graph.addConstant(TensorData([Int64(1)], shape: []), name: "axis")
    graph.outputs = graph.addNode(
      "CumSum", version: 14, inputs: [input, axis], outputTypes: [TensorType(.float32, [outer, n, inner])],
      attributes: ["exclusive": .int(exclusive ? 1 : 0), "reverse": .int(reverse ? 1 : 0)])
    var want = [Float](repeating: 0, count: x.count)
    for o in 0..<outer {
      for i in 0..<inner {
        var sum = 0.0
        for step in 0..<n {
          let j = reverse ? n - 1 - step : step
          let at = (o * n + j) * inner + i
          if exclusive { want[at] = Float(sum) }
          sum += Double(x[at])
          if !exclusive { want[at] = Float(sum) }
        }
      }
    }
    let inputs = [HostTensor(dtype: "float32", shape: [outer, n, inner], bytes: x.withUnsafeBytes { Array($0) })]
    for (device, outputs) in try run(graph, custom: 1, inputs: inputs) {
      let worst = zip(Self.floats(outputs[0]), want).map { abs($0 - $1) }.max() ?? .infinity
      #expect(worst < 1e-3, "CumSum on \(device): worst error \(worst)")
    }
  }
}
