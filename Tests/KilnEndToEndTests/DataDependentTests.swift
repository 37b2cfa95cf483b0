import Foundation
import KilnBundle
import KilnCodegen
import KilnIR
import KilnRuntime
import KilnTestSupport
import Testing

/// Ops whose result sizes depend on the data (NonZero, Compress, Unique, NonMaxSuppression): the
/// bundle's outputs hold the most they can, the kernels compute the extent, and the session
/// returns the outputs trimmed to it. Graphs are built as the importer builds them (the node's
/// last output is the extent, which follows every other graph output) and run on every device and
/// both Vulkan classes against Swift references.
@Suite(.serialized) struct DataDependentTests {
  /// `op` over `inputs` (graph inputs with these types), its outputs of `types` bounded along
  /// `axes` (output slot -> axis) by one extent; returns the outputs per device.
  func run(
    _ op: String, version: Int, inputs: [(TensorType, [UInt8])], outputs types: [TensorType], axes: [Int: Int],
    attributes: [String: AttributeValue] = [:]
  ) throws -> [(String, [HostTensor])] {
    var graph = Graph(opsetImports: ["": version])
    let ids = inputs.enumerated().map { graph.addInput(name: "in\($0.offset)", type: $0.element.0) }
    let outputs = graph.addNode(op, version: version, name: op.lowercased(), inputs: ids, outputTypes: types + [TensorType(.int64, [])], attributes: attributes)
    let extent = outputs.last!
    for (slot, axis) in axes { graph.extents[outputs[slot]] = DataDependentExtent(axis: axis, count: extent) }
    graph.outputs = Array(outputs.dropLast()) + [extent]
    try graph.verify()
    var options = CompileOptions(modelName: op, printer: { _ in })
    options.cpuVariants = ["baseline"]
    let compiled = try ModelCompiler(options: options).compile(graph)
    let reader = try BundleReader(bytes: try compiled.writer.serialize(manifest: compiled.manifest))
    let tensors = inputs.map { HostTensor(dtype: $0.0.dtype.rawValue, shape: $0.0.shape, bytes: $0.1) }
    var results: [(String, [HostTensor])] = []
    for uri in TestDevices.uris {
      let device = try TestDevices.device(uri)
      let session = try Session(bundle: reader, device: device)
      #expect(session.outputs.count == types.count)
      results.append((uri, try session.run(tensors)))
      if device.info.driver == "vulkan" {
        results.append(("\(uri) gpu", try Session(bundle: reader, device: device, deviceClass: "gpu").run(tensors)))
      }
    }
    #expect(TestDevices.drainValidationMessages().isEmpty)
    return results
  }

  static func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
  static func int64s(_ tensor: HostTensor) -> [Int64] { tensor.bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }
  static func floats(_ tensor: HostTensor) -> [Float] { tensor.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }

  @Test func nonZeroListsCoordinatesInOrder() throws {
    let shape = [7, 33]
    let mask = (0..<231).map { ($0 * 37) % 5 == 0 || $0 % 11 == 3 }
    let found = mask.indices.filter { mask[$0] }
    let want = found.map { Int64($0 / 33) } + found.map { Int64($0 % 33) }
    for (device, outputs) in try run(
      "NonZero", version: 13, inputs: [(TensorType(.bool, shape), mask.map { $0 ? 1 : 0 })],
      outputs: [TensorType(.int64, [2, 231])], axes: [0: 1])
    {
      #expect(outputs[0].shape == [2, found.count], "\(device)")
      #expect(Self.int64s(outputs[0]) == want, "\(device)")
    }
  }

  @Test func compressKeepsSelectedSlicesAlongAnAxis() throws {
    let (outer, n, inner) = (4, 50, 3)
    let x = (0..<(outer * n * inner)).map { Float($0) / 7 }
    let condition = (0..<45).map { $0 % 3 != 1 && $0 != 8 }  // shorter than the axis: the rest is dropped
    let kept = (0..<45).filter { condition[$0] }
    var want: [Float] = []
    for o in 0..<outer { for j in kept { for i in 0..<inner { want.append(x[(o * n + j) * inner + i]) } } }
    for (device, outputs) in try run(
      "Compress", version: 11,
      inputs: [(TensorType(.float32, [outer, n, inner]), Self.bytes(x)), (TensorType(.bool, [45]), condition.map { $0 ? 1 : 0 })],
      outputs: [TensorType(.float32, [outer, 45, inner])], axes: [0: 1], attributes: ["axis": .int(1)])
    {
      #expect(outputs[0].shape == [outer, kept.count, inner], "\(device)")
      #expect(Self.floats(outputs[0]) == want, "\(device)")
    }
  }

  /// 300 values from 37 levels, sorted and in order of first occurrence; and rows of a [40, 3]
  /// matrix with repeats.
  @Test(arguments: [true, false])
  func uniqueGroupsValuesAndRows(sorted: Bool) throws {
    let values = (0..<300).map { Float(($0 * 7919) % 37) - 18 }
    var order: [Float] = []
    for v in values where !order.contains(v) { order.append(v) }
    if sorted { order.sort() }
    let wantIndices = order.map { Int64(values.firstIndex(of: $0)!) }
    let wantInverse = values.map { Int64(order.firstIndex(of: $0)!) }
    let wantCounts = order.map { v in Int64(values.filter { $0 == v }.count) }
    let types = [TensorType(.float32, [300]), TensorType(.int64, [300]), TensorType(.int64, [300]), TensorType(.int64, [300])]
    for (device, outputs) in try run(
      "Unique", version: 11, inputs: [(TensorType(.float32, [300]), Self.bytes(values))], outputs: types,
      axes: [0: 0, 1: 0, 3: 0], attributes: ["sorted": .int(sorted ? 1 : 0)])
    {
      #expect(Self.floats(outputs[0]) == order, "Y on \(device)")
      #expect(Self.int64s(outputs[1]) == wantIndices, "indices on \(device)")
      #expect(Self.int64s(outputs[2]) == wantInverse, "inverse on \(device)")
      #expect(Self.int64s(outputs[3]) == wantCounts, "counts on \(device)")
    }
    // Rows: row r is row (r * 7) % 11 of a small table, so rows repeat.
    let rows: [[Float]] = (0..<40).map { (r: Int) -> [Float] in
      let base = ((r * 7) % 11) * 3
      return (0..<3).map { (c: Int) -> Float in Float(base + c % 2) }
    }
    var rowOrder: [[Float]] = []
    for row in rows where !rowOrder.contains(row) { rowOrder.append(row) }
    if sorted { rowOrder.sort { $0.lexicographicallyPrecedes($1) } }
    for (device, outputs) in try run(
      "Unique", version: 11, inputs: [(TensorType(.float32, [40, 3]), Self.bytes(rows.flatMap { $0 } as [Float]))],
      outputs: [TensorType(.float32, [40, 3]), TensorType(.int64, [40])], axes: [0: 0, 1: 0],
      attributes: ["sorted": .int(sorted ? 1 : 0), "axis": .int(0)])
    {
      #expect(outputs[0].shape == [rowOrder.count, 3], "\(device)")
      #expect(Self.floats(outputs[0]) == rowOrder.flatMap { $0 }, "rows on \(device)")
      #expect(Self.int64s(outputs[1]) == rowOrder.map { Int64(rows.firstIndex(of: $0)!) }, "row indices on \(device)")
    }
  }

  /// NonMaxSuppression on 2 batches x 3 classes x 60 boxes (overlapping grids, corners in either
  /// order), with a limit of 7 per class and a score threshold, against a Swift transcription of
  /// ONNX Runtime's algorithm.
  @Test func nonMaxSuppressionMatchesAGreedyReference() throws {
    let (batches, classes, count) = (2, 3, 60)
    var boxes: [Float] = []
    for b in 0..<batches {
      for i in 0..<count {
        let (y, x) = (Float(i / 8) * 0.5 + Float(b) * 0.1, Float(i % 8) * 0.45)
        let (h, w) = (1 + Float(i % 3) * 0.3, 1 + Float(i % 5) * 0.2)
        boxes += i % 4 == 0 ? [y + h, x + w, y, x] : [y, x, y + h, x + w]
      }
    }
    let scores = (0..<(batches * classes * count)).map { Float(($0 * 7919) % 1000) / 1000 }
    let (limit, iou, threshold): (Int64, Float, Float) = (7, 0.3, 0.1)
    func overlaps(_ b: Int, _ p: Int, _ q: Int) -> Bool {
      func box(_ i: Int) -> (Float, Float, Float, Float) {
        let c = Array(boxes[((b * count + i) * 4)..<((b * count + i) * 4 + 4)])
        return (min(c[1], c[3]), max(c[1], c[3]), min(c[0], c[2]), max(c[0], c[2]))
      }
      let (a, z) = (box(p), box(q))
      let width = min(a.1, z.1) - max(a.0, z.0)
      let height = min(a.3, z.3) - max(a.2, z.2)
      guard width > 0, height > 0 else { return false }
      let intersection = width * height
      let union = (a.1 - a.0) * (a.3 - a.2) + (z.1 - z.0) * (z.3 - z.2) - intersection
      return union > 0 && intersection / union > iou
    }
    var want: [Int64] = []
    for b in 0..<batches {
      for c in 0..<classes {
        let score = { (i: Int) in scores[(b * classes + c) * count + i] }
        let candidates = (0..<count).filter { score($0) > threshold }.sorted { score($0) > score($1) || (score($0) == score($1) && $0 < $1) }
        var kept: [Int] = []
        for i in candidates where kept.count < Int(limit) && !kept.contains(where: { overlaps(b, $0, i) }) { kept.append(i) }
        for i in kept { want += [Int64(b), Int64(c), Int64(i)] }
      }
    }
    for (device, outputs) in try run(
      "NonMaxSuppression", version: 11,
      inputs: [
        (TensorType(.float32, [batches, count, 4]), Self.bytes(boxes)), (TensorType(.float32, [batches, classes, count]), Self.bytes(scores)),
        (TensorType(.int64, [1]), Self.bytes([limit])), (TensorType(.float32, [1]), Self.bytes([iou])),
        (TensorType(.float32, [1]), Self.bytes([threshold])),
      ], outputs: [TensorType(.int64, [batches * classes * count, 3])], axes: [0: 0])
    {
      #expect(outputs[0].shape == [want.count / 3, 3], "\(device)")
      #expect(Self.int64s(outputs[0]) == want, "\(device)")
    }
  }
}
