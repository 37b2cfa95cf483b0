/// What a device is, as `kiln devices` prints it and as the compiler's tuning tables read it.
public struct DeviceInfo: Sendable, Hashable, Codable {
  /// The canonical URI that selects exactly this device (`vulkan://<uuid>` or `cpu`).
  public var uri: String
  /// The short URI form (`vulkan:N` or `cpu`).
  public var shortURI: String
  /// The Kiln driver that runs it: `vulkan` or `cpu`.
  public var driver: String
  public var name: String
  public var type: DeviceType
  /// The vendor driver's name and version (e.g. `llvmpipe` / `Mesa 22.3.6`).
  public var driverName: String
  public var driverVersion: String
  /// The API version the device supports (Vulkan `1.3.230`), or the CPU ABI version.
  public var apiVersion: String
  /// 16-byte device UUID as lowercase hex (the CPU device has a fixed one).
  public var uuid: String
  public var limits: DeviceLimits
  public var features: DeviceFeatures

  public init(
    uri: String, shortURI: String, driver: String, name: String, type: DeviceType, driverName: String,
    driverVersion: String, apiVersion: String, uuid: String, limits: DeviceLimits, features: DeviceFeatures
  ) {
    self.uri = uri
    self.shortURI = shortURI
    self.driver = driver
    self.name = name
    self.type = type
    self.driverName = driverName
    self.driverVersion = driverVersion
    self.apiVersion = apiVersion
    self.uuid = uuid
    self.limits = limits
    self.features = features
  }
}

/// Device classes, in the order `auto` prefers them.
public enum DeviceType: String, Sendable, Hashable, Codable, CaseIterable {
  case discreteGPU = "discrete-gpu"
  case integratedGPU = "integrated-gpu"
  case virtualGPU = "virtual-gpu"
  /// A Vulkan implementation that runs on the CPU (lavapipe/llvmpipe, SwiftShader).
  case cpu = "cpu"
  /// Kiln's own CPU driver running native code.
  case host = "host"
  case other = "other"

  /// The float32 Vulkan kernel class whose tuning suits this device (a bundle's per-class programs
  /// are named by it): `cpu` for Vulkan on CPU cores, `gpu` for every GPU. `DeviceInfo.kernelClasses`
  /// adds the classes that depend on features.
  public var kernelClass: String {
    switch self {
    case .cpu, .host: "cpu"
    case .discreteGPU, .integratedGPU, .virtualGPU, .other: "gpu"
    }
  }

  /// Lower is preferred by `auto`.
  public var preferenceRank: Int {
    switch self {
    case .discreteGPU: 0
    case .integratedGPU: 1
    case .virtualGPU: 2
    case .cpu: 3
    case .other: 4
    case .host: 5
    }
  }
}

extension DeviceInfo {
  /// The Vulkan kernel classes this device runs, best first: `coopmat` on GPUs with cooperative
  /// matrices (`DeviceFeatures.cooperativeMatrix`), then the type's own class, then the other.
  /// A bundle's program for the first class it has is run.
  public var kernelClasses: [String] {
    let own = type.kernelClass
    let other = own == "gpu" ? "cpu" : "gpu"
    return (own == "gpu" && features.cooperativeMatrix ? ["coopmat"] : []) + [own, other]
  }
}

public struct DeviceLimits: Sendable, Hashable, Codable {
  public var maxWorkgroupSize: [Int]
  public var maxWorkgroupInvocations: Int
  public var maxWorkgroupCount: [Int]
  public var maxSharedMemoryBytes: Int
  public var maxPushConstantBytes: Int
  /// The largest range one storage-buffer binding may cover.
  public var maxStorageBufferRange: Int
  /// The largest single device allocation.
  public var maxMemoryAllocationSize: Int
  public var minStorageBufferOffsetAlignment: Int
  /// Storage buffers one dispatch may bind.
  public var maxStorageBuffersPerDispatch: Int
  /// Bytes in the largest device-local memory heap (physical memory on the CPU device); 0 when
  /// unknown. A session whose buffers need more cannot load.
  public var deviceMemoryBytes: Int

  public init(
    maxWorkgroupSize: [Int], maxWorkgroupInvocations: Int, maxWorkgroupCount: [Int], maxSharedMemoryBytes: Int,
    maxPushConstantBytes: Int, maxStorageBufferRange: Int, maxMemoryAllocationSize: Int,
    minStorageBufferOffsetAlignment: Int, maxStorageBuffersPerDispatch: Int, deviceMemoryBytes: Int = 0
  ) {
    self.maxWorkgroupSize = maxWorkgroupSize
    self.maxWorkgroupInvocations = maxWorkgroupInvocations
    self.maxWorkgroupCount = maxWorkgroupCount
    self.maxSharedMemoryBytes = maxSharedMemoryBytes
    self.maxPushConstantBytes = maxPushConstantBytes
    self.maxStorageBufferRange = maxStorageBufferRange
    self.maxMemoryAllocationSize = maxMemoryAllocationSize
    self.minStorageBufferOffsetAlignment = minStorageBufferOffsetAlignment
    self.maxStorageBuffersPerDispatch = maxStorageBuffersPerDispatch
    self.deviceMemoryBytes = deviceMemoryBytes
  }
}

public struct DeviceFeatures: Sendable, Hashable, Codable {
  public var float16: Bool
  public var float64: Bool
  public var int8: Bool
  public var int16: Bool
  public var int64: Bool
  /// 8/16-bit values in storage buffers.
  public var storage8Bit: Bool
  public var storage16Bit: Bool
  /// Lanes per subgroup (SIMD width); 1 where there are no subgroups.
  public var subgroupSize: Int
  public var subgroupArithmetic: Bool
  /// What Kiln's coopmat kernels need: VK_NV_cooperative_matrix with 16x16x16 subgroup fragments
  /// of float16 operands and float32 accumulators in compute shaders, 32-invocation subgroups,
  /// float16 arithmetic and the Vulkan memory model. (The extension alone is not enough.)
  public var cooperativeMatrix: Bool
  /// The Vulkan memory model (SPIR-V `VulkanMemoryModel`), which cooperative-matrix modules declare.
  public var vulkanMemoryModel: Bool
  public var pushDescriptors: Bool
  public var timelineSemaphores: Bool
  /// Hardware threads that run workgroups concurrently (CPU devices), 0 where unknown.
  public var concurrency: Int

  public init(
    float16: Bool, float64: Bool, int8: Bool, int16: Bool, int64: Bool, storage8Bit: Bool, storage16Bit: Bool,
    subgroupSize: Int, subgroupArithmetic: Bool, cooperativeMatrix: Bool, pushDescriptors: Bool,
    timelineSemaphores: Bool, concurrency: Int, vulkanMemoryModel: Bool = false
  ) {
    self.float16 = float16
    self.float64 = float64
    self.int8 = int8
    self.int16 = int16
    self.int64 = int64
    self.storage8Bit = storage8Bit
    self.storage16Bit = storage16Bit
    self.subgroupSize = subgroupSize
    self.subgroupArithmetic = subgroupArithmetic
    self.cooperativeMatrix = cooperativeMatrix
    self.vulkanMemoryModel = vulkanMemoryModel
    self.pushDescriptors = pushDescriptors
    self.timelineSemaphores = timelineSemaphores
    self.concurrency = concurrency
  }
}
