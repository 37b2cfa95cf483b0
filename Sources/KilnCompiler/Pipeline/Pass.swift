import Foundation

/// One named step of a compile pipeline over a state `State`: it transforms the state in place,
/// and `describe` prints the IR it produced (`--print-ir-after NAME`, `--dump-dir`).
///
/// A pass owns nothing beyond its closures; it runs on the caller's thread. It throws for input
/// it cannot compile (the error names the op or kernel), and leaves the state unspecified then.
public struct Pass<State> {
  public let name: String
  public let run: (inout State) throws -> Void
  public let describe: (State) -> String

  public init(_ name: String, run: @escaping (inout State) throws -> Void, describe: @escaping (State) -> String) {
    self.name = name
    self.run = run
    self.describe = describe
  }

  /// This pass over the part of a larger state at `path`.
  public func lifted<Outer>(_ path: WritableKeyPath<Outer, State>) -> Pass<Outer> {
    let (run, describe) = (self.run, self.describe)
    return Pass<Outer>(name, run: { try run(&$0[keyPath: path]) }, describe: { describe($0[keyPath: path]) })
  }
}

/// What a pipeline does around its passes: print or dump the IR after some of them, and verify
/// the state between passes.
public struct PassInstrumentation {
  /// Passes after which to print the IR (`all` for every pass).
  public var printAfter: Set<String> = []
  /// Where to write `NN-NAME.ir` after every pass.
  public var dumpDirectory: URL?
  /// Receives what `printAfter` asks for.
  public var printer: (String) -> Void = { _ in }
  /// Whether `Pipeline.verify` runs after every pass: on in debug builds (the test suite), off in
  /// release builds, where the passes' own checks remain.
  public var verifyEachPass = _isDebugAssertConfiguration()

  public init() {}
}

/// A compile pipeline: the list of named passes it runs, in order, and the verifier it runs
/// between them. The list is the code that runs; `names` is what `--print-ir-after` accepts.
public struct Pipeline<State> {
  public var passes: [Pass<State>]
  /// Checks the state's IR (graph and kernels) after a pass; throws what it finds wrong.
  public var verify: (State) throws -> Void

  public init(_ passes: [Pass<State>], verify: @escaping (State) throws -> Void = { _ in }) {
    self.passes = passes
    self.verify = verify
  }

  public var names: [String] { passes.map(\.name) }

  /// Runs every pass on `state` in order; returns each pass's wall time in seconds.
  ///
  /// A verifier failure after a pass is reported as that pass's fault (a compiler bug, as a
  /// `LoweringError` naming it); a pass's own error is rethrown as it is.
  public func run(_ state: inout State, _ instrumentation: PassInstrumentation = PassInstrumentation()) throws -> [(pass: String, seconds: Double)] {
    var timings: [(pass: String, seconds: Double)] = []
    let clock = ContinuousClock()
    for (index, pass) in passes.enumerated() {
      let start = clock.now
      try pass.run(&state)
      let elapsed = clock.now - start
      timings.append((pass.name, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
      if instrumentation.verifyEachPass {
        do { try verify(state) } catch {
          throw LoweringError(message: "internal error: the IR after pass '\(pass.name)' is invalid: \(error)")
        }
      }
      if instrumentation.printAfter.contains("all") || instrumentation.printAfter.contains(pass.name) {
        instrumentation.printer("// ----- IR after \(pass.name) -----\n" + pass.describe(state))
      }
      if let directory = instrumentation.dumpDirectory {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(String(format: "%02d-%@.ir", index + 1, pass.name))
        try pass.describe(state).write(to: file, atomically: true, encoding: .utf8)
      }
    }
    return timings
  }
}
