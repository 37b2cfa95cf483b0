import Foundation
import KilnIR

// Signal processing: DFT, STFT, the Hann/Hamming/Blackman windows and MelWeightMatrix. The
// windows depend only on a constant size and always fold; MelWeightMatrix folds when its edge
// frequencies are constants too (else it lowers, like DFT and STFT).

/// The geometry of a DFT node: the transformed axis, the transform length and the output shape.
struct DFTGeometry {
  /// The signal axis (never the last, which holds the real/imaginary pair).
  var axis: Int
  /// The transform length N.
  var length: Int
  var inverse: Bool
  var onesided: Bool
  var outputShape: [Int]

  /// Reads axis (an attribute before opset 20, a constant input from then on), dft_length,
  /// inverse and onesided. An inverse one-sided transform (irfft) takes N / 2 + 1 bins and
  /// returns N real samples (last dimension 1).
  init(_ ctx: OpContext) throws {
    let x = try ctx.type(0)
    try Shapes.requireFloat(x)
    guard x.rank >= 2, x.shape[x.rank - 1] == 1 || x.shape[x.rank - 1] == 2 else {
      throw ONNXImportError.shape("input \(x.shape) must end in a dimension of 1 (real) or 2 (complex)")
    }
    let rawAxis: Int
    if ctx.opset < 20 {
      rawAxis = try ctx.node.int("axis", default: 1)
    } else {
      if ctx.node.hasAttribute("axis") {
        throw ONNXImportError.unsupported("attribute 'axis' is not valid from opset 20 on (axis is an input)")
      }
      rawAxis = try ctx.constantInts(2, "axis")?.first ?? -2
    }
    axis = try Shapes.axis(rawAxis, rank: x.rank)
    guard axis != x.rank - 1 else {
      throw ONNXImportError.attribute("axis \(rawAxis) is the real/imaginary axis; it must name a signal axis")
    }
    inverse = try ctx.node.int("inverse", default: 0) != 0
    onesided = try ctx.node.int("onesided", default: 0) != 0
    let signal = x.shape[axis]
    if let given = try ctx.constantInts(1, "dft_length") {
      guard given.count == 1, given[0] > 0 else {
        throw ONNXImportError.attribute("dft_length \(given) must be one positive value")
      }
      length = given[0]
    } else {
      length = inverse && onesided ? 2 * (signal - 1) : signal
    }
    guard length > 0 else { throw ONNXImportError.shape("the transform length \(length) must be positive") }
    var shape = x.shape
    shape[axis] = onesided && !inverse ? length / 2 + 1 : length
    shape[x.rank - 1] = inverse && onesided ? 1 : 2
    outputShape = shape
  }
}

extension OpRegistry {
  static func signalSpecs() -> [String: OpSpec] {
    var specs: [String: OpSpec] = [:]

    specs["DFT"] = OpSpec(
      attributes: ["axis", "inverse", "onesided"], inputs: 1...3, outputs: 1...1,
      infer: { ctx in
        let geometry = try DFTGeometry(ctx)
        return [TensorType(try ctx.type(0).dtype, geometry.outputShape)]
      })

    specs["STFT"] = OpSpec(
      attributes: ["onesided"], inputs: 2...4, outputs: 1...1,
      infer: { ctx in
        let signal = try ctx.type(0)
        try Shapes.requireFloat(signal, "signal")
        guard signal.rank == 3, signal.shape[2] == 1 || signal.shape[2] == 2 else {
          throw ONNXImportError.shape("signal must be [batch, length, 1 or 2], got \(signal.shape)")
        }
        guard let step = try ctx.constantInts(1, "frame_step")?.first, step > 0 else {
          throw ONNXImportError.attribute("frame_step must be a positive scalar")
        }
        let window = ctx.optionalType(2)
        let declared = try ctx.constantInts(3, "frame_length")?.first
        let frameLength = declared ?? window?.shape.first ?? signal.shape[1]
        if let window, window.shape != [frameLength] {
          throw ONNXImportError.shape("window shape \(window.shape) must be [\(frameLength)] (the frame length)")
        }
        guard frameLength > 0, frameLength <= signal.shape[1] else {
          throw ONNXImportError.shape("frame length \(frameLength) must lie in 1...\(signal.shape[1])")
        }
        let frames = 1 + (signal.shape[1] - frameLength) / step
        let onesided = try ctx.node.int("onesided", default: 1) != 0
        let bins = onesided ? frameLength / 2 + 1 : frameLength
        return [TensorType(signal.dtype, [signal.shape[0], frames, bins, 2])]
      })

    for (op, coefficients) in windowCoefficients {
      specs[op] = OpSpec(
        attributes: ["output_datatype", "periodic"], inputs: 1...1, outputs: 1...1, alwaysFolds: true,
        infer: { ctx in [TensorType(try outputDataType(ctx), [try windowSize(ctx)])] },
        fold: { ctx in
          guard let type = ctx.outputTypes.first else { return nil }
          let size = try windowSize(ctx)
          let periodic = try ctx.node.int("periodic", default: 1) != 0
          let denominator = Double(periodic ? size : size - 1)
          let values = (0..<size).map { n -> Double in
            let phase = denominator == 0 ? 0 : 2 * Double.pi * Double(n) / denominator
            return coefficients.enumerated().reduce(0) { $0 + $1.element * cos(Double($1.offset) * phase) }
          }
          return [TensorData(type: type, doubles: values)]
        })
    }

    specs["MelWeightMatrix"] = OpSpec(
      attributes: ["output_datatype"], inputs: 5...5, outputs: 1...1,
      infer: { ctx in
        guard let bins = try ctx.constantInts(0, "num_mel_bins")?.first, bins > 0,
          let length = try ctx.constantInts(1, "dft_length")?.first, length > 0
        else { throw ONNXImportError.attribute("num_mel_bins and dft_length must be positive scalars") }
        return [TensorType(try outputDataType(ctx), [length / 2 + 1, bins])]
      },
      fold: { ctx in
        let scalars = (0..<5).map { ctx.data($0)?.scalarDouble }
        guard let type = ctx.outputTypes.first,
          case let (bins?, length?, rate?, low?, high?) =
            (scalars[0], scalars[1], scalars[2], scalars[3], scalars[4])
        else { return nil }
        let edges = MelScale.edges(bins: Int(bins), length: Int(length), rate: rate, low: low, high: high)
        let values = (0..<type.shape[0]).flatMap { j in
          (0..<Int(bins)).map { i in MelScale.weight(j, left: edges[i], center: edges[i + 1], right: edges[i + 2]) }
        }
        return [TensorData(type: type, doubles: values)]
      })
    return specs
  }

  /// Cosine-series coefficients a_k of w[n] = sum_k a_k cos(k * 2 pi n / N).
  static let windowCoefficients: [(String, [Double])] = [
    ("HannWindow", [0.5, -0.5]),
    ("HammingWindow", [25.0 / 46.0, -21.0 / 46.0]),
    ("BlackmanWindow", [0.42, -0.5, 0.08]),
  ]

  static func windowSize(_ ctx: OpContext) throws -> Int {
    guard let size = try ctx.constantInts(0, "size")?.first, size >= 0, try ctx.type(0).shape.reduce(1, *) == 1 else {
      throw ONNXImportError.attribute("size must be a non-negative integer scalar")
    }
    return size
  }

  /// The float type named by `output_datatype` (float32 by default).
  static func outputDataType(_ ctx: OpContext) throws -> DType {
    let code = try ctx.node.int("output_datatype", default: 1)
    guard let code32 = Int32(exactly: code), let dtype = DType(onnxCode: code32), dtype.isFloat else {
      throw ONNXImportError(.unsupportedType, "output_datatype \(code) is not a supported float type")
    }
    return dtype
  }
}

/// The triangular mel filters of MelWeightMatrix, as the ONNX reference computes them: edge
/// frequencies equally spaced on the mel scale (num_mel_bins + 2 of them, step (high - low) /
/// (num_mel_bins + 2)), converted to DFT bins by floor((dft_length + 1) * f / sample_rate).
enum MelScale {
  /// The num_mel_bins + 2 filter edges, as DFT bin indices.
  static func edges(bins: Int, length: Int, rate: Double, low: Double, high: Double) -> [Int] {
    func mel(_ hertz: Double) -> Double { 2595 * log10(1 + hertz / 700) }
    let step = (mel(high) - mel(low)) / Double(bins + 2)
    return (0..<(bins + 2)).map { k in
      let hertz = 700 * (pow(10, (Double(k) * step + mel(low)) / 2595) - 1)
      return Int((Double(length + 1) * hertz / rate).rounded(.down))
    }
  }

  /// Filter weight of DFT bin `j` for a filter rising from `left` to 1 at `center` and falling
  /// to 0 at `right`.
  static func weight(_ j: Int, left: Int, center: Int, right: Int) -> Double {
    if j == center { return 1 }
    if j >= left, j < center { return Double(j - left) / Double(center - left) }
    if j > center, j < right { return Double(right - j) / Double(right - center) }
    return 0
  }
}
