import KilnIR

/// What the target-independent passes work on: the graph, then the dispatch plan formed from it
/// and where each of its tensors lives.
public struct LoweringState: Sendable {
  /// The model as imported, then decomposed and folded.
  public var graph: Graph
  /// After `form-dispatch-regions`: one kernel per materialised tensor, each stating its region.
  public var plan: DispatchPlan?
  /// After `plan-memory`.
  public var memory: MemoryPlan?
  /// After `fp16-weights` (when it converted anything): the plan whose contractions read float16
  /// copies of their weights, for the Vulkan GPU classes, with its own memory plan. Its graph
  /// holds `plan`'s values and the copies, so the plans never give one id two meanings.
  public var halfPrecision: (plan: DispatchPlan, memory: MemoryPlan, count: Int, bytesSaved: Int)?

  public init(graph: Graph) { self.graph = graph }

  /// The plan, or an error naming the pass that should have made it.
  public func requirePlan() throws -> DispatchPlan {
    guard let plan else { throw LoweringError(message: "internal error: the dispatch plan is needed before form-dispatch-regions ran") }
    return plan
  }

  /// The plan and its memory plan, or an error naming the pass that should have made them.
  public func requirePlanAndMemory() throws -> (plan: DispatchPlan, memory: MemoryPlan) {
    guard let memory else { throw LoweringError(message: "internal error: the memory plan is needed before plan-memory ran") }
    return (try requirePlan(), memory)
  }
}

/// The target-independent half of the compile pipeline, in the order it runs:
///
/// 1. `decompose`: ops whose per-element form would nest reductions (Softmax, LayerNorm, ...),
///    and ops with algorithms of their own, become primitive and custom ops.
/// 2. `fold-batchnorm`: inference BatchNormalization after a constant-weight Conv folds into it.
/// 3. `form-dispatch-regions`: every materialised tensor gets one kernel whose region states its
///    kind; elementwise and movement ops fuse into the root they feed or follow.
/// 4. `plan-memory`: intermediates packed into one transient arena by liveness.
/// 5. `fp16-weights` (only with `halfPrecisionWeights`): float16 copies of contraction weights.
public enum MiddleEnd {
  public static func passes(halfPrecisionWeights: Bool = false) -> [Pass<LoweringState>] {
    var passes: [Pass<LoweringState>] = [
      Pass("decompose", run: { $0.graph = try Decompose.run($0.graph) }, describe: { $0.graph.description }),
      Pass("fold-batchnorm", run: { $0.graph = FoldBatchNorm.run($0.graph) }, describe: { $0.graph.description }),
      Pass("form-dispatch-regions", run: { $0.plan = try FormDispatchRegions.run($0.graph) }, describe: { describe($0.plan) }),
      Pass(
        "plan-memory", run: { $0.memory = try PlanMemory.run(try $0.requirePlan()) },
        describe: { state in state.memory.map { describe($0, plan: state.plan) } ?? "" }),
    ]
    if halfPrecisionWeights {
      passes.append(
        Pass(
          "fp16-weights",
          run: { state in
            let half = HalfPrecisionWeights.run(try state.requirePlan())
            guard half.count > 0 else { return }
            state.halfPrecision = (half.plan, try PlanMemory.run(half.plan), half.count, half.bytesSaved)
          },
          describe: { state in
            let (count, bytes) = (state.halfPrecision?.count ?? 0, state.halfPrecision?.bytesSaved ?? 0)
            return "\(count) constants stored as float16 for Vulkan GPUs, \(bytes) bytes saved"
          }))
    }
    return passes
  }

  /// The pipeline of `passes`, verified between passes (in debug builds) by `verify`.
  public static func pipeline(halfPrecisionWeights: Bool = false) -> Pipeline<LoweringState> {
    Pipeline(passes(halfPrecisionWeights: halfPrecisionWeights), verify: verify)
  }

  /// The graph's invariants (`GraphVerifier`) and every kernel of the plans (`KernelVerifier`).
  public static func verify(_ state: LoweringState) throws {
    try GraphVerifier().verify(state.graph)
    for plan in [state.plan, state.halfPrecision?.plan].compactMap({ $0 }) { try verify(plan) }
  }

  /// Every kernel of `plan` (`KernelVerifier`): rewrites that rebind operands must leave each
  /// kernel reading them as they are bound.
  public static func verify(_ plan: DispatchPlan) throws {
    for kernel in plan.kernels { try KernelVerifier().verify(kernel) }
  }

  // MARK: Descriptions (for --print-ir-after and --dump-dir)

  /// Each dispatch with its kernel printed (`KernelPrinter`), then the output copies.
  public static func describe(_ plan: DispatchPlan?) -> String {
    guard let plan else { return "" }
    var lines: [String] = []
    for (index, step) in plan.steps.enumerated() {
      let kernel = plan.kernels[step.kernel]
      let inputs = step.inputs.map { plan.graph[$0].name }.joined(separator: ", ")
      lines.append("dispatch \(index): \(kernel.name) -> '\(plan.graph[step.output].name)' \(kernel.output.dtype.rawValue)\(kernel.shape) <- [\(inputs)]  fuses \(kernel.sourceOps.joined(separator: ", "))")
      lines.append(KernelPrinter().print(kernel).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
    }
    for copy in plan.copies { lines.append("copy '\(plan.graph[copy.source].name)' -> output \(copy.destination)") }
    return lines.joined(separator: "\n")
  }

  /// The arena's size and each value's place in it.
  public static func describe(_ memory: MemoryPlan, plan: DispatchPlan?) -> String {
    var lines = ["arena \(memory.arenaSize) bytes, \(memory.weights.count) weights"]
    guard let plan else { return lines[0] }
    for id in memory.locations.keys.sorted() {
      guard let location = memory.locations[id] else { continue }
      lines.append("'\(plan.graph[id].name)' \(plan.graph.type(of: id).byteCount ?? 0) B at \(location)")
    }
    return lines.joined(separator: "\n")
  }

  /// One line per kernel: its name, region kind and schedule (`summaries`, one per kernel).
  public static func describeSchedules(_ plan: DispatchPlan, _ summaries: [String], note: String? = nil) -> String {
    let lines = zip(plan.kernels, summaries).map { kernel, summary in "\(kernel.name) [\(kernel.region.kind.rawValue)]: \(summary)" }
    return (lines + (note.map { [$0] } ?? [])).joined(separator: "\n")
  }
}
