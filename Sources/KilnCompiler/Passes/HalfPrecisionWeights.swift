import KilnTensor
import KilnIR

/// `--precision fp16`: the Vulkan gpu class's program reads its contractions' constant operands (the
/// weights of convolutions, MatMul and Gemm) as float16, with float32 arithmetic and
/// accumulation. Batch-1 inference on a GPU streams every weight once per call, so halving their
/// bytes halves most of its memory traffic; activations stay float32.
///
/// A float32 constant of at least `minimumElements` elements that a contraction kernel reads
/// becomes a float16 constant (rounded to nearest even) bound in its place, and the kernel's
/// operand is declared float16; its loads convert to float32 (`ValueType.compute`). A constant
/// with a finite value beyond float16's range (65504) stays float32. Small operands (biases,
/// scales) stay float32: they cost nothing to read. The CPU program and the Vulkan cpu class are
/// not affected.
public enum HalfPrecisionWeights {
  public struct Result: Sendable {
    /// The plan with the float16 constants added to its graph and bound by the steps that use them.
    public var plan: DispatchPlan
    /// Constants converted, and the bytes that saves.
    public var count: Int
    public var bytesSaved: Int
  }

  public static let minimumElements = 1024

  public static func run(_ plan: DispatchPlan) -> Result {
    var result = Result(plan: plan, count: 0, bytesSaved: 0)
    var graph = plan.graph
    var converted: [ValueID: ValueID] = [:]
    var refused: Set<ValueID> = []
    let stepsOfKernel = Dictionary(grouping: plan.steps.indices, by: { plan.steps[$0].kernel })
    for (kernelIndex, kernel) in plan.kernels.enumerated() {
      // A region stating one contraction of two or more factors (what the GPU classes' templates
      // run), with a float32 result.
      guard let contraction = kernel.region.contractions.first, kernel.region.contractions.count == 1,
        contraction.factors.count >= 2, kernel.output.dtype == .float32, let steps = stepsOfKernel[kernelIndex]
      else { continue }
      for (input, operand) in kernel.inputs.enumerated() where operand.dtype == .float32 && operand.elementCount >= minimumElements {
        // Every step running this kernel must bind a convertible float32 constant there.
        let sources = steps.map { plan.steps[$0].inputs[input] }
        guard sources.allSatisfy({ graph.constants[$0]?.type.dtype == .float32 && !refused.contains($0) }) else { continue }
        for source in sources where converted[source] == nil {
          guard let data = graph.constants[source] else { continue }
          let values = data.floats()
          guard !values.contains(where: { $0.isFinite && abs($0) > 65504 }) else {
            refused.insert(source)
            continue
          }
          let half = TensorData(float16Bits: values.map(FloatConversion.float16Bits(from:)), shape: data.shape)
          converted[source] = graph.addConstant(half, name: "\(graph[source].name)#fp16")
          result.count += 1
          result.bytesSaved += values.count * 2
        }
        guard sources.allSatisfy({ converted[$0] != nil }) else { continue }
        for (step, source) in zip(steps, sources) { result.plan.steps[step].inputs[input] = converted[source]! }
        result.plan.kernels[kernelIndex].retype(input: input, as: .float16)
      }
    }
    result.plan.graph = graph
    result.plan.materialized.formUnion(converted.values)
    return result
  }
}
