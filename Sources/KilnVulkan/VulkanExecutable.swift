import CVulkan
import KilnHAL
import KilnSPIRV

/// A SPIR-V module and one compute pipeline per entry point.
///
/// Every module is validated (SPIRV-Tools) and checked against its declared interface before the
/// driver sees it: bundles come from strangers, and drivers are not required to survive bad SPIR-V.
public final class VulkanExecutable: Executable, @unchecked Sendable {
  // @unchecked: immutable after init; Vulkan pipelines may be bound from any thread.
  let device: VulkanDevice
  public let entryPoints: [EntryPoint]
  let shaderModule: VkShaderModule
  let pipelines: [Pipeline]

  struct Pipeline {
    let pipeline: VkPipeline
    let layout: VkPipelineLayout
    let setLayout: VkDescriptorSetLayout
    let usesPushDescriptors: Bool
  }

  init(device: VulkanDevice, spec: ExecutableSpec) throws {
    guard spec.format == .spirv else {
      throw HALError(.unsupported, "the Vulkan driver loads SPIR-V, not \(spec.format.rawValue)")
    }
    guard !spec.entryPoints.isEmpty else { throw HALError(.invalidArgument, "executable has no entry points") }
    let module: SPIRVModule
    do {
      module = try SPIRVModule(bytes: spec.code)
      try SPIRVTools.validate(module.words, environment: .vulkan1_2)
    } catch let error as SPIRVError {
      throw HALError(.compilationFailed, error.message)
    }
    try Self.checkCapabilities(module, device: device.info, entryPoints: spec.entryPoints.map(\.name))
    let limits = device.info.limits
    for entry in spec.entryPoints {
      guard module.entryPoints.contains(where: { $0.name == entry.name && $0.isCompute }) else {
        throw HALError(.compilationFailed, "SPIR-V module has no compute entry point '\(entry.name)'")
      }
      guard entry.bindingCount >= 0, entry.bindingCount <= limits.maxStorageBuffersPerDispatch else {
        throw HALError(
          .limitExceeded,
          "entry point '\(entry.name)' binds \(entry.bindingCount) buffers; the device allows \(limits.maxStorageBuffersPerDispatch)")
      }
      guard entry.pushConstantWords >= 0, entry.pushConstantWords * 4 <= limits.maxPushConstantBytes else {
        throw HALError(
          .limitExceeded,
          "entry point '\(entry.name)' needs \(entry.pushConstantWords * 4) push-constant bytes; the device allows \(limits.maxPushConstantBytes)")
      }
    }
    for binding in module.bindings where binding.set != 0 || Int(binding.binding) >= spec.entryPoints.map(\.bindingCount).max() ?? 0 {
      throw HALError(
        .compilationFailed,
        "SPIR-V uses set \(binding.set) binding \(binding.binding), outside the declared storage-buffer bindings")
    }
    if module.usesPushConstants && spec.entryPoints.allSatisfy({ $0.pushConstantWords == 0 }) {
      throw HALError(.compilationFailed, "SPIR-V declares push constants but no entry point declares any")
    }

    self.device = device
    self.entryPoints = spec.entryPoints

    var shader: VkShaderModule?
    let createResult = module.words.withUnsafeBufferPointer { words in
      var info = VkShaderModuleCreateInfo()
      info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO
      info.codeSize = words.count * 4
      info.pCode = words.baseAddress
      return vkCreateShaderModule(device.handle, &info, nil, &shader)
    }
    try check(createResult, "vkCreateShaderModule")
    guard let shader else { throw HALError(.internal, "vkCreateShaderModule returned no module") }
    self.shaderModule = shader

    // Fault `pipeline`: the last entry point's pipeline fails as a shader compile failure would,
    // so the pipelines and the module made before it are released by the real error path.
    let injected = device.faults.fires(.pipeline)
    var built: [Pipeline] = []
    do {
      for (index, entry) in spec.entryPoints.enumerated() {
        built.append(
          try VulkanExecutable.makePipeline(
            device: device, shader: shader, entry: entry, specialization: spec.specializationConstants,
            injectFailure: injected && index == spec.entryPoints.count - 1))
      }
    } catch {
      for pipeline in built { VulkanExecutable.destroy(pipeline, device: device.handle) }
      vkDestroyShaderModule(device.handle, shader, nil)
      guard let halError = error as? HALError else { throw error }
      let names = spec.entryPoints.map { "'\($0.name)'" }.joined(separator: ", ")
      throw HALError(
        halError.code,
        "\(device.label): creating the executable for \(names) (\(spec.code.count) bytes of SPIR-V): \(halError.message)"
          + (injected ? device.faults.note(.pipeline) : ""))
    }
    self.pipelines = built
    device.resources.add(.executable)
  }

  deinit {
    for pipeline in pipelines { VulkanExecutable.destroy(pipeline, device: device.handle) }
    vkDestroyShaderModule(device.handle, shaderModule, nil)
    device.resources.remove(.executable)
  }

  private static func destroy(_ pipeline: Pipeline, device: VkDevice) {
    vkDestroyPipeline(device, pipeline.pipeline, nil)
    vkDestroyPipelineLayout(device, pipeline.layout, nil)
    vkDestroyDescriptorSetLayout(device, pipeline.setLayout, nil)
  }

  private static func makePipeline(
    device: VulkanDevice, shader: VkShaderModule, entry: EntryPoint, specialization: [UInt32], injectFailure: Bool
  ) throws -> Pipeline {
    let usePush = device.pushDescriptor != nil && entry.bindingCount <= device.physical.maxPushDescriptors
    var layoutBindings = (0..<entry.bindingCount).map { index -> VkDescriptorSetLayoutBinding in
      var binding = VkDescriptorSetLayoutBinding()
      binding.binding = UInt32(index)
      binding.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
      binding.descriptorCount = 1
      binding.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT.rawValue
      return binding
    }
    var setLayout: VkDescriptorSetLayout?
    let setResult = layoutBindings.withUnsafeMutableBufferPointer { bindings in
      var info = VkDescriptorSetLayoutCreateInfo()
      info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO
      info.flags = usePush ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR.rawValue : 0
      info.bindingCount = UInt32(bindings.count)
      info.pBindings = UnsafePointer(bindings.baseAddress)
      return vkCreateDescriptorSetLayout(device.handle, &info, nil, &setLayout)
    }
    try check(setResult, "vkCreateDescriptorSetLayout")
    guard let setLayout else { throw HALError(.internal, "vkCreateDescriptorSetLayout returned nothing") }

    var pushRange = VkPushConstantRange()
    pushRange.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT.rawValue
    pushRange.offset = 0
    pushRange.size = UInt32(entry.pushConstantWords * 4)
    var layout: VkPipelineLayout?
    var setLayouts: [VkDescriptorSetLayout?] = [setLayout]
    let layoutResult = setLayouts.withUnsafeMutableBufferPointer { layouts in
      withUnsafePointer(to: &pushRange) { range in
        var info = VkPipelineLayoutCreateInfo()
        info.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO
        info.setLayoutCount = 1
        info.pSetLayouts = UnsafePointer(layouts.baseAddress)
        info.pushConstantRangeCount = entry.pushConstantWords > 0 ? 1 : 0
        info.pPushConstantRanges = entry.pushConstantWords > 0 ? range : nil
        return vkCreatePipelineLayout(device.handle, &info, nil, &layout)
      }
    }
    guard layoutResult == VK_SUCCESS, let layout else {
      vkDestroyDescriptorSetLayout(device.handle, setLayout, nil)
      try check(layoutResult, "vkCreatePipelineLayout")
      throw HALError(.internal, "vkCreatePipelineLayout returned nothing")
    }

    var mapEntries = specialization.indices.map { index -> VkSpecializationMapEntry in
      var entry = VkSpecializationMapEntry()
      entry.constantID = UInt32(index)
      entry.offset = UInt32(index * 4)
      entry.size = 4
      return entry
    }
    var pipeline: VkPipeline?
    let pipelineResult = entry.name.withCString { name in
      mapEntries.withUnsafeMutableBufferPointer { entries in
        specialization.withUnsafeBytes { data in
          var specInfo = VkSpecializationInfo()
          specInfo.mapEntryCount = UInt32(entries.count)
          specInfo.pMapEntries = UnsafePointer(entries.baseAddress)
          specInfo.dataSize = data.count
          specInfo.pData = data.baseAddress
          return withUnsafePointer(to: &specInfo) { specPointer in
            var stage = VkPipelineShaderStageCreateInfo()
            stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO
            stage.stage = VK_SHADER_STAGE_COMPUTE_BIT
            stage.module = shader
            stage.pName = name
            stage.pSpecializationInfo = specialization.isEmpty ? nil : specPointer
            var info = VkComputePipelineCreateInfo()
            info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO
            info.stage = stage
            info.layout = layout
            if injectFailure { return VK_ERROR_INVALID_SHADER_NV }
            return vkCreateComputePipelines(device.handle, device.pipelineCache.handle, 1, &info, nil, &pipeline)
          }
        }
      }
    }
    guard pipelineResult == VK_SUCCESS, let pipeline else {
      vkDestroyPipelineLayout(device.handle, layout, nil)
      vkDestroyDescriptorSetLayout(device.handle, setLayout, nil)
      try check(pipelineResult, "vkCreateComputePipelines('\(entry.name)')")
      throw HALError(.internal, "vkCreateComputePipelines returned nothing")
    }
    return Pipeline(pipeline: pipeline, layout: layout, setLayout: setLayout, usesPushDescriptors: usePush)
  }
}
