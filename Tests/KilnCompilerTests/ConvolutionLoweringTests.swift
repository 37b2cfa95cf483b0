import Foundation
import KilnCompiler
import KilnIR
import Testing

/// Window attributes of a naive reference: begin pads per spatial axis.
private struct Window {
  var strides: [Int]
  var dilations: [Int]
  var padBegin: [Int]
}

/// Naive N-D grouped convolution.
private func referenceConv(
  _ x: TensorData, _ w: TensorData, _ b: TensorData?, output: [Int], group: Int, window: Window
) -> [Double] {
  let xv = x.doubles()
  let wv = w.doubles()
  let bv = b?.doubles()
  let cPerGroup = w.shape[1]
  let mPerGroup = w.shape[0] / group
  let kernel = Array(w.shape[2...])
  var result: [Double] = []
  forEachIndex(output) { o in
    let (n, m) = (o[0], o[1])
    let g = m / mPerGroup
    var sum = bv?[m] ?? 0
    for c in 0..<cPerGroup {
      forEachIndex(kernel) { k in
        var position: [Int] = []
        for i in kernel.indices {
          position.append(o[2 + i] * window.strides[i] + k[i] * window.dilations[i] - window.padBegin[i])
        }
        guard zip(position, x.shape[2...]).allSatisfy({ $0 >= 0 && $0 < $1 }) else { return }
        sum += xv[offset([n, g * cPerGroup + c] + position, x.shape)] * wv[offset([m, c] + k, w.shape)]
      }
    }
    result.append(sum)
  }
  return result
}

/// Naive scatter-form transposed convolution.
private func referenceConvTranspose(
  _ x: TensorData, _ w: TensorData, _ b: TensorData?, output: [Int], group: Int, window: Window
) -> [Double] {
  let xv = x.doubles()
  let wv = w.doubles()
  var result = [Double](repeating: 0, count: output.reduce(1, *))
  let cPerGroup = x.shape[1] / group
  let mPerGroup = w.shape[1]
  let kernel = Array(w.shape[2...])
  forEachIndex(x.shape) { i in
    let (n, c) = (i[0], i[1])
    let g = c / cPerGroup
    for mm in 0..<mPerGroup {
      forEachIndex(kernel) { k in
        var position: [Int] = []
        for d in kernel.indices {
          position.append(i[2 + d] * window.strides[d] + k[d] * window.dilations[d] - window.padBegin[d])
        }
        guard zip(position, output[2...]).allSatisfy({ $0 >= 0 && $0 < $1 }) else { return }
        result[offset([n, g * mPerGroup + mm] + position, output)] +=
          xv[offset(i, x.shape)] * wv[offset([c, mm] + k, w.shape)]
      }
    }
  }
  if let b {
    let bv = b.doubles()
    forEachIndex(output) { o in result[offset(o, output)] += bv[o[1]] }
  }
  return result
}

@Suite("Convolution and pooling lowering")
struct ConvolutionLoweringTests {
  @Test func groupedDilatedPaddedStridedConv2D() throws {
    let x = random([2, 4, 7, 6], seed: 11)
    let w = random([6, 2, 3, 2], seed: 12)
    let b = random([6], seed: 13)
    // pads: top 1, left 2, bottom 0, right 1; stride 2x1; dilation 2x1.
    let out = [2, 6, 2, 8]
    let result = try LoweringHarness.run1(
      "Conv", version: 11, inputs: [x, w, b], output: TensorType(.float32, out),
      attributes: [
        "group": .int(2), "pads": .ints([1, 2, 0, 1]), "strides": .ints([2, 1]), "dilations": .ints([2, 1]),
      ])
    let expected = referenceConv(
      x, w, b, output: out, group: 2, window: Window(strides: [2, 1], dilations: [2, 1], padBegin: [1, 2]))
    expectClose(result, expected)
  }

  @Test(arguments: ["SAME_UPPER", "SAME_LOWER", "VALID"])
  func convAutoPad(_ mode: String) throws {
    let x = random([1, 2, 6, 5], seed: 21)
    let w = random([3, 2, 3, 4], seed: 22)
    let strides = [2, 2]
    let out: [Int] = mode == "VALID" ? [1, 3, 2, 1] : [1, 3, 3, 3]
    let result = try LoweringHarness.run1(
      "Conv", version: 11, inputs: [x, w], output: TensorType(.float32, out),
      attributes: ["auto_pad": .string(mode), "strides": .ints([2, 2])])
    var begin = [0, 0]
    if mode != "VALID" {
      for i in 0..<2 {
        let total = max(0, (out[2 + i] - 1) * strides[i] + w.shape[2 + i] - x.shape[2 + i])
        begin[i] = mode == "SAME_UPPER" ? total / 2 : total - total / 2
      }
    }
    let expected = referenceConv(
      x, w, nil, output: out, group: 1, window: Window(strides: strides, dilations: [1, 1], padBegin: begin))
    expectClose(result, expected)
  }

  @Test func depthwiseConv1DAndConv3D() throws {
    let x1 = random([1, 3, 9], seed: 31)
    let w1 = random([3, 1, 3], seed: 32)
    let one = try LoweringHarness.run1(
      "Conv", inputs: [x1, w1], output: TensorType(.float32, [1, 3, 9]),
      attributes: ["group": .int(3), "pads": .ints([1, 1])])
    expectClose(
      one,
      referenceConv(
        x1, w1, nil, output: [1, 3, 9], group: 3, window: Window(strides: [1], dilations: [1], padBegin: [1])))
    let x3 = random([1, 2, 4, 3, 3], seed: 33)
    let w3 = random([2, 2, 2, 2, 2], seed: 34)
    let three = try LoweringHarness.run1(
      "Conv", inputs: [x3, w3], output: TensorType(.float32, [1, 2, 3, 3, 3]),
      attributes: ["pads": .ints([0, 1, 0, 0, 0, 1])])
    expectClose(
      three,
      referenceConv(
        x3, w3, nil, output: [1, 2, 3, 3, 3], group: 1,
        window: Window(strides: [1, 1, 1], dilations: [1, 1, 1], padBegin: [0, 1, 0])))
  }

  @Test func convTransposeStridesPadsOutputPaddingGroups() throws {
    let x = random([1, 4, 3, 4], seed: 41)
    let w = random([4, 3, 3, 2], seed: 42)
    let b = random([6], seed: 43)
    // H: (3-1)*2 + 1 + 3 - 1 - 0 = 7; W: (4-1)*3 + 0 + (2-1)*2+1 - 0 - 1 = 11
    let out = [1, 6, 7, 11]
    let result = try LoweringHarness.run1(
      "ConvTranspose", inputs: [x, w, b], output: TensorType(.float32, out),
      attributes: [
        "group": .int(2), "strides": .ints([2, 3]), "pads": .ints([1, 0, 0, 1]), "output_padding": .ints([1, 0]),
        "dilations": .ints([1, 2]),
      ])
    let expected = referenceConvTranspose(
      x, w, b, output: out, group: 2, window: Window(strides: [2, 3], dilations: [1, 2], padBegin: [1, 0]))
    expectClose(result, expected)
  }

  @Test func convTransposeSameUpper() throws {
    let x = random([1, 1, 3], seed: 51)
    let w = random([1, 2, 4], seed: 52)
    let result = try LoweringHarness.run1(
      "ConvTranspose", inputs: [x, w], output: TensorType(.float32, [1, 2, 6]),
      attributes: ["strides": .ints([2]), "auto_pad": .string("SAME_UPPER")])
    // total padding = 2*2 + 4 - 6 = 2: one at the beginning.
    expectClose(
      result,
      referenceConvTranspose(
        x, w, nil, output: [1, 2, 6], group: 1, window: Window(strides: [2], dilations: [1], padBegin: [1])))
  }

  @Test func maxPoolCeilModePadsDilationsAndIndices() throws {
    let x = random([1, 2, 5, 6], seed: 61)
    // H: (5 + 1 + 0 - 3) / 2 ceil → 3 (last window starts at 3 < 5 + 1); W: (6 + 0 + 1 - 3) / 2 ceil → 3, dilation 1.
    let out = [1, 2, 3, 3]
    let outputs = try LoweringHarness.run(
      "MaxPool", version: 12, inputs: [x], outputs: [TensorType(.float32, out), TensorType(.int64, out)],
      attributes: [
        "kernel_shape": .ints([3, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 1]), "ceil_mode": .int(1),
        "dilations": .ints([1, 2]),
      ])
    let xv = x.doubles()
    var values: [Double] = []
    var indices: [Double] = []
    forEachIndex(out) { o in
      var best = -Double.infinity
      var bestIndex = -1
      for kh in 0..<3 {
        for kw in 0..<2 {
          let h = o[2] * 2 + kh - 1
          let w = o[3] * 2 + kw * 2
          guard h >= 0, h < 5, w >= 0, w < 6 else { continue }
          let i = offset([o[0], o[1], h, w], [1, 2, 5, 6])
          if xv[i] > best { best = xv[i]; bestIndex = i }
        }
      }
      values.append(best)
      indices.append(Double(bestIndex))
    }
    #expect(outputs[0] == values)
    #expect(outputs[1] == indices)
  }

  @Test(arguments: [false, true])
  func averagePoolCountsPadding(_ includePad: Bool) throws {
    let x = random([1, 1, 5, 5], seed: 71)
    // kernel 3, stride 2, pads 1 each side, ceil_mode: (5 + 2 - 3) / 2 + 1 = 3 → exact, plus a
    // fourth window only if it starts inside; here it does not, so use pads 1/0 to force clipping.
    let out = [1, 1, 3, 3]
    let result = try LoweringHarness.run1(
      "AveragePool", version: 19, inputs: [x], output: TensorType(.float32, out),
      attributes: [
        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 0]), "ceil_mode": .int(1),
        "count_include_pad": .int(includePad ? 1 : 0),
      ])
    let xv = x.doubles()
    var expected: [Double] = []
    forEachIndex(out) { o in
      var sum = 0.0
      var count = 0
      for kh in 0..<3 {
        for kw in 0..<3 {
          let h = o[2] * 2 + kh - 1
          let w = o[3] * 2 + kw - 1
          // The padded input spans -1..<5 (no end padding): windows are clipped there.
          guard h < 5, w < 5 else { continue }
          if h >= 0 && w >= 0 { sum += xv[h * 5 + w] }
          if includePad || (h >= 0 && w >= 0) { count += 1 }
        }
      }
      expected.append(sum / Double(count))
    }
    expectClose(result, expected)
  }

  @Test func lpPoolAndGlobalPools() throws {
    let x = random([1, 2, 3, 4], seed: 81)
    let xv = x.doubles()
    let lp = try LoweringHarness.run1(
      "LpPool", version: 18, inputs: [x], output: TensorType(.float32, [1, 2, 2, 3]),
      attributes: ["kernel_shape": .ints([2, 2]), "p": .int(3)])
    var expected: [Double] = []
    forEachIndex([1, 2, 2, 3]) { o in
      var sum = 0.0
      for kh in 0..<2 {
        for kw in 0..<2 { sum += pow(abs(xv[offset([0, o[1], o[2] + kh, o[3] + kw], [1, 2, 3, 4])]), 3) }
      }
      expected.append(pow(sum, 1.0 / 3))
    }
    expectClose(lp, expected)
    let average = try LoweringHarness.run1(
      "GlobalAveragePool", inputs: [x], output: TensorType(.float32, [1, 2, 1, 1]))
    expectClose(average, [Array(xv[0..<12]).reduce(0, +) / 12, Array(xv[12..<24]).reduce(0, +) / 12])
    let maximum = try LoweringHarness.run1("GlobalMaxPool", inputs: [x], output: TensorType(.float32, [1, 2, 1, 1]))
    #expect(maximum == [xv[0..<12].max() ?? 0, xv[12..<24].max() ?? 0])
  }

  @Test func integerMaxPoolPadsWithLowestValue() throws {
    let x = TensorData(type: TensorType(.int8, [1, 1, 2, 2]), int64s: [-100, -50, -120, -128])
    let result = try LoweringHarness.run1(
      "MaxPool", version: 12, inputs: [x], output: TensorType(.int8, [1, 1, 3, 3]),
      attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
    #expect(result == [-100, -50, -50, -100, -50, -50, -120, -120, -128])
  }
}
