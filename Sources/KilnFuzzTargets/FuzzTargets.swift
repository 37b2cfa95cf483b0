// The one-input functions of the fuzz targets, shared by the fuzz executables (tools/fuzz) and
// the corpus replay test (Tests/KilnFuzzTests). Each decodes untrusted bytes the way Kiln does
// and then checks what it got back; a failed check traps, which the fuzzer reports as a crash.

import Foundation
import KilnBundle
import KilnCompiler
import KilnIR
import KilnONNX
import KilnRuntime

/// The fuzz targets by name: `importer`, `bundle`, `npy`, `pb`.
public enum FuzzTargets {
  public static let all: [String: FuzzTarget] = [
    "importer": importer, "bundle": bundle, "npy": npy, "pb": tensorProto,
  ]

  /// The importer's options while fuzzing: a 64 MiB constant budget and a smaller folding limit,
  /// so that one input stays well inside libFuzzer's time and memory limits. No base directory:
  /// external data is rejected before any file is touched.
  public static let importOptions = ImportOptions(memoryBudget: 64 << 20, foldingElementLimit: 1 << 16)

  /// A serialized ONNX `ModelProto`: import, verify, then the compiler's graph passes up to the
  /// memory plan (`MiddleEnd`: decompose, fold-batchnorm, form-dispatch-regions, plan-memory,
  /// each followed by the verifier); no codegen.
  @Sendable public static func importer(_ bytes: UnsafeRawBufferPointer) throws {
    let graph = try ONNXImporter(options: importOptions).importModel(data: Data(bytes))
    try graph.verify()
    var state = LoweringState(graph: graph)
    var instrumentation = PassInstrumentation()
    instrumentation.verifyEachPass = true
    _ = try MiddleEnd.pipeline().run(&state, instrumentation)
  }

  /// A `.kiln` bundle. The first byte picks how the rest is used:
  /// - `0 mod 3`: the bytes as they are (checksums and all must hold);
  /// - `1 mod 3`: the same after the harness rewrites the file length, every in-bounds section
  ///   checksum and the header checksum, so that mutations reach the section table and manifest
  ///   checks that the checksums would otherwise stop;
  /// - `2 mod 3`: a manifest's JSON, validated against a fixed section list and, if valid, written
  ///   with `BundleWriter` and read back (which must then succeed and give the same manifest).
  /// A bundle that verifies is described and every section, executable and weight is sliced.
  @Sendable public static func bundle(_ bytes: UnsafeRawBufferPointer) throws {
    guard let selector = bytes.first else { return }
    let rest = [UInt8](bytes.dropFirst())
    switch selector % 3 {
    case 0: try exercise(BundleReader(bytes: rest))
    case 1: try exercise(BundleReader(bytes: repairingChecksums(rest)))
    default: try manifestRoundTrip(rest)
    }
  }

  /// A NumPy `.npy` file. A file that decodes must encode and decode back to the same tensor.
  @Sendable public static func npy(_ bytes: UnsafeRawBufferPointer) throws {
    let tensor = try NPY.decode(bytes)
    checkSize(tensor)
    let again = try NPY.decode(NPY.encode(tensor))
    precondition(again == tensor, "an .npy file does not survive encode/decode")
  }

  /// A serialized ONNX `TensorProto` (the `.pb` files of ONNX test data). A tensor that decodes
  /// must encode and decode back to the same name and tensor.
  @Sendable public static func tensorProto(_ bytes: UnsafeRawBufferPointer) throws {
    let (name, tensor) = try ONNXTensorFile.decode(bytes)
    checkSize(tensor)
    let again = try ONNXTensorFile.decode(ONNXTensorFile.encode(tensor, name: name))
    precondition(again.name == name && again.tensor == tensor, "a TensorProto does not survive encode/decode")
  }

  /// A decoded tensor holds exactly the bytes its dtype and shape need.
  static func checkSize(_ tensor: HostTensor) {
    let size = HostTensor.elementSize(tensor.dtype) ?? 0
    let count = try? HostTensor.checkedElementCount(tensor.shape, what: "shape")
    precondition(count == tensor.elementCount, "elementCount disagrees with the shape")
    precondition(count.map { $0 * size } == tensor.bytes.count, "decoded size disagrees with the shape")
  }

  // MARK: Bundle helpers

  /// Everything a caller may do with a verified bundle.
  static func exercise(_ reader: BundleReader) throws {
    _ = reader.describe()
    _ = try reader.manifest.prettyJSON()
    for index in reader.sections.indices { _ = try reader.sectionData(index) }
    for index in reader.manifest.executables.indices { _ = try reader.executableBytes(index) }
    for (index, weight) in reader.manifest.weights.enumerated() {
      let bytes = try reader.weightBytes(index)
      precondition(bytes.count == weight.length, "weight \(index) slice has the wrong length")
      _ = try reader.weightBytes(named: weight.name)
    }
  }

  /// Header field offsets of the format (docs/bundle-format.md).
  private static let headerSize = 64
  private static let entrySize = 48

  /// `bytes` with the file length, the checksum of every section that lies inside the file, and
  /// the header checksum set to what the reader will compute. Anything else stays as fuzzed.
  static func repairingChecksums(_ bytes: [UInt8]) -> [UInt8] {
    guard bytes.count >= headerSize else { return bytes }
    var bytes = bytes
    func read(_ width: Int, at offset: Int) -> UInt64 {
      (0..<width).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
    func write(_ value: UInt64, at offset: Int) {
      for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }
    write(UInt64(bytes.count), at: 24)
    let declared = Int(read(4, at: 16))
    let sectionCount = min(declared, (bytes.count - headerSize) / entrySize)
    for index in 0..<sectionCount {
      let entry = headerSize + index * entrySize
      let offset = read(8, at: entry + 8)
      let length = read(8, at: entry + 16)
      let (end, overflow) = offset.addingReportingOverflow(length)
      guard !overflow, end <= UInt64(bytes.count) else { continue }
      let checksum = bytes.withUnsafeBytes {
        Checksum.xxh64(UnsafeRawBufferPointer(rebasing: $0[Int(offset)..<Int(end)]))
      }
      write(checksum, at: entry + 32)
    }
    guard declared == sectionCount else { return bytes }
    write(0, at: 56)
    let header = bytes.withUnsafeBytes {
      Checksum.xxh64(UnsafeRawBufferPointer(rebasing: $0[0..<headerSize + sectionCount * entrySize]))
    }
    write(header, at: 56)
    return bytes
  }

  /// The sections a fuzzed manifest is validated against (section 0 is the manifest itself).
  static let manifestSections: [(SectionKind, Int)] = [
    (.executable, 96), (.weights, 4096), (.executable, 64), (SectionKind(rawValue: 9), 8),
  ]

  static func manifestRoundTrip(_ json: [UInt8]) throws {
    let manifest = try Manifest(jsonBytes: json)
    try manifest.validate(
      sections: [SectionInfo(kind: .manifest, length: json.count)]
        + manifestSections.map { SectionInfo(kind: $0.0, length: $0.1) })
    var writer = BundleWriter()
    for (kind, length) in manifestSections {
      writer.addSection(kind: kind, bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    }
    // The writer may refuse a manifest whose encoding differs in size from the fuzzed JSON (the
    // validation above used the fuzzed length); a bundle it does write must read back intact.
    guard let file = try? writer.serialize(manifest: manifest) else { return }
    let reader: BundleReader
    do {
      reader = try BundleReader(bytes: file)
    } catch {
      preconditionFailure("a bundle BundleWriter wrote does not verify: \(error)")
    }
    precondition(reader.manifest == manifest, "the manifest changed in a write/read round trip")
    try exercise(reader)
  }
}
