// The checksum used for the bundle header and every section: XXH64.

/// XXH64, the 64-bit variant of Yann Collet's xxHash, implemented from its specification
/// (`doc/xxhash_spec.md` in the xxHash repository). Non-cryptographic: it detects corruption, not
/// tampering.
///
/// Results are identical to the reference `XXH64(data, length, seed)` on every platform: input
/// words are read as little-endian regardless of the host. The main loop consumes 32 bytes per
/// iteration in four independent lanes, which runs at several GB/s in release builds.
public enum Checksum {
  static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
  static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
  static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
  static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
  static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

  /// XXH64 of `bytes` with `seed`. Bundles always use seed 0.
  public static func xxh64(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
    let count = bytes.count
    guard let base = bytes.baseAddress, count > 0 else {
      return avalanche(seed &+ prime5)
    }
    var position = 0
    var hash: UInt64
    if count >= 32 {
      var v1 = seed &+ prime1 &+ prime2
      var v2 = seed &+ prime2
      var v3 = seed
      var v4 = seed &- prime1
      let limit = count - 32
      while position <= limit {
        v1 = round(v1, load64(base, position))
        v2 = round(v2, load64(base, position + 8))
        v3 = round(v3, load64(base, position + 16))
        v4 = round(v4, load64(base, position + 24))
        position += 32
      }
      hash = converge(v1, v2, v3, v4)
    } else {
      hash = seed &+ prime5
    }
    return finish(hash &+ UInt64(count), tail: base + position, count: count - position)
  }

  /// The four lanes merged into one hash (inputs of 32 bytes or more).
  @inline(__always)
  static func converge(_ v1: UInt64, _ v2: UInt64, _ v3: UInt64, _ v4: UInt64) -> UInt64 {
    var hash = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
    hash = mergeRound(hash, v1)
    hash = mergeRound(hash, v2)
    hash = mergeRound(hash, v3)
    hash = mergeRound(hash, v4)
    return hash
  }

  /// The last `count` (< 32) bytes folded into `hash` (which already holds the length), then
  /// the avalanche.
  static func finish(_ hash: UInt64, tail base: UnsafeRawPointer, count: Int) -> UInt64 {
    var hash = hash
    var position = 0
    while position + 8 <= count {
      hash ^= round(0, load64(base, position))
      hash = rotl(hash, 27) &* prime1 &+ prime4
      position += 8
    }
    if position + 4 <= count {
      let word = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self))
      hash ^= UInt64(word) &* prime1
      hash = rotl(hash, 23) &* prime2 &+ prime3
      position += 4
    }
    while position < count {
      hash ^= UInt64(base.load(fromByteOffset: position, as: UInt8.self)) &* prime5
      hash = rotl(hash, 11) &* prime1
      position += 1
    }
    return avalanche(hash)
  }

  /// XXH64 of `bytes` with `seed`.
  public static func xxh64(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
    bytes.withUnsafeBytes { xxh64($0, seed: seed) }
  }

  /// XXH64 over bytes that arrive in pieces (a section written from many buffers): the same
  /// result as `xxh64` of their concatenation.
  public struct Stream {
    private var v1, v2, v3, v4: UInt64
    private let seed: UInt64
    private var total = 0
    /// Bytes not yet consumed by a 32-byte stripe (fewer than 32).
    private var pending = [UInt8](repeating: 0, count: 32)
    private var pendingCount = 0

    public init(seed: UInt64 = 0) {
      self.seed = seed
      v1 = seed &+ prime1 &+ prime2
      v2 = seed &+ prime2
      v3 = seed
      v4 = seed &- prime1
    }

    private mutating func stripe(_ base: UnsafeRawPointer, _ offset: Int) {
      v1 = round(v1, load64(base, offset))
      v2 = round(v2, load64(base, offset + 8))
      v3 = round(v3, load64(base, offset + 16))
      v4 = round(v4, load64(base, offset + 24))
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
      guard let base = bytes.baseAddress, bytes.count > 0 else { return }
      total += bytes.count
      var position = 0
      if pendingCount > 0 {
        let take = min(32 - pendingCount, bytes.count)
        pending.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: pendingCount).copyMemory(from: base, byteCount: take) }
        pendingCount += take
        position = take
        guard pendingCount == 32 else { return }
        var copy = pending
        copy.withUnsafeBytes { stripe($0.baseAddress!, 0) }
        pendingCount = 0
      }
      while position + 32 <= bytes.count {
        stripe(base, position)
        position += 32
      }
      let rest = bytes.count - position
      if rest > 0 {
        pending.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: base + position, byteCount: rest) }
        pendingCount = rest
      }
    }

    public mutating func update(_ bytes: [UInt8]) {
      bytes.withUnsafeBytes { update($0) }
    }

    /// The hash of everything given so far.
    public func digest() -> UInt64 {
      let hash = total >= 32 ? converge(v1, v2, v3, v4) : seed &+ prime5
      return pending.withUnsafeBytes { finish(hash &+ UInt64(total), tail: $0.baseAddress!, count: pendingCount) }
    }
  }

  @inline(__always)
  static func load64(_ base: UnsafeRawPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  @inline(__always)
  static func rotl(_ value: UInt64, _ amount: UInt64) -> UInt64 {
    (value << amount) | (value >> (64 &- amount))
  }

  @inline(__always)
  static func round(_ accumulator: UInt64, _ input: UInt64) -> UInt64 {
    rotl(accumulator &+ input &* prime2, 31) &* prime1
  }

  @inline(__always)
  static func mergeRound(_ accumulator: UInt64, _ value: UInt64) -> UInt64 {
    (accumulator ^ round(0, value)) &* prime1 &+ prime4
  }

  @inline(__always)
  static func avalanche(_ value: UInt64) -> UInt64 {
    var hash = value
    hash ^= hash >> 33
    hash = hash &* prime2
    hash ^= hash >> 29
    hash = hash &* prime3
    hash ^= hash >> 32
    return hash
  }
}
