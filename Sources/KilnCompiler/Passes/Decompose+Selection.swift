import KilnIR

extension Rewriter {
  /// TopK: the indices of the k best elements per line come from the custom op `kiln.TopKIndices`
  /// (a heap per line), and the values are gathered at them (GatherElements).
  mutating func topK() throws {
    let x = try input(0)
    let rank = type(x).shape.count
    let axis = try normalizedAxis(try intAttribute("axis", default: -1), rank: rank)
    let largest = try intAttribute("largest", default: 1)
    guard source.outputs.count == 2 else { throw error("TopK has \(source.outputs.count) outputs, expected 2") }
    let (values, indices) = (source.outputs[0], source.outputs[1])
    guard type(indices).dtype == .int64 else { throw error("indices are \(type(indices).dtype.rawValue), expected int64") }
    graph.nodes.append(
      Node(
        name: uniqueName("TopKIndices"), op: "TopKIndices", domain: OpLowerings.kilnDomain, version: 1, inputs: [x],
        outputs: [indices], attributes: ["axis": .int(Int64(axis)), "largest": .int(Int64(largest))]))
    add("GatherElements", version: 13, [x, indices], type(values), attributes: ["axis": .int(Int64(axis))], output: values)
  }
}
