import Foundation
import KilnCompiler
import KilnIR
import Testing

/// The ONNX reference's 1-D position of output coordinate x (op_resize.py), written out again.
private func referencePosition(
  _ x: Int, scale: Double, input: Int, output: Int, mode: String, roi: (Double, Double) = (0, 1)
) -> Double {
  let x = Double(x)
  let width = scale * Double(input)
  switch mode {
  case "align_corners": return width == 1 ? 0 : x * Double(input - 1) / (width - 1)
  case "asymmetric": return x / scale
  case "pytorch_half_pixel": return width == 1 ? -0.5 : (x + 0.5) / scale - 0.5
  case "tf_half_pixel_for_nn": return (x + 0.5) / scale
  case "half_pixel_symmetric":
    let adjustment = Double(output) / width
    return Double(input) / 2 * (1 - adjustment) + (x + 0.5) / scale - 0.5
  case "tf_crop_and_resize":
    let span = roi.1 - roi.0
    let base = width == 1 ? span * Double(input - 1) / 2 : x * span * Double(input - 1) / (width - 1)
    return base + roi.0 * Double(input - 1)
  default: return (x + 0.5) / scale - 0.5
  }
}

private func referenceNearest(_ position: Double, mode: String, input: Int) -> Int {
  var index = position.rounded(.down)
  let ratio = position - index
  if ratio != 0 {
    switch mode {
    case "round_prefer_floor": index += ratio <= 0.5 ? 0 : 1
    case "round_prefer_ceil": index += ratio < 0.5 ? 0 : 1
    case "ceil": index += 1
    default: break
    }
  }
  return Int(min(max(index, 0), Double(input - 1)))
}

private func referenceLinear(_ data: [Double], _ position: Double) -> Double {
  let p = min(max(position, 0), Double(data.count - 1))
  let low = Int(p.rounded(.down))
  let high = min(low + 1, data.count - 1)
  let w = p - Double(low)
  return data[low] * (1 - w) + data[high] * w
}

@Suite("Resize lowering")
struct ResizeLoweringTests {
  static let transforms = [
    "half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn", "half_pixel_symmetric",
  ]

  /// Every nearest mode, scale and length: the exact integer index formula (or its float
  /// fallback) picks what the reference picks.
  @Test(arguments: transforms)
  func nearestMatchesReference(_ transform: String) throws {
    let scales: [Float] = [0.5, 0.6, 0.75, 1.5, 2, 3, 1.0 / 3, 2.5, 0.3333, 1.7, 4]
    for mode in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
      for length in [1, 3, 5, 7, 16] {
        for scale in scales {
          let out = Int((Double(length) * Double(scale)).rounded(.down))
          guard out >= 1 else { continue }
          let result = try LoweringHarness.run1(
            "Resize", version: 19, inputs: [iota([1, length]), nil, TensorData([Float(1), scale])],
            output: TensorType(.float32, [1, out]),
            attributes: ["coordinate_transformation_mode": .string(transform), "nearest_mode": .string(mode)])
          let expected = (0..<out).map { x in
            Double(
              referenceNearest(
                referencePosition(x, scale: Double(scale), input: length, output: out, mode: transform), mode: mode,
                input: length))
          }
          #expect(result == expected, "\(mode) length \(length) scale \(scale)")
        }
      }
    }
  }

  @Test(arguments: transforms)
  func bilinearMatchesReference(_ transform: String) throws {
    let x = random([1, 1, 4, 5], seed: 7)
    let scales: [Float] = [1, 1, 1.5, 0.6]
    let out = [1, 1, 6, 3]
    let result = try LoweringHarness.run1(
      "Resize", version: 19, inputs: [x, nil, TensorData(scales)], output: TensorType(.float32, out),
      attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string(transform)])
    let data = x.doubles()
    // Separable: rows first, then columns.
    let columns = (0..<4).map { r in
      (0..<3).map { c in
        referenceLinear(
          Array(data[(r * 5)..<(r * 5 + 5)]), referencePosition(c, scale: 0.6, input: 5, output: 3, mode: transform))
      }
    }
    var expected: [Double] = []
    for r in 0..<6 {
      let position = referencePosition(r, scale: 1.5, input: 4, output: 6, mode: transform)
      for c in 0..<3 { expected.append(referenceLinear(columns.map { $0[c] }, position)) }
    }
    expectClose(result, expected)
  }

  @Test func cropAndResizeExtrapolates() throws {
    let x = iota([1, 1, 3, 3])
    let roi = TensorData([Float(0), 0, -0.5, 0.25, 1, 1, 1.0, 1.25])
    let result = try LoweringHarness.run1(
      "Resize", version: 13, inputs: [x, roi, nil, TensorData([Int64(1), 1, 3, 2])],
      output: TensorType(.float32, [1, 1, 3, 2]),
      attributes: [
        "mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize"),
        "extrapolation_value": .float(-1),
      ])
    var expected: [Double] = []
    let rows = (0..<3).map {
      referencePosition($0, scale: 1, input: 3, output: 3, mode: "tf_crop_and_resize", roi: (-0.5, 1.0))
    }
    let cols = (0..<2).map {
      referencePosition($0, scale: 2.0 / 3, input: 3, output: 2, mode: "tf_crop_and_resize", roi: (0.25, 1.25))
    }
    for r in rows {
      for c in cols {
        if r < 0 || r > 2 || c < 0 || c > 2 {
          expected.append(-1)
        } else {
          let rowValues = (0..<3).map { i in referenceLinear((0..<3).map { Double(i * 3 + $0) }, c) }
          expected.append(referenceLinear(rowValues, r))
        }
      }
    }
    expectClose(result, expected)
  }

  @Test func sizesWithAxesAndAspectPolicy() throws {
    let x = iota([1, 2, 4, 6])
    // not_larger: scale = min(3/4, 5/6) = 0.75 on axes 2 and 3 → output 3 x round(4.5) = 3 x 5.
    let result = try LoweringHarness.run1(
      "Resize", version: 18, inputs: [x, nil, nil, TensorData([Int64(3), 5])],
      output: TensorType(.float32, [1, 2, 3, 5]),
      attributes: [
        "axes": .ints([2, 3]), "keep_aspect_ratio_policy": .string("not_larger"), "nearest_mode": .string("floor"),
      ])
    var expected: [Double] = []
    forEachIndex([1, 2, 3, 5]) { i in
      let r = referenceNearest(
        referencePosition(i[2], scale: 0.75, input: 4, output: 3, mode: "half_pixel"), mode: "floor", input: 4)
      let c = referenceNearest(
        referencePosition(i[3], scale: 0.75, input: 6, output: 5, mode: "half_pixel"), mode: "floor", input: 6)
      expected.append(Double(offset([0, i[1], r, c], [1, 2, 4, 6])))
    }
    #expect(result == expected)
  }

  @Test func upsampleAndOpset10Resize() throws {
    let x = iota([1, 1, 2, 2])
    let expected: [Double] = [0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 3, 3, 3]
    let seven = try LoweringHarness.run1(
      "Upsample", version: 7, inputs: [x], output: TensorType(.float32, [1, 1, 4, 6]),
      attributes: ["scales": .floats([1, 1, 2, 3])])
    #expect(seven == expected)
    let nine = try LoweringHarness.run1(
      "Upsample", version: 9, inputs: [x, TensorData([Float(1), 1, 2, 3])], output: TensorType(.float32, [1, 1, 4, 6]))
    #expect(nine == expected)
    // Opset 10 downsampling rounds up (asymmetric positions): 1 / 0.6 = 1.67 picks index 2.
    let down = try LoweringHarness.run1(
      "Resize", version: 10, inputs: [iota([1, 1, 2, 4]), TensorData([Float(1), 1, 0.6, 0.6])],
      output: TensorType(.float32, [1, 1, 1, 2]))
    #expect(down == [0, 2])
  }

  @Test func nearestIndexIsExactIntegerArithmetic() throws {
    var graph = Graph()
    let x = graph.addInput(name: "x", type: TensorType(.float32, [1, 1, 4, 4]))
    let scales = graph.addConstant(TensorData([Float(1), 1, 2, 2]), name: "scales")
    graph.addNode(
      "Resize", version: 13, inputs: [x, nil, scales], outputTypes: [TensorType(.float32, [1, 1, 8, 8])],
      attributes: ["coordinate_transformation_mode": .string("asymmetric"), "nearest_mode": .string("floor")])
    let kernel = try LoweringHarness.kernel(graph, node: 0)
    func containsCast(_ e: Expr) -> Bool {
      e.contains { if case .cast = $0.kind { true } else { false } }
    }
    #expect(!containsCast(kernel.body))
  }
}
