/// The code formats drivers load.
public enum ExecutableFormat: String, Sendable, Hashable, Codable {
  /// A SPIR-V module (Vulkan).
  case spirv
  /// A native shared object following the Kiln CPU kernel ABI (see `KilnCPU`).
  case sharedObject = "shared-object"
}

/// One kernel inside an executable and the interface the driver builds its pipeline from.
public struct EntryPoint: Sendable, Hashable {
  public var name: String
  /// Storage buffers at set 0, bindings 0..<bindingCount (Vulkan) / binding slots (CPU).
  public var bindingCount: Int
  /// 32-bit push-constant words the kernel reads.
  public var pushConstantWords: Int

  public init(name: String, bindingCount: Int, pushConstantWords: Int = 0) {
    self.name = name
    self.bindingCount = bindingCount
    self.pushConstantWords = pushConstantWords
  }
}

/// What a device needs to create an executable.
public struct ExecutableSpec: Sendable, Hashable {
  public var format: ExecutableFormat
  public var code: [UInt8]
  public var entryPoints: [EntryPoint]
  /// Values for specialization constants 0..<n (Vulkan), as 32-bit words.
  public var specializationConstants: [UInt32]
  /// A stable key for caches (e.g. a content hash); empty means "do not cache".
  public var cacheKey: String

  public init(
    format: ExecutableFormat, code: [UInt8], entryPoints: [EntryPoint], specializationConstants: [UInt32] = [],
    cacheKey: String = ""
  ) {
    self.format = format
    self.code = code
    self.entryPoints = entryPoints
    self.specializationConstants = specializationConstants
    self.cacheKey = cacheKey
  }
}

/// Loaded, ready-to-dispatch code (pipelines on Vulkan, resolved symbols on the CPU).
public protocol Executable: AnyObject, Sendable {
  var entryPoints: [EntryPoint] { get }
}
