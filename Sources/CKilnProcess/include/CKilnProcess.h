// Starting a child process for KilnCodegen's NativeToolchain (its only importer): posix_spawn
// with a working directory, which Swift's Glibc module does not expose, and without Foundation's
// Process (which keeps a reference cycle, and so leaks, after every child on Linux).
#ifndef KILN_CKILNPROCESS_H
#define KILN_CKILNPROCESS_H
#include <sys/types.h>

/// Starts `path` with `argv` (NULL-terminated, argv[0] included) and the parent's environment,
/// in `directory`, with standard input from /dev/null and standard output and error into
/// `output_fd`. Returns 0 and the child's pid, or an errno value.
int kiln_spawn(const char *path, char *const argv[], const char *directory, int output_fd, pid_t *pid);

/// Polls for the child's exit without blocking: 1 with its status decoded (the exit code, or
/// 128 + the signal that ended it), 0 while it runs, -1 on error (errno set).
int kiln_child_poll(pid_t pid, int *exit_code);
#endif
