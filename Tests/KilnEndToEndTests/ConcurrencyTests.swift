import Dispatch
import Foundation
import KilnBundle
import KilnRuntime
import KilnTestSupport
import Synchronization
import Testing

/// One Session used from many threads, and many Sessions on one device, give correct results.
@Suite(.serialized) struct ConcurrencyTests {
  static let model = "conv-strided-odd"

  func prepare(_ uri: String) throws -> (BundleReader, [HostTensor], [HostTensor]) {
    let testCase = try #require(ModelCases.fixtures[Self.model])
    let entry = try CompiledModels.get(testCase)
    let reader = try BundleReader(bytes: try entry.compiled.writer.serialize(manifest: entry.compiled.manifest))
    let function = try #require(reader.manifest.function(named: "main"))
    return (reader, try ModelCases.inputs(for: testCase, signature: function.inputs), try ModelCases.expectedOutputs(for: testCase))
  }

  /// Runs `body` on `threads` threads at once, `runs` times each; returns the failures.
  func hammer(threads: Int, runs: Int, _ body: @escaping @Sendable (Int) throws -> String?) -> [String] {
    let failures = Mutex<[String]>([])
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
      for run in 0..<runs {
        do {
          if let problem = try body(thread) { failures.withLock { $0.append("thread \(thread) run \(run): \(problem)") } }
        } catch {
          failures.withLock { $0.append("thread \(thread) run \(run): \(error)") }
        }
      }
    }
    return failures.withLock { $0 }
  }

  @Test(arguments: TestDevices.uris)
  func oneSessionFromEightThreads(uri: String) throws {
    let (reader, inputs, expected) = try prepare(uri)
    let session = try Session(bundle: reader, device: try TestDevices.device(uri))
    let tolerance = Tolerance()
    let failures = hammer(threads: 8, runs: 50) { _ in
      let outputs = try session.run(inputs)
      return tolerance.compare(outputs[0], expected[0])
    }
    #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(3))")
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }

  @Test(arguments: TestDevices.uris)
  func severalSessionsOnOneDevice(uri: String) throws {
    let (reader, inputs, expected) = try prepare(uri)
    let device = try TestDevices.device(uri)
    let sessions = try (0..<4).map { _ in try Session(bundle: reader, device: device) }
    let tolerance = Tolerance()
    let failures = hammer(threads: 8, runs: 50) { thread in
      let outputs = try sessions[thread % sessions.count].run(inputs)
      return tolerance.compare(outputs[0], expected[0])
    }
    #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(3))")
    #expect(TestDevices.drainValidationMessages().isEmpty)
  }
}
