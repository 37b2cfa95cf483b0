/*
 * kiln.h: Kiln's C API (libkiln.so), version 1.
 *
 * Compile ONNX models to .kiln bundles, load bundles on a device, run them with caller-owned
 * buffers. Hand-written; the implementation is Sources/KilnC (Swift, @_cdecl).
 *
 * Conventions
 * - Every object is an opaque handle released by its own kiln_*_release function; releasing
 *   NULL does nothing. A handle is owned by whoever received it through an out-parameter.
 * - Every fallible call returns a kiln_status *: NULL on success, otherwise a status the caller
 *   owns and releases with kiln_status_release. Out-parameters are written only on success.
 * - Strings returned by accessors are UTF-8, NUL-terminated and owned by the object they came
 *   from: valid until that object is released.
 * - Thread-safety is stated per function. "Any thread" means the call may run concurrently with
 *   any other call on the same object.
 * - Check the version first: kiln_check_version(KILN_API_VERSION) fails when the library does
 *   not implement the API this header describes.
 */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Major version in the high 16 bits, minor in the low 16. A library serves every header with
   its major version and a minor version not above its own. */
#define KILN_API_VERSION_MAJOR 1
#define KILN_API_VERSION_MINOR 0
#define KILN_API_VERSION ((KILN_API_VERSION_MAJOR << 16) | KILN_API_VERSION_MINOR)

/* ---- Status ------------------------------------------------------------------------------- */

typedef enum kiln_status_code {
  KILN_STATUS_OK = 0,
  KILN_STATUS_INVALID_ARGUMENT = 1, /* a NULL handle, an unknown option, a wrong dtype or shape */
  KILN_STATUS_NOT_FOUND = 2,        /* no such file, device or tensor name */
  KILN_STATUS_INVALID_MODEL = 3,    /* the model or bundle is malformed, or uses what Kiln lacks */
  KILN_STATUS_DEVICE = 4,           /* the device failed, was lost, or ran out of memory */
  KILN_STATUS_VERSION = 5,          /* an API or bundle version this library does not serve */
  KILN_STATUS_IO = 6,               /* a file could not be read or written */
  KILN_STATUS_INTERNAL = 7          /* a bug in Kiln: please report it with the message */
} kiln_status_code;

typedef struct kiln_status kiln_status;

/* Any thread. The code of `status` (KILN_STATUS_OK for NULL). */
kiln_status_code kiln_status_get_code(const kiln_status *status);
/* Any thread. A one-line message ("" for NULL), owned by `status`. */
const char *kiln_status_get_message(const kiln_status *status);
/* Any thread, once per status. */
void kiln_status_release(kiln_status *status);

/* ---- Version ------------------------------------------------------------------------------ */

/* Any thread. The API version the library implements (KILN_API_VERSION of its header). */
uint32_t kiln_get_api_version(void);
/* Any thread. The library's version string, e.g. "0.1.0"; static storage. */
const char *kiln_get_version(void);
/* Any thread. Fails with KILN_STATUS_VERSION unless the library serves `header_version`. */
kiln_status *kiln_check_version(uint32_t header_version);

/* ---- Devices ------------------------------------------------------------------------------ */

typedef struct kiln_device_list kiln_device_list;

/* Any thread. Every device Kiln can run on: Vulkan devices in preference order, then the CPU. */
kiln_status *kiln_device_list_create(kiln_device_list **out_list);
/* Any thread. */
size_t kiln_device_list_get_count(const kiln_device_list *list);
/* Any thread. The URI that opens device `index` ("vulkan:0", "cpu"); NULL out of range. */
const char *kiln_device_list_get_uri(const kiln_device_list *list, size_t index);
/* Any thread. The device's name ("llvmpipe (LLVM 15.0.6, 256 bits)"); NULL out of range. */
const char *kiln_device_list_get_name(const kiln_device_list *list, size_t index);
/* Any thread. The driver ("vulkan" or "cpu"); NULL out of range. */
const char *kiln_device_list_get_driver(const kiln_device_list *list, size_t index);
void kiln_device_list_release(kiln_device_list *list);

typedef struct kiln_device kiln_device;

/* Any thread. Opens a device by URI: "auto" (the best), "cpu", "vulkan", "vulkan:N",
   "vulkan://UUID". A device stays open while any session made on it lives. */
kiln_status *kiln_device_open(const char *uri, kiln_device **out_device);
/* Any thread. The URI that names this device ("vulkan:0", "cpu"). */
const char *kiln_device_get_uri(const kiln_device *device);
/* Any thread. */
const char *kiln_device_get_name(const kiln_device *device);
/* Any thread. "vulkan" or "cpu". */
const char *kiln_device_get_driver(const kiln_device *device);
/* Not concurrently with calls on this handle; sessions keep the device open. */
void kiln_device_release(kiln_device *device);

/* ---- Compiling ---------------------------------------------------------------------------- */

typedef struct kiln_compile_options kiln_compile_options;

/* Any thread. Options with the CLI's defaults: every target, the kernel cache on. */
kiln_status *kiln_compile_options_create(kiln_compile_options **out_options);
/* Not concurrently with other calls on `options`. Sets one option by its `kiln compile` name:
     "target"        "vulkan", "cpu" or "vulkan,cpu"
     "vulkan-class"  comma-separated of "cpu", "gpu", "coopmat"
     "cpu-variant"   comma-separated of "x86-64-v3", "baseline"
     "precision"     "fp32" or "fp16"
     "input-shape"   "NAME=D0,D1,..." (adds one; call again for another input)
     "memory-budget" bytes, decimal
     "cache-dir"     a folder for the compiled-kernel cache
     "cache"         "on" or "off"
     "spirv-opt"     "on" or "off"
     "model-name"    the name recorded in the bundle
   An unknown key or a bad value is KILN_STATUS_INVALID_ARGUMENT. */
kiln_status *kiln_compile_options_set(kiln_compile_options *options, const char *key, const char *value);
void kiln_compile_options_release(kiln_compile_options *options);

typedef struct kiln_blob kiln_blob;

/* Any thread (compiles run in parallel). `options` may be NULL for the defaults. Compiles the
   ONNX model at `model_path` (external data beside it) into a bundle written atomically at
   `bundle_path`; refuses to overwrite the model. */
kiln_status *kiln_compile_file(const char *model_path, const kiln_compile_options *options, const char *bundle_path);
/* Any thread. Compiles a serialised ONNX model (no external data) into bundle bytes. */
kiln_status *kiln_compile_bytes(
    const void *model, size_t model_size, const kiln_compile_options *options, kiln_blob **out_bundle);
/* Any thread. */
const void *kiln_blob_get_data(const kiln_blob *blob);
/* Any thread. */
size_t kiln_blob_get_size(const kiln_blob *blob);
void kiln_blob_release(kiln_blob *blob);

/* ---- Sessions ----------------------------------------------------------------------------- */

/* Element types: the values of ONNX's TensorProto.DataType. */
typedef enum kiln_dtype {
  KILN_DTYPE_UNDEFINED = 0,
  KILN_DTYPE_FLOAT32 = 1,
  KILN_DTYPE_UINT8 = 2,
  KILN_DTYPE_INT8 = 3,
  KILN_DTYPE_UINT16 = 4,
  KILN_DTYPE_INT16 = 5,
  KILN_DTYPE_INT32 = 6,
  KILN_DTYPE_INT64 = 7,
  KILN_DTYPE_BOOL = 9,
  KILN_DTYPE_FLOAT16 = 10,
  KILN_DTYPE_FLOAT64 = 11,
  KILN_DTYPE_UINT32 = 12,
  KILN_DTYPE_UINT64 = 13,
  KILN_DTYPE_BFLOAT16 = 16
} kiln_dtype;

typedef struct kiln_session kiln_session;

/* Any thread. Loads the bundle at `path` (memory-mapped) on `device`: executables created,
   weights uploaded, the program recorded. The session keeps `device` open. */
kiln_status *kiln_session_create_from_file(kiln_device *device, const char *path, kiln_session **out_session);
/* Any thread. As above from bundle bytes, which are copied: the caller may free them after. */
kiln_status *kiln_session_create_from_bytes(
    kiln_device *device, const void *bundle, size_t size, kiln_session **out_session);
/* Any thread. Releasing while a run on another thread is in progress is undefined. */
void kiln_session_release(kiln_session *session);

/* Any thread. The bundle's model name. */
const char *kiln_session_get_model_name(const kiln_session *session);
/* Any thread. Which program runs: "vulkan/cpu", "vulkan/gpu", "cpu". */
const char *kiln_session_get_program(const kiln_session *session);

typedef enum kiln_io { KILN_INPUT = 0, KILN_OUTPUT = 1 } kiln_io;

/* Any thread. How many inputs, or outputs (those `kiln_session_run` writes). */
size_t kiln_session_get_count(const kiln_session *session, kiln_io io);
/* Any thread. The name of input or output `index`; NULL out of range. */
const char *kiln_session_get_name(const kiln_session *session, kiln_io io, size_t index);
/* Any thread. The element type (KILN_DTYPE_UNDEFINED for types without a code here, such as
   8-bit floats, or out of range). */
kiln_dtype kiln_session_get_dtype(const kiln_session *session, kiln_io io, size_t index);
/* Any thread. The element type's Kiln name ("float32", "float8e4m3fn"); NULL out of range. */
const char *kiln_session_get_dtype_name(const kiln_session *session, kiln_io io, size_t index);
/* Any thread. The rank; 0 out of range (and for scalars). */
size_t kiln_session_get_rank(const kiln_session *session, kiln_io io, size_t index);
/* Any thread. Extent of `axis`: -1 where it is symbolic or decided by the data (outputs whose
   size depends on values), -2 out of range. */
int64_t kiln_session_get_dim(const kiln_session *session, kiln_io io, size_t index, size_t axis);
/* Any thread. The symbol naming `axis` (a dim_param such as "batch"); NULL where the extent is
   a number. Version 1 bundles have static shapes: outputs whose extent the data decides name it
   "<output>_dim<axis>". */
const char *kiln_session_get_dim_name(const kiln_session *session, kiln_io io, size_t index, size_t axis);
/* Any thread. The most bytes input or output `index` takes: the size to allocate for it. */
size_t kiln_session_get_max_bytes(const kiln_session *session, kiln_io io, size_t index);

/* A tensor the caller owns. For inputs every field is read. For outputs `data` and `capacity`
   are read; `dims` must hold `rank` entries, and the run writes the output's shape there (an
   output whose size depends on the data may come out smaller than its maximum). */
typedef struct kiln_tensor {
  kiln_dtype dtype;
  size_t rank;
  int64_t *dims;
  void *data;       /* row-major, densely packed */
  size_t capacity;  /* bytes at `data` */
} kiln_tensor;

/* Any thread; runs on one session are serialised, several sessions run in parallel. Runs the
   model on `inputs` (all of them, in input order) and writes `outputs` (all of them, in output
   order). Nothing is kept of the caller's buffers after the call returns. */
kiln_status *kiln_session_run(
    kiln_session *session, const kiln_tensor *inputs, size_t input_count, kiln_tensor *outputs, size_t output_count);

#ifdef __cplusplus
}
#endif
#endif /* KILN_H */
