import Foundation
import KilnIR

// Signal processing: DFT and STFT as direct sums of x[n] * e^(-+2 pi i k n / N) (the angle's
// k * n is reduced modulo N in index arithmetic, so it stays exact), and MelWeightMatrix as a
// generator over its (possibly run-time) edge frequencies. The windows fold at import.

extension OpLowerings {
  static let signalOps = ["DFT", "STFT", "MelWeightMatrix"]

  static func signalLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "DFT": return dft
    case "STFT": return stft
    case "MelWeightMatrix": return melWeightMatrix
    default: return nil
    }
  }

  /// One complex sample: real and imaginary parts in the compute type.
  typealias ComplexSample = (real: Expr, imaginary: Expr)

  /// Input `i`'s complex sample at `coordinates` (whose last entry is replaced): the last axis
  /// holds [real] or [real, imaginary].
  static func complexSample(_ ctx: LoweringContext, _ i: Int, at coordinates: [Expr], type: ValueType) throws
    -> ComplexSample
  {
    let shape = try ctx.shape(i)
    var position = coordinates
    position[position.count - 1] = .index(0)
    let real = try ctx.element(i, at: position, as: type)
    guard shape.last == 2 else { return (real, .constant(0, type)) }
    position[position.count - 1] = .index(1)
    return (real, try ctx.element(i, at: position, as: type))
  }

  /// The real (`part` 0) or imaginary (`part` 1) part of sample * e^(-i theta) (forward) or
  /// sample * e^(+i theta) (inverse), theta = 2 pi (k n mod N) / N for the index `product` k n.
  static func rotated(_ sample: ComplexSample, product: Expr, length: Int, inverse: Bool, part: Expr, type: ValueType)
    -> Expr
  {
    let theta = Expr.binary(
      .multiply, .cast(product.modulo(length), type), .constant(2 * Double.pi / Double(length), type))
    let (cosine, sine) = (Expr.unary(.cos, theta), Expr.unary(.sin, theta))
    let (re, im) = sample
    let forward = !inverse
    let real = Expr.binary(
      forward ? .add : .subtract, .binary(.multiply, re, cosine), .binary(.multiply, im, sine))
    let imaginary = Expr.binary(
      forward ? .subtract : .add, .binary(.multiply, im, cosine), .binary(.multiply, re, sine))
    return .choose(.binary(.equal, part, .index(0)), real, imaginary)
  }

  /// DFT along one signal axis; the inverse divides by N. An inverse one-sided transform
  /// (irfft) extends its N / 2 + 1 bins by conjugate symmetry and returns the real part.
  static let dft = OpLowering(.reduction) { ctx, _, coordinates in
    let shape = try ctx.shape(0)
    let rank = shape.count
    let rawAxis =
      ctx.opset < 20 ? try ctx.intAttribute("axis", default: 1) : try ctx.constantInts(2, "axis")?.first ?? -2
    let axis = try ctx.normalizedAxis(rawAxis, rank: rank)
    let inverse = try ctx.intAttribute("inverse", default: 0) != 0
    let onesided = try ctx.intAttribute("onesided", default: 0) != 0
    let signal = shape[axis]
    let length = try ctx.constantInts(1, "dft_length")?.first ?? (inverse && onesided ? 2 * (signal - 1) : signal)
    guard axis < rank - 1, length > 0 else { throw ctx.error("axis \(rawAxis) or length \(length) is invalid") }
    let type = ctx.outputComputeType()
    let variable = ctx.freshVariable()
    let v = Expr.variable(variable)
    let body: Expr
    let extent: Int
    if inverse && onesided {
      // Bin v of the full spectrum is input bin v (v <= N/2) or the conjugate of bin N - v.
      extent = length
      let mirrored = v.isLess(than: length / 2 + 1)
      let bin = Expr.choose(mirrored, v, Expr.index(length) - v)
      var position = coordinates
      position[axis] = bin.clamped(0, signal - 1)
      var sample = try complexSample(ctx, 0, at: position, type: type)
      sample.imaginary = .choose(mirrored, sample.imaginary, .unary(.negate, sample.imaginary))
      let term = rotated(
        sample, product: v * coordinates[axis], length: length, inverse: true, part: .index(0), type: type)
      body = .choose(bin.isLess(than: signal), term, .constant(0, type))
    } else {
      // Shorter signals are zero-padded to N, longer ones truncated.
      extent = Swift.min(signal, length)
      var position = coordinates
      position[axis] = v
      let sample = try complexSample(ctx, 0, at: position, type: type)
      body = rotated(
        sample, product: v * coordinates[axis], length: length, inverse: inverse, part: coordinates[rank - 1],
        type: type)
    }
    let sum = Expr.reduce(.sum, variable: variable, extent: extent, body: body)
    return inverse ? .binary(.divide, sum, .constant(Double(length), type)) : sum
  }

  /// STFT: out[b, f, k] = sum over n < frame_length of signal[b, f * step + n] * window[n] *
  /// e^(-2 pi i k n / frame_length).
  static let stft = OpLowering(.reduction) { ctx, _, coordinates in
    guard let step = try ctx.constantInts(1, "frame_step")?.first else { throw ctx.error("frame_step is required") }
    let signal = try ctx.shape(0)
    let length = try ctx.constantInts(3, "frame_length")?.first ?? (ctx.hasInput(2) ? try ctx.shape(2)[0] : signal[1])
    let type = ctx.outputComputeType()
    let variable = ctx.freshVariable()
    let n = Expr.variable(variable)
    var sample = try complexSample(ctx, 0, at: [coordinates[0], coordinates[1] * step + n, .index(0)], type: type)
    if ctx.hasInput(2) {
      let weight = try ctx.element(2, at: [n], as: type)
      sample = (.binary(.multiply, sample.real, weight), .binary(.multiply, sample.imaginary, weight))
    }
    let body = rotated(
      sample, product: n * coordinates[2], length: length, inverse: false, part: coordinates[3], type: type)
    return .reduce(.sum, variable: variable, extent: length, body: body)
  }

  /// MelWeightMatrix [dft_length / 2 + 1, num_mel_bins]: triangular filters between edges
  /// spaced equally on the mel scale (see the importer's MelScale, which folds the constant
  /// case the same way), computed in float32.
  static let melWeightMatrix = OpLowering(.elementwise) { ctx, _, coordinates in
    let float = ValueType.float32
    let bins = ctx.outputShape()[1]
    guard let length = try ctx.constantInts(1, "dft_length")?.first else { throw ctx.error("dft_length is required") }
    let rate = try ctx.scalarOperand(2, as: float)
    func mel(_ hertz: Expr) -> Expr {
      let ratio = Expr.binary(.add, .constant(1, float), .binary(.divide, hertz, .constant(700, float)))
      return .binary(.multiply, .constant(2595 / log(10), float), .unary(.log, ratio))
    }
    let low = mel(try ctx.scalarOperand(3, as: float))
    let high = mel(try ctx.scalarOperand(4, as: float))
    let step = Expr.binary(.divide, .binary(.subtract, high, low), .constant(Double(bins + 2), float))
    func edge(_ offset: Int) -> Expr {
      let position = Expr.binary(.add, .binary(.multiply, .cast(coordinates[1] + offset, float), step), low)
      let exponent = Expr.binary(.multiply, position, .constant(log(10) / 2595, float))
      let hertz = Expr.binary(
        .multiply, .constant(700, float), .binary(.subtract, .unary(.exp, exponent), .constant(1, float)))
      let scaled = Expr.binary(.divide, .binary(.multiply, hertz, .constant(Double(length + 1), float)), rate)
      return .cast(.unary(.floor, scaled), .index)
    }
    let (left, center, right) = (edge(0), edge(1), edge(2))
    let j = coordinates[0]
    func ratio(_ numerator: Expr, _ denominator: Expr) -> Expr {
      .binary(.divide, .cast(numerator, float), .cast(denominator, float))
    }
    let rising = Expr.all([.binary(.greaterEqual, j, left), .binary(.less, j, center)])
    let falling = Expr.all([.binary(.greater, j, center), .binary(.less, j, right)])
    let weight = Expr.select(
      .binary(.equal, j, center), .constant(1, float),
      .select(
        rising, ratio(j - left, center - left),
        .select(falling, ratio(right - j, right - center), .constant(0, float))))
    let type = ctx.outputComputeType()
    return type == float ? weight : .cast(weight, type)
  }
}
