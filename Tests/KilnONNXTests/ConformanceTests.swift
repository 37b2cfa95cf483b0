import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// Imports the official ONNX backend node tests whose only op Kiln supports and compares the
/// inferred output types with the stored expected outputs.
@Suite struct ConformanceTests {
  static let testsRoot = packageRoot.appendingPathComponent("../shared/onnx-tests").standardizedFileURL
  static let nodeTests = testsRoot.appendingPathComponent("node")
  static let inventory = packageRoot.appendingPathComponent("../shared/onnx-tests/inventory.csv").standardizedFileURL

  struct Case {
    var test: String
    var ops: [String]
  }

  /// Tests from inventory.csv whose inputs and outputs are all tensors and whose ops are all
  /// supported, split into single-op and multi-op (e.g. `_expanded`) models.
  static func cases(group: String = "node") throws -> (single: [Case], multi: [Case]) {
    let text = try String(contentsOf: inventory, encoding: .utf8)
    let supported = Set(ONNXImporter.supportedOps)
    var single: [Case] = []
    var multi: [Case] = []
    for line in text.split(whereSeparator: \.isNewline).dropFirst() {
      let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
      guard fields.count > 6, fields[0] == group, fields[6] == "tensor", fields[5] == "0" else { continue }
      let ops = fields[4].split(separator: ";").map(String.init)
      guard ops.allSatisfy(supported.contains) else { continue }
      let entry = Case(test: fields[1], ops: ops)
      if ops.count == 1 { single.append(entry) } else { multi.append(entry) }
    }
    return (single, multi)
  }

  enum Outcome {
    case match
    case mismatch(String)
    case rejected(ONNXImportError)
  }

  /// Imports a test model. Backend tests pass shape-defining operands (Reshape's shape, axes,
  /// pads, Resize scales) as graph inputs; when the import needs them static, the integer inputs
  /// are bound to the test's stored input values (`ImportOptions.constantInputs`) and it retries.
  static func importTest(_ folder: URL) throws -> Graph {
    let url = folder.appendingPathComponent("model.onnx")
    do {
      return try ONNXImporter().importModel(at: url)
    } catch let error as ONNXImportError where error.code == .dynamicShape {
      let model = try Onnx_ModelProto(serializedBytes: try Data(contentsOf: url))
      var options = ImportOptions()
      let initializers = Set(model.graph.initializer.map(\.name))
      for (index, info) in model.graph.input.filter({ !initializers.contains($0.name) }).enumerated() {
        let file = folder.appendingPathComponent("test_data_set_0/input_\(index).pb")
        let tensor = try Onnx_TensorProto(serializedBytes: try Data(contentsOf: file))
        let ops = Set(model.graph.node.map(\.opType))
        guard let dtype = DType(onnxCode: tensor.dataType),
          dtype.isInteger || dtype == .bool || ops.contains("Range") || (ops.contains("Resize") && index > 0)
        else { continue }
        var decoder = TensorDecoder(externalData: ExternalDataReader(baseDirectory: nil), budget: 1 << 30)
        options.constantInputs[info.name] = try decoder.decode(tensor, what: info.name)
      }
      return try ONNXImporter(options: options).importModel(at: url)
    }
  }

  static func run(_ test: String, group: String = "node") -> Outcome {
    let folder = testsRoot.appendingPathComponent(group).appendingPathComponent(test)
    do {
      let graph = try importTest(folder)
      var problems: [String] = []
      // Outputs that hold another output's data-dependent extent are Kiln's, not the model's; a
      // data-dependent output's type holds its maximum along that axis.
      let extentCounts = Set(graph.extents.values.map(\.count))
      for (index, output) in graph.outputs.filter({ !extentCounts.contains($0) }).enumerated() {
        let file = folder.appendingPathComponent("test_data_set_0/output_\(index).pb")
        let expected = try Onnx_TensorProto(serializedBytes: try Data(contentsOf: file))
        let got = graph.type(of: output)
        var shape = got.shape
        if let extent = graph.extents[output], extent.axis < shape.count, extent.axis < expected.dims.count,
          expected.dims[extent.axis] <= Int64(shape[extent.axis])
        {
          shape[extent.axis] = Int(expected.dims[extent.axis])
        }
        let want = "\(DType(onnxCode: expected.dataType)?.shortName ?? "code\(expected.dataType)")\(expected.dims)"
        let have = "\(got.dtype.shortName)\(shape)"
        if have != want { problems.append("output \(index): got \(have), expected \(want)") }
      }
      return problems.isEmpty ? .match : .mismatch(problems.joined(separator: "; "))
    } catch let error as ONNXImportError {
      return .rejected(error)
    } catch {
      return .mismatch("unexpected error \(error)")
    }
  }

  @Test func singleOpModelsMatchStoredOutputTypes() throws {
    guard FileManager.default.fileExists(atPath: Self.nodeTests.path) else {
      Issue.record("ONNX backend tests not found at \(Self.nodeTests.path)")
      return
    }
    let (single, _) = try Self.cases()
    var matched = 0
    var mismatches: [String] = []
    var unsupported: [String] = []
    var failed: [String] = []
    for entry in single {
      switch Self.run(entry.test) {
      case .match: matched += 1
      case .mismatch(let why): mismatches.append("\(entry.test): \(why)")
      case .rejected(let error):
        // A documented unsupported feature (string tensors, cubic resize, training mode...).
        if [.unsupportedType, .unsupportedAttribute].contains(error.code) {
          unsupported.append("\(entry.test): \(error.message)")
        } else {
          failed.append("\(entry.test): \(error.code.rawValue): \(error.op ?? "") \(error.message)")
        }
      }
    }
    let considered = single.count - unsupported.count
    print(
      "conformance: \(single.count) single-op models; \(matched) match, \(mismatches.count) mismatch, "
        + "\(failed.count) import errors, \(unsupported.count) use unsupported features")
    // Group the unsupported features by reason (the message without names and numbers).
    var reasons: [String: [String]] = [:]
    for line in unsupported {
      let parts = line.split(separator: ":", maxSplits: 1).map(String.init)
      let reason = String(parts.last?.replacing(/'[^']*'|\d+|[A-Z0-9_]{4,}/, with: "_") ?? "")
      reasons[reason, default: []].append(parts[0])
    }
    for (reason, tests) in reasons.sorted(by: { $0.value.count > $1.value.count }) {
      print("  unsupported (\(tests.count)):\(reason) e.g. \(tests[0])")
    }
    let rate = Double(matched) / Double(max(considered, 1))
    #expect(
      rate >= 0.95,
      "only \(matched)/\(considered) match:\n\((mismatches + failed).joined(separator: "\n"))")
    #expect(matched >= 300, "expected several hundred supported single-op models, matched \(matched)")
    // Every model the importer accepts gets the stored outputs' types (data-dependent outputs
    // at most their maximum along the data's axis).
    #expect(mismatches.isEmpty, "type mismatches:\n\(mismatches.joined(separator: "\n"))")
    if !(mismatches + failed).isEmpty {
      print("conformance failures:\n" + (mismatches + failed).joined(separator: "\n"))
    }
  }

  @Test func multiOpModelsOfSupportedOpsImport() throws {
    guard FileManager.default.fileExists(atPath: Self.nodeTests.path) else { return }
    let (_, multi) = try Self.cases()
    var matched = 0
    var others: [String] = []
    for entry in multi {
      switch Self.run(entry.test) {
      case .match: matched += 1
      case .mismatch(let why): others.append("\(entry.test): \(why)")
      case .rejected(let error):
        others.append("\(entry.test): \(error.code.rawValue): \(error.op ?? "") \(error.message)")
      }
    }
    print("conformance: \(multi.count) multi-op models of supported ops; \(matched) match")
    for line in others { print("  multi-op: \(line)") }
    #expect(Double(matched) >= 0.9 * Double(multi.count), "\(others.joined(separator: "\n"))")
  }

  /// Small multi-node graphs and PyTorch exports (opsets 6 to 9, legacy attribute forms).
  @Test(arguments: ["simple", "pytorch-operator", "pytorch-converted"])
  func otherGroupsOfSupportedOpsImport(group: String) throws {
    guard FileManager.default.fileExists(atPath: Self.testsRoot.appendingPathComponent(group).path) else { return }
    let (single, multi) = try Self.cases(group: group)
    var matched = 0
    var others: [String] = []
    for entry in single + multi {
      switch Self.run(entry.test, group: group) {
      case .match: matched += 1
      case .mismatch(let why): others.append("\(entry.test): \(why)")
      case .rejected(let error):
        others.append("\(entry.test): \(error.code.rawValue): \(error.op ?? "") \(error.message)")
      }
    }
    print("conformance: \(single.count + multi.count) \(group) models of supported ops; \(matched) match")
    for line in others { print("  \(group): \(line)") }
    #expect(Double(matched) >= 0.9 * Double(single.count + multi.count), "\(others.joined(separator: "\n"))")
  }
}
