import CKilnProcess
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A child process started with `posix_spawn` (no shell) and waited for with a time-out.
///
/// Not Foundation's `Process`: on Linux it keeps a reference cycle after every child, which
/// LeakSanitizer reports from the C API (libkiln.so) once per CPU-target compile.
/// Ownership: whoever starts a child must wait for it (or kill and then wait), so no zombie is
/// left. Thread-safety: one caller per child.
struct ChildProcess {
  let pid: pid_t

  /// Starts `executable` with `arguments` in `directory`, with standard input from /dev/null and
  /// standard output and error into the file descriptor `output`.
  /// - Throws: the `errno` of the failure, as a message.
  init(executable: String, arguments: [String], directory: String, output: Int32) throws {
    let strings = ([executable] + arguments).map { strdup($0) }
    defer { strings.forEach { free($0) } }
    var pid: pid_t = 0
    var status: Int32 = 0
    // ETXTBSY: another thread of this process had the executable open for writing when a child
    // was forked (it holds a copy of the descriptor until its exec); it goes away, so try again.
    for attempt in 0..<20 {
      status = (strings + [nil]).withUnsafeBufferPointer { argv in
        kiln_spawn(executable, argv.baseAddress, directory, output, &pid)
      }
      guard status == ETXTBSY else { break }
      usleep(UInt32(1000 * (attempt + 1)))
    }
    guard status == 0 else { throw ChildProcessError(String(cString: strerror(status))) }
    self.pid = pid
  }

  /// The exit code (128 + the signal, for a child a signal ended), or nil when `timeout` passed
  /// first (the child is still running).
  func wait(timeout: Duration) -> Int32? {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var pause: UInt32 = 1000  // microseconds; doubled up to 20 ms while the child runs
    while true {
      var code: Int32 = 0
      switch kiln_child_poll(pid, &code) {
      case 1: return code
      case 0: break
      default: return 128  // not our child any more: report a failure, never wait forever
      }
      if clock.now >= deadline { return nil }
      usleep(pause)
      pause = min(pause * 2, 20_000)
    }
  }

  /// Ends the child: SIGTERM, then SIGKILL if it is still there after `grace`; reaps it.
  func terminate(grace: Duration = .seconds(5)) {
    kill(pid, SIGTERM)
    if wait(timeout: grace) == nil {
      kill(pid, SIGKILL)
      _ = wait(timeout: grace)
    }
  }
}

struct ChildProcessError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
