import Foundation

/// One row of ../shared/onnx-tests/inventory.csv.
public struct InventoryEntry: Sendable, Hashable {
  public var group: String
  public var test: String
  public var opTypes: [String]
  public var opset: Int
  public var hasSubgraph: Bool
  public var ioKinds: String
  public var dtypeClass: String
  public var ortStatus: String

  /// The core set: ONNX Runtime passes it, tensor I/O only, no subgraphs, no string/fp8/fp4/int4/int2.
  public var isCore: Bool {
    group == "node" && ortStatus == "pass" && ioKinds == "tensor" && !hasSubgraph && dtypeClass != "string"
      && !dtypeClass.hasPrefix("lowprec")
  }
}

public enum TestInventory {
  /// Reads inventory.csv (a header row, then comma-separated fields without quoting).
  public static func load(_ url: URL) throws -> [InventoryEntry] {
    let text = try String(contentsOf: url, encoding: .utf8)
    var lines = text.split(whereSeparator: \.isNewline).map(String.init)
    guard !lines.isEmpty else { return [] }
    let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    func column(_ name: String) -> Int? { header.firstIndex(of: name) }
    guard let group = column("group"), let test = column("test"), let ops = column("op_types"), let opset = column("opset"),
      let subgraph = column("has_subgraph"), let io = column("io_kinds"), let dtype = column("dtype_class"),
      let ort = column("ort_status")
    else { throw CocoaError(.fileReadCorruptFile) }
    return lines.compactMap { line in
      let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
      guard fields.count >= header.count else { return nil }
      return InventoryEntry(
        group: fields[group], test: fields[test], opTypes: fields[ops].split(separator: ";").map(String.init),
        opset: Int(fields[opset]) ?? 0, hasSubgraph: fields[subgraph] == "1", ioKinds: fields[io],
        dtypeClass: fields[dtype], ortStatus: fields[ort])
    }
  }
}
