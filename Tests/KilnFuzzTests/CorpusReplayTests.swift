// Replays the checked-in fuzz corpus: every input libFuzzer found to crash, hang or exhaust memory
// (minimised, after the fix) plus a few seeds, through the same function `tools/fuzz` fuzzes.

import Foundation
import KilnFuzzTargets
import Testing

/// Tests/FuzzCorpus/<target>/: one folder per fuzz target, named as in `FuzzTargets.all`.
enum CorpusFolder {
  static let root = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("FuzzCorpus")

  static func files(_ target: String) -> [String] {
    FuzzCorpus.files(at: root.appendingPathComponent(target).path)
  }
}

@Suite struct CorpusReplayTests {
  static let targets = FuzzTargets.all.keys.sorted()

  /// Each input must come back as a value or a thrown Swift error; before its fix, each found
  /// case trapped (or hung, or ran out of memory) inside this call.
  @Test(arguments: targets) func corpusIsHandled(target: String) throws {
    let run = try #require(FuzzTargets.all[target])
    let files = CorpusFolder.files(target)
    #expect(!files.isEmpty, "Tests/FuzzCorpus/\(target) is empty")
    for path in files {
      let data = try #require(FileManager.default.contents(atPath: path), "cannot read \(path)")
      let clock = ContinuousClock()
      let start = clock.now
      do {
        try data.withUnsafeBytes { try run($0) }
      } catch {
        // Rejecting hostile input with an error is the expected outcome.
      }
      let elapsed = clock.now - start
      #expect(elapsed < .seconds(10), "\(path) took \(elapsed)")
    }
  }

  /// The corpus stays small enough to live in the repository.
  @Test(arguments: targets) func corpusFilesAreSmall(target: String) {
    for path in CorpusFolder.files(target) {
      let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
      #expect(size <= 16 << 10, "\(path) is \(size) bytes; keep corpus files under 16 KiB")
    }
  }
}
