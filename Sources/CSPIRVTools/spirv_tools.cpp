// A thin extern "C" layer over SPIRV-Tools: the optimizer exists only in its C++ API.
#include "CSPIRVTools.h"

#include <spirv-tools/libspirv.h>
#include <spirv-tools/optimizer.hpp>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

spv_target_env toEnv(kiln_spirv_env env) {
  switch (env) {
    case KILN_SPIRV_ENV_VULKAN_1_1: return SPV_ENV_VULKAN_1_1;
    case KILN_SPIRV_ENV_VULKAN_1_2: return SPV_ENV_VULKAN_1_2;
    case KILN_SPIRV_ENV_VULKAN_1_3: return SPV_ENV_VULKAN_1_3;
  }
  return SPV_ENV_VULKAN_1_1;
}

char *copyString(const std::string &s) {
  char *out = static_cast<char *>(std::malloc(s.size() + 1));
  if (out) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

kiln_spirv_result failure(const std::string &message) {
  kiln_spirv_result r{};
  r.ok = 0;
  r.text = copyString(message);
  return r;
}

std::string diagnosticText(spv_diagnostic diagnostic, const char *fallback) {
  if (diagnostic == nullptr || diagnostic->error == nullptr) return fallback;
  std::string message = diagnostic->error;
  if (diagnostic->position.index > 0)
    message += " (word " + std::to_string(diagnostic->position.index) + ")";
  return message;
}

}  // namespace

extern "C" kiln_spirv_result kiln_spirv_validate(const uint32_t *words, size_t word_count, kiln_spirv_env env) {
  spv_context context = spvContextCreate(toEnv(env));
  spv_const_binary_t binary{words, word_count};
  spv_diagnostic diagnostic = nullptr;
  spv_result_t status = spvValidate(context, &binary, &diagnostic);
  kiln_spirv_result r{};
  if (status == SPV_SUCCESS) {
    r.ok = 1;
  } else {
    r = failure(diagnosticText(diagnostic, "SPIR-V validation failed"));
  }
  spvDiagnosticDestroy(diagnostic);
  spvContextDestroy(context);
  return r;
}

extern "C" kiln_spirv_result kiln_spirv_disassemble(const uint32_t *words, size_t word_count, kiln_spirv_env env) {
  spv_context context = spvContextCreate(toEnv(env));
  spv_text text = nullptr;
  spv_diagnostic diagnostic = nullptr;
  uint32_t options = SPV_BINARY_TO_TEXT_OPTION_FRIENDLY_NAMES | SPV_BINARY_TO_TEXT_OPTION_INDENT;
  spv_result_t status = spvBinaryToText(context, words, word_count, options, &text, &diagnostic);
  kiln_spirv_result r{};
  if (status == SPV_SUCCESS && text != nullptr) {
    r.ok = 1;
    r.text = copyString(std::string(text->str, text->length));
  } else {
    r = failure(diagnosticText(diagnostic, "SPIR-V disassembly failed"));
  }
  spvTextDestroy(text);
  spvDiagnosticDestroy(diagnostic);
  spvContextDestroy(context);
  return r;
}

extern "C" kiln_spirv_result kiln_spirv_optimize(const uint32_t *words, size_t word_count, kiln_spirv_env env,
                                                 kiln_spirv_level level) {
  spvtools::Optimizer optimizer(toEnv(env));
  std::string messages;
  optimizer.SetMessageConsumer([&messages](spv_message_level_t level, const char *, const spv_position_t &, const char *m) {
    if (level <= SPV_MSG_ERROR && m != nullptr) {
      if (!messages.empty()) messages += "; ";
      messages += m;
    }
  });
  // Short lists rather than RegisterPerformancePasses(): every Vulkan driver optimises the module
  // again (Mesa through NIR and LLVM, NVIDIA in its own compiler), so what pays here is a small,
  // plain module. SIZE (the default) drops debug names and turns each function's locals into SSA
  // values without inlining: glslang's module shrinks by a third, at about 4 ms a module.
  // Inlining is what costs: DenseNet-121's 26-input concatenation loaders, inlined, took its Vulkan
  // target from 1.8 s to 5.3 s and made the modules larger (docs/benchmarks.md, 2026-12-08).
  if (level == KILN_SPIRV_LEVEL_PERFORMANCE) {
    optimizer.RegisterPass(spvtools::CreateInlineExhaustivePass())
        .RegisterPass(spvtools::CreateEliminateDeadFunctionsPass());
  }
  optimizer.RegisterPass(spvtools::CreateStripDebugInfoPass())
      .RegisterPass(spvtools::CreatePrivateToLocalPass())
      .RegisterPass(spvtools::CreateLocalSingleBlockLoadStoreElimPass())
      .RegisterPass(spvtools::CreateLocalSingleStoreElimPass())
      .RegisterPass(spvtools::CreateScalarReplacementPass(100))
      .RegisterPass(spvtools::CreateSSARewritePass());
  if (level == KILN_SPIRV_LEVEL_PERFORMANCE) {
    optimizer.RegisterPass(spvtools::CreateCCPPass()).RegisterPass(spvtools::CreateLoopUnrollPass(true));
  }
  optimizer.RegisterPass(spvtools::CreateDeadBranchElimPass())
      .RegisterPass(spvtools::CreateSimplificationPass())
      .RegisterPass(spvtools::CreateAggressiveDCEPass())
      .RegisterPass(spvtools::CreateBlockMergePass());
  // No validation of the input here: the caller validates the output (GLSLCompiler does, always),
  // and validating both ends took a third of the size list's time on DenseNet-121's 252 modules.
  spvtools::OptimizerOptions options;
  options.set_run_validator(false);
  std::vector<uint32_t> out;
  if (!optimizer.Run(words, word_count, &out, options)) {
    return failure(messages.empty() ? "SPIR-V optimisation failed" : messages);
  }
  kiln_spirv_result r{};
  r.ok = 1;
  r.word_count = out.size();
  r.words = static_cast<uint32_t *>(std::malloc(out.size() * sizeof(uint32_t)));
  if (r.words == nullptr) return failure("out of memory");
  std::memcpy(r.words, out.data(), out.size() * sizeof(uint32_t));
  return r;
}

extern "C" void kiln_spirv_free(kiln_spirv_result *result) {
  if (result == nullptr) return;
  std::free(result->words);
  std::free(result->text);
  result->words = nullptr;
  result->text = nullptr;
}
