/* Loading Kiln CPU shared objects from bytes (see kiln_cpu_runtime.h). */
#define _GNU_SOURCE
#include "kiln_cpu_runtime.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct kiln_cpu_library {
  void *handle;
  /* The memory file the object was loaded from, kept open while it is loaded so that no other
     object gets the same /proc/self/fd/N name (dlopen reuses a loaded object of the same name). */
  int memfd;
};

static void set_error(char *error, size_t capacity, const char *format, ...) {
  if (error == NULL || capacity == 0) return;
  va_list args;
  va_start(args, format);
  vsnprintf(error, capacity, format, args);
  va_end(args);
}

static void set_dlerror(char *error, size_t capacity) {
  const char *text = dlerror();
  set_error(error, capacity, "%s", text != NULL ? text : "dlopen failed without a message");
}

static int write_all(int fd, const void *bytes, size_t size) {
  const unsigned char *cursor = bytes;
  while (size > 0) {
    ssize_t written = write(fd, cursor, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    cursor += written;
    size -= (size_t)written;
  }
  return 0;
}

#if defined(__x86_64__)
#define KILN_CPU_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define KILN_CPU_ELF_MACHINE EM_AARCH64
#endif

/* True when [offset, offset + length) lies inside a file of `size` bytes (overflow-safe). */
static bool inside(uint64_t offset, uint64_t length, size_t size) {
  return offset <= size && length <= size - offset;
}

/*
 * Checks what the dynamic loader trusts blindly: the loader maps segments straight from the file
 * and touches their last pages, so a truncated object would kill the process with SIGBUS instead
 * of failing. Returns false with a message for anything that is not a complete 64-bit shared
 * object for this machine.
 */
static bool check_elf(const void *bytes, size_t size, char *error, size_t capacity) {
  Elf64_Ehdr header;
  if (size < sizeof header) {
    set_error(error, capacity, "not an ELF shared object (%zu bytes)", size);
    return false;
  }
  memcpy(&header, bytes, sizeof header);
  if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    set_error(error, capacity, "not an ELF shared object (bad magic)");
    return false;
  }
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB) {
    set_error(error, capacity, "not a 64-bit little-endian ELF object");
    return false;
  }
  if (header.e_type != ET_DYN) {
    set_error(error, capacity, "ELF object of type %u is not a shared object", (unsigned)header.e_type);
    return false;
  }
#ifdef KILN_CPU_ELF_MACHINE
  if (header.e_machine != KILN_CPU_ELF_MACHINE) {
    set_error(error, capacity, "ELF object for machine %u cannot run on this host (machine %u)",
              (unsigned)header.e_machine, (unsigned)KILN_CPU_ELF_MACHINE);
    return false;
  }
#endif
  if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phnum == 0 ||
      !inside(header.e_phoff, (uint64_t)header.e_phnum * sizeof(Elf64_Phdr), size)) {
    set_error(error, capacity, "ELF program headers are missing or truncated");
    return false;
  }
  for (unsigned i = 0; i < header.e_phnum; i++) {
    Elf64_Phdr segment;
    memcpy(&segment, (const unsigned char *)bytes + header.e_phoff + (uint64_t)i * sizeof segment, sizeof segment);
    if (segment.p_filesz == 0) continue;
    if (!inside(segment.p_offset, segment.p_filesz, size) ||
        (segment.p_type == PT_LOAD && segment.p_filesz > segment.p_memsz)) {
      set_error(error, capacity, "ELF segment %u (offset %llu, %llu bytes) lies outside the %zu-byte file (truncated?)",
                i, (unsigned long long)segment.p_offset, (unsigned long long)segment.p_filesz, size);
      return false;
    }
  }
  return true;
}

/* Loads through memfd_create; returns NULL when this route fails. */
static kiln_cpu_library *load_from_memfd(const void *bytes, size_t size, char *error, size_t capacity) {
  int fd = memfd_create("kiln-cpu-kernels", MFD_CLOEXEC);
  if (fd < 0) {
    set_error(error, capacity, "memfd_create: %s", strerror(errno));
    return NULL;
  }
  if (write_all(fd, bytes, size) != 0) {
    set_error(error, capacity, "writing the shared object to a memory file: %s", strerror(errno));
    close(fd);
    return NULL;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    set_dlerror(error, capacity);
    close(fd);
    return NULL;
  }
  kiln_cpu_library *library = malloc(sizeof *library);
  if (library == NULL) {
    dlclose(handle);
    close(fd);
    set_error(error, capacity, "out of memory");
    return NULL;
  }
  library->handle = handle;
  library->memfd = fd;
  return library;
}

/* Loads through a private temporary file that is removed as soon as dlopen returns. */
static kiln_cpu_library *load_from_temp_file(const void *bytes, size_t size, char *error, size_t capacity) {
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0') base = "/tmp";
  char directory[PATH_MAX];
  if (snprintf(directory, sizeof directory, "%s/kiln-cpu-XXXXXX", base) >= (int)sizeof directory) {
    set_error(error, capacity, "temporary directory path too long");
    return NULL;
  }
  if (mkdtemp(directory) == NULL) { /* mkdtemp creates the directory with mode 0700 */
    set_error(error, capacity, "mkdtemp %s: %s", directory, strerror(errno));
    return NULL;
  }
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/kernels-XXXXXX", directory);
  int fd = mkstemp(path);
  if (fd < 0) {
    set_error(error, capacity, "mkstemp %s: %s", path, strerror(errno));
    rmdir(directory);
    return NULL;
  }
  void *handle = NULL;
  if (write_all(fd, bytes, size) != 0) {
    set_error(error, capacity, "writing %s: %s", path, strerror(errno));
  } else {
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) set_dlerror(error, capacity);
  }
  close(fd);
  unlink(path);
  rmdir(directory);
  if (handle == NULL) return NULL;
  kiln_cpu_library *library = malloc(sizeof *library);
  if (library == NULL) {
    dlclose(handle);
    set_error(error, capacity, "out of memory");
    return NULL;
  }
  library->handle = handle;
  library->memfd = -1;
  return library;
}

kiln_cpu_library *kiln_cpu_library_load(const void *bytes, size_t size, char *error, size_t error_capacity) {
  if (bytes == NULL && size > 0) {
    set_error(error, error_capacity, "no bytes");
    return NULL;
  }
  if (!check_elf(bytes, size, error, error_capacity)) return NULL;
  kiln_cpu_library *library = load_from_memfd(bytes, size, error, error_capacity);
  if (library != NULL) return library;
  /* memfd_create may be missing or memory files may be mounted noexec: try a real file. When both
     routes fail, the temporary file's error (usually the same dlopen message) is reported. */
  return load_from_temp_file(bytes, size, error, error_capacity);
}

void *kiln_cpu_library_symbol(const kiln_cpu_library *library, const char *name) {
  if (library == NULL || name == NULL) return NULL;
  void *symbol = dlsym(library->handle, name);
  if (symbol == NULL) return NULL;
  /* dlsym also searches the object's dependencies (an entry point named "memcpy" would resolve to
     libc): accept only symbols the object itself defines. */
  struct link_map *own = NULL;
  struct link_map *owner = NULL;
  Dl_info info;
  if (dlinfo(library->handle, RTLD_DI_LINKMAP, &own) != 0) return NULL;
  if (dladdr1(symbol, &info, (void **)&owner, RTLD_DL_LINKMAP) == 0) return NULL;
  return owner == own ? symbol : NULL;
}

void kiln_cpu_library_unload(kiln_cpu_library *library) {
  if (library == NULL) return;
  dlclose(library->handle);
  if (library->memfd >= 0) close(library->memfd);
  free(library);
}
