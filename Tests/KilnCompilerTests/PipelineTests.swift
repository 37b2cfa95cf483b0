import Foundation
import KilnCompiler
import KilnIR
import Testing

/// The pass machinery: a pipeline runs its named passes in order, prints and dumps the IR after
/// the ones asked for, and blames an invalid IR on the pass that left it.
@Suite struct PipelineTests {
  /// x -> Relu -> Neg -> y.
  static func graph() -> Graph {
    var graph = Graph(opsetImports: ["": 22])
    let x = graph.addInput(name: "x", type: TensorType(.float32, [4]))
    let r = graph.addNode("Relu", version: 22, inputs: [x], outputTypes: [TensorType(.float32, [4])], outputNames: ["r"])
    graph.outputs = graph.addNode("Neg", version: 22, inputs: r, outputTypes: [TensorType(.float32, [4])], outputNames: ["y"])
    return graph
  }

  @Test func middleEndRunsItsPassesInOrder() throws {
    #expect(MiddleEnd.pipeline().names == ["decompose", "fold-batchnorm", "form-dispatch-regions", "plan-memory"])
    #expect(MiddleEnd.pipeline(halfPrecisionWeights: true).names.last == "fp16-weights")
    var state = LoweringState(graph: Self.graph())
    let timings = try MiddleEnd.pipeline().run(&state)
    #expect(timings.map(\.pass) == MiddleEnd.pipeline().names)
    let plan = try #require(state.plan)
    // Relu and Neg fuse into one elementwise kernel whose output is the graph's output.
    #expect(plan.kernels.count == 1)
    #expect(plan.kernels[0].region.kind == .elementwise)
    #expect(state.memory?.locations[state.graph.outputs[0]] == .output(0))
  }

  @Test func printsAndDumpsTheIRAfterThePassesAskedFor() throws {
    let printed = Printed()
    var instrumentation = PassInstrumentation()
    instrumentation.printAfter = ["form-dispatch-regions"]
    instrumentation.printer = { printed.append($0) }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-pipeline-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    instrumentation.dumpDirectory = directory
    var state = LoweringState(graph: Self.graph())
    _ = try MiddleEnd.pipeline().run(&state, instrumentation)
    #expect(printed.lines.count == 1)
    #expect(printed.lines.first?.hasPrefix("// ----- IR after form-dispatch-regions -----\ndispatch 0:") == true)
    let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    #expect(files == ["01-decompose.ir", "02-fold-batchnorm.ir", "03-form-dispatch-regions.ir", "04-plan-memory.ir"])
    let memory = try String(contentsOf: directory.appendingPathComponent("04-plan-memory.ir"), encoding: .utf8)
    #expect(memory.hasPrefix("arena "))
  }

  /// A pass that leaves a node reading a value nothing defines: the verifier after it names it,
  /// and the passes after it do not run.
  @Test func theVerifierBlamesThePassThatBrokeTheIR() throws {
    let breaking = Pass<LoweringState>(
      "break-graph",
      run: { state in
        let dangling = ValueID(state.graph.values.count + 5)
        state.graph.nodes[0].inputs[0] = dangling
      }, describe: { $0.graph.description })
    var ran: [String] = []
    let after = Pass<LoweringState>("after", run: { _ in ran.append("after") }, describe: { _ in "" })
    let pipeline = Pipeline([breaking, after], verify: MiddleEnd.verify)
    var instrumentation = PassInstrumentation()
    instrumentation.verifyEachPass = true
    var state = LoweringState(graph: Self.graph())
    #expect {
      _ = try pipeline.run(&state, instrumentation)
    } throws: { error in
      "\(error)".contains("after pass 'break-graph' is invalid")
    }
    #expect(ran.isEmpty)
    // Without verification the pipeline goes on (release builds rely on the passes' own checks).
    instrumentation.verifyEachPass = false
    state = LoweringState(graph: Self.graph())
    _ = try pipeline.run(&state, instrumentation)
    #expect(ran == ["after"])
  }

  /// A pass over a part of a larger state, lifted by a key path.
  @Test func liftedPassesRunOnTheirPart() throws {
    struct Outer { var inner = 1; var other = "x" }
    let double = Pass<Int>("double", run: { $0 *= 2 }, describe: { "\($0)" })
    let lifted = double.lifted(\Outer.inner)
    var outer = Outer()
    try lifted.run(&outer)
    #expect(outer.inner == 2 && outer.other == "x")
    #expect(lifted.describe(outer) == "2" && lifted.name == "double")
  }
}

/// Lines a printer received (the printer is called on the pipeline's thread).
final class Printed: @unchecked Sendable {
  private(set) var lines: [String] = []
  func append(_ line: String) { lines.append(line) }
}
