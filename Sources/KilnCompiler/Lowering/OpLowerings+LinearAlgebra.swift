import KilnIR

// Linear algebra: Det as the Leibniz sum over permutations, unrolled at compile time.

extension OpLowerings {
  static let linearAlgebraOps = ["Det"]

  /// The largest matrix order Det supports (n! products of n factors each).
  static let largestDeterminantOrder = 4

  static func linearAlgebraLowering(_ node: Node) throws -> OpLowering? {
    node.op == "Det" ? determinant : nil
  }

  /// Every permutation of 0..<n with its sign (+1 even, -1 odd).
  static func signedPermutations(_ n: Int) -> [(permutation: [Int], sign: Double)] {
    guard n > 0 else { return [([], 1)] }
    return signedPermutations(n - 1).flatMap { smaller, sign in
      // Inserting n - 1 at position p adds (n - 1 - p) inversions.
      (0...(n - 1)).map { p -> ([Int], Double) in
        var permutation = smaller
        permutation.insert(n - 1, at: p)
        return (permutation, (n - 1 - p) % 2 == 0 ? sign : -sign)
      }
    }
  }

  /// Det over the last two axes: sum over permutations s of sign(s) * prod_i x[i, s(i)], for
  /// matrices up to `largestDeterminantOrder`.
  static let determinant = OpLowering(.elementwise) { ctx, _, coordinates in
    let shape = try ctx.shape(0)
    let n = shape[shape.count - 1]
    guard n <= largestDeterminantOrder else {
      throw ctx.error(
        "Det supports matrices up to \(largestDeterminantOrder)x\(largestDeterminantOrder), got \(n)x\(n)")
    }
    let type = ctx.outputComputeType()
    var sum: Expr?
    for (permutation, sign) in signedPermutations(n) {
      var product: Expr = .constant(sign, type)
      for (row, column) in permutation.enumerated() {
        product = .binary(
          .multiply, product, try ctx.element(0, at: coordinates + [.index(row), .index(column)], as: type))
      }
      sum = sum.map { .binary(.add, $0, product) } ?? product
    }
    return sum ?? .constant(1, type)
  }
}
