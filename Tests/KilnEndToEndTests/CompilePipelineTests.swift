import Foundation
import KilnCodegen
import KilnCompiler
import KilnIR
import Synchronization
import Testing

/// `ModelCompiler` runs the pass list it names: `passNames` (what `--print-ir-after` accepts) is
/// derived from the pipeline, and a compile for some targets runs just their passes, in order.
@Suite struct CompilePipelineTests {
  static func graph() -> Graph {
    var graph = Graph(opsetImports: ["": 17])
    let type = TensorType(.float32, [8, 8])
    let x = graph.addInput(name: "x", type: type)
    let w = graph.addConstant(TensorData((0..<64).map { Float($0) / 64 }, shape: [8, 8]), name: "w")
    let product = graph.addNode("MatMul", inputs: [x, w], outputTypes: [type])[0]
    graph.outputs = graph.addNode("Relu", inputs: [product], outputTypes: [type])
    return graph
  }

  @Test func passNamesAreThePipelinesPasses() {
    #expect(
      ModelCompiler.passNames == [
        "decompose", "fold-batchnorm", "form-dispatch-regions", "plan-memory", "fp16-weights", "schedule-vulkan", "vulkan-sources",
        "schedule-cpu", "cpu-source", "pack-weights", "codegen-vulkan", "codegen-cpu", "program", "manifest",
      ])
  }

  @Test func aCPUCompileRunsTheCPUPassesAndPrintsTheSchedule() throws {
    let printed = Mutex<[String]>([])
    var options = CompileOptions(targets: [.cpu], printIRAfter: ["schedule-cpu"], printer: { line in printed.withLock { $0.append(line) } })
    options.cpuVariants = ["baseline"]
    let compiled = try ModelCompiler(options: options).compile(Self.graph())
    #expect(
      compiled.timings.map(\.pass) == [
        "decompose", "fold-batchnorm", "form-dispatch-regions", "plan-memory", "schedule-cpu", "cpu-source", "pack-weights",
        "codegen-cpu", "program", "manifest",
      ])
    let lines = printed.withLock { $0 }
    #expect(lines.count == 1)
    // One kernel, a contraction with its Relu epilogue, and the schedule chosen for it.
    #expect(lines.first?.contains("[contraction]: ") == true, "\(lines)")
    #expect(compiled.manifest.functions.first?.programs.map(\.target) == ["cpu"])
  }
}
