// glslang's C interface wrapped for KilnCodegen (the only importer of this module).
#ifndef KILN_CGLSLANG_H
#define KILN_CGLSLANG_H
#include <stddef.h>
#include <stdint.h>

/// Result of one compilation; free with kiln_glslang_free.
typedef struct kiln_glslang_result {
  int ok;              ///< 1 when SPIR-V was produced.
  uint32_t *words;     ///< The SPIR-V module.
  size_t word_count;
  char *log;           ///< Compiler diagnostics (errors on failure, warnings otherwise); may be NULL.
} kiln_glslang_result;

/// Compiles one GLSL compute shader (`#version` line included in `source`) to SPIR-V for
/// Vulkan 1.`vulkan_minor` (1..3). Thread-safe: glslang is initialised once per process.
kiln_glslang_result kiln_glslang_compile_compute(const char *source, int vulkan_minor);
void kiln_glslang_free(kiln_glslang_result *result);
#endif
