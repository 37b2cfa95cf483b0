// SPIRV-Tools validation, disassembly and optimisation, for KilnCodegen (its only importer).
#ifndef KILN_CSPIRVTOOLS_H
#define KILN_CSPIRVTOOLS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Target environments Kiln generates for.
typedef enum kiln_spirv_env { KILN_SPIRV_ENV_VULKAN_1_1 = 0, KILN_SPIRV_ENV_VULKAN_1_2 = 1, KILN_SPIRV_ENV_VULKAN_1_3 = 2 } kiln_spirv_env;

/// A heap buffer returned by these functions; release it with kiln_spirv_free.
typedef struct kiln_spirv_result {
  int ok;            ///< 1 on success.
  uint32_t *words;   ///< Output module (optimize) or NULL.
  size_t word_count;
  char *text;        ///< Disassembly (disassemble) or the diagnostic message on failure; may be NULL.
} kiln_spirv_result;

/// Validates a module; on failure `text` holds the validator's message.
kiln_spirv_result kiln_spirv_validate(const uint32_t *words, size_t word_count, kiln_spirv_env env);
/// Disassembles a module to SPIR-V assembly text.
kiln_spirv_result kiln_spirv_disassemble(const uint32_t *words, size_t word_count, kiln_spirv_env env);
/// How much kiln_spirv_optimize does (the pass lists are in spirv_tools.cpp).
typedef enum kiln_spirv_level {
  /// Debug names stripped, memory to SSA within each function, dead code removed; no inlining.
  KILN_SPIRV_LEVEL_SIZE = 0,
  /// SIZE plus exhaustive inlining, constant propagation and unrolling of [[unroll]] loops.
  KILN_SPIRV_LEVEL_PERFORMANCE = 1
} kiln_spirv_level;

/// Runs a short list of optimisation passes. Neither the input nor the output is validated:
/// validate the output (an invalid input can only give an invalid or meaningless output).
kiln_spirv_result kiln_spirv_optimize(const uint32_t *words, size_t word_count, kiln_spirv_env env, kiln_spirv_level level);
/// Frees what a kiln_spirv_* call returned.
void kiln_spirv_free(kiln_spirv_result *result);

#ifdef __cplusplus
}
#endif
#endif
