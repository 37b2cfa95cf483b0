import KilnIR

// TfIdfVectorizer: n-gram counts over a token sequence, with the pool of n-grams fixed at
// compile time. Each output element sums, over the pool n-grams mapped to its output index,
// the number of (start, skip) positions where the input spells that n-gram.

/// The pool of a TfIdfVectorizer node: the counted n-grams grouped by output index.
struct NGramPool {
  /// Token sequences by output index (each n-gram once; a repeated n-gram keeps its last index).
  var grams: [Int: [[Int64]]]
  var maxSkipCount: Int

  /// The largest pool Kiln unrolls into a kernel (every n-gram becomes its own loop).
  static let maximumGrams = 4096

  init(_ ctx: LoweringContext) throws {
    guard ctx.node.attributes["pool_strings"] == nil else {
      throw ctx.error("attribute 'pool_strings' is not supported (Kiln has no string tensors); use pool_int64s")
    }
    let minLength = try ctx.intAttribute("min_gram_length") ?? 1
    let maxLength = try ctx.intAttribute("max_gram_length") ?? 1
    let maxSkipCount = try ctx.intAttribute("max_skip_count") ?? 0
    guard minLength >= 1, maxLength >= minLength, maxSkipCount >= 0 else {
      throw ctx.error(
        "min_gram_length \(minLength), max_gram_length \(maxLength), max_skip_count \(maxSkipCount) are invalid")
    }
    let counts = try ctx.intsAttribute("ngram_counts") ?? []
    let indexes = try ctx.intsAttribute("ngram_indexes") ?? []
    let pool = (try ctx.intsAttribute("pool_int64s") ?? []).map(Int64.init)
    var byTokens: [[Int64]: Int] = [:]
    var order: [[Int64]] = []
    var id = 0
    for (level, start) in counts.enumerated() {
      let size = level + 1
      let end = level + 1 < counts.count ? counts[level + 1] : pool.count
      guard start >= 0, start <= end, end <= pool.count else {
        throw ctx.error("ngram_counts \(counts) do not fit a pool of \(pool.count) items")
      }
      for first in stride(from: start, to: end - size + 1, by: size) {
        defer { id += 1 }
        guard size >= minLength, size <= maxLength else { continue }
        guard id < indexes.count else {
          throw ctx.error("ngram_indexes has \(indexes.count) entries; the pool has more n-grams")
        }
        let tokens = Array(pool[first..<(first + size)])
        if byTokens[tokens] == nil { order.append(tokens) }
        byTokens[tokens] = indexes[id]
      }
    }
    guard order.count <= Self.maximumGrams else {
      throw ctx.error("the pool has \(order.count) counted n-grams; Kiln unrolls at most \(Self.maximumGrams)")
    }
    var grams: [Int: [[Int64]]] = [:]
    for tokens in order { grams[byTokens[tokens] ?? 0, default: []].append(tokens) }
    self.grams = grams
    self.maxSkipCount = maxSkipCount
  }
}

extension OpLowerings {
  /// TfIdfVectorizer over int32/int64 tokens, 1-D or 2-D (one output row per input row). An
  /// n-gram of n >= 2 tokens is counted at every start and every skip distance 1...max_skip_count
  /// + 1; unigrams once per position. Mode TF gives the count, IDF the weight (or 1) where the
  /// count is positive, TFIDF the weight (or 1) times the count.
  static let tfIdfVectorizer = OpLowering(.reduction, region: .gatherScatter) { ctx, _, coordinates in
    let pool = try NGramPool(ctx)
    let mode = try ctx.stringAttribute("mode", default: "TF")
    guard ["TF", "IDF", "TFIDF"].contains(mode) else { throw ctx.error("attribute 'mode' is '\(mode)'") }
    let weights = try ctx.floatsAttribute("weights")
    let row = Array(coordinates.dropLast())
    let column = coordinates[coordinates.count - 1]
    var value = Expr.constant(0, .float32)
    for (index, grams) in pool.grams.sorted(by: { $0.key > $1.key }) {
      let count = try grams.map { try nGramCount(ctx, row: row, tokens: $0, maxSkipCount: pool.maxSkipCount) }
        .reduce(Expr.index(0), +)
      let weight = try weights.map { weights in
        guard index < weights.count else { throw ctx.error("weights has no entry for output index \(index)") }
        return weights[index]
      }
      let result: Expr
      switch mode {
      case "TF": result = .cast(count, .float32)
      case "IDF": result = .select(count.isAtLeast(1), .constant(weight ?? 1, .float32), .constant(0, .float32))
      default: result = .binary(.multiply, .constant(weight ?? 1, .float32), .cast(count, .float32))
      }
      value = .select(.binary(.equal, column, .index(index)), result, value)
    }
    return value
  }

  /// How often `tokens` occur in input row `row` (an index expression): at every start, with
  /// every skip distance for n >= 2 tokens.
  static func nGramCount(_ ctx: LoweringContext, row: [Expr], tokens: [Int64], maxSkipCount: Int) throws -> Expr {
    let type = try ctx.computeType(0)
    let length = try ctx.shape(0).last ?? 0
    guard length >= tokens.count else { return .index(0) }
    if type == .scalar(.int32), tokens.contains(where: { Int32(exactly: $0) == nil }) { return .index(0) }
    let start = ctx.freshVariable()
    let skip = ctx.freshVariable()
    let distance: Expr = tokens.count == 1 ? .index(1) : .variable(skip) + 1
    var matches: [Expr] = []
    var last = Expr.variable(start)
    for (j, token) in tokens.enumerated() {
      let position = Expr.variable(start) + distance * j
      let element = try ctx.element(0, at: row + [Expr.indexMin(position, .index(length - 1))])
      matches.append(.binary(.equal, element, .literal(.integer(token, type))))
      last = position
    }
    let body = Expr.select(.all([last.isLess(than: length)] + matches), .index(1), .index(0))
    let count = Expr.reduce(.sum, variable: start, extent: length, body: body)
    return tokens.count == 1 ? count : .reduce(.sum, variable: skip, extent: maxSkipCount + 1, body: count)
  }
}
