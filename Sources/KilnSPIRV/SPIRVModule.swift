/// The facts about a SPIR-V module that a pipeline layout must agree with, read from its words.
public struct SPIRVModule: Sendable, Hashable {
  public static let magic: UInt32 = 0x0723_0203

  public struct EntryPoint: Sendable, Hashable {
    public var name: String
    /// SPIR-V execution model (5 = GLCompute).
    public var executionModel: UInt32
    public var isCompute: Bool { executionModel == 5 }
  }

  public struct ResourceBinding: Sendable, Hashable {
    public var set: UInt32
    public var binding: UInt32
  }

  public let words: [UInt32]
  public let entryPoints: [EntryPoint]
  /// Every (set, binding) decoration pair on a variable.
  public let bindings: [ResourceBinding]
  /// True when the module declares a push-constant variable.
  public let usesPushConstants: Bool
  /// Every `OpCapability` the module declares (SPIR-V capability numbers, e.g. 10 = Float64).
  public let capabilities: Set<UInt32>

  /// Parses `bytes` as little-endian SPIR-V words and reads entry points and decorations.
  /// Throws on anything structurally wrong (size, magic, an instruction running past the end).
  public init(bytes: [UInt8]) throws {
    guard bytes.count >= 20, bytes.count % 4 == 0 else {
      throw SPIRVError("SPIR-V module of \(bytes.count) bytes: expected a multiple of 4, at least 20")
    }
    var words = [UInt32](repeating: 0, count: bytes.count / 4)
    for index in words.indices {
      let base = index * 4
      words[index] =
        UInt32(bytes[base]) | UInt32(bytes[base + 1]) << 8 | UInt32(bytes[base + 2]) << 16
        | UInt32(bytes[base + 3]) << 24
    }
    try self.init(words: words)
  }

  public init(words: [UInt32]) throws {
    guard words.count >= 5 else { throw SPIRVError("SPIR-V module too short (\(words.count) words)") }
    guard words[0] == SPIRVModule.magic else {
      throw SPIRVError("not SPIR-V: magic 0x\(String(words[0], radix: 16)) (expected 0x07230203)")
    }
    self.words = words
    var entryPoints: [EntryPoint] = []
    var sets: [UInt32: UInt32] = [:]
    var bindingOf: [UInt32: UInt32] = [:]
    var pushConstants = false
    var capabilities: Set<UInt32> = []
    var index = 5
    while index < words.count {
      let wordCount = Int(words[index] >> 16)
      let opcode = words[index] & 0xffff
      guard wordCount > 0, index + wordCount <= words.count else {
        throw SPIRVError("SPIR-V instruction at word \(index) runs past the end of the module")
      }
      let operands = words[(index + 1)..<(index + wordCount)]
      switch opcode {
      case 17:  // OpCapability
        if let capability = operands.first { capabilities.insert(capability) }
      case 15:  // OpEntryPoint: model, id, name...
        if operands.count >= 3 {
          let model = operands[operands.startIndex]
          let name = SPIRVModule.literalString(Array(operands.dropFirst(2)))
          entryPoints.append(EntryPoint(name: name, executionModel: model))
        }
      case 71:  // OpDecorate: target, decoration, literal
        if operands.count >= 3 {
          let target = operands[operands.startIndex]
          let decoration = operands[operands.startIndex + 1]
          let value = operands[operands.startIndex + 2]
          if decoration == 34 { sets[target] = value }  // DescriptorSet
          if decoration == 33 { bindingOf[target] = value }  // Binding
        }
      case 59:  // OpVariable: result type, result id, storage class
        if operands.count >= 3, operands[operands.startIndex + 2] == 9 { pushConstants = true }  // PushConstant
      default:
        break
      }
      index += wordCount
    }
    self.entryPoints = entryPoints
    self.bindings = bindingOf.map { ResourceBinding(set: sets[$0.key] ?? 0, binding: $0.value) }
      .sorted { ($0.set, $0.binding) < ($1.set, $1.binding) }
    self.usesPushConstants = pushConstants
    self.capabilities = capabilities
  }

  private static func literalString(_ words: [UInt32]) -> String {
    var bytes: [UInt8] = []
    outer: for word in words {
      for shift in stride(from: 0, to: 32, by: 8) {
        let byte = UInt8(truncatingIfNeeded: word >> UInt32(shift))
        if byte == 0 { break outer }
        bytes.append(byte)
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  public var bytes: [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(words.count * 4)
    for word in words {
      out.append(UInt8(truncatingIfNeeded: word))
      out.append(UInt8(truncatingIfNeeded: word >> 8))
      out.append(UInt8(truncatingIfNeeded: word >> 16))
      out.append(UInt8(truncatingIfNeeded: word >> 24))
    }
    return out
  }
}
