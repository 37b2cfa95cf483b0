import KilnIR

// Sequences and optionals inside a graph. Shapes are static, so a sequence is a compile-time list
// of tensors: each sequence value is the list of its elements' value names, positions must be
// constants, and the ops that build tensors from sequences (ConcatFromSequence, SplitToSequence)
// become ordinary Concat, Slice and Reshape nodes. An optional is its element, or known empty.
// Graph inputs and outputs stay tensors.

extension ImportSession {
  /// Ops on sequences and optionals that the importer resolves itself.
  static let listOps: Set<String> = [
    "SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase", "SequenceAt", "SequenceLength",
    "ConcatFromSequence", "SplitToSequence", "Optional", "OptionalHasElement", "OptionalGetElement",
  ]

  mutating func importListNode(_ proto: Onnx_NodeProto, version: Int, used: Set<String>) throws {
    let inputs = proto.input
    let outputs = proto.output
    func input(_ slot: Int) -> String? { slot < inputs.count && !inputs[slot].isEmpty ? inputs[slot] : nil }
    func sequence(_ slot: Int) throws -> [String] {
      guard let name = input(slot), let elements = sequences[name] else {
        throw ONNXImportError.shape("input \(slot) must be a sequence")
      }
      return elements
    }
    func tensor(_ slot: Int) throws -> ValueID {
      guard let name = input(slot), let id = values[name] else {
        throw ONNXImportError.shape("input \(slot) must be a tensor")
      }
      return id
    }
    guard outputs.count == 1, !outputs[0].isEmpty else { throw ONNXImportError.model("must have one output") }
    let output = outputs[0]
    let attributes = try Dictionary(proto.attribute.map { ($0.name, try decoder.attribute($0)) }) { a, _ in a }
    func intAttribute(_ name: String, default value: Int) throws -> Int {
      guard let attribute = attributes[name] else { return value }
      guard case .int(let int) = attribute else { throw ONNXImportError.attribute("attribute '\(name)' must be an int") }
      return Int(int)
    }
    let allowed: Set<String> =
      switch proto.opType {
      case "SequenceEmpty": ["dtype"]
      case "ConcatFromSequence": ["axis", "new_axis"]
      case "SplitToSequence": ["axis", "keepdims"]
      case "Optional": ["type"]
      default: []
      }
    if let name = attributes.keys.sorted().first(where: { !allowed.contains($0) }) {
      throw ONNXImportError.unsupported("unsupported attribute '\(name)'")
    }

    switch proto.opType {
    case "SequenceEmpty":
      sequences[output] = []
    case "SequenceConstruct":
      guard !inputs.isEmpty else { throw ONNXImportError.model("needs at least one input") }
      for slot in inputs.indices { _ = try tensor(slot) }
      sequences[output] = inputs
    case "SequenceInsert":
      var elements = try sequence(0)
      _ = try tensor(1)
      let position = try constantPosition(input(2), slot: 2, count: elements.count, inclusiveEnd: true) ?? elements.count
      elements.insert(inputs[1], at: position)
      sequences[output] = elements
    case "SequenceErase":
      var elements = try sequence(0)
      guard !elements.isEmpty else { throw ONNXImportError.shape("cannot erase from an empty sequence") }
      let position = try constantPosition(input(1), slot: 1, count: elements.count, inclusiveEnd: false) ?? elements.count - 1
      elements.remove(at: position)
      sequences[output] = elements
    case "SequenceAt":
      let elements = try sequence(0)
      guard let position = try constantPosition(input(1), slot: 1, count: elements.count, inclusiveEnd: false) else {
        throw ONNXImportError.model("input 1 (position) is required")
      }
      values[output] = values[elements[position]]
    case "SequenceLength":
      let count = try sequence(0).count
      values[output] = graph.addConstant(TensorData([Int64(count)], shape: []), name: output)
    case "ConcatFromSequence":
      try concatFromSequence(try sequence(0), output: output, axis: try intAttribute("axis", default: .min),
        newAxis: try intAttribute("new_axis", default: 0) != 0, version: version, used: used)
    case "SplitToSequence":
      try splitToSequence(
        proto, input: try tensor(0), split: input(1), output: output, axis: try intAttribute("axis", default: 0),
        keepDims: try intAttribute("keepdims", default: 1) != 0, version: version, used: used)
    case "Optional":
      if let name = input(0) {
        if let elements = sequences[name] { sequences[output] = elements } else { values[output] = try tensor(0) }
      } else {
        emptyOptionals.insert(output)
      }
    case "OptionalHasElement":
      let present = input(0).map { !emptyOptionals.contains($0) } ?? false
      values[output] = graph.addConstant(TensorData([present], shape: []), name: output)
    case "OptionalGetElement":
      guard let name = input(0), !emptyOptionals.contains(name) else {
        throw ONNXImportError.shape("the optional input holds no element")
      }
      if let elements = sequences[name] { sequences[output] = elements } else { values[output] = try tensor(0) }
    default:
      throw ONNXImportError(.internalError, "\(proto.opType) is not a sequence op")
    }
  }

  /// A constant scalar position in `-count..<count` (or `...count` when inserting), normalised.
  func constantPosition(_ name: String?, slot: Int, count: Int, inclusiveEnd: Bool) throws -> Int? {
    guard let name else { return nil }
    guard let id = values[name], let data = graph.constants[id] else {
      throw ONNXImportError.runtimeOperand(slot: slot, "input \(slot) (position)")
    }
    guard data.dtype == .int32 || data.dtype == .int64, data.elementCount == 1 else {
      throw ONNXImportError.shape("the position must be an int32 or int64 scalar, got \(data.type)")
    }
    let raw = Int(data.int64s()[0])
    let upper = inclusiveEnd ? count : count - 1
    guard raw >= -count && raw <= upper else {
      throw ONNXImportError.shape("position \(raw) is out of range for a sequence of \(count) tensors")
    }
    return raw < 0 ? raw + count : raw
  }

  /// A fresh value name derived from `base`.
  mutating func syntheticName(_ base: String) -> String {
    synthesized += 1
    return "\(base)::kiln\(synthesized)"
  }

  /// A constant int64 tensor of `values`, by name.
  mutating func int64Constant(_ values: [Int], base: String) -> String {
    let name = syntheticName(base)
    self.values[name] = graph.addConstant(TensorData(values.map { Int64($0) }), name: name)
    return name
  }

  /// Imports a synthesised ai.onnx node (named after the node it replaces).
  mutating func importSynthetic(
    _ op: String, name: String, inputs: [String], outputs: [String], intAttributes: [String: Int] = [:],
    used: Set<String>
  ) throws {
    var node = Onnx_NodeProto()
    node.opType = op
    node.name = name
    node.input = inputs
    node.output = outputs
    node.attribute = intAttributes.keys.sorted().map { key in
      var attribute = Onnx_AttributeProto()
      attribute.name = key
      attribute.type = .int
      attribute.i = Int64(intAttributes[key]!)
      return attribute
    }
    try importNode(node, used: used.union(outputs))
  }

  mutating func concatFromSequence(
    _ elements: [String], output: String, axis: Int, newAxis: Bool, version: Int, used: Set<String>
  ) throws {
    guard axis != .min else { throw ONNXImportError.attribute("attribute 'axis' is required") }
    guard let first = elements.first, let firstID = values[first] else {
      throw ONNXImportError.shape("cannot concatenate an empty sequence")
    }
    let rank = graph.type(of: firstID).rank
    var parts = elements
    var concatAxis = axis
    if newAxis {
      guard axis >= -rank - 1 && axis <= rank else {
        throw ONNXImportError.attribute("axis \(axis) is out of range for new_axis on rank \(rank)")
      }
      concatAxis = axis < 0 ? axis + rank + 1 : axis
      parts = try elements.map { element in
        guard let id = values[element] else { throw ONNXImportError(.internalError, "no value for '\(element)'") }
        var shape = graph.type(of: id).shape
        shape.insert(1, at: min(concatAxis, shape.count))
        let reshaped = syntheticName(output)
        try importSynthetic(
          "Reshape", name: reshaped, inputs: [element, int64Constant(shape, base: output)], outputs: [reshaped], used: used)
        return reshaped
      }
    }
    try importSynthetic("Concat", name: output, inputs: parts, outputs: [output], intAttributes: ["axis": concatAxis], used: used)
  }

  mutating func splitToSequence(
    _ proto: Onnx_NodeProto, input: ValueID, split: String?, output: String, axis rawAxis: Int, keepDims: Bool,
    version: Int, used: Set<String>
  ) throws {
    let shape = graph.type(of: input).shape
    guard rawAxis >= -shape.count && rawAxis < shape.count else {
      throw ONNXImportError.attribute("axis \(rawAxis) is out of range for rank \(shape.count)")
    }
    let axis = rawAxis < 0 ? rawAxis + shape.count : rawAxis
    let length = shape[axis]
    var lengths: [Int]
    if let split {
      guard let id = values[split], let data = graph.constants[id] else {
        throw ONNXImportError.runtimeOperand(slot: 1, "input 1 (split)")
      }
      guard data.dtype == .int32 || data.dtype == .int64, data.shape.count <= 1 else {
        throw ONNXImportError.shape("split must be an int32 or int64 scalar or 1-D tensor, got \(data.type)")
      }
      let values = data.int64s().map { Int($0) }
      if data.shape.isEmpty {
        guard values[0] > 0 else { throw ONNXImportError.shape("split \(values[0]) must be positive") }
        lengths = Array(repeating: values[0], count: length / values[0])
        if length % values[0] != 0 { lengths.append(length % values[0]) }
      } else {
        guard values.allSatisfy({ $0 >= 0 }), values.reduce(0, +) == length else {
          throw ONNXImportError.shape("split \(values) must be non-negative and sum to \(length)")
        }
        lengths = values
      }
    } else {
      lengths = Array(repeating: 1, count: length)
    }
    let squeeze = split == nil && !keepDims
    var start = 0
    var elements: [String] = []
    for piece in lengths {
      let sliced = syntheticName(output)
      try importSynthetic(
        "Slice", name: sliced,
        inputs: [
          proto.input[0], int64Constant([start], base: output), int64Constant([start + piece], base: output),
          int64Constant([axis], base: output),
        ], outputs: [sliced], used: used)
      start += piece
      if squeeze {
        var squeezed = shape
        squeezed.remove(at: axis)
        let reshaped = syntheticName(output)
        try importSynthetic(
          "Reshape", name: reshaped, inputs: [sliced, int64Constant(squeezed, base: output)], outputs: [reshaped],
          used: used)
        elements.append(reshaped)
      } else {
        elements.append(sliced)
      }
    }
    sequences[output] = elements
  }
}
