import Foundation
import KilnIR
import Testing

@testable import KilnONNX

/// NonZero, Compress, Unique and NonMaxSuppression: their results hold the most the op can
/// produce, the node gets one more result (the extent), and the extent follows every graph
/// output; constants fold to exact results; a node reading such a result is refused.
struct DataDependentImportTests {
  @Test func nonZeroOfRunTimeDataHasAnExtent() throws {
    var model = ModelBuilder(opset: 13)
    model.input("x", .float32, [3, 4])
    model.node("NonZero", ["x"], ["y"])
    model.output("y", .int64)
    let graph = try model.importGraph()
    let y = graph.outputs[0]
    #expect(graph.type(of: y) == TensorType(.int64, [2, 12]))
    let extent = try #require(graph.extents[y])
    #expect(extent.axis == 1 && graph.outputs == [y, extent.count])
    #expect(graph.type(of: extent.count) == TensorType(.int64, []))
    #expect(graph.nodes.count == 1 && graph.nodes[0].outputs == [y, extent.count])
  }

  @Test func constantsFold() throws {
    var model = ModelBuilder(opset: 13)
    model.input("x", .float32, [3])
    model.initializer("mask", TensorData([false, true, false, true], shape: [2, 2]))
    model.node("NonZero", ["mask"], ["where"])
    model.initializer("rows", TensorData([Float(1), 2, 3, 4, 5, 6], shape: [3, 2]))
    model.initializer("pick", TensorData([true, false, true]))
    model.node("Compress", ["rows", "pick"], ["picked"], ["axis": .int(0)])
    model.node("Identity", ["x"], ["z"])
    model.output("where", .int64)
    model.output("picked")
    model.output("z")
    let graph = try model.importGraph()
    #expect(graph.extents.isEmpty)
    #expect(graph.constants[graph.outputs[0]] == TensorData(type: TensorType(.int64, [2, 2]), int64s: [0, 1, 1, 1]))
    #expect(graph.constants[graph.outputs[1]] == TensorData([Float(1), 2, 5, 6], shape: [2, 2]))
  }

  /// A constant condition fixes Compress's shape even when its data is computed at run time.
  @Test func compressWithAConstantConditionIsStatic() throws {
    var model = ModelBuilder(opset: 11)
    model.input("x", .float32, [5, 2])
    model.initializer("pick", TensorData([true, false, true, true]))
    model.node("Compress", ["x", "pick"], ["y"], ["axis": .int(0)])
    model.output("y")
    let graph = try model.importGraph()
    #expect(graph.extents.isEmpty && graph.type(of: graph.outputs[0]) == TensorType(.float32, [3, 2]))
  }

  @Test func uniqueBoundsItsGroupedResults() throws {
    var model = ModelBuilder(opset: 11)
    model.input("x", .float32, [6, 2])
    model.node("Unique", ["x"], ["y", "indices", "inverse", "counts"], ["axis": .int(0)])
    for (name, dtype) in [("y", DType.float32), ("indices", .int64), ("inverse", .int64), ("counts", .int64)] { model.output(name, dtype) }
    let graph = try model.importGraph()
    let (y, indices, inverse, counts) = (graph.outputs[0], graph.outputs[1], graph.outputs[2], graph.outputs[3])
    #expect(graph.extents[y]?.axis == 0 && graph.extents[indices]?.axis == 0 && graph.extents[counts]?.axis == 0)
    #expect(graph.extents[inverse] == nil, "inverse_indices has one entry per slice")
    #expect(graph.outputs.count == 5 && graph.extents[y]?.count == graph.outputs[4])
  }

  @Test func nonMaxSuppressionIsBoundedByItsLimit() throws {
    var model = ModelBuilder(opset: 11)
    model.input("boxes", .float32, [2, 10, 4])
    model.input("scores", .float32, [2, 3, 10])
    model.initializer("limit", TensorData([Int64(4)]))
    model.node("NonMaxSuppression", ["boxes", "scores", "limit"], ["selected"])
    model.output("selected", .int64)
    let graph = try model.importGraph()
    #expect(graph.type(of: graph.outputs[0]) == TensorType(.int64, [24, 3]))
    #expect(graph.extents[graph.outputs[0]]?.axis == 0)
  }

  /// Until shapes can be symbolic, a node may not read a result whose extent is data-dependent.
  @Test func readingADataDependentResultIsRefused() throws {
    var model = ModelBuilder(opset: 13)
    model.input("x", .float32, [3, 4])
    model.node("NonZero", ["x"], ["y"])
    model.node("Transpose", ["y"], ["t"])
    model.output("t", .int64)
    #expect {
      try model.importGraph()
    } throws: { error in
      "\(error)".contains("data-dependent extent") && "\(error)".contains("'t'")
    }
  }
}
