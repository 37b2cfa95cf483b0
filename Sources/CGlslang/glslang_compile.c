#include "CGlslang.h"

#include <glslang/Include/glslang_c_interface.h>
#include <glslang/Public/resource_limits_c.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t kiln_glslang_once = PTHREAD_ONCE_INIT;
static int kiln_glslang_ready = 0;

static void kiln_glslang_init_once(void) { kiln_glslang_ready = glslang_initialize_process(); }

static char *kiln_copy(const char *a, const char *b) {
  size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
  char *out = malloc(la + lb + 1);
  if (!out) return NULL;
  if (la) memcpy(out, a, la);
  if (lb) memcpy(out + la, b, lb);
  out[la + lb] = 0;
  return out;
}

kiln_glslang_result kiln_glslang_compile_compute(const char *source, int vulkan_minor) {
  kiln_glslang_result result;
  memset(&result, 0, sizeof result);
  pthread_once(&kiln_glslang_once, kiln_glslang_init_once);
  if (!kiln_glslang_ready) {
    result.log = kiln_copy("glslang_initialize_process failed", NULL);
    return result;
  }
  glslang_target_client_version_t client = GLSLANG_TARGET_VULKAN_1_2;
  glslang_target_language_version_t spv = GLSLANG_TARGET_SPV_1_5;
  if (vulkan_minor <= 1) { client = GLSLANG_TARGET_VULKAN_1_1; spv = GLSLANG_TARGET_SPV_1_3; }
  if (vulkan_minor >= 3) { client = GLSLANG_TARGET_VULKAN_1_3; spv = GLSLANG_TARGET_SPV_1_6; }

  glslang_input_t input;
  memset(&input, 0, sizeof input);
  input.language = GLSLANG_SOURCE_GLSL;
  input.stage = GLSLANG_STAGE_COMPUTE;
  input.client = GLSLANG_CLIENT_VULKAN;
  input.client_version = client;
  input.target_language = GLSLANG_TARGET_SPV;
  input.target_language_version = spv;
  input.code = source;
  input.default_version = 450;
  input.default_profile = GLSLANG_NO_PROFILE;
  input.messages = GLSLANG_MSG_SPV_RULES_BIT | GLSLANG_MSG_VULKAN_RULES_BIT;
  input.resource = glslang_default_resource();

  glslang_shader_t *shader = glslang_shader_create(&input);
  if (!shader) {
    result.log = kiln_copy("glslang_shader_create failed", NULL);
    return result;
  }
  if (!glslang_shader_preprocess(shader, &input) || !glslang_shader_parse(shader, &input)) {
    result.log = kiln_copy(glslang_shader_get_info_log(shader), glslang_shader_get_info_debug_log(shader));
    glslang_shader_delete(shader);
    return result;
  }
  glslang_program_t *program = glslang_program_create();
  glslang_program_add_shader(program, shader);
  if (!glslang_program_link(program, GLSLANG_MSG_SPV_RULES_BIT | GLSLANG_MSG_VULKAN_RULES_BIT)) {
    result.log = kiln_copy(glslang_program_get_info_log(program), glslang_program_get_info_debug_log(program));
    glslang_program_delete(program);
    glslang_shader_delete(shader);
    return result;
  }
  glslang_program_SPIRV_generate(program, GLSLANG_STAGE_COMPUTE);
  size_t count = glslang_program_SPIRV_get_size(program);
  result.words = malloc(count * sizeof(uint32_t));
  if (result.words) {
    glslang_program_SPIRV_get(program, result.words);
    result.word_count = count;
    result.ok = 1;
    const char *messages = glslang_program_SPIRV_get_messages(program);
    const char *info = glslang_shader_get_info_log(shader);
    if ((messages && *messages) || (info && *info)) result.log = kiln_copy(info, messages);
  } else {
    result.log = kiln_copy("out of memory", NULL);
  }
  glslang_program_delete(program);
  glslang_shader_delete(shader);
  return result;
}

void kiln_glslang_free(kiln_glslang_result *result) {
  if (!result) return;
  free(result->words);
  free(result->log);
  result->words = NULL;
  result->log = NULL;
}
