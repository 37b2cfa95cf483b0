import Foundation
import KilnBundle
import KilnCodegen
import KilnCompiler
import KilnIR
import KilnONNX
import KilnRuntime
import KilnTestSupport
import Testing

/// Operands larger than a Vulkan binding may cover: Vulkan guarantees a `maxStorageBufferRange`
/// of 2^27 bytes only (lavapipe has exactly that), so the compiler binds larger operands in
/// parts (`VulkanBindingLayout`) and the kernels read and write them through part-selecting
/// accessors.
@Suite(.serialized) struct LargeOperandTests {
  /// Every fixture with its largest Vulkan operands bound in four parts (the parts are a quarter
  /// of the largest tensor, so no kernel needs more bindings than a device has): the split
  /// accessors run in every kernel form (per element, tiled and shared-memory contractions,
  /// reductions, gathers) against the fixtures' references.
  @Test(arguments: ModelCases.fixtureNames, TestDevices.vulkanURIs)
  func fixturesMatchWithOperandsBoundInParts(model: String, device: String) throws {
    let testCase = try #require(ModelCases.fixtures[model])
    let graph = try ONNXImporter().importModel(at: testCase.model)
    var options = CompileOptions(targets: [.vulkan], modelName: model, printer: { _ in })
    let kernels = try FormDispatchRegions.run(try Decompose.run(graph)).kernels
    let largest = kernels.flatMap { $0.inputs + [$0.output] }.map(\.byteCount).max() ?? 0
    let partBytes = max(256, (largest / 4 + 255) / 256 * 256)
    options.vulkanMaximumBindingBytes = partBytes
    let compiled = try ModelCompiler(options: options).compile(graph)
    let reader = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    let function = try #require(reader.manifest.function(named: "main"))
    let dispatches = function.programs.flatMap(\.commands).compactMap { command -> [Manifest.Binding]? in
      if case .dispatch(let dispatch) = command { dispatch.bindings } else { nil }
    }
    let bindings = dispatches.joined()
    #expect(bindings.allSatisfy { $0.length <= partBytes }, "\(model): a binding covers more than \(partBytes) bytes")
    let split = dispatches.contains { list in
      zip(list, list.dropFirst()).contains { $0.buffer == $1.buffer && $1.offset == $0.offset + partBytes }
    }
    // Parts start 256-byte aligned (the offset alignment every device accepts): a model whose
    // operands are all smaller has nothing to split.
    #expect(split || largest <= 256, "\(model): no operand was bound in parts")
    let inputs = try ModelCases.inputs(for: testCase, signature: function.inputs)
    let expected = try ModelCases.expectedOutputs(for: testCase)
    for deviceClass in ["cpu", "gpu"] {
      let outputs = try Session(bundle: reader, device: try TestDevices.device(device), deviceClass: deviceClass).run(inputs)
      for (index, (got, want)) in zip(outputs, expected).enumerated() {
        if let problem = Tolerance(relative: max(1e-3, testCase.rtol)).compare(got, want) {
          Issue.record("\(model) on \(device) (\(deviceClass) kernels, \(partBytes)-byte parts): output \(index): \(problem)")
        }
      }
    }
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }

  /// A 135 MB embedding table read by a Gather, and a 138 MB weight matrix multiplied by a
  /// vector, at the guaranteed limit of 2^27 bytes per binding.
  @Test(arguments: TestDevices.vulkanURIs)
  func operandsAboveTwoToThe27BytesRun(device: String) throws {
    let width = 128
    let rows = (1 << 27) / (width * 4) + 1000
    var table = [Float](repeating: 0, count: rows * width)
    for r in 0..<rows { for c in 0..<width { table[r * width + c] = Float(r % 1000) + Float(c) / 1024 } }
    let ids: [Int64] = [0, 5, 131_072, 262_143, 262_144, 262_145, Int64(rows - 1), 200_000]
    let (k, n) = (4096, 8448)
    var weights = [Float](repeating: 0, count: k * n)
    for i in 0..<k { for j in 0..<n { weights[i * n + j] = Float((i + 2 * j) % 7 - 3) / 8 } }
    let x = (0..<k).map { Float($0 % 5 - 2) / 16 }

    var graph = Graph(opsetImports: ["": 17])
    let idInput = graph.addInput(name: "ids", type: TensorType(.int64, [ids.count]))
    let xInput = graph.addInput(name: "x", type: TensorType(.float32, [1, k]))
    let tableValue = graph.addConstant(TensorData(table, shape: [rows, width]), name: "table")
    let weightValue = graph.addConstant(TensorData(weights, shape: [k, n]), name: "w")
    let gathered = graph.addNode("Gather", inputs: [tableValue, idInput], outputTypes: [TensorType(.float32, [ids.count, width])])
    let product = graph.addNode("MatMul", inputs: [xInput, weightValue], outputTypes: [TensorType(.float32, [1, n])])
    graph.outputs = gathered + product
    let compiled = try ModelCompiler(options: CompileOptions(targets: [.vulkan], modelName: "large", printer: { _ in })).compile(graph)
    let reader = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    let inputs = [
      HostTensor(dtype: "int64", shape: [ids.count], bytes: ids.withUnsafeBytes { Array($0) }),
      HostTensor(dtype: "float32", shape: [1, k], bytes: x.withUnsafeBytes { Array($0) }),
    ]
    var expectedProduct = [Float](repeating: 0, count: n)
    weights.withUnsafeBufferPointer { w in
      for i in 0..<k where x[i] != 0 { for j in 0..<n { expectedProduct[j] += x[i] * w[i * n + j] } }
    }
    for deviceClass in ["cpu", "gpu"] {
      let outputs = try Session(bundle: reader, device: try TestDevices.device(device), deviceClass: deviceClass).run(inputs)
      let rowsGot = outputs[0].bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
      for (slot, id) in ids.enumerated() {
        let want = Array(table[Int(id) * width..<(Int(id) + 1) * width])
        #expect(Array(rowsGot[slot * width..<(slot + 1) * width]) == want, "row \(id) (\(deviceClass) kernels)")
      }
      let productGot = outputs[1].bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
      let worst = zip(productGot, expectedProduct).map { abs($0 - $1) }.max() ?? .infinity
      #expect(worst < 1e-3, "MatMul over a 138 MB weight (\(deviceClass) kernels): worst error \(worst)")
    }
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }
}
