// The manifest's encoding: UTF-8 JSON with sorted keys and no insignificant whitespace, so the
// same manifest always gives the same bytes.

import Foundation

extension Manifest {
  /// The manifest as deterministic JSON (sorted keys, compact, `/` not escaped).
  public func jsonBytes() throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do {
      return [UInt8](try encoder.encode(self))
    } catch {
      throw BundleError(.malformedManifest, "manifest: cannot encode: \(error)")
    }
  }

  /// The manifest as indented JSON with sorted keys, for people (`kiln inspect --manifest`).
  public func prettyJSON() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    do {
      return String(decoding: try encoder.encode(self), as: UTF8.self)
    } catch {
      throw BundleError(.malformedManifest, "manifest: cannot encode: \(error)")
    }
  }

  /// Decodes a manifest from JSON. Does not validate cross-references; see `validate(sections:)`.
  ///
  /// - Throws: `BundleError` with code `.malformedManifest` saying where decoding failed.
  public init(jsonBytes: UnsafeRawBufferPointer) throws {
    let data = Data(jsonBytes)
    do {
      self = try JSONDecoder().decode(Manifest.self, from: data)
    } catch let error as DecodingError {
      throw BundleError(.malformedManifest, "manifest: \(Self.describe(error))")
    } catch {
      throw BundleError(.malformedManifest, "manifest: \(error)")
    }
  }

  /// Decodes a manifest from JSON bytes.
  public init(jsonBytes: [UInt8]) throws {
    self = try jsonBytes.withUnsafeBytes { try Manifest(jsonBytes: $0) }
  }

  static func describe(_ error: DecodingError) -> String {
    func path(_ codingPath: [any CodingKey]) -> String {
      guard !codingPath.isEmpty else { return "top level" }
      return codingPath.map { key in
        key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)"
      }.joined()
    }
    switch error {
    case .keyNotFound(let key, let context):
      return "missing key '\(key.stringValue)' at \(path(context.codingPath))"
    case .typeMismatch(let type, let context):
      return "expected \(type) at \(path(context.codingPath)): \(context.debugDescription)"
    case .valueNotFound(let type, let context):
      return "missing \(type) value at \(path(context.codingPath))"
    case .dataCorrupted(let context):
      let underlying = context.underlyingError.map { " (\($0))" } ?? ""
      return "\(context.debugDescription) at \(path(context.codingPath))\(underlying)"
    @unknown default:
      return "\(error)"
    }
  }
}
