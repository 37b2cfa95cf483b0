/// NumPy-style (ONNX "multidirectional") broadcasting of static shapes.
public enum Broadcast {
  /// The broadcast of two shapes: dimensions are aligned from the right; each pair must be equal or
  /// contain a 1. Returns nil when the shapes are incompatible.
  public static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var result = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
      let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
      let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
      if da == db {
        result[i] = da
      } else if da == 1 {
        result[i] = db
      } else if db == 1 {
        result[i] = da
      } else {
        return nil
      }
    }
    return result
  }

  /// The broadcast of any number of shapes (the empty list broadcasts to a scalar).
  public static func shape(_ shapes: [[Int]]) -> [Int]? {
    var result: [Int] = []
    for next in shapes {
      guard let merged = shape(result, next) else { return nil }
      result = merged
    }
    return result
  }

  /// Whether `source` can be broadcast to exactly `target` ("unidirectional" broadcasting).
  public static func canBroadcast(_ source: [Int], to target: [Int]) -> Bool {
    shape(source, target) == target
  }

  /// For each element of a row-major tensor of shape `target`, the index of the element it reads
  /// in a row-major tensor of shape `source` that broadcasts to `target`. Precondition: the shapes
  /// broadcast and `target`'s element count is representable.
  public static func sourceIndices(from source: [Int], to target: [Int]) -> [Int] {
    let rank = target.count
    let offset = rank - source.count
    precondition(offset >= 0, "broadcast source has higher rank than target")
    // Source strides aligned to the target's axes; 0 on broadcast axes.
    var strides = [Int](repeating: 0, count: rank)
    var running = 1
    for axis in stride(from: source.count - 1, through: 0, by: -1) {
      strides[axis + offset] = source[axis] == 1 ? 0 : running
      running *= source[axis]
    }
    return stridedOffsets(shape: target, base: 0, strides: strides)
  }

  /// Row-major element offsets of a strided view: `shape` walked in order, starting at `base`,
  /// advancing `strides[axis]` per step along each axis (0 for a broadcast axis).
  public static func stridedOffsets(shape: [Int], base: Int, strides: [Int]) -> [Int] {
    let count = shape.reduce(1, *)
    guard count > 0 else { return [] }
    var result = [Int]()
    result.reserveCapacity(count)
    var index = [Int](repeating: 0, count: shape.count)
    var offset = base
    for _ in 0..<count {
      result.append(offset)
      // Advance the multi-index odometer-style: the last axis fastest.
      var axis = shape.count - 1
      while axis >= 0 {
        index[axis] += 1
        offset += strides[axis]
        if index[axis] < shape[axis] { break }
        offset -= strides[axis] * index[axis]
        index[axis] = 0
        axis -= 1
      }
    }
    return result
  }
}
