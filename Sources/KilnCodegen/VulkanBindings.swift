import KilnBundle
import KilnCompiler
import KilnIR

/// The descriptor bindings of a Vulkan kernel.
///
/// Each operand (the inputs in order, then the output) takes one binding, unless it is larger
/// than `maximumBytes`: Vulkan guarantees a `maxStorageBufferRange` of 2^27 bytes only (lavapipe
/// has exactly that), so a larger operand takes one binding per part of `maximumBytes`, and the
/// kernel reads (or writes) element e from part `e / elementsPerPart` at `e % elementsPerPart`
/// through a helper (`GLSLDialect.declarations`). The program binds the same parts
/// (`parts(of:)`), so a kernel reads an operand of any size on every device. A split-K scratch
/// buffer, when a kernel has one, takes the binding after the output's.
///
/// Every element occupies a whole number of bytes (1, 2, 4 or 8; see `DType.byteSize`), and
/// `maximumBytes` is a multiple of 8, so parts split no element and each starts `maximumBytes`
/// after the last: the split depends on the byte length alone.
public struct VulkanBindingLayout: Sendable, Hashable {
  /// Vulkan's guaranteed `maxStorageBufferRange`.
  public static let guaranteedBytes = 1 << 27

  struct Operand: Sendable, Hashable {
    /// The binding of part 0; part p is binding `first + p`.
    var first: Int
    var parts: Int
    var elementsPerPart: Int
    var dtype: DType
    var isSplit: Bool { parts > 1 }
  }

  let maximumBytes: Int
  /// The inputs' operands, then the output's.
  let operands: [Operand]
  var output: Operand { operands[operands.count - 1] }
  /// The binding after the output's.
  var scratchBinding: Int { output.first + output.parts }

  init(_ kernel: Kernel, maximumBytes: Int = guaranteedBytes) {
    precondition(maximumBytes > 0 && maximumBytes % 8 == 0, "binding parts must hold whole elements")
    self.maximumBytes = maximumBytes
    var next = 0
    operands = (kernel.inputs + [kernel.output]).map { operand in
      let parts = max(1, (operand.byteCount + maximumBytes - 1) / maximumBytes)
      defer { next += parts }
      return Operand(first: next, parts: parts, elementsPerPart: maximumBytes / max(operand.dtype.byteSize, 1), dtype: operand.dtype)
    }
  }

  /// Whether input `input` is bound in parts.
  func isSplit(input: Int) -> Bool { operands[input].isSplit }

  /// `binding` as the program binds it: one binding per part of at most `maximumBytes`.
  static func parts(of binding: Manifest.Binding, maximumBytes: Int) -> [Manifest.Binding] {
    guard binding.length > maximumBytes else { return [binding] }
    return stride(from: 0, to: binding.length, by: maximumBytes).map { start in
      Manifest.Binding(buffer: binding.buffer, offset: binding.offset + start, length: min(maximumBytes, binding.length - start))
    }
  }
}
