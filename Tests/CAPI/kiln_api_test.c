// Exercises every function of include/kiln.h (tools/test-c-api builds it with AddressSanitizer
// and LeakSanitizer and runs it): version checks, devices, compile options, compiling from a
// file and from bytes, sessions from a file and from bytes, every accessor, a run checked
// against values computed here, and the errors of bad calls.
//
// Usage: kiln_api_test MODEL.onnx WORKDIR DEVICE...
// MODEL.onnx computes y = relu(x * 2 - 1) over float x[2,3] (Tests/CAPI/make_model.py).
#include "kiln.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define EXPECT(cond, ...)                                                    \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                          \
      fprintf(stderr, "\n");                                                 \
      failures++;                                                            \
    }                                                                        \
  } while (0)

// Fails the test unless `status` is success; releases it.
static int ok(kiln_status *status, const char *what) {
  if (status == NULL) return 1;
  fprintf(stderr, "%s failed (%d): %s\n", what, kiln_status_get_code(status), kiln_status_get_message(status));
  kiln_status_release(status);
  failures++;
  return 0;
}

// Expects `status` to fail with `code` and a message containing `fragment`; releases it.
static void fails(kiln_status *status, kiln_status_code code, const char *fragment, const char *what) {
  EXPECT(status != NULL, "%s succeeded", what);
  if (status == NULL) return;
  EXPECT(kiln_status_get_code(status) == code, "%s: code %d, message: %s", what, kiln_status_get_code(status),
         kiln_status_get_message(status));
  EXPECT(strstr(kiln_status_get_message(status), fragment) != NULL, "%s: message '%s' lacks '%s'", what,
         kiln_status_get_message(status), fragment);
  EXPECT(strchr(kiln_status_get_message(status), '\n') == NULL, "%s: message spans lines", what);
  kiln_status_release(status);
}

static void check_version(void) {
  EXPECT(kiln_get_api_version() == KILN_API_VERSION, "library API %u", kiln_get_api_version());
  EXPECT(strlen(kiln_get_version()) > 0, "empty version");
  ok(kiln_check_version(KILN_API_VERSION), "kiln_check_version");
  fails(kiln_check_version(((KILN_API_VERSION_MAJOR + 1) << 16)), KILN_STATUS_VERSION, "C API", "a newer major");
  fails(kiln_check_version(KILN_API_VERSION + 1), KILN_STATUS_VERSION, "C API", "a newer minor");
  EXPECT(kiln_status_get_code(NULL) == KILN_STATUS_OK, "NULL status code");
  EXPECT(strcmp(kiln_status_get_message(NULL), "") == 0, "NULL status message");
  kiln_status_release(NULL);
}

static void check_devices(void) {
  kiln_device_list *list = NULL;
  if (!ok(kiln_device_list_create(&list), "kiln_device_list_create")) return;
  size_t count = kiln_device_list_get_count(list);
  EXPECT(count >= 1, "no devices");
  int has_cpu = 0;
  for (size_t i = 0; i < count; i++) {
    const char *uri = kiln_device_list_get_uri(list, i);
    EXPECT(uri != NULL && kiln_device_list_get_name(list, i) != NULL, "device %zu unnamed", i);
    if (strcmp(kiln_device_list_get_driver(list, i), "cpu") == 0) has_cpu = 1;
  }
  EXPECT(has_cpu, "no CPU device listed");
  EXPECT(kiln_device_list_get_uri(list, count) == NULL, "out-of-range uri");
  EXPECT(kiln_device_list_get_name(list, count) == NULL, "out-of-range name");
  EXPECT(kiln_device_list_get_driver(list, count) == NULL, "out-of-range driver");
  kiln_device_list_release(list);
  fails(kiln_device_list_create(NULL), KILN_STATUS_INVALID_ARGUMENT, "NULL", "NULL out_list");
  kiln_device *device = NULL;
  fails(kiln_device_open("vulkan:99", &device), KILN_STATUS_NOT_FOUND, "99", "a missing device");
  fails(kiln_device_open("tpu", &device), KILN_STATUS_INVALID_ARGUMENT, "tpu", "a bad URI");
  fails(kiln_device_open(NULL, &device), KILN_STATUS_INVALID_ARGUMENT, "uri", "a NULL URI");
  EXPECT(device == NULL, "out-parameter written on failure");
}

static kiln_compile_options *make_options(const char *target, const char *cache) {
  kiln_compile_options *options = NULL;
  if (!ok(kiln_compile_options_create(&options), "kiln_compile_options_create")) return NULL;
  ok(kiln_compile_options_set(options, "target", target), "set target");
  ok(kiln_compile_options_set(options, "cache-dir", cache), "set cache-dir");
  ok(kiln_compile_options_set(options, "model-name", "double_relu"), "set model-name");
  fails(kiln_compile_options_set(options, "optimise", "yes"), KILN_STATUS_INVALID_ARGUMENT, "unknown compile option",
        "an unknown option");
  fails(kiln_compile_options_set(options, "precision", "fp8"), KILN_STATUS_INVALID_ARGUMENT, "fp8", "a bad precision");
  fails(kiln_compile_options_set(options, "input-shape", "x"), KILN_STATUS_INVALID_ARGUMENT, "NAME=", "a bad shape");
  fails(kiln_compile_options_set(options, "target", "tpu"), KILN_STATUS_INVALID_ARGUMENT, "tpu", "a bad target");
  fails(kiln_compile_options_set(NULL, "target", "cpu"), KILN_STATUS_INVALID_ARGUMENT, "NULL", "NULL options");
  return options;
}

// Runs `session` on x = {-1, 0, 0.25, 0.5, 1, 3} and checks y = relu(2x - 1).
static void check_session(kiln_session *session) {
  EXPECT(strcmp(kiln_session_get_model_name(session), "double_relu") == 0, "model name %s",
         kiln_session_get_model_name(session));
  EXPECT(kiln_session_get_program(session) != NULL, "no program");
  EXPECT(kiln_session_get_count(session, KILN_INPUT) == 1, "inputs");
  EXPECT(kiln_session_get_count(session, KILN_OUTPUT) == 1, "outputs");
  EXPECT(strcmp(kiln_session_get_name(session, KILN_INPUT, 0), "x") == 0, "input name");
  EXPECT(strcmp(kiln_session_get_name(session, KILN_OUTPUT, 0), "y") == 0, "output name");
  EXPECT(kiln_session_get_name(session, KILN_INPUT, 1) == NULL, "out-of-range name");
  EXPECT(kiln_session_get_dtype(session, KILN_INPUT, 0) == KILN_DTYPE_FLOAT32, "dtype");
  EXPECT(kiln_session_get_dtype(session, KILN_INPUT, 5) == KILN_DTYPE_UNDEFINED, "out-of-range dtype");
  EXPECT(strcmp(kiln_session_get_dtype_name(session, KILN_OUTPUT, 0), "float32") == 0, "dtype name");
  EXPECT(kiln_session_get_rank(session, KILN_INPUT, 0) == 2, "rank");
  EXPECT(kiln_session_get_dim(session, KILN_INPUT, 0, 0) == 2 && kiln_session_get_dim(session, KILN_INPUT, 0, 1) == 3, "dims");
  EXPECT(kiln_session_get_dim(session, KILN_INPUT, 0, 2) == -2, "out-of-range axis");
  EXPECT(kiln_session_get_dim_name(session, KILN_INPUT, 0, 0) == NULL, "static dims have no name");
  EXPECT(kiln_session_get_max_bytes(session, KILN_OUTPUT, 0) == 24, "max bytes");

  float x[6] = {-1, 0, 0.25f, 0.5f, 1, 3};
  float y[6] = {0};
  int64_t in_dims[2] = {2, 3}, out_dims[2] = {0, 0};
  kiln_tensor input = {KILN_DTYPE_FLOAT32, 2, in_dims, x, sizeof x};
  kiln_tensor output = {KILN_DTYPE_FLOAT32, 2, out_dims, y, sizeof y};
  if (ok(kiln_session_run(session, &input, 1, &output, 1), "kiln_session_run")) {
    for (int i = 0; i < 6; i++) {
      float expected = fmaxf(2 * x[i] - 1, 0);
      EXPECT(fabsf(y[i] - expected) <= 1e-6f, "y[%d] = %g, expected %g", i, y[i], expected);
    }
    EXPECT(out_dims[0] == 2 && out_dims[1] == 3, "output dims %lld %lld", (long long)out_dims[0], (long long)out_dims[1]);
  }

  // Bad calls name what is wrong and leave the session usable.
  kiln_tensor wrong = input;
  wrong.dtype = KILN_DTYPE_INT32;
  fails(kiln_session_run(session, &wrong, 1, &output, 1), KILN_STATUS_INVALID_ARGUMENT, "'x'", "a wrong dtype");
  int64_t bad_dims[2] = {3, 2};
  wrong = input;
  wrong.dims = bad_dims;
  fails(kiln_session_run(session, &wrong, 1, &output, 1), KILN_STATUS_INVALID_ARGUMENT, "shape", "a wrong shape");
  wrong = input;
  wrong.capacity = 8;
  fails(kiln_session_run(session, &wrong, 1, &output, 1), KILN_STATUS_INVALID_ARGUMENT, "capacity", "a short input");
  kiln_tensor small = output;
  small.capacity = 4;
  fails(kiln_session_run(session, &input, 1, &small, 1), KILN_STATUS_INVALID_ARGUMENT, "capacity", "a short output");
  fails(kiln_session_run(session, &input, 0, &output, 1), KILN_STATUS_INVALID_ARGUMENT, "inputs", "no inputs");
  fails(kiln_session_run(session, NULL, 1, &output, 1), KILN_STATUS_INVALID_ARGUMENT, "NULL", "NULL inputs");
  fails(kiln_session_run(NULL, &input, 1, &output, 1), KILN_STATUS_INVALID_ARGUMENT, "NULL", "a NULL session");
  ok(kiln_session_run(session, &input, 1, &output, 1), "a run after failed ones");
}

static unsigned char *read_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (!file) return NULL;
  fseek(file, 0, SEEK_END);
  long length = ftell(file);
  fseek(file, 0, SEEK_SET);
  unsigned char *bytes = malloc((size_t)length);
  if (bytes && fread(bytes, 1, (size_t)length, file) != (size_t)length) {
    free(bytes);
    bytes = NULL;
  }
  fclose(file);
  *size = (size_t)length;
  return bytes;
}

static void check_device(const char *uri, const char *model, const char *workdir) {
  kiln_device *device = NULL;
  if (!ok(kiln_device_open(uri, &device), uri)) return;
  EXPECT(kiln_device_get_uri(device) != NULL && kiln_device_get_name(device) != NULL, "device strings");
  const char *driver = kiln_device_get_driver(device);
  char cache[4096], bundle[4096];
  snprintf(cache, sizeof cache, "%s/cache", workdir);
  snprintf(bundle, sizeof bundle, "%s/model-%s.kiln", workdir, driver);

  // From a file.
  kiln_compile_options *options = make_options(driver, cache);
  if (ok(kiln_compile_file(model, options, bundle), "kiln_compile_file")) {
    kiln_session *session = NULL;
    if (ok(kiln_session_create_from_file(device, bundle, &session), "kiln_session_create_from_file")) {
      kiln_device_release(device);  // the session keeps the device open
      device = NULL;
      check_session(session);
      kiln_session_release(session);
    }
  }
  fails(kiln_compile_file(model, options, model), KILN_STATUS_IO, "protected", "overwriting the model");
  if (device == NULL && !ok(kiln_device_open(uri, &device), uri)) {
    kiln_compile_options_release(options);
    return;
  }

  // From bytes.
  size_t size = 0;
  unsigned char *bytes = read_file(model, &size);
  EXPECT(bytes != NULL, "cannot read %s", model);
  kiln_blob *blob = NULL;
  if (bytes && ok(kiln_compile_bytes(bytes, size, options, &blob), "kiln_compile_bytes")) {
    EXPECT(kiln_blob_get_size(blob) > 64 && memcmp(kiln_blob_get_data(blob), "KILNBNDL", 8) == 0, "not a bundle");
    kiln_session *session = NULL;
    if (ok(kiln_session_create_from_bytes(device, kiln_blob_get_data(blob), kiln_blob_get_size(blob), &session),
           "kiln_session_create_from_bytes")) {
      check_session(session);
      kiln_session_release(session);
    }
    // One flipped byte in the middle of a real bundle fails its checksum.
    size_t length = kiln_blob_get_size(blob);
    unsigned char *corrupted = malloc(length);
    memcpy(corrupted, kiln_blob_get_data(blob), length);
    corrupted[length / 2] ^= 0xFF;
    kiln_session *broken = NULL;
    fails(kiln_session_create_from_bytes(device, corrupted, length, &broken), KILN_STATUS_INVALID_MODEL, "checksum",
          "a corrupted bundle");
    EXPECT(broken == NULL, "session written on failure");
    free(corrupted);
    kiln_blob_release(blob);
  }
  if (bytes) {
    // Hostile inputs: a truncated model, a corrupted bundle.
    kiln_blob *none = NULL;
    fails(kiln_compile_bytes(bytes, size / 2, options, &none), KILN_STATUS_INVALID_MODEL, "", "a truncated model");
    EXPECT(none == NULL, "blob written on failure");
    free(bytes);
  }
  unsigned char garbage[256];
  memcpy(garbage, "KILNBNDL", 8);
  for (int i = 8; i < 256; i++) garbage[i] = (unsigned char)(i * 37);
  kiln_session *session = NULL;
  fails(kiln_session_create_from_bytes(device, garbage, sizeof garbage, &session), KILN_STATUS_VERSION, "not supported",
        "a bundle header from the future");
  fails(kiln_session_create_from_file(device, "/nonexistent/model.kiln", &session), KILN_STATUS_NOT_FOUND,
        "no such file", "a missing bundle");
  fails(kiln_session_create_from_file(NULL, bundle, &session), KILN_STATUS_INVALID_ARGUMENT, "device", "a NULL device");
  fails(kiln_compile_file("/nonexistent/model.onnx", options, bundle), KILN_STATUS_NOT_FOUND, "no such file",
        "a missing model");
  EXPECT(session == NULL, "session written on failure");
  kiln_compile_options_release(options);
  kiln_device_release(device);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.onnx WORKDIR DEVICE...\n", argv[0]);
    return 2;
  }
  check_version();
  check_devices();
  for (int i = 3; i < argc; i++) check_device(argv[i], argv[1], argv[2]);
  kiln_compile_options_release(NULL);
  kiln_blob_release(NULL);
  kiln_session_release(NULL);
  kiln_device_release(NULL);
  kiln_device_list_release(NULL);
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("kiln C API test: all checks passed on %d device(s)\n", argc - 3);
  return 0;
}
