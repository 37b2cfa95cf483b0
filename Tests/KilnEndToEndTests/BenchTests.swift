import Foundation
import KilnBundle
import KilnRuntime
import KilnTestSupport
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// `kiln bench` on the example model: JSON keys and values, the CSV header, a well-formed SVG.
@Suite(.serialized, .enabled(if: KilnBinary.url != nil, "the kiln executable was not built beside the tests"))
struct BenchTests {
  /// Runs `kiln` in `folder`.
  func kiln(_ arguments: String..., in folder: URL) throws -> KilnBinary.Result {
    try KilnBinary.run(arguments, in: folder)
  }

  /// A temporary folder with the example model compiled (every target) to `tiny.kiln`.
  func compiledExample() throws -> TemporaryFolder {
    let folder = try TemporaryFolder()
    let model = ModelCases.repositoryRoot.appendingPathComponent("Examples/tiny-cnn/model.onnx")
    let compiled = try kiln("compile", model.path, "-o", "tiny.kiln", in: folder.url)
    try #require(compiled.status == 0, "\(compiled.stderr)")
    return folder
  }

  @Test func jsonReportsEveryDeviceWithSaneFiguresAndADispatchBreakdown() throws {
    let folder = try compiledExample()
    let run = try kiln(
      "bench", "tiny.kiln", "--iterations", "12", "--warmup", "1", "--profile-runs", "2", "--format", "json",
      "--chart", "chart.svg", in: folder.url)
    try #require(run.status == 0, "\(run.stderr)")
    #expect(run.stderr.contains("bench cpu:"), "no progress on stderr: \(run.stderr)")
    let root = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    let devices = try #require(root["devices"] as? [[String: Any]])
    // Every device the registry lists, by default (the bundle has a program for each driver).
    let expected = DeviceRegistry(validation: false).allDevices.map(\.shortURI)
    #expect(devices.compactMap { $0["device"] as? String } == expected)
    for device in devices {
      let name = device["device"] as? String ?? "?"
      for key in ["median_ms", "p90_ms", "min_ms", "first_run_ms", "load_ms"] {
        #expect(
          (device[key] as? Double).map { $0 > 0 && $0.isFinite } == true,
          "\(name): \(key) = \(String(describing: device[key]))")
      }
      let median = try #require(device["median_ms"] as? Double)
      let p90 = try #require(device["p90_ms"] as? Double)
      let minimum = try #require(device["min_ms"] as? Double)
      #expect(minimum <= median && median <= p90, "\(name): min \(minimum), median \(median), p90 \(p90)")
      #expect(device["iterations"] as? Int == 12)
      let dispatches = try #require(device["dispatches"] as? [[String: Any]])
      #expect(dispatches.count >= 5, "\(name): \(dispatches.count) dispatches")
      #expect(dispatches.allSatisfy { ($0["ms"] as? Double).map { $0 >= 0 } == true })
      let ops = dispatches.flatMap { $0["source_ops"] as? [String] ?? [] }
      #expect(ops.contains { $0.contains("conv") }, "\(name): source ops \(ops)")
    }

    // The chart is well-formed XML with an <svg> root.
    let svg = try Data(contentsOf: folder.url.appendingPathComponent("chart.svg"))
    let parser = XMLParser(data: svg)
    let rootCheck = SVGRootCheck()
    parser.delegate = rootCheck
    #expect(parser.parse(), "chart.svg is not well-formed: \(String(describing: parser.parserError))")
    #expect(rootCheck.rootName == "svg")
    #expect(String(decoding: svg, as: UTF8.self).contains("median"))
  }

  /// `Session.profile` directly, on every test device, under the validation layer.
  @Test(arguments: TestDevices.uris)
  func profileTimesEveryDispatch(uri: String) throws {
    let folder = try compiledExample()
    let reader = try BundleReader(contentsOf: folder.url.appendingPathComponent("tiny.kiln"))
    let session = try Session(bundle: reader, device: try TestDevices.device(uri))
    let input = try NPY.read(
      contentsOf: ModelCases.repositoryRoot.appendingPathComponent("Examples/tiny-cnn/input.npy"))
    let before = try session.run([input])
    let dispatches = session.program.commands.compactMap { command -> Manifest.Dispatch? in
      if case .dispatch(let dispatch) = command { dispatch } else { nil }
    }
    for _ in 0..<2 {
      let timings = try session.profile([input])
      #expect(timings.map(\.index) == Array(dispatches.indices))
      #expect(timings.map(\.sourceOps) == dispatches.map(\.sourceOps))
      #expect(timings.allSatisfy { $0.milliseconds >= 0 } && timings.contains { $0.milliseconds > 0 }, "\(timings)")
    }
    // The profiled program computes the same thing; runs after it are unaffected.
    #expect(try session.run([input]) == before)
    let messages = TestDevices.drainValidationMessages()
    #expect(messages.isEmpty, "validation layer: \(messages.joined(separator: "\n"))")
  }

  @Test func csvAndTextFormats() throws {
    let folder = try compiledExample()
    let csv = try kiln("bench", "tiny.kiln", "--device", "cpu", "--min-time", "0.05", "--format", "csv", in: folder.url)
    try #require(csv.status == 0, "\(csv.stderr)")
    let lines = csv.stdout.split(separator: "\n")
    #expect(lines.count == 2, "\(csv.stdout)")
    #expect(lines.first?.hasPrefix("device,name,driver,load_ms,first_run_ms,median_ms,p90_ms,min_ms") == true)
    #expect(lines.last?.hasPrefix("cpu,") == true)

    let text = try kiln("bench", "tiny.kiln", "--device", "cpu", "--iterations", "10", "--warmup", "0", in: folder.url)
    try #require(text.status == 0, "\(text.stderr)")
    #expect(text.stdout.contains("median ms") && text.stdout.contains("top dispatches"), "\(text.stdout)")

    let bad = try kiln("bench", "tiny.kiln", "--device", "vulkan:99", in: folder.url)
    #expect(bad.status == 1 && bad.stderr.hasPrefix("error: "), "\(bad.stderr)")
    let both = try kiln("bench", "tiny.kiln", "--iterations", "3", "--min-time", "1", in: folder.url)
    #expect(both.status != 0)
  }
}

/// Records the name of the document's root element.
final class SVGRootCheck: NSObject, XMLParserDelegate {
  var rootName: String?

  func parser(
    _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
    attributes: [String: String] = [:]
  ) {
    if rootName == nil { rootName = elementName }
  }
}
