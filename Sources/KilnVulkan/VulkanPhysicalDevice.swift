import CVulkan
import KilnHAL

/// What Kiln reads off one VkPhysicalDevice: its HAL description and what device creation enables.
struct VulkanPhysicalDevice: @unchecked Sendable {
  // @unchecked: VkPhysicalDevice is an immutable handle owned by the instance.
  let handle: VkPhysicalDevice
  let apiVersion: UInt32
  let typeRank: Int
  let name: String
  let type: DeviceType
  let uuid: String
  let driverName: String
  let driverInfo: String
  let limits: DeviceLimits
  let features: DeviceFeatures
  /// Supported among the features Kiln enables at device creation.
  let supported11: VkPhysicalDeviceVulkan11Features
  let supported12: VkPhysicalDeviceVulkan12Features
  let supported10: VkPhysicalDeviceFeatures
  let extensions: Set<String>
  let maxPushDescriptors: Int
  let computeQueueFamily: UInt32?
  let timestampPeriodNanoseconds: Float
  let timestampValidBits: UInt32

  /// Kiln needs Vulkan 1.2 (timeline semaphores, 8/16-bit storage in core) and a compute queue.
  var isUsable: Bool { apiVersion >= makeAPIVersion(1, 2, 0) && computeQueueFamily != nil && supported12.timelineSemaphore != 0 }

  init(_ handle: VkPhysicalDevice, instance: VkInstance) throws {
    self.handle = handle
    var base = VkPhysicalDeviceProperties()
    vkGetPhysicalDeviceProperties(handle, &base)
    apiVersion = base.apiVersion
    name = string(fromCharTuple: base.deviceName)
    switch base.deviceType {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: type = .discreteGPU
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: type = .integratedGPU
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: type = .virtualGPU
    case VK_PHYSICAL_DEVICE_TYPE_CPU: type = .cpu
    default: type = .other
    }
    typeRank = type.preferenceRank

    var extensionCount: UInt32 = 0
    try check(vkEnumerateDeviceExtensionProperties(handle, nil, &extensionCount, nil), "vkEnumerateDeviceExtensionProperties")
    var extensionList = [VkExtensionProperties](repeating: VkExtensionProperties(), count: Int(extensionCount))
    try check(
      vkEnumerateDeviceExtensionProperties(handle, nil, &extensionCount, &extensionList),
      "vkEnumerateDeviceExtensionProperties")
    extensions = Set(extensionList.prefix(Int(extensionCount)).map { string(fromCharTuple: $0.extensionName) })

    // Properties through the 1.1/1.2 core structs and the push-descriptor extension.
    var props11 = VkPhysicalDeviceVulkan11Properties()
    props11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES
    var props12 = VkPhysicalDeviceVulkan12Properties()
    props12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES
    var pushProps = VkPhysicalDevicePushDescriptorPropertiesKHR()
    pushProps.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PUSH_DESCRIPTOR_PROPERTIES_KHR
    var props2 = VkPhysicalDeviceProperties2()
    props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
    let is12 = base.apiVersion >= makeAPIVersion(1, 2, 0)
    let hasPush = extensions.contains("VK_KHR_push_descriptor")
    withUnsafeMutablePointer(to: &props11) { p11 in
      withUnsafeMutablePointer(to: &props12) { p12 in
        withUnsafeMutablePointer(to: &pushProps) { pPush in
          var chain: UnsafeMutableRawPointer? = nil
          if hasPush {
            pPush.pointee.pNext = chain
            chain = UnsafeMutableRawPointer(pPush)
          }
          if is12 {
            p12.pointee.pNext = chain
            chain = UnsafeMutableRawPointer(p12)
            p11.pointee.pNext = chain
            chain = UnsafeMutableRawPointer(p11)
          }
          props2.pNext = chain
          vkGetPhysicalDeviceProperties2(handle, &props2)
        }
      }
    }
    props11.pNext = nil
    props12.pNext = nil
    pushProps.pNext = nil
    uuid = is12 ? hex(fromByteTuple: props11.deviceUUID) : String(repeating: "0", count: 32)
    driverName = is12 ? string(fromCharTuple: props12.driverName) : "unknown"
    driverInfo = is12 ? string(fromCharTuple: props12.driverInfo) : ""
    maxPushDescriptors = hasPush ? Int(pushProps.maxPushDescriptors) : 0

    // Features.
    var f11 = VkPhysicalDeviceVulkan11Features()
    f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES
    var f12 = VkPhysicalDeviceVulkan12Features()
    f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES
    var features2 = VkPhysicalDeviceFeatures2()
    features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
    if is12 {
      withUnsafeMutablePointer(to: &f11) { p11 in
        withUnsafeMutablePointer(to: &f12) { p12 in
          p11.pointee.pNext = UnsafeMutableRawPointer(p12)
          features2.pNext = UnsafeMutableRawPointer(p11)
          vkGetPhysicalDeviceFeatures2(handle, &features2)
        }
      }
    } else {
      vkGetPhysicalDeviceFeatures2(handle, &features2)
    }
    f11.pNext = nil
    f12.pNext = nil
    supported10 = features2.features
    supported11 = f11
    supported12 = f12

    // A compute queue: prefer a compute-only family (dedicated async compute), else any with compute.
    var familyCount: UInt32 = 0
    vkGetPhysicalDeviceQueueFamilyProperties(handle, &familyCount, nil)
    var families = [VkQueueFamilyProperties](repeating: VkQueueFamilyProperties(), count: Int(familyCount))
    vkGetPhysicalDeviceQueueFamilyProperties(handle, &familyCount, &families)
    let compute = VK_QUEUE_COMPUTE_BIT.rawValue
    let graphics = VK_QUEUE_GRAPHICS_BIT.rawValue
    let indexed = families.prefix(Int(familyCount)).enumerated()
    let dedicated = indexed.first { $0.element.queueFlags & compute != 0 && $0.element.queueFlags & graphics == 0 }
    let anyCompute = indexed.first { $0.element.queueFlags & compute != 0 }
    let chosen = dedicated ?? anyCompute
    computeQueueFamily = chosen.map { UInt32($0.offset) }
    timestampValidBits = chosen?.element.timestampValidBits ?? 0
    timestampPeriodNanoseconds = base.limits.timestampPeriod

    let l = base.limits
    var memory = VkPhysicalDeviceMemoryProperties()
    vkGetPhysicalDeviceMemoryProperties(handle, &memory)
    let heaps = withUnsafeBytes(of: memory.memoryHeaps) { raw in
      Array(raw.bindMemory(to: VkMemoryHeap.self).prefix(Int(memory.memoryHeapCount)))
    }
    let localHeaps = heaps.filter { $0.flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT.rawValue != 0 }
    let largestHeap = (localHeaps.isEmpty ? heaps : localHeaps).map { Int(clamping: $0.size) }.max() ?? 0
    let subgroupArithmetic =
      is12 && (props11.subgroupSupportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT.rawValue) != 0
      && (props11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT.rawValue) != 0
    limits = DeviceLimits(
      maxWorkgroupSize: [Int(l.maxComputeWorkGroupSize.0), Int(l.maxComputeWorkGroupSize.1), Int(l.maxComputeWorkGroupSize.2)],
      maxWorkgroupInvocations: Int(l.maxComputeWorkGroupInvocations),
      maxWorkgroupCount: [Int(l.maxComputeWorkGroupCount.0), Int(l.maxComputeWorkGroupCount.1), Int(l.maxComputeWorkGroupCount.2)],
      maxSharedMemoryBytes: Int(l.maxComputeSharedMemorySize),
      maxPushConstantBytes: Int(l.maxPushConstantsSize),
      maxStorageBufferRange: Int(l.maxStorageBufferRange),
      maxMemoryAllocationSize: is12 ? Int(clamping: props11.maxMemoryAllocationSize) : 1 << 30,
      minStorageBufferOffsetAlignment: Int(l.minStorageBufferOffsetAlignment),
      maxStorageBuffersPerDispatch: Int(l.maxPerStageDescriptorStorageBuffers), deviceMemoryBytes: largestHeap)
    features = DeviceFeatures(
      float16: f12.shaderFloat16 != 0,
      float64: features2.features.shaderFloat64 != 0,
      int8: f12.shaderInt8 != 0,
      int16: features2.features.shaderInt16 != 0,
      int64: features2.features.shaderInt64 != 0,
      storage8Bit: f12.storageBuffer8BitAccess != 0,
      storage16Bit: f11.storageBuffer16BitAccess != 0,
      subgroupSize: is12 ? Int(props11.subgroupSize) : 1,
      subgroupArithmetic: subgroupArithmetic,
      cooperativeMatrix: is12 && props11.subgroupSize == 32 && f12.shaderFloat16 != 0 && f12.vulkanMemoryModel != 0
        && f11.storageBuffer16BitAccess != 0 && extensions.contains("VK_NV_cooperative_matrix")
        && Self.hasFloat16Fragments(handle, instance: instance),
      pushDescriptors: hasPush,
      timelineSemaphores: f12.timelineSemaphore != 0,
      concurrency: 0,
      vulkanMemoryModel: f12.vulkanMemoryModel != 0)
  }

  /// Whether VK_NV_cooperative_matrix offers what Kiln's coopmat kernels use: the feature, compute
  /// shaders, and 16x16x16 subgroup fragments of float16 A and B with float32 C and D.
  static func hasFloat16Fragments(_ handle: VkPhysicalDevice, instance: VkInstance) -> Bool {
    var features = VkPhysicalDeviceCooperativeMatrixFeaturesNV()
    features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV
    var properties = VkPhysicalDeviceCooperativeMatrixPropertiesNV()
    properties.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV
    withUnsafeMutablePointer(to: &features) { pointer in
      var features2 = VkPhysicalDeviceFeatures2()
      features2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2
      features2.pNext = UnsafeMutableRawPointer(pointer)
      vkGetPhysicalDeviceFeatures2(handle, &features2)
    }
    withUnsafeMutablePointer(to: &properties) { pointer in
      var properties2 = VkPhysicalDeviceProperties2()
      properties2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
      properties2.pNext = UnsafeMutableRawPointer(pointer)
      vkGetPhysicalDeviceProperties2(handle, &properties2)
    }
    guard features.cooperativeMatrix != 0,
      properties.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT.rawValue != 0,
      let raw = vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV")
    else { return false }
    let list = unsafeBitCast(raw, to: PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV.self)
    var count: UInt32 = 0
    guard list(handle, &count, nil) == VK_SUCCESS, count > 0, count < 4096 else { return false }
    var shapes = [VkCooperativeMatrixPropertiesNV](repeating: VkCooperativeMatrixPropertiesNV(), count: Int(count))
    for index in shapes.indices { shapes[index].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV }
    let result = list(handle, &count, &shapes)
    guard result == VK_SUCCESS || result == VK_INCOMPLETE else { return false }
    return shapes.prefix(Int(count)).contains {
      $0.MSize == 16 && $0.NSize == 16 && $0.KSize == 16 && $0.AType == VK_COMPONENT_TYPE_FLOAT16_NV
        && $0.BType == VK_COMPONENT_TYPE_FLOAT16_NV && $0.CType == VK_COMPONENT_TYPE_FLOAT32_NV
        && $0.DType == VK_COMPONENT_TYPE_FLOAT32_NV && $0.scope == VK_SCOPE_SUBGROUP_NV
    }
  }

  func info(index: Int) -> DeviceInfo {
    DeviceInfo(
      uri: "vulkan://\(uuid)", shortURI: "vulkan:\(index)", driver: "vulkan", name: name, type: type,
      driverName: driverName, driverVersion: driverInfo, apiVersion: apiVersionString(apiVersion), uuid: uuid,
      limits: limits, features: features)
  }
}
