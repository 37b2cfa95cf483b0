#define _GNU_SOURCE
#include "CKilnProcess.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int kiln_spawn(const char *path, char *const argv[], const char *directory, int output_fd, pid_t *pid) {
  posix_spawn_file_actions_t actions;
  int status = posix_spawn_file_actions_init(&actions);
  if (status != 0) return status;
  if ((status = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
      (status = posix_spawn_file_actions_adddup2(&actions, output_fd, 1)) == 0 &&
      (status = posix_spawn_file_actions_adddup2(&actions, output_fd, 2)) == 0 &&
      (status = posix_spawn_file_actions_addchdir_np(&actions, directory)) == 0) {
    status = posix_spawn(pid, path, &actions, NULL, argv, environ);
  }
  posix_spawn_file_actions_destroy(&actions);
  return status;
}

int kiln_child_poll(pid_t pid, int *exit_code) {
  int status = 0;
  pid_t done;
  do {
    done = waitpid(pid, &status, WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done < 0) return -1;
  if (done == 0) return 0;
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return 1;
}
