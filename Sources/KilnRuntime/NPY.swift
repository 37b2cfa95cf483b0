// NumPy `.npy` files <-> HostTensor: a strict reader and a numpy-compatible writer.

import Foundation
import KilnTensor

/// Reads and writes NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) as `HostTensor`s.
///
/// Reading accepts the dtypes `f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1` in either byte order
/// (big-endian data is byte-swapped) and C or Fortran order (Fortran data is transposed to C
/// order). The header dictionary is parsed by a small hand-written parser that accepts exactly a
/// Python dict literal with the keys `descr`, `fortran_order` and `shape`; everything else (a
/// structured or object dtype, a shape that is not a tuple of non-negative integers, data shorter
/// or longer than the header says) is an error. Reading is safe on hostile input: every size is
/// checked for overflow and against the bytes actually present before anything is allocated.
///
/// Writing always produces little-endian C-order data with a version 1.0 header (2.0 when the
/// header would not fit), byte for byte what `numpy.save` writes. `bfloat16`, which `.npy` cannot
/// represent, is written as `float32` values.
///
/// Errors are `RuntimeError`s with code `.invalidInput` (malformed file) or `.unsupported`
/// (a valid file whose dtype Kiln does not handle).
public enum NPY {
  /// The largest header accepted when reading (numpy itself refuses more than 10000 characters
  /// unless told otherwise; 1 MiB leaves room for any real rank-64 shape).
  public static let maxHeaderBytes = 1 << 20
  /// The highest rank accepted (numpy's own limit).
  public static let maxRank = 64

  static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

  // MARK: Reading

  /// Reads the `.npy` file at `url`. Errors name the file.
  public static func read(contentsOf url: URL) throws -> HostTensor {
    let data: Data
    do {
      data = try Data(contentsOf: url, options: .mappedIfSafe)
    } catch {
      throw RuntimeError(.invalidInput, "cannot read '\(url.path)': \(describeIOError(error))")
    }
    do {
      return try data.withUnsafeBytes { try decode($0) }
    } catch let error as RuntimeError {
      throw RuntimeError(error.code, "'\(url.path)': \(error.message)")
    }
  }

  /// Decodes the bytes of a `.npy` file.
  public static func decode(_ bytes: [UInt8]) throws -> HostTensor {
    try bytes.withUnsafeBytes { try decode($0) }
  }

  /// Decodes the bytes of a `.npy` file.
  public static func decode(_ file: UnsafeRawBufferPointer) throws -> HostTensor {
    let header = try parsePrelude(file)
    let dictionary = try HeaderParser.parse(header.text)
    let dtype = try Descriptor(parsing: dictionary.descr)

    // Sizes, overflow-checked, against what the file holds.
    var count = 1
    for dim in dictionary.shape {
      let (product, overflow) = count.multipliedReportingOverflow(by: dim)
      guard !overflow else { throw invalid("shape \(format(dictionary.shape)) has too many elements") }
      count = product
    }
    let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.size)
    guard !overflow else { throw invalid("shape \(format(dictionary.shape)) of \(dtype.name) is too large") }
    let available = file.count - header.dataOffset
    guard available == byteCount else {
      let what = available < byteCount ? "truncated" : "longer than its header says"
      throw invalid(
        "data is \(what): shape \(format(dictionary.shape)) of \(dtype.name) needs \(byteCount) bytes, the file has \(available)"
      )
    }

    let payload = UnsafeRawBufferPointer(rebasing: file[header.dataOffset...])
    var bytes = [UInt8](payload)
    if dtype.bigEndian && dtype.size > 1 { swapBytes(&bytes, elementSize: dtype.size) }
    if dtype.name == "bool" {
      for index in bytes.indices where bytes[index] > 1 { bytes[index] = 1 }
    }
    if dictionary.fortranOrder && dictionary.shape.count > 1 && count > 1 {
      bytes = fortranToC(bytes, shape: dictionary.shape, elementSize: dtype.size)
    }
    return HostTensor(dtype: dtype.name, shape: dictionary.shape, bytes: bytes)
  }

  /// The magic, version and header length; returns the header text and where the data begins.
  private static func parsePrelude(_ file: UnsafeRawBufferPointer) throws -> (text: ArraySlice<UInt8>, dataOffset: Int)
  {
    guard file.count >= 10, file.prefix(6).elementsEqual(magic) else {
      throw invalid("not a .npy file (it does not start with \\x93NUMPY)")
    }
    let major = file[6]
    let minor = file[7]
    let lengthBytes: Int
    switch (major, minor) {
    case (1, 0): lengthBytes = 2
    case (2, 0), (3, 0): lengthBytes = 4
    default:
      throw RuntimeError(
        .unsupported, "unsupported .npy format version \(major).\(minor) (Kiln reads 1.0, 2.0 and 3.0)")
    }
    let prelude = 8 + lengthBytes
    guard file.count >= prelude else { throw invalid("truncated in the header length") }
    var length = 0
    for index in 0..<lengthBytes { length |= Int(file[8 + index]) << (8 * index) }
    guard length <= maxHeaderBytes else {
      throw invalid("header length \(length) exceeds the limit of \(maxHeaderBytes) bytes")
    }
    guard length <= file.count - prelude else {
      throw invalid(
        "truncated: the header needs \(length) bytes, the file has \(file.count - prelude) after the prelude")
    }
    let text = Array(file[prelude..<(prelude + length)])[...]
    if major < 3 {
      // Versions 1 and 2 are latin-1; only ASCII can appear in a valid header.
      if let bad = text.firstIndex(where: { $0 >= 0x80 }) {
        throw invalid("header byte \(bad) is not ASCII (0x\(String(text[bad], radix: 16)))")
      }
    } else if String(validating: text, as: UTF8.self) == nil {
      throw invalid("the version 3.0 header is not valid UTF-8")
    }
    return (text, prelude + length)
  }

  // MARK: Writing

  /// A low-precision tensor as float32 (8-bit and 4-bit floats, exact) or int8/uint8.
  private static func widened(_ tensor: HostTensor, _ dtype: DType) throws -> HostTensor {
    if dtype.isMiniFloat {
      let values = tensor.bytes.map { FloatConversion.float(fromMiniFloatBits: $0, as: dtype) }
      return HostTensor(dtype: "float32", shape: tensor.shape, bytes: values.withUnsafeBytes { Array($0) })
    }
    // One element per byte; its low bits hold the value (sign-extended for the signed types).
    let values = tensor.bytes.map { UInt8(truncatingIfNeeded: dtype.integerValue(ofStorageBits: UInt64($0))) }
    return HostTensor(dtype: dtype.isSigned ? "int8" : "uint8", shape: tensor.shape, bytes: values)
  }

  /// The `.npy` bytes for `tensor`: little-endian, C order, header version 1.0 (2.0 if needed).
  public static func encode(_ tensor: HostTensor) throws -> [UInt8] {
    let descr: String
    var data = tensor.bytes
    switch tensor.dtype {
    case "float32": descr = "<f4"
    case "float64": descr = "<f8"
    case "float16": descr = "<f2"
    case "int8": descr = "|i1"
    case "int16": descr = "<i2"
    case "int32": descr = "<i4"
    case "int64": descr = "<i8"
    case "uint8": descr = "|u1"
    case "uint16": descr = "<u2"
    case "uint32": descr = "<u4"
    case "uint64": descr = "<u8"
    case "bool": descr = "|b1"
    case "bfloat16": descr = "<f4"
    default:
      // .npy has no low-precision types: floats widen to float32, 4-bit/2-bit integers to 8 bits.
      guard let dtype = DType(rawValue: tensor.dtype), dtype.byteSize == 1, dtype.isMiniFloat || dtype.isInteger else {
        throw RuntimeError(.unsupported, "cannot write dtype '\(tensor.dtype)' to .npy")
      }
      return try encode(widened(tensor, dtype))
    }
    guard let size = HostTensor.elementSize(tensor.dtype) else {
      throw RuntimeError(.unsupported, "cannot write dtype '\(tensor.dtype)' to .npy")
    }
    let count = try HostTensor.checkedElementCount(tensor.shape, what: "cannot write shape")
    guard tensor.shape.count <= maxRank else {
      throw RuntimeError(.invalidInput, "cannot write rank \(tensor.shape.count) to .npy (at most \(maxRank))")
    }
    let (byteCount, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow, byteCount == tensor.bytes.count else {
      throw RuntimeError(
        .invalidInput,
        "\(tensor.dtype) tensor of shape \(tensor.shape) needs \(count) elements of \(size) bytes, has \(tensor.bytes.count) bytes"
      )
    }
    if tensor.dtype == "bfloat16" {
      data = []
      data.reserveCapacity(count * 4)
      for index in 0..<count {
        // bfloat16 is the top half of a binary32: widening is exact.
        data += [0, 0, tensor.bytes[2 * index], tensor.bytes[2 * index + 1]]
      }
    }

    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(format(tensor.shape)), }"
    // numpy leaves room for the first axis to grow to 21 digits.
    if let first = tensor.shape.first { header += String(repeating: " ", count: max(0, 21 - String(first).count)) }
    var output = wrap(header: header, version: 1)
    if output.count - 10 > Int(UInt16.max) { output = wrap(header: header, version: 2) }
    output += data
    return output
  }

  /// Magic, version, header length, header padded with spaces and a newline to 64 bytes.
  private static func wrap(header: String, version: UInt8) -> [UInt8] {
    let lengthBytes = version == 1 ? 2 : 4
    let text = Array(header.utf8)
    let unpadded = text.count + 1
    let padding = 64 - ((magic.count + 2 + lengthBytes + unpadded) % 64)
    let length = unpadded + padding
    var output = magic + [version, 0]
    for index in 0..<lengthBytes { output.append(UInt8(truncatingIfNeeded: length >> (8 * index))) }
    output += text
    output += [UInt8](repeating: 0x20, count: padding)
    output.append(0x0A)
    return output
  }

  // MARK: Helpers

  /// A shape as Python writes a tuple: `()`, `(5,)`, `(2, 3)`.
  static func format(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
  }

  static func invalid(_ message: String) -> RuntimeError {
    RuntimeError(.invalidInput, "invalid .npy file: \(message)")
  }

  static func describeIOError(_ error: Error) -> String {
    let nsError = error as NSError
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
      let code = POSIXErrorCode(rawValue: Int32(underlying.code))
    {
      return String(cString: strerror(code.rawValue))
    }
    if nsError.domain == NSCocoaErrorDomain {
      switch nsError.code {
      case NSFileReadNoSuchFileError: return "no such file"
      case NSFileReadNoPermissionError: return "permission denied"
      default: break
      }
    }
    return nsError.localizedDescription
  }

  /// Reverses the bytes of every element in place.
  static func swapBytes(_ bytes: inout [UInt8], elementSize: Int) {
    bytes.withUnsafeMutableBufferPointer { buffer in
      var start = 0
      while start + elementSize <= buffer.count {
        var low = start
        var high = start + elementSize - 1
        while low < high {
          buffer.swapAt(low, high)
          low += 1
          high -= 1
        }
        start += elementSize
      }
    }
  }

  /// Reorders column-major (Fortran) elements into row-major (C) order.
  static func fortranToC(_ source: [UInt8], shape: [Int], elementSize: Int) -> [UInt8] {
    let rank = shape.count
    // Fortran strides, in elements: the first axis is contiguous.
    var strides = [Int](repeating: 1, count: rank)
    for axis in 1..<rank { strides[axis] = strides[axis - 1] * shape[axis - 1] }
    var output = [UInt8](repeating: 0, count: source.count)
    var index = [Int](repeating: 0, count: rank)
    var offset = 0  // source element offset of `index`
    let count = source.count / elementSize
    source.withUnsafeBytes { input in
      output.withUnsafeMutableBytes { out in
        for destination in 0..<count {
          if elementSize == 4 {
            out.storeBytes(
              of: input.loadUnaligned(fromByteOffset: offset * 4, as: UInt32.self), toByteOffset: destination * 4,
              as: UInt32.self)
          } else {
            for byte in 0..<elementSize { out[destination * elementSize + byte] = input[offset * elementSize + byte] }
          }
          // Advance the C-order odometer: the last axis fastest.
          var axis = rank - 1
          while axis >= 0 {
            index[axis] += 1
            offset += strides[axis]
            if index[axis] < shape[axis] { break }
            offset -= strides[axis] * index[axis]
            index[axis] = 0
            axis -= 1
          }
        }
      }
    }
    return output
  }
}

// MARK: - dtype descriptors

extension NPY {
  /// A parsed `descr` string such as `<f4` or `|b1`.
  struct Descriptor {
    /// The HostTensor dtype name.
    var name: String
    var size: Int
    var bigEndian: Bool

    init(parsing descr: String) throws {
      var text = Substring(descr)
      var order: Character = "="
      if let first = text.first, "<>|=".contains(first) {
        order = first
        text = text.dropFirst()
      }
      let names: [Substring: (String, Int)] = [
        "f2": ("float16", 2), "f4": ("float32", 4), "f8": ("float64", 8),
        "i1": ("int8", 1), "i2": ("int16", 2), "i4": ("int32", 4), "i8": ("int64", 8),
        "u1": ("uint8", 1), "u2": ("uint16", 2), "u4": ("uint32", 4), "u8": ("uint64", 8),
        "b1": ("bool", 1),
      ]
      guard let (name, size) = names[text] else {
        throw RuntimeError(
          .unsupported,
          "unsupported .npy dtype '\(descr)' (Kiln reads f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1, little- or big-endian)")
      }
      if order == "|" && size > 1 {
        throw NPY.invalid("dtype '\(descr)': byte order '|' is only valid for 1-byte types")
      }
      self.name = name
      self.size = size
      #if _endian(big)
        self.bigEndian = order != "<"
      #else
        self.bigEndian = order == ">"
      #endif
    }
  }
}

// MARK: - The header dictionary

extension NPY {
  /// The three entries of an `.npy` header.
  struct HeaderDictionary: Equatable {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]
  }

  /// A recursive-descent parser for exactly the Python literal `.npy` headers use:
  ///
  ///     header  := ws '{' ws [entry (ws ',' ws entry)* ws [',']] ws '}' ws
  ///     entry   := string ws ':' ws value
  ///     value   := string | 'True' | 'False' | tuple
  ///     tuple   := '(' ws ')' | '(' ws int ws ',' ws ')' | '(' ws int (ws ',' ws int)+ ws [','] ws ')'
  ///     int     := '0' | [1-9][0-9]*        (optionally followed by Python 2's 'L')
  ///     string  := "'" chars "'" | '"' chars '"'   (no escapes, no newlines)
  ///
  /// `ws` is spaces, tabs, carriage returns and newlines. Each key must appear exactly once.
  struct HeaderParser {
    let text: ArraySlice<UInt8>
    var position: Int

    static func parse(_ text: ArraySlice<UInt8>) throws -> HeaderDictionary {
      var parser = HeaderParser(text: text, position: text.startIndex)
      return try parser.dictionary()
    }

    private var offset: Int { position - text.startIndex }

    private func fail(_ message: String) -> RuntimeError {
      NPY.invalid("header byte \(offset): \(message)")
    }

    private var current: UInt8? { position < text.endIndex ? text[position] : nil }

    private func describeCurrent() -> String {
      guard let byte = current else { return "the end of the header" }
      if byte >= 0x21 && byte < 0x7F { return "'\(Character(UnicodeScalar(byte)))'" }
      return "byte 0x\(String(byte, radix: 16))"
    }

    private mutating func skipSpace() {
      while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
      guard current == byte else { throw fail("expected \(what), found \(describeCurrent())") }
      position += 1
    }

    mutating func dictionary() throws -> HeaderDictionary {
      var descr: String?
      var fortranOrder: Bool?
      var shape: [Int]?
      skipSpace()
      try expect(UInt8(ascii: "{"), "'{'")
      skipSpace()
      while current != UInt8(ascii: "}") {
        let keyOffset = offset
        let key = try string()
        skipSpace()
        try expect(UInt8(ascii: ":"), "':' after key '\(key)'")
        skipSpace()
        switch key {
        case "descr":
          guard descr == nil else { throw NPY.invalid("header byte \(keyOffset): duplicate key 'descr'") }
          if current == UInt8(ascii: "[") {
            throw RuntimeError(
              .unsupported, "unsupported .npy dtype: structured dtypes (a list 'descr') are not supported")
          }
          descr = try string()
        case "fortran_order":
          guard fortranOrder == nil else {
            throw NPY.invalid("header byte \(keyOffset): duplicate key 'fortran_order'")
          }
          fortranOrder = try boolean()
        case "shape":
          guard shape == nil else { throw NPY.invalid("header byte \(keyOffset): duplicate key 'shape'") }
          shape = try tuple()
        default:
          throw NPY.invalid(
            "header byte \(keyOffset): unexpected key '\(key)' (expected 'descr', 'fortran_order', 'shape')")
        }
        skipSpace()
        if current == UInt8(ascii: ",") {
          position += 1
          skipSpace()
        } else if current != UInt8(ascii: "}") {
          throw fail("expected ',' or '}', found \(describeCurrent())")
        }
      }
      position += 1
      skipSpace()
      guard current == nil else { throw fail("unexpected \(describeCurrent()) after the dictionary") }
      guard let descr else { throw NPY.invalid("the header has no 'descr'") }
      guard let fortranOrder else { throw NPY.invalid("the header has no 'fortran_order'") }
      guard let shape else { throw NPY.invalid("the header has no 'shape'") }
      return HeaderDictionary(descr: descr, fortranOrder: fortranOrder, shape: shape)
    }

    private mutating func string() throws -> String {
      guard let quote = current, quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else {
        throw fail("expected a quoted string, found \(describeCurrent())")
      }
      position += 1
      let start = position
      while let byte = current, byte != quote {
        guard byte != UInt8(ascii: "\\"), byte != 0x0A, byte != 0x0D else {
          throw fail("escapes and line breaks are not allowed in header strings")
        }
        guard position - start < 256 else { throw fail("header string longer than 256 bytes") }
        position += 1
      }
      guard current == quote else { throw fail("unterminated string") }
      let value = String(decoding: text[start..<position], as: UTF8.self)
      position += 1
      return value
    }

    private mutating func boolean() throws -> Bool {
      for (word, value) in [("True", true), ("False", false)] {
        let bytes = Array(word.utf8)
        if text[position...].starts(with: bytes) {
          let end = position + bytes.count
          // The word must end here (not `Truex`).
          if end < text.endIndex, Self.isIdentifierByte(text[end]) { break }
          position = end
          return value
        }
      }
      throw fail("expected True or False for 'fortran_order', found \(describeCurrent())")
    }

    private static func isIdentifierByte(_ byte: UInt8) -> Bool {
      (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
        || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }

    private mutating func tuple() throws -> [Int] {
      guard current == UInt8(ascii: "(") else {
        throw fail("expected a tuple '(...)' for 'shape', found \(describeCurrent())")
      }
      position += 1
      skipSpace()
      var values: [Int] = []
      var sawComma = false
      while current != UInt8(ascii: ")") {
        guard values.count < NPY.maxRank else { throw fail("shape has more than \(NPY.maxRank) dimensions") }
        values.append(try integer())
        skipSpace()
        if current == UInt8(ascii: ",") {
          sawComma = true
          position += 1
          skipSpace()
        } else if current != UInt8(ascii: ")") {
          throw fail("expected ',' or ')' in 'shape', found \(describeCurrent())")
        }
      }
      if values.count == 1 && !sawComma {
        throw fail("'shape' is (\(values[0])), an integer, not a tuple; a 1-D shape is written (\(values[0]),)")
      }
      position += 1
      return values
    }

    private mutating func integer() throws -> Int {
      let start = position
      var value = 0
      while let byte = current, byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
        let (scaled, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = scaled.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
        guard !overflow1 && !overflow2 else { throw fail("dimension does not fit in 64 bits") }
        value = sum
        position += 1
      }
      guard position > start else {
        throw fail("expected a non-negative integer dimension, found \(describeCurrent())")
      }
      guard position - start == 1 || text[start] != UInt8(ascii: "0") else {
        throw fail("dimension has a leading zero")
      }
      if current == UInt8(ascii: "L") { position += 1 }  // Python 2 long literal
      return value
    }
  }
}
