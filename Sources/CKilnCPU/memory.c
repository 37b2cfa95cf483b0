/* Zeroed, aligned host memory for CPU buffers (see kiln_cpu_runtime.h). */
#define _GNU_SOURCE
#include "kiln_cpu_runtime.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Sizes from here up are mapped from the kernel: zero pages for free, committed on first touch. */
#define KILN_CPU_MMAP_THRESHOLD ((size_t)256 * 1024)

static size_t page_size(void) {
  long size = sysconf(_SC_PAGESIZE);
  return size > 0 ? (size_t)size : 4096;
}

/* Rounds `size` up to a multiple of `alignment` (a power of two); 0 on overflow. */
static size_t round_up(size_t size, size_t alignment) {
  if (size > SIZE_MAX - (alignment - 1)) return 0;
  return (size + alignment - 1) & ~(alignment - 1);
}

void *kiln_cpu_memory_allocate(size_t size, size_t *out_reserved) {
  if (out_reserved != NULL) *out_reserved = 0;
  size_t reserved = round_up(size == 0 ? 1 : size, KILN_CPU_MEMORY_ALIGNMENT);
  if (reserved == 0) return NULL;
  void *pointer = NULL;
  if (reserved >= KILN_CPU_MMAP_THRESHOLD) {
    reserved = round_up(reserved, page_size());
    if (reserved == 0) return NULL;
    pointer = mmap(NULL, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pointer == MAP_FAILED) return NULL;
  } else {
    if (posix_memalign(&pointer, KILN_CPU_MEMORY_ALIGNMENT, reserved) != 0) return NULL;
    memset(pointer, 0, reserved);
  }
  if (out_reserved != NULL) *out_reserved = reserved;
  return pointer;
}

void kiln_cpu_memory_free(void *pointer, size_t reserved) {
  if (pointer == NULL) return;
  if (reserved >= KILN_CPU_MMAP_THRESHOLD) {
    munmap(pointer, reserved);
  } else {
    free(pointer);
  }
}

void kiln_cpu_memory_fill32(void *destination, uint32_t pattern, size_t word_count) {
  uint32_t *words = destination;
  for (size_t i = 0; i < word_count; i++) words[i] = pattern;
}
