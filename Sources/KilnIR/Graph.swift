/// Identifies a value (an SSA tensor) in a `Graph`: an index into `Graph.values`.
public struct ValueID: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var index: Int

  public init(_ index: Int) { self.index = index }

  public static func < (lhs: ValueID, rhs: ValueID) -> Bool { lhs.index < rhs.index }
  public var description: String { "%\(index)" }
}

/// A tensor value: a graph input, a constant, or a node output.
public struct Value: Hashable, Sendable {
  public var id: ValueID
  /// The name it had in the source model (not necessarily unique after passes; for messages).
  public var name: String
  public var type: TensorType

  public init(id: ValueID, name: String, type: TensorType) {
    self.id = id
    self.name = name
    self.type = type
  }
}

/// One operation. `op` and `domain` follow ONNX (domain "" is the default ai.onnx domain) and
/// `version` is the opset of that domain the model imports, which fixes the op's semantics.
public struct Node: Hashable, Sendable {
  /// The ONNX default domain ("ai.onnx" is normalised to this).
  public static let defaultDomain = ""

  public var name: String
  public var op: String
  public var domain: String
  public var version: Int
  /// Operands by position; nil marks an omitted optional input.
  public var inputs: [ValueID?]
  public var outputs: [ValueID]
  public var attributes: [String: AttributeValue]

  public init(
    name: String = "", op: String, domain: String = Node.defaultDomain, version: Int,
    inputs: [ValueID?], outputs: [ValueID], attributes: [String: AttributeValue] = [:]
  ) {
    self.name = name
    self.op = op
    self.domain = domain
    self.version = version
    self.inputs = inputs
    self.outputs = outputs
    self.attributes = attributes
  }

  /// `node 'conv1' (Conv)`: how messages refer to this node.
  public var label: String { "node '\(name)' (\(op))" }
}

/// Where a value is produced or consumed: a node index in `Graph.nodes` and an output or input slot.
public struct ValueUse: Hashable, Sendable {
  public var node: Int
  public var slot: Int

  public init(node: Int, slot: Int) {
    self.node = node
    self.slot = slot
  }
}

/// A data-dependent extent: a value's `axis` holds only as many elements as the int64 scalar
/// `count` says when it is computed; its type's shape gives the most it can hold (NonZero,
/// Compress, Unique, NonMaxSuppression).
public struct DataDependentExtent: Hashable, Sendable {
  public var axis: Int
  public var count: ValueID

  public init(axis: Int, count: ValueID) {
    self.axis = axis
    self.count = count
  }
}

/// A dataflow graph of tensor operations with static shapes (and, for the outputs of the ops
/// whose result sizes depend on data, a static maximum and a computed extent: `extents`).
///
/// Invariants (checked by `GraphVerifier`): `values[i].id == ValueID(i)`; every value is defined once,
/// as an input, a constant, or a node output; `nodes` are in topological order; constants' data
/// match their value's type.
public struct Graph: Sendable {
  public var name: String
  /// Every value ever created, indexed by `ValueID.index`. Passes may leave unused entries;
  /// `compacted()` removes them.
  public var values: [Value]
  /// Operations in topological order.
  public var nodes: [Node]
  /// Runtime inputs, in signature order.
  public var inputs: [ValueID]
  /// Results, in signature order (may name inputs or constants).
  public var outputs: [ValueID]
  /// Values known at compile time.
  public var constants: [ValueID: TensorData]
  /// Opset version per domain ("" is ai.onnx).
  public var opsetImports: [String: Int]
  /// Values whose extent along one axis is computed at run time (their type holds the maximum);
  /// only graph outputs may have one, with their count a graph output after every other.
  public var extents: [ValueID: DataDependentExtent] = [:]

  public init(name: String = "main", opsetImports: [String: Int] = [:]) {
    self.name = name
    self.values = []
    self.nodes = []
    self.inputs = []
    self.outputs = []
    self.constants = [:]
    self.opsetImports = opsetImports
  }

  // MARK: Values

  /// Appends a new value and returns its id.
  @discardableResult
  public mutating func addValue(name: String, type: TensorType) -> ValueID {
    let id = ValueID(values.count)
    values.append(Value(id: id, name: name, type: type))
    return id
  }

  /// Appends a value holding `data` and registers it as a constant.
  @discardableResult
  public mutating func addConstant(_ data: TensorData, name: String) -> ValueID {
    let id = addValue(name: name, type: data.type)
    constants[id] = data
    return id
  }

  /// Appends a new runtime input.
  @discardableResult
  public mutating func addInput(name: String, type: TensorType) -> ValueID {
    let id = addValue(name: name, type: type)
    inputs.append(id)
    return id
  }

  /// Appends a node, creating one value per output type, and returns the output ids.
  @discardableResult
  public mutating func addNode(
    _ op: String, domain: String = Node.defaultDomain, version: Int? = nil, name: String = "",
    inputs: [ValueID?], outputTypes: [TensorType], outputNames: [String]? = nil,
    attributes: [String: AttributeValue] = [:]
  ) -> [ValueID] {
    let outputs = outputTypes.enumerated().map { index, type in
      addValue(name: outputNames?[index] ?? "\(name.isEmpty ? op : name)_out\(index)", type: type)
    }
    nodes.append(
      Node(
        name: name, op: op, domain: domain, version: version ?? opsetImports[domain] ?? 0,
        inputs: inputs, outputs: outputs, attributes: attributes))
    return outputs
  }

  /// Whether `id` names an existing value.
  public func contains(_ id: ValueID) -> Bool { id.index >= 0 && id.index < values.count }

  /// The value for `id`. Precondition: `contains(id)`.
  public subscript(id: ValueID) -> Value { values[id.index] }

  /// The type of `id`. Precondition: `contains(id)`.
  public func type(of id: ValueID) -> TensorType { values[id.index].type }

  /// Whether `id` is a compile-time constant.
  public func isConstant(_ id: ValueID) -> Bool { constants[id] != nil }

  // MARK: Uses

  /// For each node output, the node index and output slot that define it.
  public func producers() -> [ValueID: ValueUse] {
    var result: [ValueID: ValueUse] = [:]
    for (index, node) in nodes.enumerated() {
      for (slot, output) in node.outputs.enumerated() {
        result[output] = ValueUse(node: index, slot: slot)
      }
    }
    return result
  }

  /// For each value read by a node, every (node index, input slot) reading it, in node order.
  /// Graph outputs are not listed; see `outputs`.
  public func consumers() -> [ValueID: [ValueUse]] {
    var result: [ValueID: [ValueUse]] = [:]
    for (index, node) in nodes.enumerated() {
      for (slot, input) in node.inputs.enumerated() {
        if let input { result[input, default: []].append(ValueUse(node: index, slot: slot)) }
      }
    }
    return result
  }

  /// Every value that is read by some node or is a graph output.
  public func usedValues() -> Set<ValueID> {
    var used = Set(outputs)
    for node in nodes {
      for case let input? in node.inputs { used.insert(input) }
    }
    return used
  }

  /// Rewrites every node input and graph output reading `old` to read `new` instead.
  public mutating func replaceAllUses(of old: ValueID, with new: ValueID) {
    for index in nodes.indices {
      for slot in nodes[index].inputs.indices where nodes[index].inputs[slot] == old {
        nodes[index].inputs[slot] = new
      }
    }
    for slot in outputs.indices where outputs[slot] == old {
      outputs[slot] = new
    }
  }

  /// Applies a whole substitution map at once (chains are followed: a -> b -> c becomes a -> c).
  public mutating func replaceAllUses(_ substitution: [ValueID: ValueID]) {
    guard !substitution.isEmpty else { return }
    func resolve(_ id: ValueID) -> ValueID {
      var current = id
      var steps = 0
      while let next = substitution[current], next != current, steps <= substitution.count {
        current = next
        steps += 1
      }
      return current
    }
    for index in nodes.indices {
      nodes[index].inputs = nodes[index].inputs.map { $0.map(resolve) }
    }
    outputs = outputs.map(resolve)
  }

  // MARK: Compaction

  /// A copy holding only defined values (inputs, constants, node outputs), renumbered densely:
  /// inputs first, then constants in id order, then node outputs in node order. Constants that no
  /// node and no output reads are dropped.
  public func compacted() -> Graph {
    var result = Graph(name: name, opsetImports: opsetImports)
    var map: [ValueID: ValueID] = [:]
    func copy(_ id: ValueID) -> ValueID {
      if let mapped = map[id] { return mapped }
      let value = values[id.index]
      let newID = result.addValue(name: value.name, type: value.type)
      map[id] = newID
      return newID
    }
    for input in inputs where contains(input) {
      result.inputs.append(copy(input))
    }
    let used = usedValues()
    for id in constants.keys.sorted() where used.contains(id) && contains(id) {
      if let data = constants[id] { result.constants[copy(id)] = data }
    }
    for node in nodes {
      var newNode = node
      newNode.inputs = node.inputs.map { input in input.map { map[$0] ?? ValueID(-1 - $0.index) } }
      newNode.outputs = node.outputs.map { contains($0) ? copy($0) : ValueID(-1 - $0.index) }
      result.nodes.append(newNode)
    }
    // Outputs that nothing defines keep a negative (invalid) id so the verifier reports them.
    result.outputs = outputs.map { map[$0] ?? ValueID(-1 - $0.index) }
    for (id, extent) in extents {
      guard let value = map[id], let count = map[extent.count] else { continue }
      result.extents[value] = DataDependentExtent(axis: extent.axis, count: count)
    }
    return result
  }
}
