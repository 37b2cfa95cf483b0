import KilnIR

extension OpLowerings {
  /// NonMaxSuppression, as ONNX Runtime computes it: per batch and class, the boxes whose score
  /// passes score_threshold (strictly, when given) in descending score order (equal scores in
  /// box order: a heap sort of the candidates in scratch memory), each kept unless its IoU with a
  /// box already kept for the class exceeds iou_threshold, up to max_output_boxes_per_class (0,
  /// or no limit given: none). One invocation walks the batches and classes in order and writes
  /// (batch, class, box) triples; the extent counts them. Scratch: the candidates, then the
  /// boxes kept for the class.
  static let nonMaxSuppression = OpLowering { ctx, output in
    let boxes = try ctx.shape(0)
    let scores = try ctx.shape(1)
    let (batches, boxCount, classes) = (boxes[0], boxes[1], scores[1])
    let centerPoint = try ctx.intAttribute("center_point_box", default: 0) == 1
    var b = KernelProgram.Builder()
    let limit: Expr =
      ctx.hasInput(2) ? .binary(.maximum, .cast(try ctx.load(2, at: .index(0)), .index), .index(0)) : .index(0)
    let iouThreshold: Expr = ctx.hasInput(3) ? try ctx.load(3, at: .index(0)) : .constant(0, .float32)
    let scoreThreshold: Expr? = ctx.hasInput(4) ? try ctx.load(4, at: .index(0)) : nil
    let total = b.local(.index(0))
    let kept = .index(boxCount) as Expr
    try b.loop(from: .index(0), to: .index(batches)) { b, batch in
      try b.loop(from: .index(0), to: .index(classes)) { b, klass in
        let scoreStart = (batch * classes + klass) * boxCount
        func score(_ box: Expr) throws -> Expr { try ctx.load(1, at: scoreStart + box) }
        // The candidates, then sorted by score.
        let candidates = b.local(.index(0))
        try b.loop(from: .index(0), to: .index(boxCount)) { b, box in
          let passes = try scoreThreshold.map { Expr.binary(.greater, try score(box), $0) } ?? .trueValue
          b.branch(passes) { b in
            b.storeScratch(candidates, box)
            b.set(candidates, candidates + 1)
          }
        }
        let heap = ProgramHeap(
          read: { .cast(.loadScratch($0), .index) },
          write: { b, j, box in b.storeScratch(j, box) },
          better: { _, p, q in
            let (x, y) = (try score(p), try score(q))
            return .any([.binary(.greater, x, y), .all([.binary(.equal, x, y), .binary(.less, p, q)])])
          })
        try heap.heapify(&b, size: candidates)
        try heap.sort(&b, size: candidates)
        // Greedy selection.
        let selected = b.local(.index(0))
        let full = b.local(.falseValue)
        try b.loop(from: .index(0), to: candidates) { b, t in
          try b.branch(.unary(.logicalNot, full)) { b in
            let box = b.local(heap.read(t))
            let suppressed = b.local(.falseValue)
            try b.loop(from: .index(0), to: selected) { b, s in
              let overlaps = try overlapping(ctx, batch: batch, boxCount: boxCount, .cast(.loadScratch(kept + s), .index), box, centerPoint, iouThreshold)
              b.branch(overlaps) { b in b.set(suppressed, .trueValue) }
            }
            b.branch(.unary(.logicalNot, suppressed)) { b in
              b.branch(
                .binary(.greaterEqual, selected, limit), then: { b in b.set(full, .trueValue) },
                otherwise: { b in
                  b.storeScratch(kept + selected, box)
                  b.set(selected, selected + 1)
                  if output == 0 {
                    for (column, value) in [batch, klass, box].enumerated() { b.store(total * 3 + column, .cast(value, .int64)) }
                  }
                  b.set(total, total + 1)
                })
            }
          }
        }
      }
    }
    if output == 1 { storeExtent(&b, total) }
    return b.program(invocations: 1, scratch: 2 * boxCount)
  }

  /// Whether boxes `first` and `second` of `batch` overlap by more than `threshold` IoU (corners
  /// in either order, or centre and size); degenerate boxes never do.
  static func overlapping(
    _ ctx: LoweringContext, batch: Expr, boxCount: Int, _ first: Expr, _ second: Expr, _ centerPoint: Bool, _ threshold: Expr
  ) throws -> Expr {
    func coordinate(_ box: Expr, _ k: Int) throws -> Expr { try ctx.load(0, at: (batch * boxCount + box) * 4 + k) }
    /// (min, max) of the box along x (axis 0) or y (axis 1).
    func extent(_ box: Expr, x: Bool) throws -> (Expr, Expr) {
      if centerPoint {
        let (center, size) = (try coordinate(box, x ? 0 : 1), try coordinate(box, x ? 2 : 3))
        let half = Expr.binary(.divide, size, .constant(2, .float32))
        return (.binary(.subtract, center, half), .binary(.add, center, half))
      }
      let (a, c) = (try coordinate(box, x ? 1 : 0), try coordinate(box, x ? 3 : 2))
      return (.binary(.minimum, a, c), .binary(.maximum, a, c))
    }
    let (x1, x2, y1, y2) = (try extent(first, x: true), try extent(second, x: true), try extent(first, x: false), try extent(second, x: false))
    let width = Expr.binary(.subtract, .binary(.minimum, x1.1, x2.1), .binary(.maximum, x1.0, x2.0))
    let height = Expr.binary(.subtract, .binary(.minimum, y1.1, y2.1), .binary(.maximum, y1.0, y2.0))
    let intersection = Expr.binary(.multiply, width, height)
    let area1 = Expr.binary(.multiply, .binary(.subtract, x1.1, x1.0), .binary(.subtract, y1.1, y1.0))
    let area2 = Expr.binary(.multiply, .binary(.subtract, x2.1, x2.0), .binary(.subtract, y2.1, y2.0))
    let union = Expr.binary(.subtract, .binary(.add, area1, area2), intersection)
    let zero = Expr.constant(0, .float32)
    return .all([
      .binary(.greater, width, zero), .binary(.greater, height, zero), .binary(.greater, intersection, zero),
      .binary(.greater, area1, zero), .binary(.greater, area2, zero), .binary(.greater, union, zero),
      .binary(.greater, .binary(.divide, intersection, union), threshold),
    ])
  }
}
