/// Prints a `Graph` in Kiln's canonical textual form. The output depends only on the graph's
/// structure and contents, never on `ValueID` numbering or dictionary order, so tests can compare it.
///
///     graph "main" opset(ai.onnx=17) {
///       input %0: f32[1,3,8,8] "x"
///       const %1: f32[4,3,3,3] #1c0d9e2f61a3b7e4 "w"
///       const %2: i64[2] #5e1b2f0c9a7d3e41 = [1,-1] "shape"
///       %3: f32[1,4,6,6] = Conv(%0, %1, _) {group=1, strides=[1,1]} "conv1"
///       output %3
///     }
///
/// Values are renumbered in definition order: inputs, then constants in order of first use, then
/// node outputs. Constants print their type and content hash; those with at most
/// `inlineConstantLimit` elements also print their elements. Attributes are sorted by name. Names
/// (quoted, at the end of a line) can be turned off with `showNames`.
public struct GraphPrinter: Sendable {
  public var showNames: Bool
  public var inlineConstantLimit: Int

  public init(showNames: Bool = true, inlineConstantLimit: Int = 8) {
    self.showNames = showNames
    self.inlineConstantLimit = inlineConstantLimit
  }

  public func print(_ graph: Graph) -> String {
    var numbering: [ValueID: Int] = [:]
    func number(_ id: ValueID) {
      if numbering[id] == nil { numbering[id] = numbering.count }
    }
    for input in graph.inputs { number(input) }
    // Constants in order of first use, then unused ones by id.
    var constantOrder: [ValueID] = []
    var seenConstants = Set<ValueID>()
    func noteConstant(_ id: ValueID) {
      if graph.constants[id] != nil, !seenConstants.contains(id), numbering[id] == nil {
        seenConstants.insert(id)
        constantOrder.append(id)
      }
    }
    for node in graph.nodes {
      for case let input? in node.inputs { noteConstant(input) }
    }
    for output in graph.outputs { noteConstant(output) }
    for id in graph.constants.keys.sorted() { noteConstant(id) }
    for id in constantOrder { number(id) }
    for node in graph.nodes {
      for output in node.outputs { number(output) }
    }

    func ref(_ id: ValueID?) -> String {
      guard let id else { return "_" }
      if let n = numbering[id] { return "%\(n)" }
      return "%?\(id.index)"
    }
    func typeText(_ id: ValueID) -> String {
      graph.contains(id) ? graph.type(of: id).description : "<undefined>"
    }
    func nameSuffix(_ name: String) -> String {
      showNames && !name.isEmpty ? " " + Self.quoted(name) : ""
    }
    func valueName(_ id: ValueID) -> String {
      graph.contains(id) ? graph[id].name : ""
    }

    var lines: [String] = []
    let opsets = graph.opsetImports.sorted { $0.key < $1.key }
      .map { "\($0.key.isEmpty ? "ai.onnx" : $0.key)=\($0.value)" }
    lines.append("graph \(Self.quoted(graph.name)) opset(\(opsets.joined(separator: ", "))) {")
    for input in graph.inputs {
      lines.append("  input \(ref(input)): \(typeText(input))\(nameSuffix(valueName(input)))")
    }
    for id in constantOrder {
      guard let data = graph.constants[id] else { continue }
      var line = "  const \(ref(id)): \(data.type) #\(data.contentHash)"
      if data.elementCount <= inlineConstantLimit {
        line += " = " + Self.elementsText(data)
      }
      if graph.contains(id), graph.type(of: id) != data.type {
        line += " (value type \(graph.type(of: id)))"
      }
      lines.append(line + nameSuffix(valueName(id)))
    }
    for node in graph.nodes {
      let results = node.outputs.map { "\(ref($0)): \(typeText($0))" }.joined(separator: ", ")
      var op = node.domain.isEmpty ? node.op : "\(node.domain).\(node.op)"
      if node.version != graph.opsetImports[node.domain] { op += "@v\(node.version)" }
      let operands = node.inputs.map(ref).joined(separator: ", ")
      var line = "  \(results.isEmpty ? "()" : results) = \(op)(\(operands))"
      if !node.attributes.isEmpty {
        let attributes = node.attributes.sorted { $0.key < $1.key }
          .map { "\($0.key)=\(attributeText($0.value))" }
        line += " {\(attributes.joined(separator: ", "))}"
      }
      lines.append(line + nameSuffix(node.name))
    }
    if !graph.outputs.isEmpty {
      lines.append("  output \(graph.outputs.map(ref).joined(separator: ", "))")
    }
    for (id, extent) in graph.extents.sorted(by: { (numbering[$0.key] ?? 0) < (numbering[$1.key] ?? 0) }) {
      lines.append("  extent \(ref(id)) axis \(extent.axis) = \(ref(extent.count))")
    }
    lines.append("}")
    return lines.joined(separator: "\n") + "\n"
  }

  private func attributeText(_ value: AttributeValue) -> String {
    switch value {
    case .int(let v): "\(v)"
    case .float(let v): Self.floatText(v)
    case .string(let v): Self.quoted(v)
    case .ints(let v): "[\(v.map { "\($0)" }.joined(separator: ","))]"
    case .floats(let v): "[\(v.map(Self.floatText).joined(separator: ","))]"
    case .strings(let v): "[\(v.map(Self.quoted).joined(separator: ","))]"
    case .tensor(let data):
      "tensor<\(data.type)>#\(data.contentHash)"
        + (data.elementCount <= inlineConstantLimit ? "=" + Self.elementsText(data) : "")
    }
  }

  static func floatText(_ value: Float) -> String {
    value.isNaN ? "nan" : value.isInfinite ? (value < 0 ? "-inf" : "inf") : "\(value)"
  }

  static func elementsText(_ data: TensorData) -> String {
    let items: [String]
    switch data.dtype {
    case .float64: items = data.doubles().map { $0.isNaN ? "nan" : "\($0)" }
    case .float32, .float16, .bfloat16: items = data.floats().map(floatText)
    case .bool: items = data.bools().map { $0 ? "true" : "false" }
    case .uint64: items = data.int64s().map { "\(UInt64(bitPattern: $0))" }
    default: items = data.int64s().map { "\($0)" }
    }
    return "[" + items.joined(separator: ",") + "]"
  }

  /// A double-quoted string with `"`, `\` and control characters escaped.
  static func quoted(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\t": result += "\\t"
      default:
        if scalar.value < 0x20 || scalar.value == 0x7f {
          result += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
          result.unicodeScalars.append(scalar)
        }
      }
    }
    return result + "\""
  }
}

extension Graph: CustomStringConvertible {
  /// The canonical textual form (`GraphPrinter()` with default options).
  public var description: String { GraphPrinter().print(self) }
}
