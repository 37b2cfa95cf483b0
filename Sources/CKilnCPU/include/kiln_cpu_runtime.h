/*
 * kiln_cpu_runtime.h: the host-side helpers of the Kiln CPU driver (imported only by KilnCPU).
 *
 * Four small objects, one section each: a loaded shared object, host memory, a timeline (the
 * counter behind semaphores) and a fork-join thread pool that runs a dispatch's workgroups.
 * Errors are reported through return values; nothing here aborts on bad input.
 */
#ifndef KILN_CPU_RUNTIME_H
#define KILN_CPU_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln_cpu_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Shared objects ------------------------------------------------------------------------- */

/* A shared object loaded from bytes (opaque). */
typedef struct kiln_cpu_library kiln_cpu_library;

/*
 * Loads a shared object from `size` bytes with dlopen(RTLD_NOW | RTLD_LOCAL). The ELF headers are
 * checked first (a 64-bit shared object for this machine whose segments lie inside the bytes), so
 * that garbage or a truncated object fails here instead of crashing the loader. It goes through an
 * anonymous memory file (memfd_create, opened as /proc/self/fd/N and kept open while loaded) and
 * falls back to a private temporary file (mkstemp in a fresh 0700 directory, unlinked right after
 * dlopen). Loading runs the object's constructors: load only code you trust.
 *
 * Returns NULL on failure and writes dlerror's (or the system call's) text, NUL-terminated and
 * truncated to `error_capacity` bytes, to `error` when it is not NULL. Thread-safe.
 */
kiln_cpu_library *kiln_cpu_library_load(const void *bytes, size_t size, char *error, size_t error_capacity);

/* The address of the symbol `name`, or NULL when the object does not define it. Thread-safe. */
void *kiln_cpu_library_symbol(const kiln_cpu_library *library, const char *name);

/* Unloads the object (dlclose) and frees `library`; no symbol of it may be used afterwards. */
void kiln_cpu_library_unload(kiln_cpu_library *library);

/* ---- Host memory ---------------------------------------------------------------------------- */

/* Alignment of every kiln_cpu_memory_allocate result, in bytes. */
#define KILN_CPU_MEMORY_ALIGNMENT 64

/*
 * Allocates `size` zeroed bytes aligned to KILN_CPU_MEMORY_ALIGNMENT (at least 1 byte is reserved
 * for size 0). Large sizes are mapped straight from the kernel (anonymous mmap), so their pages
 * are committed lazily. Stores the bytes actually reserved in `*out_reserved` (pass it back to
 * kiln_cpu_memory_free). Returns NULL when the system refuses, including sizes that overflow.
 */
void *kiln_cpu_memory_allocate(size_t size, size_t *out_reserved);

/* Frees memory from kiln_cpu_memory_allocate; `reserved` is the value it reported. */
void kiln_cpu_memory_free(void *pointer, size_t reserved);

/* Stores `pattern` into `word_count` consecutive 32-bit words at `destination` (4-byte aligned). */
void kiln_cpu_memory_fill32(void *destination, uint32_t pattern, size_t word_count);

/* ---- Timelines -------------------------------------------------------------------------------- */

/* A 64-bit counter that only increases, with blocking waits on CLOCK_MONOTONIC (opaque). */
typedef struct kiln_cpu_timeline kiln_cpu_timeline;

/* Returns NULL when out of memory. */
kiln_cpu_timeline *kiln_cpu_timeline_create(uint64_t initial_value);
/* No thread may be waiting on it. */
void kiln_cpu_timeline_destroy(kiln_cpu_timeline *timeline);
uint64_t kiln_cpu_timeline_value(kiln_cpu_timeline *timeline);
/* Raises the value to `value` if it is larger and wakes every waiter; returns the previous value. */
uint64_t kiln_cpu_timeline_signal(kiln_cpu_timeline *timeline, uint64_t value);
/*
 * Blocks until the value is at least `value` or `timeout_ns` nanoseconds pass (0 polls; very large
 * values are capped at about 100 years). Returns true when the value was reached.
 */
bool kiln_cpu_timeline_wait(kiln_cpu_timeline *timeline, uint64_t value, int64_t timeout_ns);

/* ---- Thread pool ---------------------------------------------------------------------------- */

/* Worker threads that run the workgroups of one dispatch at a time (opaque). */
typedef struct kiln_cpu_pool kiln_cpu_pool;

/*
 * Starts `worker_count` threads with `stack_size`-byte stacks (0: 8 MiB). Returns NULL and writes
 * the reason to `error` when a thread cannot be started.
 */
kiln_cpu_pool *kiln_cpu_pool_create(uint32_t worker_count, size_t stack_size, char *error, size_t error_capacity);

/* Stops and joins every worker; no dispatch may be running. */
void kiln_cpu_pool_destroy(kiln_cpu_pool *pool);

/*
 * Runs `kernel` over the workgroups [dispatch->workgroup_begin, dispatch->workgroup_end) and returns
 * when all of them have finished. The calling thread takes part; the participants claim
 * contiguous chunks of the range one at a time: `chunks_per_thread` equal chunks per participating
 * thread, or with 0, chunks that shrink as the range empties (each the remaining workgroups over
 * twice the participants, at least a sixteenth of an equal share). `pool` may be NULL: the caller
 * then runs the whole range in one call, as it does for a single workgroup. Calls on one pool are
 * serialised internally.
 */
void kiln_cpu_pool_dispatch(kiln_cpu_pool *pool, kiln_cpu_kernel kernel, const kiln_cpu_dispatch *dispatch,
                            uint32_t chunks_per_thread);

/* Stack size of the calling thread in bytes, 0 when unknown (for tests of the ABI's stack promise). */
size_t kiln_cpu_current_thread_stack_size(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_CPU_RUNTIME_H */
