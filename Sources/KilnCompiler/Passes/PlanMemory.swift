import KilnIR

/// Where every materialised tensor lives at run time.
public struct MemoryPlan: Sendable {
  public enum Location: Sendable, Hashable {
    /// The function's input buffer `n`.
    case input(Int)
    /// The function's output buffer `n`.
    case output(Int)
    /// Weight `n` (a constant uploaded once).
    case weight(Int)
    /// `offset` bytes into the transient arena.
    case arena(offset: Int)
  }

  public var locations: [ValueID: Location]
  /// Bytes of the transient arena.
  public var arenaSize: Int
  /// Constants to ship, in weight order.
  public var weights: [ValueID]
}

/// Packs intermediates into one transient arena by liveness: each value occupies its range from
/// the step that writes it to the last step that reads it; a value whose life is over gives its
/// bytes to later ones (best fit among the free gaps, 256-byte aligned so every offset satisfies
/// any device's minStorageBufferOffsetAlignment).
public enum PlanMemory {
  public static let alignment = 256

  public static func run(_ plan: DispatchPlan) throws -> MemoryPlan {
    let graph = plan.graph
    var locations: [ValueID: MemoryPlan.Location] = [:]
    for (index, input) in graph.inputs.enumerated() where locations[input] == nil {
      locations[input] = .input(index)
    }
    // A value that is a graph output is written straight into its output buffer (first position).
    for (index, output) in graph.outputs.enumerated() where locations[output] == nil {
      if graph.constants[output] == nil && !graph.inputs.contains(output) { locations[output] = .output(index) }
    }
    var weights: [ValueID] = []
    let bound = Set(plan.steps.flatMap(\.inputs)).union(plan.copies.map(\.source))
    for id in graph.constants.keys.sorted() where bound.contains(id) {
      locations[id] = .weight(weights.count)
      weights.append(id)
    }

    // Lifetimes of arena values, in step indices.
    var lastUse: [ValueID: Int] = [:]
    for (index, step) in plan.steps.enumerated() {
      for input in step.inputs { lastUse[input] = index }
    }
    var live: [(offset: Int, size: Int, end: Int)] = []
    var arenaSize = 0
    for (index, step) in plan.steps.enumerated() where locations[step.output] == nil {
      live.removeAll { $0.end < index }
      guard let bytes = graph.type(of: step.output).byteCount else {
        throw LoweringError(message: "value '\(graph[step.output].name)' has an unrepresentable size")
      }
      let size = (bytes + alignment - 1) / alignment * alignment
      // Best fit: the smallest gap between live ranges that holds `size`.
      let sorted = live.sorted { $0.offset < $1.offset }
      var cursor = 0
      var best: (offset: Int, gap: Int)?
      for range in sorted {
        let gap = range.offset - cursor
        if gap >= size && (best == nil || gap < best!.gap) { best = (cursor, gap) }
        cursor = max(cursor, range.offset + range.size)
      }
      let offset = best?.offset ?? cursor
      live.append((offset, size, lastUse[step.output] ?? index))
      arenaSize = max(arenaSize, offset + size)
      locations[step.output] = .arena(offset: offset)
    }
    return MemoryPlan(locations: locations, arenaSize: arenaSize, weights: weights)
  }
}
