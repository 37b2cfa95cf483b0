import KilnIR

/// The lowering of every supported ai.onnx operator to the kernel IR.
///
/// Each lowering states the value of one output element in terms of input elements, with exact
/// ONNX semantics for every opset from 7 on. Attributes that later opsets moved to inputs (axes,
/// pads, scales, starts...) must be compile-time constants there.
public enum OpLowerings {
  /// The lowering of `node`, or nil when its op is not supported (the caller reports it).
  /// Throws when the op is supported but this use of it is not (for example a training-mode
  /// output, or an op that the `Decompose` pass rewrites and that reached lowering anyway).
  public static func lowering(for node: Node) throws -> OpLowering? {
    if node.domain == mlDomain { return try mlLowering(node) }
    if node.domain == kilnDomain { return kilnLowering(node) }
    guard node.domain == Node.defaultDomain || node.domain == "ai.onnx" else { return nil }
    if decomposedOps.contains(node.op) {
      throw LoweringError(
        node, "\(node.op) is rewritten into primitive ops by the Decompose pass; run it before lowering")
    }
    if let lowering = try elementwiseLowering(node) { return lowering }
    if let lowering = try movementLowering(node) { return lowering }
    if let lowering = try reductionLowering(node) { return lowering }
    if let lowering = try generatorLowering(node) { return lowering }
    if let lowering = try sequenceLowering(node) { return lowering }
    if let lowering = try indexingLowering(node) { return lowering }
    if let lowering = try samplingLowering(node) { return lowering }
    if let lowering = try signalLowering(node) { return lowering }
    if let lowering = try linearAlgebraLowering(node) { return lowering }
    if let lowering = dataDependentLowering(node) { return lowering }
    return nil
  }

  /// Every op `lowering(for:)` handles, sorted.
  public static let supportedOps: [String] =
    (elementwiseOps + movementOps + reductionOps + generatorOps + sequenceOps + indexingOps + samplingOps + signalOps
      + linearAlgebraOps + dataDependentOps).sorted()

  /// Ops that only the `Decompose` pass handles.
  static let decomposedOps: Set<String> = ([
    "Softmax", "LogSoftmax", "LayerNormalization", "InstanceNormalization", "MeanVarianceNormalization",
    "Hardmax", "RMSNormalization", "GroupNormalization", "LpNormalization", "Attention",
    "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "LinearAttention", "CausalConvWithState", "TopK",
  ] as Set<String>).union(Decompose.quantizedOps).union(Decompose.recurrentOps)
}
