import KilnIR

extension OpLowerings {
  /// Unique over the elements (no axis) or the slices along `axis`: one invocation sorts the
  /// slice numbers in scratch memory (heap sort: by value, lexicographically for slices, equal
  /// ones in order, so each group's first is its first occurrence), walks the sorted order into
  /// groups, and, unsorted, ranks the groups by first occurrence. Outputs: Y (the unique values
  /// or slices), indices (first occurrences), inverse_indices (each element's group), counts, and
  /// the extent (the number of groups). O(n log n) comparisons.
  ///
  /// Scratch (n slices): [0, n) the sorted order, [n, 2n) each slice's group, [2n, 3n) each
  /// group's first slice, [3n, 4n) each group's size, [4n, 5n) each group's rank.
  static let unique = OpLowering { ctx, output in
    let input = try ctx.shape(0)
    let axis = try ctx.intAttribute("axis").map { try ctx.normalizedAxis($0, rank: input.count) }
    let sorted = try ctx.intAttribute("sorted", default: 1) != 0
    let shape = axis == nil ? [input.reduce(1, *)] : input
    let lines = AxisLines(shape: shape, axis: axis ?? 0)
    let (n, outer, inner) = (lines.extent, shape[..<(axis ?? 0)].reduce(1, *), lines.inner)
    let extentSlot = ctx.node.outputs.count - 1
    var b = KernelProgram.Builder()
    func element(_ slice: Expr, _ o: Expr, _ i: Expr) throws -> Expr { try ctx.load(0, at: (o * n + slice) * inner + i) }
    /// -1, 0 or 1: slice p against slice q, lexicographically (elements in row-major order).
    func compare(_ b: inout KernelProgram.Builder, _ p: Expr, _ q: Expr) throws -> Expr {
      let order = b.local(.index(0))
      try b.loop(from: .index(0), to: .index(outer * inner)) { b, e in
        let (o, i) = (e.floorDivided(by: inner), e.modulo(inner))
        let (x, y) = (try element(p, o, i), try element(q, o, i))
        b.branch(.binary(.equal, order, .index(0))) { b in
          b.branch(.binary(.less, x, y), then: { b in b.set(order, .index(-1)) }, otherwise: { b in
            b.branch(.binary(.greater, x, y)) { b in b.set(order, .index(1)) }
          })
        }
      }
      return order
    }
    func scratch(_ base: Int, _ j: Expr) -> Expr { .cast(.loadScratch(j + base * n), .index) }
    let heap = ProgramHeap(
      read: { scratch(0, $0) },
      write: { b, j, slice in b.storeScratch(j, slice) },
      better: { b, p, q in
        let order = try compare(&b, p, q)
        return .any([.binary(.less, order, .index(0)), .all([.binary(.equal, order, .index(0)), .binary(.less, p, q)])])
      })
    b.loop(from: .index(0), to: .index(n)) { b, j in heap.write(&b, j, j) }
    try heap.heapify(&b, size: .index(n))
    try heap.sort(&b, size: .index(n))
    // Groups of equal slices, in sorted order.
    let groups = b.local(.index(0))
    try b.loop(from: .index(0), to: .index(n)) { b, s in
      let slice = b.local(scratch(0, s))
      let starts = b.local(.binary(.equal, s, .index(0)))
      try b.branch(.unary(.logicalNot, starts)) { b in
        let order = try compare(&b, scratch(0, s - 1), slice)
        b.set(starts, .binary(.notEqual, order, .index(0)))
      }
      b.branch(starts) { b in
        b.storeScratch(groups + 2 * n, slice)
        b.storeScratch(groups + 3 * n, .index(0))
        b.set(groups, groups + 1)
      }
      let group = groups - 1
      b.storeScratch(slice + n, group)
      b.storeScratch(group + 3 * n, scratch(3, group) + 1)
    }
    // Unsorted, a group's rank is its first occurrence's place among first occurrences.
    if !sorted {
      let rank = b.local(.index(0))
      b.loop(from: .index(0), to: .index(n)) { b, i in
        let group = scratch(1, i)
        b.branch(.binary(.equal, scratch(2, group), i)) { b in
          b.storeScratch(group + 4 * n, rank)
          b.set(rank, rank + 1)
        }
      }
    }
    func rank(_ group: Expr) -> Expr { sorted ? group : scratch(4, group) }
    switch output {
    case extentSlot: storeExtent(&b, groups)
    case 0:
      try b.loop(from: .index(0), to: groups) { b, g in
        let (first, place) = (b.local(scratch(2, g)), b.local(rank(g)))
        try b.loop(from: .index(0), to: .index(outer * inner)) { b, e in
          let (o, i) = (e.floorDivided(by: inner), e.modulo(inner))
          b.store((o * n + place) * inner + i, try element(first, o, i))
        }
      }
    case 1: b.loop(from: .index(0), to: groups) { b, g in b.store(rank(g), .cast(scratch(2, g), .int64)) }
    case 2: b.loop(from: .index(0), to: .index(n)) { b, i in b.store(i, .cast(rank(scratch(1, i)), .int64)) }
    case 3: b.loop(from: .index(0), to: groups) { b, g in b.store(rank(g), .cast(scratch(3, g), .int64)) }
    default: throw ctx.error("Unique has no output \(output)")
    }
    return b.program(invocations: 1, scratch: 5 * n)
  }
}
