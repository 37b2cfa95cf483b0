/// Checks a `Graph`'s invariants and throws the first violation as an `IRError`:
/// ids in range and matching their index; every value defined exactly once (input, constant or
/// node output); nodes in topological order (every input defined before use); graph outputs
/// defined; every type countable (no negative dimension, no overflow); constant data matching
/// its value's type; inputs not constants.
public struct GraphVerifier: Sendable {
  public init() {}

  public func verify(_ graph: Graph) throws {
    for (index, value) in graph.values.enumerated() {
      guard value.id.index == index else {
        throw IRError(.invalidGraph, "value '\(value.name)' at index \(index) has id \(value.id)")
      }
      guard value.type.elementCount != nil, value.type.byteCount != nil else {
        throw IRError(
          .invalidType, "value '\(value.name)' (\(value.id)) has type \(value.type), which cannot be counted")
      }
    }
    func name(_ id: ValueID) -> String {
      graph.contains(id) ? "'\(graph[id].name)' (\(id))" : "\(id)"
    }

    var defined = Set<ValueID>()
    func define(_ id: ValueID, by what: String) throws {
      guard graph.contains(id) else {
        throw IRError(.invalidGraph, "\(what) defines \(id), which is not a value of the graph")
      }
      guard defined.insert(id).inserted else {
        throw IRError(.invalidGraph, "\(what) defines \(name(id)) again")
      }
    }
    for input in graph.inputs {
      if graph.constants[input] != nil {
        throw IRError(.invalidGraph, "input \(name(input)) is also a constant")
      }
      try define(input, by: "graph input")
    }
    for id in graph.constants.keys.sorted() {
      try define(id, by: "constant")
      if let data = graph.constants[id] {
        guard data.type == graph.type(of: id) else {
          throw IRError(
            .typeMismatch, "constant \(name(id)) holds \(data.type) but the value has type \(graph.type(of: id))")
        }
        guard data.bytes.count == data.type.byteCount else {
          throw IRError(.invalidData, "constant \(name(id)) has \(data.bytes.count) bytes for type \(data.type)")
        }
      }
    }
    for node in graph.nodes {
      guard !node.op.isEmpty else {
        throw IRError(.invalidGraph, "\(node.label) has an empty op type")
      }
      for (slot, input) in node.inputs.enumerated() {
        guard let input else { continue }
        guard defined.contains(input) else {
          let why = graph.contains(input) ? "is not defined before this node" : "does not exist"
          throw IRError(.invalidGraph, "\(node.label): input \(slot) \(name(input)) \(why)")
        }
      }
      for output in node.outputs {
        try define(output, by: node.label)
      }
    }
    for (slot, output) in graph.outputs.enumerated() {
      guard defined.contains(output) else {
        throw IRError(.invalidGraph, "graph output \(slot) \(name(output)) is never defined")
      }
    }
    try verifyExtents(graph, name)
  }

  /// Data-dependent extents: on graph outputs only (no node reads them), along an axis of the
  /// value, counted by an int64 scalar graph output that comes after every output with no count.
  private func verifyExtents(_ graph: Graph, _ name: (ValueID) -> String) throws {
    let counts = Set(graph.extents.values.map(\.count))
    for (id, extent) in graph.extents.sorted(by: { $0.key < $1.key }) {
      guard graph.contains(id), graph.outputs.contains(id) else {
        throw IRError(.invalidGraph, "value \(name(id)) has a data-dependent extent but is no graph output")
      }
      guard extent.axis >= 0, extent.axis < graph.type(of: id).rank else {
        throw IRError(.invalidGraph, "value \(name(id)) has a data-dependent extent along axis \(extent.axis) of rank \(graph.type(of: id).rank)")
      }
      guard graph.contains(extent.count), graph.type(of: extent.count) == TensorType(.int64, []), graph.outputs.contains(extent.count) else {
        throw IRError(.invalidGraph, "the extent of \(name(id)) is not an int64 scalar graph output")
      }
    }
    for node in graph.nodes {
      if let read = node.inputs.compactMap({ $0 }).first(where: { graph.extents[$0] != nil }) {
        throw IRError(.invalidGraph, "\(node.label) reads \(name(read)), whose extent is data-dependent")
      }
    }
    if let firstCount = graph.outputs.firstIndex(where: counts.contains),
      graph.outputs[firstCount...].contains(where: { !counts.contains($0) })
    {
      throw IRError(.invalidGraph, "graph outputs holding extents must come after every other output")
    }
  }
}

extension Graph {
  /// `GraphVerifier().verify(self)`.
  public func verify() throws { try GraphVerifier().verify(self) }
}
