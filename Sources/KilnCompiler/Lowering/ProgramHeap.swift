import KilnIR

/// A binary heap over slots `0..<size` of some int64 storage (a custom kernel's output or its
/// scratch memory) holding element numbers, ordered by `better`: the root is the worst element,
/// so the k best of a stream stay in a heap of size k, and `sort` leaves the slots best first
/// (heapsort). `better` may emit statements (comparing two slices takes a loop) and returns a
/// bool value: whether element p comes before element q (a strict, total order).
struct ProgramHeap {
  /// The element in slot `j`.
  let read: (Expr) -> Expr
  /// Stores element `value` in slot `j`.
  let write: (inout KernelProgram.Builder, _ j: Expr, _ value: Expr) -> Void
  let better: (inout KernelProgram.Builder, _ p: Expr, _ q: Expr) throws -> Expr

  /// Moves the element in slot `root` down, within the first `size` slots, below every child
  /// that is worse than it.
  func siftDown(_ b: inout KernelProgram.Builder, _ root: Expr, size: Expr) throws {
    let position = b.local(root)
    let moving = b.local(.trueValue)
    try b.repeatWhile(moving) { b in
      let left = position * 2 + 1
      try b.branch(
        .binary(.greaterEqual, left, size), then: { b in b.set(moving, .falseValue) },
        otherwise: { b in
          let worse = b.local(left)
          let hasRight = b.local(.binary(.less, left + 1, size))
          try b.branch(hasRight) { b in
            let rightIsWorse = try better(&b, read(worse), read(left + 1))
            b.branch(rightIsWorse) { b in b.set(worse, left + 1) }
          }
          let parentIsBetter = try better(&b, read(position), read(worse))
          b.branch(
            parentIsBetter,
            then: { b in
              let parent = b.local(read(position))
              write(&b, position, read(worse))
              write(&b, worse, parent)
              b.set(position, worse)
            }, otherwise: { b in b.set(moving, .falseValue) })
        })
    }
  }

  /// Orders the first `size` slots as a heap.
  func heapify(_ b: inout KernelProgram.Builder, size: Expr) throws {
    let half = size.floorDivided(by: 2)
    try b.loop(from: .index(0), to: half) { b, j in try siftDown(&b, half - 1 - j, size: size) }
  }

  /// Sorts a heap of `size` slots in place, best first: the worst goes to the end, one at a time.
  func sort(_ b: inout KernelProgram.Builder, size: Expr) throws {
    try b.loop(from: .index(0), to: size - 1) { b, j in
      let end = size - 1 - j
      let worst = b.local(read(.index(0)))
      write(&b, .index(0), read(end))
      write(&b, end, worst)
      try siftDown(&b, .index(0), size: end)
    }
  }
}
