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
    func held(_ j: Expr) -> Expr { .cast(.loadOutput(dtype: stored, index: slot(j)), .index) }
    func put(_ b: inout KernelProgram.Builder, _ j: Expr, _ position: Expr) { b.store(slot(j), .cast(position, .compute(stored))) }
    /// Whether the element at position `p` comes before the one at `q`.
    func better(_ p: Expr, _ q: Expr) throws -> Expr {
      let (x, y) = (try ctx.load(0, at: inStart + p * lines.inner), try ctx.load(0, at: inStart + q * lines.inner))
      let (nanX, nanY) = x.type.isFloat ? (Expr.unary(.isNaN, x), Expr.unary(.isNaN, y)) : (.falseValue, .falseValue)
      let strictly: Expr =
        largest
        ? .any([.binary(.greater, x, y), .all([nanX, .unary(.logicalNot, nanY)])])
        : .any([.binary(.less, x, y), .all([.unary(.logicalNot, nanX), nanY])])
      let same = Expr.any([.binary(.equal, x, y), .all([nanX, nanY])])
      return .any([strictly, .all([same, .binary(.less, p, q)])])
    }
    /// Moves the element in heap slot `root` down, within the first `size` slots, below every
    /// child that is worse than it (the root of the heap is its worst element).
    func siftDown(_ b: inout KernelProgram.Builder, _ root: Expr, size: Expr) throws {
      let position = b.local(root)
      let moving = b.local(.trueValue)
      try b.repeatWhile(moving) { b in
        let left = position * 2 + 1
        try b.branch(
          .binary(.greaterEqual, left, size), then: { b in b.set(moving, .falseValue) },
          otherwise: { b in
            let worse = b.local(left)
            try b.branch(.all([.binary(.less, left + 1, size), try better(held(worse), held(left + 1))])) { b in
              b.set(worse, left + 1)
            }
            try b.branch(
              try better(held(position), held(worse)),
              then: { b in
                let parent = b.local(held(position))
                put(&b, position, held(worse))
                put(&b, worse, parent)
                b.set(position, worse)
              }, otherwise: { b in b.set(moving, .falseValue) })
          })
      }
    }
    // The first k elements, heaped.
    b.loop(from: .index(0), to: .index(k)) { b, j in put(&b, j, j) }
    try b.loop(from: .index(0), to: .index(k / 2)) { b, j in try siftDown(&b, .index(k / 2 - 1) - j, size: .index(k)) }
    // Every further element that beats the worst of them replaces it.
    try b.loop(from: .index(k), to: .index(lines.extent)) { b, i in
      try b.branch(try better(i, held(.index(0)))) { b in
        put(&b, .index(0), i)
        try siftDown(&b, .index(0), size: .index(k))
      }
    }
    // Sorted in place, best first: the worst goes to the end, one at a time.
    try b.loop(from: .index(0), to: .index(k - 1)) { b, j in
      let end = Expr.index(k - 1) - j
      let worst = b.local(held(.index(0)))
      put(&b, .index(0), held(end))
      put(&b, end, worst)
      try siftDown(&b, .index(0), size: end)
    }
    return b.program(invocations: lines.count)
  }
}
