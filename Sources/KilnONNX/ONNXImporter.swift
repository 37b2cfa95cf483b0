import Foundation
import KilnIR
import SwiftProtobuf

/// Imports an ONNX model into a Kiln `Graph` with static shapes.
///
/// The pipeline, in order:
/// 1. parse the ModelProto and check the opset imports (ai.onnx 1...28);
/// 2. index every name (inputs, initializers, node outputs), rejecting duplicates, dangling
///    references and cycles, and order the nodes topologically;
/// 3. keep only nodes that reach a graph output;
/// 4. per node: convert attributes, infer result types, then fold the node into constants when its
///    operands are constants and its results small (Shape and Size always fold);
/// 5. dead-code elimination and common-subexpression elimination; renumber; verify.
///
/// Every failure is an `ONNXImportError` naming the model, the node and the bad value; hostile
/// input never crashes the importer.
public struct ONNXImporter: Sendable {
  /// The newest ai.onnx opset the importer understands.
  public static let maxOpset = 28

  /// Ops of the ai.onnx domain the importer supports, sorted.
  public static var supportedOps: [String] { OpRegistry.supportedOps }

  public var options: ImportOptions

  public init(options: ImportOptions = .init()) {
    self.options = options
  }

  /// Imports the model file at `url`; external data is read relative to its folder.
  public func importModel(at url: URL) throws -> Graph {
    let path = url.isFileURL ? url.relativePath : url.absoluteString
    let data: Data
    do {
      // Mapped, not read: `.mappedIfSafe` read BERT-base's 436 MB into memory (a tenth of its
      // compile time in the kernel's copy); the importer copies each initializer out once anyway.
      // Files that cannot be mapped (empty ones, pipes) are read.
      data = try (try? Data(contentsOf: url, options: .alwaysMapped)) ?? Data(contentsOf: url)
    } catch {
      throw ONNXImportError(.io, "cannot read the model: \(error.localizedDescription)", modelPath: path)
    }
    return try importModel(data: data, baseDirectory: url.deletingLastPathComponent(), modelPath: path)
  }

  /// Imports a serialized ModelProto.
  /// - Parameters:
  ///   - baseDirectory: the folder external data is resolved in; nil rejects external data.
  ///   - modelPath: how messages name the model (default `<memory>`).
  public func importModel(data: Data, baseDirectory: URL? = nil, modelPath: String? = nil) throws -> Graph {
    let path = modelPath ?? "<memory>"
    do {
      let model: Onnx_ModelProto
      do {
        model = try Onnx_ModelProto(serializedBytes: data)
      } catch {
        throw ONNXImportError(.invalidProtobuf, "not a valid ONNX model (protobuf decoding failed: \(error))")
      }
      var session = ImportSession(options: options, baseDirectory: baseDirectory)
      return try session.run(model)
    } catch var error as ONNXImportError {
      if error.modelPath == nil { error.modelPath = path }
      throw error
    } catch let error as IRError {
      throw ONNXImportError(.internalError, error.description, modelPath: path)
    } catch {
      throw ONNXImportError(.internalError, "\(error)", modelPath: path)
    }
  }

  /// Imports a serialized ModelProto held in a byte array.
  public func importModel(bytes: [UInt8], baseDirectory: URL? = nil, modelPath: String? = nil) throws -> Graph {
    try importModel(data: Data(bytes), baseDirectory: baseDirectory, modelPath: modelPath)
  }
}

/// State of one import: the graph being built and the ONNX name of every value so far.
struct ImportSession {
  /// Where a name is defined in the GraphProto.
  enum Definition: Equatable {
    case input(Int)
    case initializer(Int)
    case sparseInitializer(Int)
    case node(Int)
  }

  let options: ImportOptions
  var decoder: TensorDecoder
  var graph = Graph()
  var opsets: [String: Int] = [:]
  /// ONNX value name to the IR value holding it (after aliasing and folding).
  var values: [String: ValueID] = [:]
  /// ONNX sequence value name to its elements' value names (sequences are compile-time lists).
  var sequences: [String: [String]] = [:]
  /// ONNX optional values that hold no element.
  var emptyOptionals: Set<String> = []
  /// The classical-ML operator domain.
  static let mlDomain = "ai.onnx.ml"
  /// Counter for names of values the importer synthesises.
  var synthesized = 0
  /// Subgraph nodes inlined so far (unrolled loops count every iteration), against a budget.
  var inlinedNodes = 0

  init(options: ImportOptions, baseDirectory: URL?) {
    self.options = options
    self.decoder = TensorDecoder(
      externalData: ExternalDataReader(baseDirectory: baseDirectory), budget: max(options.memoryBudget, 0))
  }

  mutating func run(_ model: Onnx_ModelProto) throws -> Graph {
    guard model.hasGraph else { throw ONNXImportError.model("the model has no graph") }
    let proto = model.graph
    try readOpsets(model)
    graph = Graph(name: proto.name.isEmpty ? "main" : proto.name, opsetImports: ["": opsets[""] ?? 0])

    let definitions = try indexNames(proto)
    let order = try topologicalOrder(proto.node, definitions)

    // Liveness: nodes that reach a graph output, and every name such nodes or outputs read.
    var live = [Bool](repeating: false, count: proto.node.count)
    var used = Set<String>()
    var pending = proto.output.map(\.name)
    while let name = pending.popLast() {
      guard used.insert(name).inserted else { continue }
      if case .node(let index)? = definitions[name], !live[index] {
        live[index] = true
        pending += Self.readNames(proto.node[index]).filter { !$0.isEmpty }
      }
    }

    // Runtime inputs keep the model's signature, used or not.
    var runtimeInputs = Set<String>()
    for info in proto.input {
      if case .input? = definitions[info.name] { runtimeInputs.insert(info.name) }
    }
    for name in Set(options.inputShapes.keys).union(options.constantInputs.keys).sorted()
    where !runtimeInputs.contains(name) {
      throw ONNXImportError.model("ImportOptions names input '\(name)', which is not a runtime input of the graph")
    }
    for info in proto.input where runtimeInputs.contains(info.name) {
      if let data = options.constantInputs[info.name] {
        try checkConstantInput(info, data)
        try decoder.charge(data.bytes.count, for: "constant input '\(info.name)'")
        values[info.name] = graph.addConstant(data, name: info.name)
      } else {
        values[info.name] = graph.addInput(name: info.name, type: try inputType(info))
      }
    }

    for tensor in proto.initializer where used.contains(tensor.name) {
      let data = try decoder.decode(tensor, what: "initializer '\(tensor.name)'")
      values[tensor.name] = graph.addConstant(data, name: tensor.name)
    }
    for sparse in proto.sparseInitializer where used.contains(sparse.values.name) {
      throw ONNXImportError(.unsupportedType, "sparse initializer '\(sparse.values.name)' is not supported")
    }

    for index in order where live[index] {
      try importNode(proto.node[index], used: used)
    }

    graph.outputs = try proto.output.map { info in
      if sequences[info.name] != nil || emptyOptionals.contains(info.name) {
        throw ONNXImportError(
          .unsupportedType, "graph output '\(info.name)' is a sequence or optional; Kiln's outputs are tensors")
      }
      guard let id = values[info.name] else {
        throw ONNXImportError(.internalError, "graph output '\(info.name)' was not produced")
      }
      return id
    }
    // Results with a data-dependent extent are graph outputs; their extents follow every output.
    graph.extents = graph.extents.filter { graph.outputs.contains($0.key) }
    for output in graph.outputs {
      if let count = graph.extents[output]?.count, !graph.outputs.contains(count) { graph.outputs.append(count) }
    }
    if options.cleanup {
      GraphCleanup.run(&graph, constantElementLimit: options.foldingElementLimit)
    }
    graph = graph.compacted()
    do {
      try graph.verify()
    } catch let error as IRError {
      throw ONNXImportError(.internalError, "the imported graph is invalid: \(error.message)")
    }
    return graph
  }

  // MARK: Model structure

  mutating func readOpsets(_ model: Onnx_ModelProto) throws {
    for entry in model.opsetImport {
      let domain = entry.domain == "ai.onnx" ? "" : entry.domain
      guard opsets[domain] == nil else {
        throw ONNXImportError.model("opset of domain '\(entry.domain)' is imported twice")
      }
      guard let version = Int(exactly: entry.version) else {
        throw ONNXImportError.model("opset version \(entry.version) is invalid")
      }
      opsets[domain] = version
    }
    if let version = opsets[Self.mlDomain] {
      guard version >= 1, version <= OpRegistry.maxMLOpset else {
        throw ONNXImportError(
          .unsupportedOpset, "ai.onnx.ml opset \(version) is not supported (1...\(OpRegistry.maxMLOpset))")
      }
    }
    guard let version = opsets[""] else {
      // A classical-ML model may import only ai.onnx.ml.
      guard opsets[Self.mlDomain] != nil else {
        throw ONNXImportError(.unsupportedOpset, "the model imports no ai.onnx opset")
      }
      return
    }
    guard version >= 1, version <= ONNXImporter.maxOpset else {
      throw ONNXImportError(
        .unsupportedOpset, "ai.onnx opset \(version) is not supported (1...\(ONNXImporter.maxOpset))")
    }
  }

  /// Every name the graph defines, rejecting duplicates, dangling references and missing outputs.
  func indexNames(_ proto: Onnx_GraphProto) throws -> [String: Definition] {
    var definitions: [String: Definition] = [:]
    func define(_ name: String, _ definition: Definition, _ what: String) throws {
      guard !name.isEmpty else { throw ONNXImportError.model("\(what) has an empty name") }
      guard definitions[name] == nil else { throw ONNXImportError.model("value '\(name)' is defined twice (\(what))") }
      definitions[name] = definition
    }
    for (index, tensor) in proto.initializer.enumerated() {
      try define(tensor.name, .initializer(index), "initializer")
    }
    for (index, sparse) in proto.sparseInitializer.enumerated() {
      try define(sparse.values.name, .sparseInitializer(index), "sparse initializer")
    }
    for (index, info) in proto.input.enumerated() {
      // Before IR version 4 every initializer is also listed as an input; it stays a constant.
      if case .initializer? = definitions[info.name] { continue }
      try define(info.name, .input(index), "graph input")
    }
    for (index, node) in proto.node.enumerated() {
      for name in node.output where !name.isEmpty {
        try define(name, .node(index), "output of node '\(node.name)' (\(node.opType))")
      }
    }
    for node in proto.node {
      for name in node.input where !name.isEmpty && definitions[name] == nil {
        throw ONNXImportError(
          .invalidModel, "input '\(name)' is not defined by any graph input, initializer or node",
          nodeName: node.name, op: node.opType)
      }
      for name in Self.readNames(node).dropFirst(node.input.count) where definitions[name] == nil {
        throw ONNXImportError(
          .invalidModel, "a subgraph reads '\(name)', which no subgraph, graph input, initializer or node defines",
          nodeName: node.name, op: node.opType)
      }
    }
    guard !proto.output.isEmpty else { throw ONNXImportError.model("the graph has no outputs") }
    for info in proto.output where definitions[info.name] == nil {
      throw ONNXImportError.model("graph output '\(info.name)' is not defined by any input, initializer or node")
    }
    return definitions
  }

  /// Node indices in an order where every producer precedes its consumers: the model's own order
  /// when it is already topological, else Kahn's algorithm. Throws on a cycle.
  func topologicalOrder(_ nodes: [Onnx_NodeProto], _ definitions: [String: Definition]) throws -> [Int] {
    var producers: [[Int]] = []
    producers.reserveCapacity(nodes.count)
    var sorted = true
    for (index, node) in nodes.enumerated() {
      var list: [Int] = []
      for name in Self.readNames(node) {
        if case .node(let producer)? = definitions[name] {
          list.append(producer)
          if producer >= index { sorted = false }
        }
      }
      producers.append(list)
    }
    if sorted { return Array(nodes.indices) }

    var indegree = [Int](repeating: 0, count: nodes.count)
    var dependents = [[Int]](repeating: [], count: nodes.count)
    for (index, list) in producers.enumerated() {
      for producer in Set(list) {
        indegree[index] += 1
        dependents[producer].append(index)
      }
    }
    var queue = nodes.indices.filter { indegree[$0] == 0 }
    var head = 0
    while head < queue.count {
      let index = queue[head]
      head += 1
      for dependent in dependents[index].sorted() {
        indegree[dependent] -= 1
        if indegree[dependent] == 0 { queue.append(dependent) }
      }
    }
    if queue.count < nodes.count, let stuck = nodes.indices.first(where: { indegree[$0] > 0 }) {
      throw ONNXImportError(
        .invalidModel, "the graph has a cycle through this node", nodeName: nodes[stuck].name,
        op: nodes[stuck].opType)
    }
    return queue
  }

  /// The static type of a graph input, applying `inputShapes` and `symbolicDimensions`.
  func inputType(_ info: Onnx_ValueInfoProto) throws -> TensorType {
    let name = info.name
    guard case .tensorType(let tensor)? = info.type.value else {
      throw ONNXImportError(.unsupportedType, "input '\(name)' is not a tensor; only tensor inputs are supported")
    }
    guard let dtype = DType(onnxCode: tensor.elemType) else {
      throw ONNXImportError(
        .unsupportedType,
        "input '\(name)' has element type \(TensorDecoder.typeName(tensor.elemType)), which Kiln does not support")
    }
    var shape: [Int] = []
    if let override = options.inputShapes[name] {
      guard override.allSatisfy({ $0 >= 0 }) else {
        throw ONNXImportError.model("ImportOptions.inputShapes['\(name)'] = \(override) has a negative dimension")
      }
      if tensor.hasShape, tensor.shape.dim.count != override.count {
        throw ONNXImportError.model(
          "ImportOptions.inputShapes['\(name)'] = \(override) has rank \(override.count), "
            + "the model says \(tensor.shape.dim.count)")
      }
      shape = override
    } else {
      guard tensor.hasShape else {
        throw ONNXImportError.dynamic("input '\(name)' has no shape; give one with ImportOptions.inputShapes")
      }
      for (axis, dim) in tensor.shape.dim.enumerated() {
        switch dim.value {
        case .dimValue(let value)?:
          guard value >= 0 else {
            throw ONNXImportError.model("input '\(name)' has negative dimension \(value) at axis \(axis)")
          }
          shape.append(Int(value))
        case .dimParam(let parameter)?:
          guard let value = options.symbolicDimensions[parameter] else {
            var error = ONNXImportError.dynamic(
              "input '\(name)' has symbolic dimension '\(parameter)' at axis \(axis); give its shape "
                + "(kiln compile --input-shape \(name)=D0,D1,...; ImportOptions.inputShapes or symbolicDimensions)")
            error.unshapedInput = name
            throw error
          }
          guard value >= 0 else {
            throw ONNXImportError.model("ImportOptions.symbolicDimensions['\(parameter)'] = \(value) is negative")
          }
          shape.append(value)
        case nil:
          var error = ONNXImportError.dynamic(
            "input '\(name)' has an unknown dimension at axis \(axis); give its shape "
              + "(kiln compile --input-shape \(name)=D0,D1,...; ImportOptions.inputShapes)")
          error.unshapedInput = name
          throw error
        }
      }
    }
    let type = TensorType(dtype, shape)
    guard let bytes = type.byteCount, bytes <= options.memoryBudget else {
      throw ONNXImportError.budget(
        "input '\(name)' of type \(type) is larger than the \(options.memoryBudget)-byte memory budget")
    }
    return type
  }

  /// A value from `ImportOptions.constantInputs` must fit the input's declared type.
  func checkConstantInput(_ info: Onnx_ValueInfoProto, _ data: TensorData) throws {
    guard case .tensorType(let tensor)? = info.type.value else {
      throw ONNXImportError(.unsupportedType, "input '\(info.name)' is not a tensor; only tensor inputs are supported")
    }
    guard data.dtype.onnxCode == tensor.elemType else {
      throw ONNXImportError.model(
        "ImportOptions.constantInputs['\(info.name)'] is \(data.dtype.rawValue), "
          + "the input is \(TensorDecoder.typeName(tensor.elemType))")
    }
    guard tensor.hasShape else { return }
    let dims = tensor.shape.dim
    let fits =
      dims.count == data.shape.count
      && zip(dims, data.shape).allSatisfy { dim, size in
        if case .dimValue(let value)? = dim.value { return value == size }
        return true
      }
    guard fits else {
      throw ONNXImportError.model(
        "ImportOptions.constantInputs['\(info.name)'] has shape \(data.shape), which does not fit the input")
    }
  }

  // MARK: Nodes

  /// Infers, folds or emits one live node.
  mutating func importNode(_ proto: Onnx_NodeProto, used: Set<String>) throws {
    let domain = proto.domain == "ai.onnx" ? "" : proto.domain
    let version = opsets[domain]
    do {
      guard let version else {
        throw ONNXImportError(.unsupportedOpset, "domain '\(domain)' is not imported by the model")
      }
      guard domain.isEmpty || domain == Self.mlDomain else {
        throw ONNXImportError(.unsupportedOp, "unsupported op (domain '\(domain)' opset \(version) is not supported)")
      }
      if domain.isEmpty, Self.controlFlowOps.contains(proto.opType) {
        try importControlFlowNode(proto, version: version, used: used)
        return
      }
      if domain.isEmpty, Self.listOps.contains(proto.opType) {
        try importListNode(proto, version: version, used: used)
        return
      }
      guard let spec = (domain.isEmpty ? OpRegistry.specs : OpRegistry.mlSpecs)[proto.opType] else {
        throw ONNXImportError(.unsupportedOp, "unsupported op")
      }
      if let name = proto.input.first(where: { sequences[$0] != nil || emptyOptionals.contains($0) }) {
        throw ONNXImportError.unsupported("input '\(name)' is a sequence or an empty optional; \(proto.opType) takes tensors")
      }

      var attributes: [String: AttributeValue] = [:]
      for attribute in proto.attribute {
        guard spec.attributes.contains(attribute.name) else {
          throw ONNXImportError.unsupported("unsupported attribute '\(attribute.name)'")
        }
        guard attributes[attribute.name] == nil else {
          throw ONNXImportError.attribute("attribute '\(attribute.name)' appears twice")
        }
        attributes[attribute.name] = try decoder.attribute(attribute)
      }

      var inputs: [ValueID?] = try proto.input.map { name in
        guard !name.isEmpty else { return nil }
        guard let id = values[name] else {
          throw ONNXImportError(.internalError, "input '\(name)' has no value")
        }
        return id
      }
      while let last = inputs.last, last == nil { inputs.removeLast() }
      if let read = inputs.compactMap({ $0 }).first(where: { graph.extents[$0] != nil }) {
        throw ONNXImportError.unsupported(
          "input '\(graph[read].name)' has a data-dependent extent (the result of NonZero, Compress, Unique or NonMaxSuppression on run-time data); Kiln runs such results only as graph outputs until it has symbolic shapes")
      }
      var outputNames = Array(proto.output)
      while outputNames.last?.isEmpty == true { outputNames.removeLast() }
      if spec.dropsUnusedOutputs {
        while outputNames.count > 1, let last = outputNames.last, !used.contains(last) { outputNames.removeLast() }
      }
      guard spec.inputs.contains(inputs.count) else {
        throw ONNXImportError.model("takes \(Self.arity(spec.inputs)) inputs, got \(inputs.count)")
      }
      guard spec.outputs.contains(outputNames.count) else {
        throw ONNXImportError.model("has \(Self.arity(spec.outputs)) outputs, got \(outputNames.count)")
      }

      let node = Node(
        name: proto.name, op: proto.opType, domain: domain, version: version, inputs: inputs, outputs: [],
        attributes: attributes)
      var context = OpContext(
        node: node, inputTypes: inputs.map { $0.map(graph.type(of:)) },
        inputData: inputs.map { $0.flatMap { graph.constants[$0] } }, outputCount: outputNames.count,
        options: options)
      let types = try spec.infer(&context)
      guard types.count == outputNames.count else {
        throw ONNXImportError(.internalError, "inferred \(types.count) result types for \(outputNames.count) outputs")
      }
      for (slot, type) in types.enumerated() {
        guard type.shape.allSatisfy({ $0 >= 0 }), let bytes = type.byteCount else {
          throw ONNXImportError.budget("output \(slot) has shape \(type.shape), whose size overflows")
        }
        guard bytes <= options.memoryBudget else {
          throw ONNXImportError.budget(
            "output \(slot) (\(type)) needs \(bytes) bytes, more than the \(options.memoryBudget)-byte memory budget")
        }
      }
      context.outputTypes = types

      if spec.isAlias, outputNames.count == 1, let source = inputs.first ?? nil {
        values[outputNames[0]] = source
        return
      }

      let allConstant = inputs.allSatisfy { $0 == nil || graph.constants[$0!] != nil }
      let small = types.allSatisfy { ($0.elementCount ?? .max) <= options.foldingElementLimit }
      if let fold = spec.fold, spec.alwaysFolds || (options.foldConstants && allConstant && small),
        let results = try fold(context)
      {
        guard results.count == types.count, zip(results, types).allSatisfy({ $0.type == $1 }) else {
          throw ONNXImportError(
            .internalError, "folding produced \(results.map(\.type)) where inference said \(types)")
        }
        for (name, data) in zip(outputNames, results) {
          if proto.opType != "Constant" { try decoder.charge(data.bytes.count, for: "folded value '\(name)'") }
          values[name] = graph.addConstant(data, name: name)
        }
        return
      }

      var node2 = context.node
      node2.outputs = outputNames.enumerated().map { slot, name in
        let id = graph.addValue(name: name.isEmpty ? "\(proto.name):unused\(slot)" : name, type: types[slot])
        if !name.isEmpty { values[name] = id }
        return id
      }
      if let dataDependent = spec.dataDependent, case let axes = try dataDependent(context), !axes.isEmpty {
        // One more result: the extent the data decides, shared by the results it bounds.
        let count = graph.addValue(name: "\(Self.displayName(proto))#extent", type: TensorType(.int64, []))
        node2.outputs.append(count)
        for (slot, axis) in axes where slot < node2.outputs.count - 1 {
          graph.extents[node2.outputs[slot]] = DataDependentExtent(axis: axis, count: count)
        }
      }
      graph.nodes.append(node2)
    } catch var error as ONNXImportError {
      if error.op == nil {
        error.nodeName = Self.displayName(proto)
        error.op = proto.opType
        error.opset = version
      }
      if let slot = error.operandSlot, slot < proto.input.count, let operand = values[proto.input[slot]] {
        error.require(runtimeInputs(feeding: operand))
        error.operandSlot = nil
      }
      throw error
    } catch let error as IRError {
      // Attribute getters prefix their message with the node's label; the context says it already.
      var message = error.message
      let label = "node '\(proto.name)' (\(proto.opType)): "
      if message.hasPrefix(label) { message.removeFirst(label.count) }
      throw ONNXImportError(
        error.code == .attribute ? .invalidAttribute : .invalidTensor, message, nodeName: Self.displayName(proto),
        op: proto.opType, opset: version)
    }
  }

  /// The runtime graph inputs that `value` is computed from, sorted by name.
  func runtimeInputs(feeding value: ValueID) -> [String] {
    let producers = graph.producers()
    let inputs = Set(graph.inputs)
    var seen = Set<ValueID>()
    var pending = [value]
    var found: [String] = []
    while let id = pending.popLast() {
      guard seen.insert(id).inserted else { continue }
      if inputs.contains(id) { found.append(graph.values[id.index].name) }
      if let use = producers[id] { pending += graph.nodes[use.node].inputs.compactMap { $0 } }
    }
    return found.sorted()
  }

  /// How messages name a node: its name, or (for unnamed nodes) its first named output.
  static func displayName(_ proto: Onnx_NodeProto) -> String {
    proto.name.isEmpty ? proto.output.first { !$0.isEmpty } ?? "" : proto.name
  }

  static func arity(_ range: ClosedRange<Int>) -> String {
    if range.lowerBound == range.upperBound { return "\(range.lowerBound)" }
    if range.upperBound == Int.max { return "\(range.lowerBound) or more" }
    return "\(range.lowerBound) to \(range.upperBound)"
  }
}
