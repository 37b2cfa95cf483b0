import Foundation
import KilnConformance
import KilnHAL
import KilnTestSupport
import Testing

/// The ONNX backend node tests' core set, run on every device, checked against the per-device
/// expected-failure lists in this folder (`expected-failures-<driver>.txt`, one test name a line).
///
/// A test that is not listed must pass: a regression fails here. A listed test that passes is
/// reported so its line can be removed.
@Suite struct ONNXConformanceTests {
  static let suiteRoot: URL = {
    if let explicit = ProcessInfo.processInfo.environment["KILN_ONNX_TESTS"] { return URL(fileURLWithPath: explicit) }
    // Tests/KilnConformanceTests/<file> -> package root -> ../shared/onnx-tests
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/onnx-tests")
  }()

  static let coreTests: [String] = {
    let inventory = (try? TestInventory.load(suiteRoot.appendingPathComponent("inventory.csv"))) ?? []
    return inventory.filter(\.isCore).map(\.test).sorted()
  }()

  /// The core set split into chunks so the test runner spreads them over the cores.
  static let chunkCount = 24
  static let chunks: [Int] = Array(0..<chunkCount)

  static func expectedFailures(driver: String) -> Set<String> {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("expected-failures-\(driver).txt")
    guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
    return Set(text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") })
  }

  @Test func theSuiteIsPresent() {
    #expect(Self.coreTests.count == 1485, "core set of ../shared/onnx-tests/inventory.csv: \(Self.coreTests.count) tests (is ../shared present?)")
  }

  @Test(arguments: chunks)
  func coreSet(chunk: Int) throws {
    let names = Self.coreTests.enumerated().filter { $0.offset % Self.chunkCount == chunk }.map(\.element)
    let devices = try TestDevices.uris.map { try TestDevices.device($0) }
    let expected = Dictionary(uniqueKeysWithValues: devices.map { ($0.info.shortURI, Self.expectedFailures(driver: $0.info.driver)) })
    let runner = ConformanceRunner()
    var newlyPassing: [String] = []
    for name in names {
      let directory = Self.suiteRoot.appendingPathComponent("node").appendingPathComponent(name)
      for result in runner.run(testDirectory: directory, group: "node", devices: devices) {
        let allowedToFail = expected[result.device]?.contains(name) ?? false
        if result.outcome == .pass {
          if allowedToFail { newlyPassing.append("\(result.device) \(name)") }
        } else {
          #expect(allowedToFail, "\(name) on \(result.device): \(result.outcome.rawValue): \(result.detail)")
        }
      }
      let messages = TestDevices.drainValidationMessages()
      #expect(messages.isEmpty, "\(name): validation layer: \(messages.prefix(3).joined(separator: "; "))")
    }
    if !newlyPassing.isEmpty {
      print("expected failures that now pass (remove them from expected-failures-*.txt):\n  " + newlyPassing.joined(separator: "\n  "))
    }
  }

  /// The other groups of the suite, every test on every device: small multi-node graphs and PyTorch
  /// exports at old opsets (upgraded on import). The only expected failures are the `simple`
  /// tests with string tensors and the training-domain Gradient op.
  static let otherGroups = ["simple", "pytorch-operator", "pytorch-converted"]
  static let otherGroupFailures: Set<String> = [
    "test_gradient_of_add", "test_gradient_of_add_and_mul",
    "test_strnorm_model_monday_casesensintive_lower", "test_strnorm_model_monday_casesensintive_nochangecase",
    "test_strnorm_model_monday_casesensintive_upper", "test_strnorm_model_monday_empty_output",
    "test_strnorm_model_monday_insensintive_upper_twodim", "test_strnorm_model_nostopwords_nochangecase",
  ]

  @Test(arguments: otherGroups)
  func group(_ group: String) throws {
    let folder = Self.suiteRoot.appendingPathComponent(group)
    let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("test_") }.sorted()
    #expect(names.count >= 20, "\(group): \(names.count) tests found")
    let devices = try TestDevices.uris.map { try TestDevices.device($0) }
    let runner = ConformanceRunner()
    for name in names {
      for result in runner.run(testDirectory: folder.appendingPathComponent(name), group: group, devices: devices) {
        let allowedToFail = Self.otherGroupFailures.contains(name)
        #expect(
          (result.outcome == .pass) != allowedToFail,
          "\(group)/\(name) on \(result.device): \(result.outcome.rawValue): \(result.detail)")
      }
      let messages = TestDevices.drainValidationMessages()
      #expect(messages.isEmpty, "\(name): validation layer: \(messages.prefix(3).joined(separator: "; "))")
    }
  }
}
