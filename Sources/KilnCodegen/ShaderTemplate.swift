/// A hand-written shader (`shaders/*.comp`) as a parametrised source: its `#version` line, then
/// text and holes (`@NAME@`). Each hole is declared with what may fill it (an integer or code);
/// `instantiate` checks that every hole of the source gets exactly a value of its kind and that no
/// other is given, so a shader and its instantiation cannot drift apart silently. The result is
/// assembled from the parts, never edited afterwards.
struct ShaderTemplate: Sendable {
  /// The holes the shaders use, with their kinds.
  enum Hole: String, Sendable, CaseIterable {
    case bindings = "BINDINGS", helpers = "HELPERS", operands = "OPERANDS", block = "BLOCK"
    case reducePhase = "REDUCE_PHASE", store = "STORE"
    case m = "M", n = "N", k = "K", batch = "BATCH", tm = "TM", tn = "TN", lanes = "LANES"

    var takesInteger: Bool {
      switch self {
      case .m, .n, .k, .batch, .tm, .tn, .lanes: true
      default: false
      }
    }
  }

  /// What fills a hole.
  enum Fill: Sendable {
    case integer(Int)
    case code(String)
  }

  private enum Part: Sendable {
    case text(Substring)
    case hole(Hole)
  }

  private let version: Substring
  private let parts: [Part]
  let holes: Set<Hole>

  /// Parses `source`; a `@NAME@` that names no `Hole` is a programmer error.
  init(_ source: String) {
    guard let newline = source.firstIndex(of: "\n"), source.hasPrefix("#version ") else {
      preconditionFailure("a shader template starts with its #version line")
    }
    version = source[...newline]
    var parts: [Part] = []
    var rest = source[source.index(after: newline)...]
    while let open = rest.firstIndex(of: "@") {
      let afterOpen = rest.index(after: open)
      guard let close = rest[afterOpen...].firstIndex(of: "@"), let hole = Hole(rawValue: String(rest[afterOpen..<close])) else {
        preconditionFailure("shader template: '@' that opens no known hole near \(rest[open...].prefix(24))")
      }
      parts.append(.text(rest[..<open]))
      parts.append(.hole(hole))
      rest = rest[rest.index(after: close)...]
    }
    parts.append(.text(rest))
    self.parts = parts
    holes = Set(parts.compactMap { if case .hole(let hole) = $0 { hole } else { nil } })
  }

  /// The source with `header` lines (comments, `#define`s) after `#version` and every hole filled.
  func instantiate(header: [String], _ fills: [Hole: Fill]) -> String {
    precondition(Set(fills.keys) == holes, "shader template holes \(holes.map(\.rawValue).sorted()), given \(fills.keys.map(\.rawValue).sorted())")
    var out = String(version)
    for line in header { out += line + "\n" }
    for part in parts {
      switch part {
      case .text(let text): out += text
      case .hole(let hole):
        switch fills[hole] {
        case .integer(let value)?:
          precondition(hole.takesInteger, "hole @\(hole.rawValue)@ takes code, given an integer")
          out += "\(value)"
        case .code(let code)?:
          precondition(!hole.takesInteger, "hole @\(hole.rawValue)@ takes an integer, given code")
          out += code
        case nil: preconditionFailure("hole @\(hole.rawValue)@ is not filled")
        }
      }
    }
    return out
  }

  static let matmulTiled = ShaderTemplate(EmbeddedShaders.matmulTiled)
  static let matmulShared = ShaderTemplate(EmbeddedShaders.matmulShared)
  static let matmulCoopmat = ShaderTemplate(EmbeddedShaders.matmulCoopmat)
}
