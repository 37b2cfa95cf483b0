// Vulkan headers for KilnVulkan (the only importer of this module).
#ifndef KILN_CVULKAN_SHIM_H
#define KILN_CVULKAN_SHIM_H
#include <vulkan/vulkan.h>
#endif
