import Foundation
import KilnCompiler
import KilnIR

/// The `schedule-cpu` pass: chooses each kernel's CPU schedule (`CPUSchedule`: Winograd, GEMM,
/// window or loops) once, pre-packing at compile time the constant operands the chosen kernels
/// read packed.
///
/// `CMatMulTemplate` multiplies packed micro-panels (6 rows of A, 16 columns of B, interleaved
/// along the reduction). An operand that is a constant (a convolution's or a fully connected
/// layer's weights) would be packed again on every call, and once per output tile: for a 3x3
/// convolution that copy is about a fifth of the kernel's time. This pass packs it once, into a
/// new constant in exactly the layout the microkernel reads, binds that constant in the CPU
/// program instead, and records which operands each kernel reads pre-packed.
///
/// Only the CPU program changes: the Vulkan program keeps binding the original constants. A
/// constant that no CPU step binds any more is not shipped for a CPU-only bundle (the weights of a
/// bundle are those some program binds).
public enum WeightPrepacking {
  public struct Result: Sendable {
    /// The plan with pre-packed constants added to its graph and bound by the steps that use them.
    public var plan: DispatchPlan
    /// Per kernel index, the operands its C code reads pre-packed.
    public var prepacked: [Int: Set<CMatMulTemplate.Operand>]
    /// Per kernel index, its schedule (made from the kernel as the plan binds it, packed operands
    /// included).
    public var schedules: [CPUSchedule] = []
    /// Constants packed and their bytes.
    public var count: Int
    public var bytes: Int
  }

  /// - Parameter winograd: whether 3x3 convolutions of the shapes `CWinogradTemplate` wins on get
  ///   Winograd-transformed weights (and so run as Winograd convolutions); `KILN_CPU_WINOGRAD=0`
  ///   in the environment turns it off.
  /// - Parameter gemm: whether contractions may run as GEMMs, Winograd and window kernels at all
  ///   (`CompileOptions.cpuGEMM`); without, every kernel runs as loops and nothing is packed.
  public static func run(
    _ plan: DispatchPlan, gemm: Bool = true, winograd: Bool = ProcessInfo.processInfo.environment["KILN_CPU_WINOGRAD"] != "0"
  ) -> Result {
    var result = Result(plan: plan, prepacked: [:], count: 0, bytes: 0)
    guard gemm else {
      result.schedules = plan.kernels.map { _ in .loops }
      return result
    }
    var graph = plan.graph
    var packedValues: [PackKey: ValueID] = [:]
    let stepsOfKernel = Dictionary(grouping: plan.steps.indices, by: { plan.steps[$0].kernel })

    /// Binds `operand` of kernel `kernelIndex` (input `input` of every step in `steps`) pre-packed
    /// by `pack`: every step must bind a float32 constant there, and every one of them must pack;
    /// only then are the packed constants added (each source once per kernel and operand), so no
    /// unbound constant is left in the graph or counted. Returns whether it bound them.
    func bindPacked(
      _ operand: CMatMulTemplate.Operand, kernel kernelIndex: Int, input: Int, steps: [Int], suffix: String,
      pack: ([Float]) -> [Float]?
    ) -> Bool {
      let sources = steps.map { plan.steps[$0].inputs[input] }
      guard sources.allSatisfy({ graph.constants[$0]?.type.dtype == .float32 }) else { return false }
      let keys = sources.map { PackKey(source: $0, kernel: kernelIndex, operand: operand) }
      var fresh: [PackKey: [Float]] = [:]
      for key in keys where packedValues[key] == nil && fresh[key] == nil {
        guard let data = graph.constants[key.source], let values = pack(data.floats()) else { return false }
        fresh[key] = values
      }
      for key in keys where packedValues[key] == nil {
        guard let values = fresh[key] else { continue }
        packedValues[key] = graph.addConstant(TensorData(values), name: "\(graph[key.source].name)#\(suffix)")
        result.count += 1
        result.bytes += values.count * 4
      }
      let packed = keys.compactMap { packedValues[$0] }
      for (step, id) in zip(steps, packed) { result.plan.steps[step].inputs[input] = id }
      result.plan.kernels[kernelIndex].inputs[input].elementCount = graph.type(of: packed[0]).elementCount ?? 0
      result.prepacked[kernelIndex, default: []].insert(operand)
      return true
    }

    for (kernelIndex, kernel) in plan.kernels.enumerated() {
      guard let steps = stepsOfKernel[kernelIndex] else { continue }
      // The Winograd form's weights are its own: when they pack, the GEMM candidates are not packed.
      if winograd, let template = CWinogradTemplate.match(kernel, profitable: true),
        bindPacked(
          CWinogradTemplate.weightsOperand, kernel: kernelIndex, input: template.weightInput, steps: steps, suffix: "winograd",
          pack: { template.prepack(values: $0) })
      {
        continue
      }
      guard let template = CMatMulTemplate.match(kernel) else { continue }
      for (operand, input) in template.prepackCandidates {
        _ = bindPacked(operand, kernel: kernelIndex, input: input, steps: steps, suffix: "packed", pack: { template.prepack(operand, values: $0) })
      }
    }
    result.plan.graph = graph
    result.plan.materialized.formUnion(packedValues.values)
    result.schedules = result.plan.kernels.enumerated().map { index, kernel in
      CPUSchedule.choose(kernel, prepacked: result.prepacked[index] ?? [])
    }
    return result
  }

  /// One packing of one constant: the same constant used by two kernels with different tilings
  /// packs once per kernel.
  private struct PackKey: Hashable {
    var source: ValueID
    var kernel: Int
    var operand: CMatMulTemplate.Operand
  }
}
