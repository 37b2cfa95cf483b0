// Thin POSIX wrappers for the writer and reader: every failure becomes a BundleError (.io) that
// names the path and the system's reason.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

enum FileIO {
  static func errorMessage(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
  }

  static func ioError(_ what: String, _ path: String, _ code: Int32 = errno) -> BundleError {
    BundleError(.io, "\(what) '\(path)': \(errorMessage(code))")
  }

  /// Creates `path` exclusively (fails if it exists), write-only, mode 0644.
  static func createExclusive(_ path: String) throws -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw ioError("cannot create", path) }
    return fd
  }

  static func openReadOnly(_ path: String) throws -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ioError("cannot open", path) }
    return fd
  }

  /// Writes all of `bytes`, retrying short writes and EINTR.
  static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    guard var base = bytes.baseAddress else { return }
    var remaining = bytes.count
    while remaining > 0 {
      let written = write(fd, base, remaining)
      if written < 0 {
        if errno == EINTR { continue }
        throw ioError("cannot write", path)
      }
      base += written
      remaining -= written
    }
  }

  /// Reads exactly `count` bytes at `offset` into `destination`.
  static func readAll(
    _ fd: Int32, into destination: UnsafeMutableRawPointer, count: Int, path: String
  ) throws {
    var done = 0
    while done < count {
      let got = pread(fd, destination + done, count - done, off_t(done))
      if got < 0 {
        if errno == EINTR { continue }
        throw ioError("cannot read", path)
      }
      if got == 0 {
        throw BundleError(.io, "cannot read '\(path)': file shrank while reading")
      }
      done += got
    }
  }

  static func fileSize(_ fd: Int32, path: String) throws -> Int {
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw ioError("cannot stat", path) }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw BundleError(.io, "cannot read '\(path)': not a regular file")
    }
    return Int(info.st_size)
  }

  /// Maps `count` bytes of `fd` read-only and private, or returns nil if mapping fails.
  static func mapReadOnly(_ fd: Int32, count: Int) -> UnsafeRawPointer? {
    guard count > 0, let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0),
      address != UnsafeMutableRawPointer(bitPattern: -1)
    else { return nil }
    return UnsafeRawPointer(address)
  }

  static func unmap(_ address: UnsafeRawPointer, count: Int) {
    munmap(UnsafeMutableRawPointer(mutating: address), count)
  }

  static func closeFile(_ fd: Int32) -> Int32 { close(fd) }

  static func sync(_ fd: Int32, path: String) throws {
    guard fsync(fd) == 0 else { throw ioError("cannot sync", path) }
  }

  /// Whether anything (a file, a folder, a dangling symlink) has the name `path`.
  static func exists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
  }

  static func renameFile(_ source: String, to destination: String) throws {
    guard rename(source, destination) == 0 else {
      let code = errno
      throw BundleError(
        .io, "cannot rename '\(source)' to '\(destination)': \(errorMessage(code))")
    }
  }

  /// Best effort: makes a rename in `path` durable. Failure is ignored (some file systems refuse).
  static func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    _ = close(fd)
  }

  static func removeFile(_ path: String) { unlink(path) }

  /// Device and inode of `path` (following symlinks), or nil if it does not exist.
  static func identity(of path: String) -> (device: UInt64, inode: UInt64)? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return (UInt64(info.st_dev), UInt64(info.st_ino))
  }

  /// `path` with symlinks resolved: the whole path if it exists, else its parent + last component.
  static func canonicalPath(_ url: URL) -> String {
    let path = url.standardizedFileURL.path
    if let resolved = realPath(path) { return resolved }
    let parent = (path as NSString).deletingLastPathComponent
    let name = (path as NSString).lastPathComponent
    if let resolvedParent = realPath(parent) {
      return (resolvedParent as NSString).appendingPathComponent(name)
    }
    return path
  }

  private static func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
  }
}
