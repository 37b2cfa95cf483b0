/// A tensor in host memory: a dtype name (as in the bundle manifest), a shape, and the
/// little-endian row-major bytes.
public struct HostTensor: Sendable, Hashable {
  public var dtype: String
  public var shape: [Int]
  public var bytes: [UInt8]

  public init(dtype: String, shape: [Int], bytes: [UInt8]) {
    self.dtype = dtype
    self.shape = shape
    self.bytes = bytes
  }

  public var elementCount: Int { shape.reduce(1, *) }

  /// The element count of `shape`, checked: throws on a negative dimension or overflow.
  /// `what` names the operation in the message (e.g. "cannot write shape").
  public static func checkedElementCount(_ shape: [Int], what: String) throws -> Int {
    var count = 1
    for dim in shape {
      guard dim >= 0 else { throw RuntimeError(.invalidInput, "\(what) \(shape): negative dimension") }
      let (product, overflow) = count.multipliedReportingOverflow(by: dim)
      guard !overflow else { throw RuntimeError(.invalidInput, "\(what) \(shape): too many elements") }
      count = product
    }
    return count
  }

  /// Bytes per element of a dtype name, nil when unknown.
  public static func elementSize(_ dtype: String) -> Int? {
    switch dtype {
    case "bool", "int8", "uint8": 1
    case "float16", "bfloat16", "int16", "uint16": 2
    case "float32", "int32", "uint32": 4
    case "float64", "int64", "uint64": 8
    default: nil
    }
  }
}

/// Errors of the runtime: bad inputs, a bundle that does not fit the device, a failed run.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
  public enum Code: String, Sendable {
    case invalidInput
    case noProgram
    case unsupported
    case failed
  }

  public var code: Code
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
