import KilnIR

// Ops of sequence (language) models that read a few input elements at remapped coordinates:
// rotary position embeddings and KV-cache writes. Data-dependent indices (position ids, write
// indices) are wrapped or clamped into range so that no load reads outside its tensor.

extension OpLowerings {
  static let sequenceOps = ["RotaryEmbedding", "TensorScatter"]

  static func sequenceLowering(_ node: Node) throws -> OpLowering? {
    switch node.op {
    case "RotaryEmbedding": return rotaryEmbedding
    case "TensorScatter": return tensorScatter
    default: return nil
    }
  }

  // MARK: RotaryEmbedding

  /// RotaryEmbedding (opset 23): within each head, the first `rotary_embedding_dim` elements
  /// form pairs (x1, x2), halves of the rotated part or (with `interleaved`) adjacent elements,
  /// which become (cos x1 - sin x2, sin x1 + cos x2); the other elements pass through. The
  /// angle's cos and sin come from the caches at position_ids[b, s], or at [b, s] without them.
  static let rotaryEmbedding = OpLowering(.movement) { ctx, _, coordinates in
    let geometry = try RotaryGeometry(ctx)
    let type = ctx.outputComputeType()
    let d = geometry.headCoordinate(coordinates)
    let half = geometry.rotated / 2
    let interleaved = try ctx.intAttribute("interleaved", default: 0) != 0
    // Pair i, and whether this element is its first (real) or second (imaginary) member. For
    // elements outside the rotated part, i is still in range: the loads stay valid.
    let pair = interleaved ? d.floorDivided(by: 2).modulo(half) : d.modulo(half)
    let isFirst = interleaved ? Expr.binary(.equal, d.modulo(2), .index(0)) : d.isLess(than: half)
    let (first, second) = interleaved ? (pair * 2, pair * 2 + 1) : (pair, pair + half)
    let x1 = try ctx.element(0, at: geometry.inputCoordinates(coordinates, head: first), as: type)
    let x2 = try ctx.element(0, at: geometry.inputCoordinates(coordinates, head: second), as: type)
    let cosine = try geometry.cache(ctx, 1, coordinates, pair: pair, as: type)
    let sine = try geometry.cache(ctx, 2, coordinates, pair: pair, as: type)
    let real = Expr.binary(.subtract, .binary(.multiply, cosine, x1), .binary(.multiply, sine, x2))
    let imaginary = Expr.binary(.add, .binary(.multiply, sine, x1), .binary(.multiply, cosine, x2))
    let rotated = Expr.choose(isFirst, real, imaginary)
    guard geometry.rotated < geometry.headSize else { return rotated }
    let unchanged = try ctx.element(0, at: coordinates, as: type)
    return .select(d.isLess(than: geometry.rotated), rotated, unchanged)
  }

  /// Where an output coordinate of RotaryEmbedding sits: batch, sequence position, and the
  /// element within its head, for 4-D [B, H, S, D] or 3-D [B, S, H * D] inputs.
  struct RotaryGeometry {
    var rank: Int
    var headSize: Int
    /// Elements of each head that are rotated (even).
    var rotated: Int

    init(_ ctx: LoweringContext) throws {
      let shape = try ctx.shape(0)
      rank = shape.count
      switch rank {
      case 4:
        headSize = shape[3]
      case 3:
        let heads = try ctx.intAttribute("num_heads", default: 0)
        guard heads > 0, shape[2] % heads == 0 else {
          throw ctx.error("3-D input \(shape) needs a num_heads that divides its hidden size")
        }
        headSize = shape[2] / heads
      default:
        throw ctx.error("input must be 3-D or 4-D, got \(shape)")
      }
      let attribute = try ctx.intAttribute("rotary_embedding_dim", default: 0)
      rotated = attribute == 0 ? headSize : attribute
      guard rotated >= 2, rotated % 2 == 0, rotated <= headSize else {
        throw ctx.error("rotary_embedding_dim \(attribute) must be even and at most the head size \(headSize)")
      }
    }

    /// The position of the element within its head.
    func headCoordinate(_ coordinates: [Expr]) -> Expr {
      rank == 4 ? coordinates[3] : coordinates[2].modulo(headSize)
    }

    /// The input coordinates of element `head` of the same head and token as `coordinates`.
    func inputCoordinates(_ coordinates: [Expr], head: Expr) -> [Expr] {
      var result = coordinates
      if rank == 4 {
        result[3] = head
      } else {
        result[2] = coordinates[2].floorDivided(by: headSize) * headSize + head
      }
      return result
    }

    /// Cache `slot` (1: cos, 2: sin) for `pair` at the output coordinates' batch and position.
    func cache(_ ctx: LoweringContext, _ slot: Int, _ coordinates: [Expr], pair: Expr, as type: ValueType) throws
      -> Expr
    {
      let (batch, position) = (coordinates[0], rank == 4 ? coordinates[2] : coordinates[1])
      guard ctx.hasInput(3) else { return try ctx.element(slot, at: [batch, position, pair], as: type) }
      let positions = try ctx.shape(slot)[0]
      let id = try ctx.element(3, at: [batch, position])
      return try ctx.element(slot, at: [wrappedIndex(id, extent: positions), pair], as: type)
    }
  }

  // MARK: TensorScatter

  /// TensorScatter (opset 24): the past cache with, for each batch entry b, the update's
  /// positions 0..<n along `axis` written from write_indices[b] on (modulo the cache length in
  /// `circular` mode; `linear` writes that would fall outside the cache are dropped).
  static let tensorScatter = OpLowering(.movement) { ctx, _, coordinates in
    let past = try ctx.shape(0)
    let update = try ctx.shape(1)
    let axis = try ctx.normalizedAxis(try ctx.intAttribute("axis", default: -2), rank: past.count)
    let circular: Bool
    switch try ctx.stringAttribute("mode", default: "linear") {
    case "linear": circular = false
    case "circular": circular = true
    case let mode: throw ctx.error("attribute 'mode' must be linear or circular, got '\(mode)'")
    }
    let kept = try ctx.element(0, at: coordinates)
    let length = update[axis]
    guard axis > 0, length > 0 else { return kept }
    let start = ctx.hasInput(2) ? Expr.cast(try ctx.element(2, at: [coordinates[0]]), .index) : .index(0)
    let offset = coordinates[axis] - start
    let position = circular ? offset.modulo(past[axis]) : offset
    let written = circular ? position.isLess(than: length) : position.inRange(0, length)
    var source = coordinates
    source[axis] = position.clamped(0, length - 1)
    return Expr.choose(written, try ctx.element(1, at: source), kept)
  }
}
