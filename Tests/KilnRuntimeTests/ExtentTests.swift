import Foundation
import KilnBundle
import Testing

@testable import KilnRuntime

/// Outputs whose extent the data decides come back cut to it; extent outputs do not come back;
/// an extent beyond the output's maximum (or negative) is clamped, never read past.
struct ExtentTests {
  static let signatures = [
    Manifest.TensorSignature(name: "y", dtype: "int32", shape: [2, 4, 3], dynamicAxis: 1, extentOutput: 2),
    Manifest.TensorSignature(name: "z", dtype: "int32", shape: [2]),
    Manifest.TensorSignature(name: "n", dtype: "int64", shape: [], isExtent: true),
  ]

  func outputs(extent: Int64) -> [HostTensor] {
    let y = (0..<24).map { Int32($0) }
    return [
      HostTensor(dtype: "int32", shape: [2, 4, 3], bytes: y.withUnsafeBytes { Array($0) }),
      HostTensor(dtype: "int32", shape: [2], bytes: [Int32(7), 8].withUnsafeBytes { Array($0) }),
      HostTensor(dtype: "int64", shape: [], bytes: [extent].withUnsafeBytes { Array($0) }),
    ]
  }

  static func int32s(_ tensor: HostTensor) -> [Int32] { tensor.bytes.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) } }

  @Test func outputsAreCutToTheirExtent() throws {
    let trimmed = try Session.trimmed(outputs(extent: 2), Self.signatures)
    #expect(trimmed.count == 2)
    #expect(trimmed[0].shape == [2, 2, 3])
    #expect(Self.int32s(trimmed[0]) == [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17])
    #expect(Self.int32s(trimmed[1]) == [7, 8])
  }

  @Test(arguments: [(Int64(99), 4), (-5, 0), (0, 0), (Int64.max, 4), (Int64.min, 0)])
  func hostileExtentsAreClamped(extent: Int64, rows: Int) throws {
    let trimmed = try Session.trimmed(outputs(extent: extent), Self.signatures)
    #expect(trimmed[0].shape == [2, rows, 3])
    #expect(trimmed[0].bytes.count == 2 * rows * 3 * 4)
  }
}

/// The trimming `Session.run` does, on whole output tensors: what these tests drive.
extension Session {
  /// `outputs` without those holding extents, and each with a dynamic axis cut to its extent
  /// (clamped to the output's maximum, so a kernel cannot make the runtime read past it).
  static func trimmed(_ outputs: [HostTensor], _ signatures: [Manifest.TensorSignature]) throws -> [HostTensor] {
    var extents: [Int: [UInt8]] = [:]
    for (index, signature) in signatures.enumerated() where signature.isExtent == true { extents[index] = outputs[index].bytes }
    var result: [HostTensor] = []
    for (tensor, signature) in zip(outputs, signatures) where signature.isExtent != true {
      guard signature.dynamicAxis != nil else {
        result.append(tensor)
        continue
      }
      let extent = try extent(of: signature, in: extents)
      var trimmed = tensor
      trimmed.bytes = [UInt8](repeating: 0, count: tensor.bytes.count)
      trimmed.shape = trimmed.bytes.withUnsafeMutableBytes { copyTrimmed(tensor.bytes, signature: signature, extent: extent, into: $0) }
      trimmed.bytes.removeLast(trimmed.bytes.count - byteCount(dtype: tensor.dtype, shape: trimmed.shape))
      result.append(trimmed)
    }
    return result
  }
}

