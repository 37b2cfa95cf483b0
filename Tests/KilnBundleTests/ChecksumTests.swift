import Foundation
import Testing

@testable import KilnBundle

@Suite struct ChecksumTests {
  /// Reference values from libxxhash 0.8 (`XXH64(data, n, seed)`), for the first `n` bytes of
  /// `pattern` (byte i = (i * 31 + 7) & 0xff), with seed 0 and seed 0x9E3779B97F4A7C15.
  static let knownAnswers: [(Int, UInt64, UInt64)] = [
    (0, 0xef46_db37_51d8_e999, 0xc434_9fc9_3c01_0000),
    (1, 0xa96c_7f0c_e858_bbb7, 0x5858_8242_2a61_65e7),
    (3, 0x56e6_9576_32a4_87f9, 0x5acb_303e_7813_3c22),
    (4, 0xc60d_15b1_e3ff_8f04, 0x7d51_d5e2_4617_32b3),
    (5, 0x8088_1585_8624_dd4e, 0x7f8b_7285_6a42_bb63),
    (7, 0xafbe_fc3d_6c6f_9a8e, 0x2ce9_adec_2b2c_8104),
    (8, 0x3da5_c7aa_2696_83e0, 0x7588_48f0_33fa_76a2),
    (9, 0x4b17_a9ba_9e21_5c09, 0xd457_6cf5_54b7_d929),
    (15, 0xae2a_37eb_9357_caa7, 0xa18d_5c90_d722_cee3),
    (16, 0xa19a_d429_b02b_c413, 0xe359_4f90_58b4_26e7),
    (17, 0xfe9f_0feb_7eee_dc09, 0xa0c8_a40e_f8f3_a9f7),
    (31, 0x4a74_f3a1_a39a_d4a1, 0x8137_041f_5af8_8413),
    (32, 0x8d57_d6a4_671c_c43d, 0x184e_bcf3_745c_d46c),
    (33, 0x62c9_fd21_ed85_7664, 0x52fa_c3c9_81f3_cc2e),
    (63, 0x5c32_0a0d_2707_057f, 0x64ef_99a2_e94c_c7bd),
    (64, 0x7bba_bbc4_5729_d17e, 0xf7f2_2435_fe1a_b128),
    (65, 0xf398_0c34_bae6_5dc1, 0x7a0b_76a8_1261_7c73),
    (100, 0xefa0_ad2d_3e70_c151, 0xbc7a_b33b_e752_8c18),
    (1000, 0x9959_4f48_2804_3d35, 0xda71_7f74_1f39_9f3f),
  ]

  static let pattern: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }

  /// The streaming form gives the one-shot hash however the bytes are split, across every
  /// length around the 32-byte stripe and its 8- and 4-byte tails.
  @Test func streamingMatchesOneShotForEverySplit() {
    var generator = SystemRandomNumberGenerator()
    for length in [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 100, 1000] {
      let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
      let expected = Checksum.xxh64(bytes)
      for pieces in 1...5 {
        var cuts = (0..<(pieces - 1)).map { _ in Int.random(in: 0...length, using: &generator) }.sorted()
        cuts = [0] + cuts + [length]
        var stream = Checksum.Stream()
        for (start, end) in zip(cuts, cuts.dropFirst()) { stream.update(Array(bytes[start..<end])) }
        #expect(stream.digest() == expected, "length \(length), cuts \(cuts)")
      }
      var bytewise = Checksum.Stream()
      for byte in bytes { bytewise.update([byte]) }
      #expect(bytewise.digest() == expected, "length \(length), byte by byte")
    }
  }

  @Test func knownAnswersMatchReferenceXXH64() {
    for (count, seed0, seedGolden) in Self.knownAnswers {
      let input = Array(Self.pattern[0..<count])
      #expect(Checksum.xxh64(input) == seed0, "length \(count), seed 0")
      #expect(Checksum.xxh64(input, seed: 0x9E37_79B9_7F4A_7C15) == seedGolden, "length \(count)")
    }
  }

  @Test func knownAnswersForStrings() {
    #expect(Checksum.xxh64(Array("".utf8)) == 0xef46_db37_51d8_e999)
    #expect(Checksum.xxh64(Array("a".utf8)) == 0xd24e_c4f1_a98c_6e5b)
    #expect(Checksum.xxh64(Array("abc".utf8)) == 0x44bc_2cf5_ad77_0999)
    #expect(
      Checksum.xxh64(Array("Nobody inspects the spammish repetition".utf8)) == 0xfbce_a83c_8a37_8bf1)
    #expect(Checksum.xxh64(Array("abc".utf8), seed: 1) == 0xbea9_ca81_9932_8908)
  }

  @Test func everySingleBitFlipChangesTheHash() {
    var input = Array(Self.pattern[0..<200])
    let original = Checksum.xxh64(input)
    var seen: Set<UInt64> = [original]
    for byte in input.indices {
      for bit in 0..<8 {
        input[byte] ^= 1 << bit
        seen.insert(Checksum.xxh64(input))
        input[byte] ^= 1 << bit
      }
    }
    #expect(seen.count == 1 + input.count * 8)
  }

  @Test func differentLengthsOfZerosDiffer() {
    let hashes = (0..<130).map { Checksum.xxh64([UInt8](repeating: 0, count: $0)) }
    #expect(Set(hashes).count == hashes.count)
  }

  @Test func unalignedInputGivesTheSameHash() {
    let padded = [0xAA] + Self.pattern
    let expected = Checksum.xxh64(Self.pattern)
    let got = padded.withUnsafeBytes { Checksum.xxh64(UnsafeRawBufferPointer(rebasing: $0[1...])) }
    #expect(got == expected)
  }

  /// Prints the throughput; the ≥ 1 GB/s goal applies to release builds
  /// (`swift test -c release --filter ChecksumTests`), so only those fail below 1 GB/s.
  @Test func throughput() {
    let count = 64 << 20
    let buffer = [UInt8](repeating: 0x5A, count: count)
    var best = Double.infinity
    var sink: UInt64 = 0
    for _ in 0..<3 {
      let start = ContinuousClock.now
      sink ^= Checksum.xxh64(buffer)
      let elapsed = ContinuousClock.now - start
      let seconds =
        Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
      best = min(best, seconds)
    }
    let gigabytesPerSecond = Double(count) / best / 1e9
    print("XXH64 throughput: \(gigabytesPerSecond) GB/s (hash \(hex(sink)))")
    #if !DEBUG
      #expect(gigabytesPerSecond >= 1.0)
    #endif
  }
}
