import KilnIR

/// Post-import cleanup passes.
enum GraphCleanup {
  /// CSE, then DCE.
  static func run(_ graph: inout Graph, constantElementLimit: Int) {
    eliminateCommonSubexpressions(&graph, constantElementLimit: constantElementLimit)
    eliminateDeadCode(&graph)
  }

  /// dce: removes nodes none of whose results reach a graph output.
  static func eliminateDeadCode(_ graph: inout Graph) {
    var live = Set(graph.outputs)
    var keep = [Bool](repeating: false, count: graph.nodes.count)
    for index in graph.nodes.indices.reversed() {
      let node = graph.nodes[index]
      guard node.outputs.contains(where: live.contains) else { continue }
      keep[index] = true
      for case let input? in node.inputs { live.insert(input) }
    }
    graph.nodes = graph.nodes.indices.filter { keep[$0] }.map { graph.nodes[$0] }
  }

  /// cse: merges constants with equal data (up to `constantElementLimit` elements) and nodes with
  /// equal op, domain, version, attributes and operands, keeping the first of each.
  static func eliminateCommonSubexpressions(_ graph: inout Graph, constantElementLimit: Int) {
    var substitution: [ValueID: ValueID] = [:]
    var canonicalConstants: [TensorData: ValueID] = [:]
    for id in graph.constants.keys.sorted() {
      guard let data = graph.constants[id], data.elementCount <= constantElementLimit else { continue }
      if let existing = canonicalConstants[data] {
        substitution[id] = existing
      } else {
        canonicalConstants[data] = id
      }
    }

    struct Key: Hashable {
      var op: String
      var domain: String
      var version: Int
      var inputs: [ValueID?]
      var attributes: [String: AttributeValue]
    }
    var seen: [Key: [ValueID]] = [:]
    var kept: [Node] = []
    for var node in graph.nodes {
      node.inputs = node.inputs.map { input in input.map { substitution[$0] ?? $0 } }
      let key = Key(
        op: node.op, domain: node.domain, version: node.version, inputs: node.inputs, attributes: node.attributes)
      if let previous = seen[key], previous.count == node.outputs.count,
        zip(previous, node.outputs).allSatisfy({ graph.type(of: $0) == graph.type(of: $1) })
      {
        for (old, new) in zip(node.outputs, previous) { substitution[old] = new }
        continue
      }
      seen[key] = node.outputs
      kept.append(node)
    }
    graph.nodes = kept
    graph.outputs = graph.outputs.map { substitution[$0] ?? $0 }
    graph.extents = Dictionary(
      graph.extents.map { id, extent in
        (substitution[id] ?? id, DataDependentExtent(axis: extent.axis, count: substitution[extent.count] ?? extent.count))
      }, uniquingKeysWith: { first, _ in first })
  }
}
