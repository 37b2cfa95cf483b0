/// ONNX's packing of 4-bit and 2-bit elements in serialized tensors: several elements per byte,
/// the first in the lowest bits, the last byte padded with zero bits. Kiln keeps such elements one
/// per byte (see `DType`) and packs only when serializing.
public enum SubBytePacking {
  /// Bytes that `count` packed elements of `bits` bits take; nil when `bits` is 8 or more (no
  /// packing).
  public static func packedCount(_ count: Int, bits: Int) -> Int? {
    guard bits < 8 else { return nil }
    let perByte = 8 / bits
    return (count + perByte - 1) / perByte
  }

  /// One byte per element (its bits low, the rest zero) from `packed`; `packed` unchanged when
  /// `bits` is 8 or more. Precondition: `packed` holds `packedCount(count, bits:)` bytes.
  public static func unpack(_ packed: [UInt8], count: Int, bits: Int) -> [UInt8] {
    guard bits < 8 else { return packed }
    let perByte = 8 / bits
    let mask = UInt8((1 << bits) - 1)
    return (0..<count).map { index in
      (packed[index / perByte] >> UInt8(bits * (index % perByte))) & mask
    }
  }

  /// The packed form of one-per-byte elements (only their low `bits` bits count); `bytes`
  /// unchanged when `bits` is 8 or more.
  public static func pack(_ bytes: [UInt8], bits: Int) -> [UInt8] {
    guard bits < 8 else { return bytes }
    let perByte = 8 / bits
    let mask = UInt8((1 << bits) - 1)
    var packed = [UInt8](repeating: 0, count: packedCount(bytes.count, bits: bits) ?? 0)
    for (index, byte) in bytes.enumerated() {
      packed[index / perByte] |= (byte & mask) << UInt8(bits * (index % perByte))
    }
    return packed
  }
}
