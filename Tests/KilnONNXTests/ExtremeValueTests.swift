import KilnIR
import Testing

@testable import KilnONNX

/// Drives every integer attribute and every constant integer operand of a set of single-op models
/// to extreme values. The importer must answer each with a graph or an `ONNXImportError`: any
/// arithmetic trap would crash the test process.
@Suite struct ExtremeValueTests {
  static let extremes: [Int64] = [
    Int64.min, Int64.min + 1, -(1 << 40), -3, -1, 0, 1, 2, 1 << 31, 1 << 40, Int64.max - 1, Int64.max,
  ]

  struct Template {
    var op: String
    var operands: [Operand]
    var attributes: [String: AttributeValue]
    var opset: Int
    var outputs: Int = 1
  }

  static let templates: [Template] = {
    let x4 = f32([1, 2, 6, 6])
    let w4 = f32([4, 2, 3, 3])
    let window: [String: AttributeValue] = [
      "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "dilations": .ints([1, 1]),
      "ceil_mode": .int(1),
    ]
    func c(_ values: [Int64]) -> Operand { .constant(TensorData(values)) }
    let table = Operand.constant(TensorData((0..<20).map { Int64($0) }, shape: [4, 5]))
    return [
      Template(
        op: "Conv", operands: [x4, w4],
        attributes: [
          "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "dilations": .ints([1, 1]), "group": .int(1),
        ], opset: 17),
      Template(
        op: "Conv", operands: [x4, w4], attributes: ["strides": .ints([3, 3]), "auto_pad": .string("SAME_UPPER")],
        opset: 17),
      Template(
        op: "ConvTranspose", operands: [f32([1, 4, 3, 3]), w4],
        attributes: [
          "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "output_padding": .ints([1, 1]),
          "dilations": .ints([1, 1]), "group": .int(1),
        ], opset: 17),
      Template(
        op: "ConvTranspose", operands: [f32([1, 4, 3, 3]), w4], attributes: ["output_shape": .ints([5, 5])], opset: 17),
      Template(op: "MaxPool", operands: [x4], attributes: window, opset: 12),
      Template(op: "AveragePool", operands: [x4], attributes: window, opset: 19),
      Template(
        op: "Slice", operands: [f32([4, 5])],
        attributes: ["starts": .ints([1, 0]), "ends": .ints([3, 5]), "axes": .ints([0, 1])], opset: 9),
      Template(
        op: "Slice", operands: [f32([4, 5]), c([1, 0]), c([3, 5]), c([0, 1]), c([1, 2])], attributes: [:], opset: 13),
      Template(op: "Pad", operands: [f32([2, 3])], attributes: ["pads": .ints([1, 1, 1, 1])], opset: 10),
      Template(op: "Pad", operands: [f32([2, 3]), c([1, 1, 1, 1])], attributes: [:], opset: 13),
      Template(
        op: "Split", operands: [f32([6, 2])], attributes: ["axis": .int(0), "split": .ints([2, 4])], opset: 11,
        outputs: 2),
      Template(
        op: "Split", operands: [f32([6, 2]), c([2, 4])], attributes: ["axis": .int(0)], opset: 13, outputs: 2),
      Template(op: "Reshape", operands: [f32([2, 6]), c([3, -1])], attributes: ["allowzero": .int(0)], opset: 14),
      Template(op: "Flatten", operands: [f32([2, 3, 4])], attributes: ["axis": .int(1)], opset: 13),
      Template(op: "Gather", operands: [f32([3, 4]), c([0, 2])], attributes: ["axis": .int(1)], opset: 13),
      Template(op: "Squeeze", operands: [f32([1, 3])], attributes: ["axes": .ints([0])], opset: 11),
      Template(op: "Unsqueeze", operands: [f32([3]), c([0])], attributes: [:], opset: 13),
      Template(op: "Softmax", operands: [f32([2, 3])], attributes: ["axis": .int(1)], opset: 13),
      Template(op: "Concat", operands: [f32([2, 3]), f32([2, 3])], attributes: ["axis": .int(1)], opset: 13),
      Template(op: "Transpose", operands: [f32([2, 3])], attributes: ["perm": .ints([1, 0])], opset: 13),
      Template(op: "Shape", operands: [f32([2, 3, 4])], attributes: ["start": .int(0), "end": .int(2)], opset: 15),
      Template(op: "ArgMax", operands: [f32([2, 3])], attributes: ["axis": .int(1), "keepdims": .int(1)], opset: 13),
      Template(
        op: "ReduceSum", operands: [f32([2, 3])], attributes: ["axes": .ints([1]), "keepdims": .int(1)], opset: 11),
      Template(
        op: "ReduceMean", operands: [f32([2, 3]), c([1])], attributes: ["noop_with_empty_axes": .int(0)], opset: 18),
      Template(op: "LRN", operands: [x4], attributes: ["size": .int(3)], opset: 13),
      Template(
        op: "LayerNormalization", operands: [f32([2, 3]), f32([3])],
        attributes: ["axis": .int(-1), "stash_type": .int(1)], opset: 17, outputs: 2),
      Template(op: "Resize", operands: [x4, .omitted, .omitted, c([1, 2, 3, 3])], attributes: [:], opset: 13),
      Template(
        op: "Resize", operands: [x4, .omitted, .omitted, c([3, 3])],
        attributes: ["axes": .ints([2, 3]), "keep_aspect_ratio_policy": .string("not_smaller")], opset: 18),
      Template(
        op: "Gemm", operands: [f32([2, 3]), f32([3, 4])], attributes: ["transA": .int(0), "transB": .int(0)],
        opset: 13),
      Template(
        op: "Add", operands: [f32([2, 3]), f32([3])], attributes: ["broadcast": .int(1), "axis": .int(1)], opset: 6),
      Template(op: "Tile", operands: [f32([2, 3]), c([2, 2])], attributes: [:], opset: 13),
      Template(op: "Expand", operands: [f32([3, 1]), c([2, 3, 4])], attributes: [:], opset: 13),
      Template(
        op: "Range", operands: [c([0]).scalarized, c([10]).scalarized, c([3]).scalarized], attributes: [:], opset: 13),
      Template(op: "ConstantOfShape", operands: [c([2, 3])], attributes: [:], opset: 13),
      Template(op: "Cast", operands: [f32([2])], attributes: ["to": .int(7)], opset: 13),
      Template(op: "Add", operands: [c([1, 2]), c([3, 4])], attributes: [:], opset: 13),
      Template(op: "Div", operands: [c([1, 2]), c([3, 4])], attributes: [:], opset: 13),
      Template(op: "Mul", operands: [c([1, 2]), c([3, 4])], attributes: [:], opset: 13),
      Template(op: "Pow", operands: [c([1, 2]), c([3, 4])], attributes: [:], opset: 13),
      Template(op: "Abs", operands: [c([1, 2])], attributes: [:], opset: 13),
      Template(op: "Clip", operands: [c([1, 2]), c([0]).scalarized, c([1]).scalarized], attributes: [:], opset: 13),
      Template(op: "ReduceProd", operands: [c([1, 2])], attributes: ["keepdims": .int(0)], opset: 13),
      Template(op: "Dropout", operands: [f32([2])], attributes: ["seed": .int(1)], opset: 13),
      // Constant data, so the folding evaluators run too.
      Template(
        op: "Slice", operands: [table, c([1, 0]), c([3, 5]), c([0, 1]), c([1, 2])], attributes: [:], opset: 13),
      Template(op: "Slice", operands: [table, c([3]), c([0]), c([1]), c([-2])], attributes: [:], opset: 13),
      Template(op: "Gather", operands: [table, c([0, 2])], attributes: ["axis": .int(1)], opset: 13),
      Template(op: "Transpose", operands: [table], attributes: ["perm": .ints([1, 0])], opset: 13),
      Template(op: "Split", operands: [table, c([1, 3])], attributes: ["axis": .int(0)], opset: 13, outputs: 2),
      Template(op: "Concat", operands: [table, table], attributes: ["axis": .int(0)], opset: 13),
      Template(op: "Tile", operands: [table, c([2, 1])], attributes: [:], opset: 13),
      Template(op: "Expand", operands: [table, c([2, 4, 5])], attributes: [:], opset: 13),
      Template(op: "Unsqueeze", operands: [table, c([0])], attributes: [:], opset: 13),
      Template(
        op: "Squeeze", operands: [.constant(TensorData([1, 2, 3] as [Int64], shape: [1, 3])), c([0])], attributes: [:],
        opset: 13),
      Template(op: "ReduceSum", operands: [table, c([1])], attributes: ["keepdims": .int(0)], opset: 13),
      Template(op: "Reshape", operands: [table, c([2, -1])], attributes: [:], opset: 13),
      Template(op: "Shape", operands: [table], attributes: ["start": .int(0), "end": .int(1)], opset: 15),
      Template(
        op: "Range", operands: [c([0]).scalarized, c([10]).scalarized, c([3]).scalarized], attributes: [:], opset: 13),
      Template(
        op: "ConstantOfShape", operands: [c([2, 3])], attributes: ["value": .tensor(TensorData([7] as [Int64]))],
        opset: 13),
    ]
  }()

  /// Every variant of `template` with one integer (attribute element or constant element) replaced.
  static func variants(_ template: Template) -> [Template] {
    var result: [Template] = []
    for (name, value) in template.attributes {
      switch value {
      case .int:
        for extreme in extremes {
          var copy = template
          copy.attributes[name] = .int(extreme)
          result.append(copy)
        }
      case .ints(let list):
        for index in list.indices {
          for extreme in extremes {
            var copy = template
            var changed = list
            changed[index] = extreme
            copy.attributes[name] = .ints(changed)
            result.append(copy)
          }
        }
      default: break
      }
    }
    for (slot, operand) in template.operands.enumerated() {
      guard case .constant(let data) = operand, data.dtype == .int64 else { continue }
      let values = data.int64s()
      for index in values.indices {
        for extreme in extremes {
          var changed = values
          changed[index] = extreme
          var copy = template
          copy.operands[slot] = .constant(TensorData(changed, shape: data.shape))
          result.append(copy)
        }
      }
    }
    return result
  }

  @Test(arguments: templates.indices)
  func extremeIntegers(template index: Int) {
    let template = Self.templates[index]
    #expect(throws: Never.self, "\(template.op) base model must import") {
      _ = try singleNodeModel(
        template.op, template.operands, template.attributes, opset: template.opset, outputs: template.outputs
      )
      .importGraph()
    }
    for variant in Self.variants(template) {
      let builder = singleNodeModel(
        variant.op, variant.operands, variant.attributes, opset: variant.opset, outputs: variant.outputs)
      do {
        let graph = try builder.importGraph(options: ImportOptions(memoryBudget: 1 << 30))
        try graph.verify()
      } catch is ONNXImportError {
      } catch {
        Issue.record("\(variant.op): unexpected \(error)")
      }
    }
  }
}

extension Operand {
  /// A one-element constant as a rank-0 constant.
  var scalarized: Operand {
    guard case .constant(let data) = self, let scalar = data.reshaped(to: []) else { return self }
    return .constant(scalar)
  }
}
