import KilnIR

// Ops with an algorithm of their own (`KernelProgram`, a custom region): prefix sums along an
// axis (CumSum, CumProd: one pass per line instead of one reduction per element) and the
// selection of TopK (a heap per line instead of ranking every element against every other).

/// The lines of a tensor along one axis: line l starts at `(l / inner) * extent * inner + l % inner`
/// and its elements are `inner` apart.
struct AxisLines {
  let count: Int
  let extent: Int
  let inner: Int

  init(shape: [Int], axis: Int) {
    extent = shape[axis]
    inner = shape[(axis + 1)...].reduce(1, *)
    count = shape[..<axis].reduce(1, *) * inner
  }

  /// The offset of element 0 of line `line` in a tensor whose axis has `extent` elements.
  func start(_ line: Expr, extent: Int? = nil) -> Expr {
    inner == 1 ? line * (extent ?? self.extent) : line.floorDivided(by: inner) * ((extent ?? self.extent) * inner) + line.modulo(inner)
  }
}

extension OpLowerings {
  /// Internal ops (domain `kiln`) that passes create.
  static let kilnDomain = "kiln"

  static func kilnLowering(_ node: Node) -> OpLowering? {
    node.op == "TopKIndices" ? topKIndices : nil
  }

  /// CumSum / CumProd: one invocation per line along the axis, accumulating in order (or in
  /// reverse), storing each running value (before adding the element when exclusive).
  static func cumulative(_ op: ReduceOp) -> OpLowering {
    OpLowering { ctx, _ in
      let input = try ctx.shape(0)
      guard let rawAxis = try ctx.constantInts(1, "axis")?.first else { throw ctx.error("input 1 (axis) is required") }
      let axis = try ctx.normalizedAxis(rawAxis, rank: input.count)
      let exclusive = try ctx.intAttribute("exclusive", default: 0) != 0
      let reverse = try ctx.intAttribute("reverse", default: 0) != 0
      let type = try ctx.computeType(0)
      let lines = AxisLines(shape: input, axis: axis)
      var b = KernelProgram.Builder()
      let start = b.local(lines.start(.coordinate(0)))
      let accumulator = b.local(.constant(op == .product ? 1 : 0, type))
      try b.loop(from: .index(0), to: .index(lines.extent)) { b, j in
        let index = start + (reverse ? Expr.index(lines.extent - 1) - j : j) * lines.inner
        let next = Expr.binary(op == .product ? .multiply : .add, accumulator, try ctx.load(0, at: index))
        if exclusive {
          b.store(index, accumulator)
          b.set(accumulator, next)
        } else {
          b.set(accumulator, next)
          b.store(index, accumulator)
        }
      }
      return b.program(invocations: lines.count)
    }
  }

  /// TopKIndices (made by `Decompose` from TopK): the positions along the axis of the k best
  /// elements of each line, best first; equal values keep index order, and NaN counts as the
  /// largest value. Per line, a heap of the k best so far, kept in the output (its root the
  /// worst of them), takes each further element that beats the root; the heap is then sorted in
  /// place: O(n log k) per line.
  static let topKIndices = OpLowering { ctx, _ in
    let input = try ctx.shape(0)
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: -1), rank: input.count)
    let largest = try ctx.intAttribute("largest", default: 1) != 0
    let k = ctx.outputShape()[axis]
    let lines = AxisLines(shape: input, axis: axis)
    var b = KernelProgram.Builder()
    let inStart = b.local(lines.start(.coordinate(0)))
    let outStart = b.local(lines.start(.coordinate(0), extent: k))
    guard k > 0 else { return b.program(invocations: lines.count) }
    let stored = ctx.outputType().dtype
    func slot(_ j: Expr) -> Expr { outStart + j * lines.inner }
    let heap = ProgramHeap(
      read: { .cast(.loadOutput(dtype: stored, index: slot($0)), .index) },
      write: { b, j, position in b.store(slot(j), .cast(position, .compute(stored))) },
      better: { _, p, q in
        // Larger (smaller) first; NaN above every number; equal values in index order.
        let (x, y) = (try ctx.load(0, at: inStart + p * lines.inner), try ctx.load(0, at: inStart + q * lines.inner))
        let (nanX, nanY) = x.type.isFloat ? (Expr.unary(.isNaN, x), Expr.unary(.isNaN, y)) : (.falseValue, .falseValue)
        let strictly: Expr =
          largest
          ? .any([.binary(.greater, x, y), .all([nanX, .unary(.logicalNot, nanY)])])
          : .any([.binary(.less, x, y), .all([.unary(.logicalNot, nanX), nanY])])
        let same = Expr.any([.binary(.equal, x, y), .all([nanX, nanY])])
        return .any([strictly, .all([same, .binary(.less, p, q)])])
      })
    // The first k elements, heaped; every further element that beats the worst of them replaces
    // it; then the heap, sorted best first.
    b.loop(from: .index(0), to: .index(k)) { b, j in heap.write(&b, j, j) }
    try heap.heapify(&b, size: .index(k))
    try b.loop(from: .index(k), to: .index(lines.extent)) { b, i in
      let beats = try heap.better(&b, i, heap.read(.index(0)))
      try b.branch(beats) { b in
        heap.write(&b, .index(0), i)
        try heap.siftDown(&b, .index(0), size: .index(k))
      }
    }
    try heap.sort(&b, size: .index(k))
    return b.program(invocations: lines.count)
  }
}
